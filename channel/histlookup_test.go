package channel

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// lookupMSIM is a logged-in MSIM link whose LookupUser knows users, and
// counts the lookups.
type lookupMSIM struct {
	*fakeMSIM
	users   map[string]msim.UID
	lookups atomic.Int32
}

func (l *lookupMSIM) LookupUser(_ context.Context, name string) (msim.Profile, error) {
	l.lookups.Add(1)
	if uid, ok := l.users[strings.ToLower(name)]; ok {
		return msim.Profile{UID: uid, UserName: name}, nil
	}
	return msim.Profile{}, msim.ErrNoSuchUser
}

// lookupRig is historyRig with the account logged in on a lookupMSIM.
func lookupRig(t *testing.T, users map[string]msim.UID) (*rig, store.Store, *lookupMSIM) {
	r, st := historyRig(t)
	cl := &lookupMSIM{fakeMSIM: &fakeMSIM{}, users: users}
	r.a.client = cl
	return r, st, cl
}

// await handles the session's events until ch has a value.
func await[T any](r *rig, ch <-chan T) T {
	r.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case v := <-ch:
			return v
		case ev := <-r.s.events:
			r.s.handle(ev)
		case <-timeout:
			r.t.Fatal("no answer")
		}
	}
}

// TestChathistoryOfAControlChannel: a control channel has no history of
// its own: CHATHISTORY on it is answered with no messages (an empty
// batch), as for any target with none, and no MSIM user is looked up by
// the channel's name.
func TestChathistoryOfAControlChannel(t *testing.T) {
	r, _, cl := lookupRig(t, nil)
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	r.s.cl.ats[0].History(ircd.HistoryQuery{Subcommand: "LATEST", Target: "&msim", Limit: 10}, func(ms []ircd.HistoryMessage, err error) {
		got <- result{len(ms), err}
	})
	if res := await(r, got); res.err != nil || res.n != 0 {
		t.Errorf("CHATHISTORY LATEST &msim: %d messages, error %v; want none, no error", res.n, res.err)
	}
	r.s.workers.Wait()
	if n := cl.lookups.Load(); n != 0 {
		t.Errorf("%d MSIM lookups for a channel's name, want none", n)
	}
}

// TestMarkReadOfAStranger: MARKREAD finds a conversation as CHATHISTORY
// does: with someone not on the list whose nick the bridge no longer
// knows (after a restart), by looking their name up on MSIM. The marker
// is stored and given back, not "*".
func TestMarkReadOfAStranger(t *testing.T) {
	r, st, _ := lookupRig(t, map[string]msim.UID{"stranger": 9})
	ctx := context.Background()
	wrote := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, res := range st.AppendHistoryBatch(ctx, []store.HistoryAppend{{User: "alice", Entry: store.HistoryEntry{
		MsgID: "s1", Time: wrote, Account: "alice@msim.test", Buddy: 9, Kind: kindIM, Text: "hi"}}}, nil) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	at := r.s.cl.ats[0]
	read := wrote.Add(time.Minute)
	at.MarkRead("stranger", read)
	got := make(chan time.Time, 1)
	at.ReadMarker("stranger", func(t time.Time) { got <- t })
	if m := await(r, got); !m.Equal(read) {
		t.Errorf("MARKREAD stranger: the marker is %v, want %v", m, read)
	}
	if m, err := st.ReadMarker(ctx, "alice", "alice@msim.test", 9); err != nil || !m.Equal(read) {
		t.Errorf("the stored marker: %v, %v; want %v", m, err, read)
	}
}

// TestChathistoryOfTheServiceNick: the service nick is the bridge's own,
// no MSIM user's: CHATHISTORY on it is an empty batch, as on a control
// channel, with no MSIM lookup by its name (an MSIM user of that name,
// even one with history, is not who the nick is).
func TestChathistoryOfTheServiceNick(t *testing.T) {
	r, st, cl := lookupRig(t, map[string]msim.UID{"root": 7})
	ctx := context.Background()
	for _, res := range st.AppendHistoryBatch(ctx, []store.HistoryAppend{{User: "alice", Entry: store.HistoryEntry{
		MsgID: "r1", Time: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC), Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "hi"}}}, nil) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	svc := strings.ToUpper(r.s.b.cfg.ServiceNick)
	r.s.cl.ats[0].History(ircd.HistoryQuery{Subcommand: "LATEST", Target: svc, Limit: 10}, func(ms []ircd.HistoryMessage, err error) {
		got <- result{len(ms), err}
	})
	if res := await(r, got); res.err != nil || res.n != 0 {
		t.Errorf("CHATHISTORY LATEST %s: %d messages, error %v; want none, no error", svc, res.n, res.err)
	}
	r.s.workers.Wait()
	if n := cl.lookups.Load(); n != 0 {
		t.Errorf("%d MSIM lookups for the service nick, want none", n)
	}
}

// stuckLookupMSIM's LookupUser answers only when its context ends.
type stuckLookupMSIM struct {
	*fakeMSIM
	started chan struct{}
}

func (l *stuckLookupMSIM) LookupUser(ctx context.Context, _ string) (msim.Profile, error) {
	l.started <- struct{}{}
	<-ctx.Done()
	return msim.Profile{}, ctx.Err()
}

// TestReadMarkerAnsweredAsTheSessionEnds: a read-marker question that
// waits for a MARKREAD of a stranger still being looked up is answered
// ("*") when the session ends meanwhile, not left for ircd's timeout.
func TestReadMarkerAnsweredAsTheSessionEnds(t *testing.T) {
	r, _ := historyRig(t)
	cl := &stuckLookupMSIM{fakeMSIM: &fakeMSIM{}, started: make(chan struct{}, 1)}
	r.a.client = cl
	at := r.s.cl.ats[0]
	at.MarkRead("stranger", time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC))
	await(r, cl.started)
	got := make(chan time.Time, 1)
	at.ReadMarker("stranger", func(t time.Time) { got <- t })
	r.s.handle(<-r.s.events) // the question waits for the MARKREAD
	r.s.shutdown()
	select {
	case m := <-got:
		if !m.IsZero() {
			t.Errorf("the marker: %v, want none", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read-marker question was never answered")
	}
}
