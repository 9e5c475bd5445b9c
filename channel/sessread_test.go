package channel

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	first   bool // only the first call is held
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

// free lets the held calls through.
func (h *holdStore) free() { h.once.Do(func() { close(h.release) }) }

func newHoldStore(st store.Store, op string) *holdStore {
	return &holdStore{Store: st, op: op, entered: make(chan struct{}, 8), release: make(chan struct{})}
}

// hold runs do, waiting before it (or after, with after) if op is held.
func (h *holdStore) hold(ctx context.Context, op string, do func()) {
	if op != h.op || h.calls.Add(1) > 1 && h.first {
		do()
		return
	}
	if h.after {
		do()
	}
	h.entered <- struct{}{}
	<-h.release // not ctx: the session's own bound outlasts no test's wait
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

func (h *holdStore) HoldIM(ctx context.Context, user, email string, im store.HeldIM) (got store.HeldIM, err error) {
	h.hold(ctx, "HoldIM", func() { got, err = h.Store.HoldIM(ctx, user, email, im) })
	return got, err
}

func (h *holdStore) AddNote(ctx context.Context, user, text string) (err error) {
	h.hold(ctx, "AddNote", func() { err = h.Store.AddNote(ctx, user, text) })
	return err
}

func (h *holdStore) DeleteHeld(ctx context.Context, user, email string, ids ...int64) (err error) {
	h.hold(ctx, "DeleteHeld", func() { err = h.Store.DeleteHeld(ctx, user, email, ids...) })
	return err
}

func (h *holdStore) SetSetting(ctx context.Context, user, key, value string) (err error) {
	h.hold(ctx, "SetSetting", func() { err = h.Store.SetSetting(ctx, user, key, value) })
	return err
}

func (h *holdStore) SetNick(ctx context.Context, user, email string, uid msim.UID, nick string) (err error) {
	h.hold(ctx, "SetNick", func() { err = h.Store.SetNick(ctx, user, email, uid, nick) })
	return err
}

func (h *holdStore) DeleteQueued(ctx context.Context, user, email string, ids ...int64) (err error) {
	h.hold(ctx, "DeleteQueued", func() { err = h.Store.DeleteQueued(ctx, user, email, ids...) })
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
	t.Cleanup(h.free)                              // before the session's end
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
// store is held, and waits until phoneIRC (a client) is shown it.
func servesWhileHeld(t *testing.T, r *rig, h *holdStore, phoneIRC interface{ said(string) []string }, text string) {
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
		h.free()
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
	h.free()
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

// TestMarkReadWriteLeavesTheSessionFree: while a MARKREAD's marker is
// written to the store, the session goes on handling its other work (an
// IM reaches the phone); the MARKREAD is answered once the marker is
// written, with it, and the phone is told it.
func TestMarkReadWriteLeavesTheSessionFree(t *testing.T) {
	r, st, h, _, phoneIRC := runHistoryRig(t, "SetReadMarker")
	phoneIRC.marks = make(chan time.Time, 4)
	desk := r.s.cl.ats[0]
	read := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	answered := make(chan time.Time, 1)
	desk.MarkRead("bob", read)
	desk.ReadMarker("bob", func(t time.Time) { answered <- t })
	h.held(t)
	servesWhileHeld(t, r, h, phoneIRC, "live")
	select {
	case got := <-answered:
		h.free()
		t.Fatalf("the MARKREAD was answered (%v) before its marker was written", got)
	default:
	}
	h.free()
	select {
	case got := <-answered:
		if !got.Equal(read) {
			t.Errorf("the MARKREAD's answer: got %v, want %v", got, read)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the MARKREAD was not answered")
	}
	select {
	case got := <-phoneIRC.marks:
		if !got.Equal(read) {
			t.Errorf("the phone was told the marker %v, want %v", got, read)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the phone was not told the new marker")
	}
	if got, err := st.ReadMarker(context.Background(), "alice", "alice@msim.test", 7); err != nil || !got.Equal(read) {
		t.Errorf("the stored marker: got %v, %v, want %v", got, err, read)
	}
}

// TestMarkReadsOfTwoClientsInOrder: the desk marks bob read up to one
// time, and while that write is under way the phone marks a later one.
// The marker stored is the later, the phone's MARKREAD is answered with
// it, and a third client is told the markers in the order they were
// kept: never one that moves back.
func TestMarkReadsOfTwoClientsInOrder(t *testing.T) {
	r, st, h, phone, _ := runHistoryRig(t, "SetReadMarker")
	h.after, h.first = true, true // the desk's marker is stored; its write has not returned
	tabletIRC := &markIRC{closableIRC: &closableIRC{fakeIRC: newFakeIRC()}, marks: make(chan time.Time, 4)}
	done := make(chan struct{})
	r.s.post(call(func() { attachNamed(r, tabletIRC, "tablet"); close(done) }))
	<-done
	desk := r.s.cl.ats[0]
	earlier := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	later := earlier.Add(30 * time.Minute)
	desk.MarkRead("bob", earlier)
	h.held(t)
	answered := make(chan time.Time, 1)
	phone.MarkRead("bob", later)
	phone.ReadMarker("bob", func(t time.Time) { answered <- t })
	waiting := make(chan int, 1)
	r.s.post(call(func() { waiting <- len(r.s.markers) }))
	select {
	case got := <-waiting:
		if got != 2 {
			t.Errorf("markers being written or waiting: got %d, want 2 (the phone's waits for the desk's)", got)
		}
	case <-time.After(10 * time.Second):
		h.free()
		t.Fatal("the session took no turn while the desk's marker was written")
	}
	h.free()
	select {
	case got := <-answered:
		if !got.Equal(later) {
			t.Errorf("the phone's MARKREAD's answer: got %v, want %v", got, later)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the phone's MARKREAD was not answered")
	}
	var told []time.Time
	for len(told) < 2 {
		select {
		case m := <-tabletIRC.marks:
			told = append(told, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("the tablet was told %v, want two markers", told)
		}
	}
	if want := []time.Time{earlier, later}; !slices.EqualFunc(told, want, time.Time.Equal) {
		t.Errorf("the tablet was told %v, want %v", told, want)
	}
	if got, err := st.ReadMarker(context.Background(), "alice", "alice@msim.test", 7); err != nil || !got.Equal(later) {
		t.Errorf("the stored marker: got %v, %v, want %v", got, err, later)
	}
}

// onSession runs f on the running session's goroutine and waits for it.
func onSession(t *testing.T, r *rig, f func()) {
	t.Helper()
	done := make(chan struct{})
	if !r.s.post(call(func() { f(); close(done) })) {
		t.Fatal("the session has ended")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the session took no turn")
	}
}

// TestPositionSaveLeavesTheSessionFree: while the position of the phone,
// which left, is saved, the session goes on handling its other work (an
// IM reaches the desk), and the phone connects again. Its replay reads
// the position once saved: it is replayed the IM that came after it left,
// and not what it saw.
func TestPositionSaveLeavesTheSessionFree(t *testing.T) {
	r, st, h, phone, _ := runHistoryRig(t, "SetClientPosition")
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	onSession(t, r, func() {
		r.s.record(store.HistoryEntry{MsgID: "m-seen", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "seen", Time: time.Now()})
	})
	r.s.post(ircClosed{at: phone})
	h.held(t)
	servesWhileHeld(t, r, h, r.irc, "live")
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC()}
	var again *attachment
	onSession(t, r, func() {
		again = attachNamed(r, phoneIRC, "phone")
		r.s.replay(again)
	})
	h.free()
	for i := 0; ; i++ {
		var reading bool
		onSession(t, r, func() { reading = again.replaying != nil })
		if !reading {
			break
		}
		if i == 100000 {
			t.Fatal("the phone's replay was never read")
		}
	}
	want := []string{"live"}
	if got := shownOf(phoneIRC.fakeIRC, "seen", "live"); !slices.Equal(got, want) {
		t.Errorf("the phone, back, was replayed %q, want %q", got, want)
	}
}

// TestHeldWritesLeaveTheSessionFree: with no client attached, an IM from
// bob is held for the user (or a notice kept as a note); while the store
// writes it, the session goes on handling its other work: a second one,
// written after it. Both are there once written, in the order they came.
func TestHeldWritesLeaveTheSessionFree(t *testing.T) {
	const email = "alice@msim.test"
	cases := []struct {
		name string
		op   string
		give func(r *rig, text string)
		kept func(r *rig) []string
	}{
		{"held IM", "HoldIM", func(r *rig, text string) {
			r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: text, Time: time.Now()})
		}, func(r *rig) []string {
			var got []string
			for _, se := range r.s.mem.heldFor(email) {
				got = append(got, se.ev.(msim.IMEvent).Text)
			}
			return got
		}},
		{"note", "AddNote", func(r *rig, text string) {
			r.s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: "bob", Text: text})
		}, func(r *rig) []string {
			var got []string
			for _, n := range r.s.mem.takeNotes() {
				got = append(got, strings.TrimPrefix(n, "While you were away, bob: "))
			}
			return got
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _, h := heldMemoryRig(t, tc.op)
			r.s.newBuddy(r.a, 7, "bob", "")
			r.s.cl.remove(r.s.cl.ats[0]) // no client attached
			r.s.countAttached(-1)
			r.s.run(func() {})
			t.Cleanup(func() { r.s.cancel(); <-r.s.done }) // before the rig's own
			t.Cleanup(h.free)                              // before the session's end
			onSession(t, r, func() { tc.give(r, "first") })
			h.held(t)
			onSession(t, r, func() { tc.give(r, "second") }) // while the first is written
			h.free()
			var got []string
			onSession(t, r, func() { got = tc.kept(r) })
			if want := []string{"first", "second"}; !slices.Equal(got, want) {
				t.Errorf("kept: got %q, want %q", got, want)
			}
			if held, notes := r.s.mem.leftovers(); held != 0 || notes != 0 {
				t.Errorf("kept in memory only: %d IMs, %d notes; want none", held, notes)
			}
		})
	}
}

// TestMarkReadsWaitingMerge: MARKREADs of one conversation from one client
// waiting for the write under way are one write: the queue does not grow
// with them, each is answered, and the latest is stored.
func TestMarkReadsWaitingMerge(t *testing.T) {
	r, st, h, phone, _ := runHistoryRig(t, "SetReadMarker")
	h.first = true
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	phone.MarkRead("bob", base)
	h.held(t)
	const n = 100
	answered := make(chan struct{}, n)
	for i := 1; i <= n; i++ {
		done := make(chan struct{})
		r.s.post(call(func() {
			r.s.setReadMarker(phone, "alice", conversation{"alice@msim.test", 7, "bob"}, base.Add(time.Duration(i)*time.Second), func() { answered <- struct{}{} })
			close(done)
		}))
		<-done
	}
	waiting := make(chan int, 1)
	r.s.post(call(func() { waiting <- len(r.s.markers) }))
	if got := <-waiting; got > 2 {
		t.Errorf("markers being written or waiting: got %d, want at most 2", got)
	}
	h.free()
	for i := range n {
		select {
		case <-answered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d MARKREADs answered", i, n)
		}
	}
	want := base.Add(n * time.Second)
	if got, err := st.ReadMarker(context.Background(), "alice", "alice@msim.test", 7); err != nil || !got.Equal(want) {
		t.Errorf("the stored marker: got %v, %v, want %v", got, err, want)
	}
}

// TestShownHeldIMRemovalLeavesTheSessionFree: an IM held for alice is
// shown to her client; while the store removes it from the held IMs, the
// session (on whose goroutine the fake client reports it shown, as ircd
// does on its own) goes on handling its other work: an IM from bob
// reaches the client. Once the removal is written, the IM is held no
// more: neither the memory nor, after a restart, the store gives it again.
func TestShownHeldIMRemovalLeavesTheSessionFree(t *testing.T) {
	const email = "alice@msim.test"
	ctx := context.Background()
	r, st := historyRig(t)
	if _, err := st.HoldIM(ctx, "alice", email, store.HeldIM{From: 7, Text: "held", Seq: 1, Time: time.Now(), Offline: true}); err != nil {
		t.Fatal(err)
	}
	h := newHoldStore(st, "DeleteHeld")
	mem, err := loadUserMemory(h, r.s.user, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	r.s.mem = mem
	r.s.newBuddy(r.a, 7, "bob", "")
	r.s.run(func() {})
	t.Cleanup(func() { r.s.cancel(); <-r.s.done }) // before the rig's own
	t.Cleanup(h.free)                              // before the session's end
	onSession(t, r, func() {
		for _, se := range r.s.mem.heldFor(email) {
			r.s.fromUserSeq(r.a, 7, se)
		}
	})
	h.held(t)
	servesWhileHeld(t, r, h, r.irc, "live")
	h.free()
	var again []seqEvent
	onSession(t, r, func() { again = r.s.mem.heldFor(email) })
	if len(again) != 0 {
		t.Errorf("held once shown: %d IMs, want none", len(again))
	}
	restarted, err := loadUserMemory(st, r.s.user, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := restarted.heldFor(email); len(got) != 0 {
		t.Errorf("held after a restart: %d IMs, want none", len(got))
	}
	if got := r.irc.said(": held"); len(got) != 1 {
		t.Errorf("the held IM was shown %d times, want once", len(got))
	}
}

// TestChangeWritesLeaveTheSessionFree: while the store writes what the
// user changed, the session goes on handling its other work: an IM from
// bob reaches the client, and the user changes it again. Once written,
// the store keeps the last change, and the session goes by it.
func TestChangeWritesLeaveTheSessionFree(t *testing.T) {
	cases := []struct {
		name   string
		op     string
		change func(r *rig, n int) // the first (0) or the second (1)
		stored func(st store.UserState) string
		now    func(r *rig) string
		want   string
	}{
		{"setting", "SetSetting", func(r *rig, n int) {
			r.s.cmdSet(replyCtx{}, []string{"typing", []string{"false", "true"}[n]})
		}, func(st store.UserState) string { return st.Settings["typing"] },
			func(r *rig) string { return r.s.setting("typing") }, "true"},
		{"buddy renamed", "SetNick", func(r *rig, n int) {
			r.s.cmdRename(replyCtx{a: r.a}, [][]string{{"bob", "bobby"}, {"bobby", "robert"}}[n])
		}, func(st store.UserState) string { return st.Accounts[0].Nicks[7] },
			func(r *rig) string { return r.a.buddy(7).nick }, "robert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, st, h := heldMemoryRig(t, tc.op)
			r.s.newBuddy(r.a, 7, "bob", "")
			r.s.run(func() {})
			t.Cleanup(func() { r.s.cancel(); <-r.s.done }) // before the rig's own
			t.Cleanup(h.free)                              // before the session's end
			onSession(t, r, func() { tc.change(r, 0) })
			h.held(t)
			servesWhileHeld(t, r, h, r.irc, "live")
			onSession(t, r, func() { tc.change(r, 1) }) // while the first is written
			h.free()
			var now string
			onSession(t, r, func() { r.s.mem.settle(); now = tc.now(r) })
			state, err := st.LoadUser(context.Background(), "alice")
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.stored(state); got != tc.want {
				t.Errorf("stored: got %q, want %q", got, tc.want)
			}
			if now != tc.want {
				t.Errorf("the session goes by %q, want %q", now, tc.want)
			}
			if held, notes := r.s.mem.leftovers(); held != 0 || notes != 0 {
				t.Errorf("kept in memory only: %d IMs, %d notes; want none", held, notes)
			}
		})
	}
}

// TestSentQueuedRemovalLeavesTheSessionFree: an IM alice typed while the
// link was down is sent once it is back; while the store removes it from
// the queued IMs, the session goes on handling its other work: an IM from
// bob reaches the client. Once the removal is written, the IM is queued
// no more: neither the memory nor, after a restart, the store gives it
// again, and it was sent once.
func TestSentQueuedRemovalLeavesTheSessionFree(t *testing.T) {
	const email = "alice@msim.test"
	r, st := historyRig(t)
	h := newHoldStore(st, "DeleteQueued")
	mem, err := loadUserMemory(h, r.s.user, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	r.s.mem = mem
	bd := r.s.newBuddy(r.a, 7, "bob", "")
	r.a.state = linkWaiting // down, and coming back: IMs are queued
	r.s.run(func() {})
	t.Cleanup(func() { r.s.cancel(); <-r.s.done }) // before the rig's own
	t.Cleanup(h.free)                              // before the session's end
	cl := &fakeMSIM{}
	onSession(t, r, func() {
		r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "typed offline"}, "PRIVMSG", "typed offline", "typed offline")
	})
	onSession(t, r, func() {
		r.a.client, r.a.state = cl, linkUp
		r.s.flushQueue(r.a)
	})
	h.held(t)
	servesWhileHeld(t, r, h, r.irc, "live")
	h.free()
	var queued []queuedIM
	var sent []string
	onSession(t, r, func() { queued, sent = r.s.mem.queuedFor(email), slices.Clone(cl.sent) })
	if len(queued) != 0 {
		t.Errorf("queued once sent: %d IMs, want none", len(queued))
	}
	if want := []string{"typed offline"}; !slices.Equal(sent, want) {
		t.Errorf("sent %q, want %q", sent, want)
	}
	restarted, err := loadUserMemory(st, r.s.user, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := restarted.queuedFor(email); len(got) != 0 {
		t.Errorf("queued after a restart: %d IMs, want none", len(got))
	}
}

// heldMemoryRig is a history rig whose user's memory writes to the store
// through a holdStore holding the first call of op.
func heldMemoryRig(t *testing.T, op string) (*rig, store.Store, *holdStore) {
	t.Helper()
	r, st := historyRig(t)
	h := newHoldStore(st, op)
	h.first = true
	mem, err := loadUserMemory(h, r.s.user, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	r.s.mem = mem
	return r, st, h
}
