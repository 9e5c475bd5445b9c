package channel

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
)

// closableIRC is a connection that, once closing, takes nothing more;
// with queued, it takes a message and then reports it not written, as a
// connection closed with lines still queued does.
type closableIRC struct {
	*fakeIRC
	closing, queued bool
}

func (f *closableIRC) Deliver(d ircd.Delivery) bool {
	if !f.closing {
		return f.fakeIRC.Deliver(d)
	}
	if d.Sent != nil {
		d.Sent(false)
	}
	return f.queued
}

// TestPositionStopsAtWhatAClosingClientMissed: an IM that comes while a
// client is closing but still attached (its QUIT is read, the session has
// not yet taken it out) is shown to the other client only. The closing
// client's position stops before that IM, so its next connection is
// replayed it; a client that missed nothing is at the end.
func TestPositionStopsAtWhatAClosingClientMissed(t *testing.T) {
	for _, queued := range []bool{false, true} {
		t.Run(fmt.Sprintf("queued=%v", queued), func(t *testing.T) { positionAfterAMiss(t, queued) })
	}
}

func positionAfterAMiss(t *testing.T, queued bool) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "msimircd.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAccount(ctx, "alice", store.Account{Email: "alice@msim.test", Password: "pw", Channel: "&msim"}); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(c *Config) { c.Store = st })
	r.s.b.hist = startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	defer r.s.b.hist.close()

	desk := r.s.cl.ats[0]
	desk.name = "desk"
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC(), queued: queued}
	phone := newAttachment(phoneIRC, r.s, nil)
	phone.name = "phone"
	r.s.cl.add(phone)
	r.s.countAttached(1)

	var shown atomic.Int32
	for i, text := range []string{"one", "two", "three"} {
		phoneIRC.closing = text != "one" // the phone's QUIT is read after one
		msgid := "m" + text
		r.s.record(store.HistoryEntry{MsgID: msgid, Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: text,
			Time: time.Now().Add(time.Duration(i) * time.Millisecond)})
		r.s.irc.Deliver(ircd.Delivery{Command: "PRIVMSG", From: "bob", Text: text, MsgID: msgid,
			Sent: func(ok bool) {
				if ok {
					shown.Add(1)
				}
			}})
	}
	r.s.closed(phone)
	r.s.closed(desk)
	for deadline := time.Now().Add(10 * time.Second); shown.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // Sent may be reported on another goroutine
			t.Fatalf("%d of 3 IMs reported shown", shown.Load())
		}
	}

	for _, tc := range []struct {
		client string
		want   []string
	}{{"phone", []string{"two", "three"}}, {"desk", nil}} {
		pos, found, err := st.ClientPosition(ctx, "alice", tc.client)
		if err != nil || !found {
			t.Fatalf("%s's position: %v, %v", tc.client, found, err)
		}
		es, err := st.HistorySince(ctx, "alice", pos, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Text)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s's next connection would be replayed %q, want %q", tc.client, got, tc.want)
		}
	}
}
