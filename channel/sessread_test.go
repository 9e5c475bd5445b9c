package channel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// holdStore is a store whose calls of one method wait until the test
// releases them, after saying they began (with after set, the call is
// made first: what it did is in the store while it waits to return).
type holdStore struct {
	store.Store
	op      string
	after   bool
	entered chan struct{}
	release chan struct{}
}

func newHoldStore(st store.Store, op string) *holdStore {
	return &holdStore{Store: st, op: op, entered: make(chan struct{}, 8), release: make(chan struct{})}
}

// hold runs do, waiting before it (or after, with after) if op is held.
func (h *holdStore) hold(ctx context.Context, op string, do func()) {
	if op != h.op {
		do()
		return
	}
	if h.after {
		do()
	}
	h.entered <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	if !h.after {
		do()
	}
}

// held waits until a held call has begun.
func (h *holdStore) held(t *testing.T) {
	t.Helper()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("no call of %s began", h.op)
	}
}

func (h *holdStore) HistoryTargets(ctx context.Context, user string, after, before time.Time, limit int, oldest bool) (ts []store.HistoryTarget, err error) {
	h.hold(ctx, "HistoryTargets", func() { ts, err = h.Store.HistoryTargets(ctx, user, after, before, limit, oldest) })
	return ts, err
}

func (h *holdStore) SetReadMarker(ctx context.Context, user, account string, buddy msim.UID, at time.Time) (t time.Time, err error) {
	h.hold(ctx, "SetReadMarker", func() { t, err = h.Store.SetReadMarker(ctx, user, account, buddy, at) })
	return t, err
}

func (h *holdStore) SetClientPosition(ctx context.Context, user, client string, id int64) (err error) {
	h.hold(ctx, "SetClientPosition", func() { err = h.Store.SetClientPosition(ctx, user, client, id) })
	return err
}

func (h *holdStore) DeleteUser(ctx context.Context, name string) (err error) {
	h.hold(ctx, "DeleteUser", func() { err = h.Store.DeleteUser(ctx, name) })
	return err
}

// runHistoryRig is historyRig with its session running on its own
// goroutine, the store's op held, bob a buddy and the phone attached.
func runHistoryRig(t *testing.T, op string) (r *rig, st store.Store, h *holdStore, phone *attachment, phoneIRC *markIRC) {
	t.Helper()
	r, st = historyRig(t)
	h = newHoldStore(st, op)
	r.s.b.cfg.Store = h
	r.s.newBuddy(r.a, 7, "bob", "")
	r.s.cl.ats[0].name = "desk"
	phoneIRC = &markIRC{closableIRC: &closableIRC{fakeIRC: newFakeIRC()}}
	phone = attachNamed(r, phoneIRC, "phone")
	r.s.run(func() {})
	t.Cleanup(func() { r.s.cancel(); <-r.s.done }) // before the rig's own
	return r, st, h, phone, phoneIRC
}

// markIRC is a connection without chathistory that records the read
// markers it is told.
type markIRC struct {
	*closableIRC
	marks chan time.Time
}

func (m *markIRC) SendReadMarker(_ string, t time.Time) {
	if m.marks != nil {
		m.marks <- t
	}
}

// servesWhileHeld has an IM from bob reach the running session while the
// store is held, and waits until the phone is shown it.
func servesWhileHeld(t *testing.T, r *rig, h *holdStore, phoneIRC *markIRC, text string) {
	t.Helper()
	served := make(chan struct{})
	if !r.s.post(call(func() {
		r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: text, Time: time.Now()})
		close(served)
	})) {
		t.Fatal("the session has ended")
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		close(h.release)
		t.Fatalf("the session handled nothing while the store's %s was held", h.op)
	}
	for i := 0; len(phoneIRC.said(": "+text)) == 0; i++ {
		turn := make(chan struct{})
		r.s.post(call(func() { close(turn) })) // a turn of the session
		<-turn
		if i == 100000 {
			t.Fatalf("the IM %q was never shown", text)
		}
	}
}

// TestTargetsReadLeavesTheSessionFree: while CHATHISTORY TARGETS reads
// the store, the session goes on handling its other work (an IM reaches
// the phone); TARGETS is then answered with bob's conversation.
func TestTargetsReadLeavesTheSessionFree(t *testing.T) {
	r, _, h, _, phoneIRC := runHistoryRig(t, "HistoryTargets")
	r.s.record(store.HistoryEntry{MsgID: "m-earlier", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "earlier",
		Time: time.Now().Add(-time.Minute)})
	if !r.s.b.hist.sync(context.Background(), "alice") {
		t.Fatal("history not synced")
	}
	type answer struct {
		ts  []ircd.HistoryTarget
		err error
	}
	answered := make(chan answer, 1)
	r.s.cl.ats[0].HistoryTargets(ircd.TargetsQuery{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), Limit: 10},
		func(ts []ircd.HistoryTarget, err error) { answered <- answer{ts, err} })
	h.held(t)
	servesWhileHeld(t, r, h, phoneIRC, "live")
	close(h.release)
	var a answer
	select {
	case a = <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("TARGETS was not answered")
	}
	var got []string
	for _, tg := range a.ts {
		got = append(got, tg.Name)
	}
	if want := []string{"bob"}; a.err != nil || !slices.Equal(got, want) {
		t.Errorf("TARGETS: got %q, %v, want %q", got, a.err, want)
	}
}
