package channel

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// timedIRC keeps the time and text of each delivery by msgid; serverTime
// is whether the client took server-time.
type timedIRC struct {
	*fakeIRC
	serverTime bool
	mu         sync.Mutex
	times      map[string]time.Time
	texts      map[string]string
}

func newTimedIRC(serverTime bool) *timedIRC {
	return &timedIRC{fakeIRC: newFakeIRC(), serverTime: serverTime, times: map[string]time.Time{}, texts: map[string]string{}}
}

func (f *timedIRC) HasCap(name string) bool { return name != "server-time" || f.serverTime }

func (f *timedIRC) Deliver(d ircd.Delivery) bool {
	f.mu.Lock()
	f.times[d.MsgID], f.texts[d.MsgID] = d.Time, d.Text
	f.mu.Unlock()
	return f.fakeIRC.Deliver(d)
}

// TestIMShownWithItsHistoryTime: every client is shown an IM with the time
// it arrived, the time its history entry keeps (CHATHISTORY gives it under
// the same msgid), not the time ircd was handed it, which is later when
// it waited (for the clients to read, for a stranger's profile). Only a
// late IM (one sent while the user was offline) has its time shown as a
// prefix to a client without server-time.
func TestIMShownWithItsHistoryTime(t *testing.T) {
	r, st := historyRig(t)
	r.s.newBuddy(r.a, 7, "bob", "")
	desk, phone := newTimedIRC(true), newTimedIRC(false)
	attachNamed(r, desk, "desk")
	attachNamed(r, phone, "phone")
	arrived := time.Now().Add(-3 * time.Second)
	r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: "live", Time: arrived})
	sent := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: "offline", Time: sent, Offline: true})

	ctx := context.Background()
	r.s.b.hist.sync(ctx, "alice")
	es, err := st.HistorySince(ctx, "alice", 0, 10)
	if err != nil || len(es) != 2 {
		t.Fatalf("history: %v, %v; want the two IMs", es, err)
	}
	for _, e := range es {
		for name, c := range map[string]*timedIRC{"desk": desk, "phone": phone} {
			c.mu.Lock()
			got, text := c.times[e.MsgID], c.texts[e.MsgID]
			c.mu.Unlock()
			if got.UnixMilli() != e.Time.UnixMilli() {
				t.Errorf("%s: %q shown at %v, kept in the history at %v; want one time", name, e.Text, got, e.Time)
			}
			stamped := strings.HasPrefix(text, "[")
			if want := name == "phone" && e.Text == "offline"; stamped != want {
				t.Errorf("%s: %q shown as %q: date prefix %v, want %v", name, e.Text, text, stamped, want)
			}
		}
	}
}
