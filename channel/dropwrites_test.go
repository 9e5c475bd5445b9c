package channel

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// deleteWatch is a store that says when DeleteUser begins, with the
// user's history then: its last ID, and the ID of msgid.
type deleteWatch struct {
	store.Store
	msgid string
	began chan [2]int64
}

func (d *deleteWatch) DeleteUser(ctx context.Context, name string) error {
	last, _ := d.Store.LastHistoryID(ctx, name)
	e, _ := d.Store.HistoryByMsgID(ctx, name, d.msgid)
	d.began <- [2]int64{last, e.ID}
	return d.Store.DeleteUser(ctx, name)
}

// inSession runs f on the running session's goroutine and waits for it.
func inSession(t *testing.T, s *session, f func()) {
	t.Helper()
	done := make(chan struct{})
	if !s.post(call(func() { f(); close(done) })) {
		t.Fatal("the session has ended")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not handle the call")
	}
}

// TestDropWaitsForTheHistoryWrites: a confirmed drop deletes the user
// only once the writes of their history under way are through (a client's
// position, a read marker) and what was recorded is appended; what comes
// meanwhile is delivered, not recorded.
func TestDropWaitsForTheHistoryWrites(t *testing.T) {
	for _, tc := range []struct {
		op    string
		start func(r *rig, phone *attachment)
	}{
		{"SetClientPosition", func(r *rig, phone *attachment) { r.s.savePosition(phone) }},
		{"SetReadMarker", func(r *rig, _ *attachment) {
			r.s.setReadMarker(nil, "alice", conversation{"alice@msim.test", 7, "bob"}, time.Now(), func() {})
		}},
	} {
		t.Run(tc.op, func(t *testing.T) {
			r, st, h, phone, phoneIRC := runHistoryRig(t, tc.op)
			dw := &deleteWatch{Store: h, msgid: "m-2", began: make(chan [2]int64, 1)}
			r.s.b.users = &storeDirectory{st: dw}
			inSession(t, r.s, func() {
				r.s.record(store.HistoryEntry{MsgID: "m-1", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "one", Time: time.Now()})
				tc.start(r, phone)
			})
			h.held(t)
			inSession(t, r.s, func() {
				// Recorded after the write began: still in the writer's queue.
				r.s.record(store.HistoryEntry{MsgID: "m-2", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "two", Time: time.Now()})
				r.s.dropUntil = r.s.b.cfg.Clock.Now().Add(dropWait)
				r.s.cmdYes(replyCtx{}, nil)
			})
			select {
			case <-dw.began:
				h.free()
				t.Fatalf("the user was deleted while the store's %s was under way", tc.op)
			default:
			}
			servesWhileHeld(t, r, h, phoneIRC, "meanwhile")
			h.free()
			var ids [2]int64
			select {
			case ids = <-dw.began:
			case <-time.After(10 * time.Second):
				t.Fatal("the user was not deleted")
			}
			if ids[1] == 0 || ids[0] != ids[1] {
				t.Errorf("the history as the delete began: got last ID %d, m-2's %d; want m-2 in it, and last", ids[0], ids[1])
			}
			ctx := context.Background()
			dropped := func() bool {
				var ok bool
				inSession(t, r.s, func() { ok = r.s.user.Ephemeral })
				return ok
			}
			for i := 0; !dropped(); i++ {
				if i == 100000 {
					t.Fatal("the drop did not end")
				}
			}
			if _, err := st.User(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("stored user after the drop: got %v, want ErrNotFound", err)
			}
		})
	}
}

// blockDelete is a store whose DeleteUser waits until released, then
// deletes, or fails with fail.
type blockDelete struct {
	store.Store
	began, release chan struct{}
	fail           error
}

func (b *blockDelete) DeleteUser(ctx context.Context, name string) error {
	b.began <- struct{}{}
	<-b.release
	if b.fail != nil {
		return b.fail
	}
	return b.Store.DeleteUser(ctx, name)
}

// markCount counts the read markers written, and the reads and writes of
// any marker.
type markCount struct {
	store.Store
	n, touched atomic.Int32
}

func (m *markCount) ReadMarker(ctx context.Context, user, account string, buddy msim.UID) (time.Time, error) {
	m.touched.Add(1)
	return m.Store.ReadMarker(ctx, user, account, buddy)
}

func (m *markCount) SetReadMarker(ctx context.Context, user, account string, buddy msim.UID, t time.Time) (time.Time, error) {
	m.n.Add(1)
	m.touched.Add(1)
	return m.Store.SetReadMarker(ctx, user, account, buddy, t)
}

// holdDrop starts a confirmed drop of r's user whose delete waits in bd
// until released, and waits for the delete to begin.
func holdDrop(t *testing.T, r *rig, st store.Store, fail error) *blockDelete {
	t.Helper()
	bd := &blockDelete{Store: st, began: make(chan struct{}, 1), release: make(chan struct{}), fail: fail}
	r.s.b.users = &storeDirectory{st: bd}
	inSession(t, r.s, func() {
		r.s.dropUntil = r.s.b.cfg.Clock.Now().Add(dropWait)
		r.s.cmdYes(replyCtx{}, nil)
	})
	select {
	case <-bd.began:
	case <-time.After(10 * time.Second):
		t.Fatal("the drop's delete did not begin")
	}
	return bd
}

// dropEnded waits until r's drop has ended.
func dropEnded(t *testing.T, r *rig) {
	t.Helper()
	for i := 0; ; i++ {
		var dropping bool
		inSession(t, r.s, func() { dropping = r.s.dropping })
		if !dropping {
			return
		}
		if i == 100000 {
			t.Fatal("the drop did not end")
		}
	}
}

// TestMarkersDuringADrop: a MARKREAD whose nick was still being looked
// up as the drop began waits for the drop's end: if the user was deleted,
// it writes nothing and ends; if the drop failed, its marker is written
// then.
func TestMarkersDuringADrop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fail   error
		writes int32
	}{
		{"deleted", nil, 0},
		{"failed", errors.New("the disk is full"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, st, h, _, _ := runHistoryRig(t, "none")
			mc := &markCount{Store: h}
			r.s.b.cfg.Store = mc
			bd := holdDrop(t, r, st, tc.fail)
			answered := make(chan struct{})
			inSession(t, r.s, func() {
				r.s.setReadMarker(nil, "alice", conversation{"alice@msim.test", 7, "bob"}, time.Now(), func() { close(answered) })
			})
			inSession(t, r.s, func() {}) // a turn of the session
			if n := mc.n.Load(); n != 0 {
				t.Errorf("read markers written during the drop: %d, want 0", n)
			}
			close(bd.release)
			select {
			case <-answered:
			case <-time.After(10 * time.Second):
				t.Fatal("the MARKREAD was not ended")
			}
			if n := mc.n.Load(); n != tc.writes {
				t.Errorf("read markers written: %d, want %d", n, tc.writes)
			}
			if n := mc.touched.Load(); tc.writes == 0 && n != 0 {
				t.Errorf("read markers read or written for the deleted user: %d, want 0", n)
			}
		})
	}
}

// TestFailedDropKeepsTheHistory: what was delivered while a drop that
// then failed was under way is in the history after all.
func TestFailedDropKeepsTheHistory(t *testing.T) {
	r, st, h, _, phoneIRC := runHistoryRig(t, "none")
	servesWhileHeld(t, r, h, phoneIRC, "before the drop")
	bd := holdDrop(t, r, st, errors.New("the disk is full"))
	servesWhileHeld(t, r, h, phoneIRC, "during the drop")
	close(bd.release)
	dropEnded(t, r)
	var ephemeral bool
	inSession(t, r.s, func() { ephemeral = r.s.user.Ephemeral })
	if ephemeral {
		t.Fatal("the drop did not fail")
	}
	if got, want := bobHistory(t, r, st), []string{"before the drop", "during the drop"}; !slices.Equal(got, want) {
		t.Errorf("history after the failed drop: got %q, want %q", got, want)
	}
}

// TestDropWaitsForTheMemoryWrites: a confirmed drop deletes the user only
// once what their memory queued for the store before is written (here a
// setting): written after the delete, it would fail, and be logged as the
// store's failure.
func TestDropWaitsForTheMemoryWrites(t *testing.T) {
	r, st, h := heldMemoryRig(t, "SetSetting")
	r.s.run(func() {})
	t.Cleanup(func() { r.s.cancel(); <-r.s.done })
	t.Cleanup(h.free)
	dw := &deleteWatch{Store: st, began: make(chan [2]int64, 1)}
	r.s.b.users = &storeDirectory{st: dw}
	inSession(t, r.s, func() { r.s.cmdSet(replyCtx{}, []string{"typing", "false"}) })
	h.held(t)
	inSession(t, r.s, func() {
		r.s.dropUntil = r.s.b.cfg.Clock.Now().Add(dropWait)
		r.s.cmdYes(replyCtx{}, nil)
	})
	inSession(t, r.s, func() {}) // a turn of the session
	select {
	case <-dw.began:
		t.Fatal("the user was deleted while the store wrote a setting")
	case <-time.After(100 * time.Millisecond):
	}
	h.free()
	select {
	case <-dw.began:
	case <-time.After(10 * time.Second):
		t.Fatal("the user was not deleted")
	}
}

// TestFailedDropAfterTheSessionEnded: a drop that fails after the
// session ended (a shutdown while the delete was under way) keeps what
// came during it all the same: the IM delivered then is recorded, and the
// MARKREAD asked for then is written.
func TestFailedDropAfterTheSessionEnded(t *testing.T) {
	r, st, h, _, phoneIRC := runHistoryRig(t, "none")
	ctx := context.Background()
	servesWhileHeld(t, r, h, phoneIRC, "before the drop")
	bd := holdDrop(t, r, st, errors.New("the disk is full"))
	servesWhileHeld(t, r, h, phoneIRC, "during the drop")
	marked := time.Now().UTC().Truncate(time.Millisecond)
	inSession(t, r.s, func() {
		r.s.setReadMarker(nil, "alice", conversation{"alice@msim.test", 7, "bob"}, marked, func() {})
	})
	left := r.s.dropLeft // set by the yes (inSession: before this)
	r.s.cancel()
	// The session's end hands on what it kept, and waits for the drop's worker.
	for deadline := time.Now().Add(10 * time.Second); len(left) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session's end did not reach its workers")
		}
	}
	close(bd.release)
	<-r.s.done
	if got, want := bobHistory(t, r, st), []string{"before the drop", "during the drop"}; !slices.Equal(got, want) {
		t.Errorf("history: got %q, want %q", got, want)
	}
	if m, err := st.ReadMarker(ctx, "alice", "alice@msim.test", 7); err != nil || !m.Equal(marked) {
		t.Errorf("read marker: got %v, %v; want %v", m, err, marked)
	}
}

// delWatch is a store that says when DeleteAccount is called.
type delWatch struct {
	store.Store
	called chan struct{}
}

func (d *delWatch) DeleteAccount(ctx context.Context, user, email string) error {
	d.called <- struct{}{}
	return d.Store.DeleteAccount(ctx, user, email)
}

// TestAccountDelAfterTheMemoryWrites: account del deletes the account
// only once what the user's memory queued for it is written (a buddy's
// nick): written after, it would fail, and the user be told their nick
// was not saved.
func TestAccountDelAfterTheMemoryWrites(t *testing.T) {
	r, st, h := heldMemoryRig(t, "SetNick")
	r.s.user.registered = true
	dw := &delWatch{Store: st, called: make(chan struct{}, 1)}
	r.s.b.users = &storeDirectory{st: dw}
	r.s.run(func() {})
	t.Cleanup(func() { r.s.cancel(); <-r.s.done })
	t.Cleanup(h.free)
	inSession(t, r.s, func() { r.s.mem.setNick(buddyKey{"alice@msim.test", 7}, "robert", false) })
	h.held(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		inSession(t, r.s, func() { r.s.accountDel(replyCtx{}, r.a) })
	}()
	select {
	case <-dw.called:
		t.Error("the account was deleted while the store wrote its buddy's nick")
	case <-time.After(100 * time.Millisecond):
	}
	h.free()
	<-done
	select {
	case <-dw.called:
	default:
		t.Error("account del did not delete the account")
	}
	r.s.mem.settle()
	r.s.mem.mu.Lock()
	notes := slices.Clone(r.s.mem.notes)
	r.s.mem.mu.Unlock()
	if len(notes) != 0 {
		t.Errorf("notes after a rename then account del: %q", notes)
	}
}

// bobHistory is the text of the latest IMs of alice's conversation with
// bob in st, once r's history writer has appended what it was given.
func bobHistory(t *testing.T, r *rig, st store.Store) []string {
	t.Helper()
	ctx := context.Background()
	r.s.b.hist.sync(ctx, "alice")
	es, err := st.History(ctx, "alice", store.HistoryQuery{Account: "alice@msim.test", Buddy: 7, Latest: true, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Text)
	}
	return got
}

// TestFailedDropWaitsForWhatTheSessionKept: a drop's worker that learns
// its session ended (its answer refused) before the session's end handed
// over what it kept waits for it, and keeps it: the session hands it
// over (dropEnd) only after other work of its end.
func TestFailedDropWaitsForWhatTheSessionKept(t *testing.T) {
	r, st, _, _, _ := runHistoryRig(t, "none")
	left := make(chan dropLeftovers, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.s.b.droppedAfterEnd("alice", r.s.mem, quietLog(), errors.New("the disk is full"), left)
	}()
	select {
	case <-done:
		t.Fatal("the drop's worker gave up before the session handed over what it kept")
	case <-time.After(100 * time.Millisecond):
	}
	marked := time.Now().UTC().Truncate(time.Millisecond)
	left <- dropLeftovers{
		hist:  []store.HistoryEntry{{MsgID: "m-1", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "during the drop", Time: time.Now()}},
		marks: []markLeft{{conversation{"alice@msim.test", 7, "bob"}, marked}},
	}
	<-done
	if got := bobHistory(t, r, st); !slices.Equal(got, []string{"during the drop"}) {
		t.Errorf("history: got %q, want [\"during the drop\"]", got)
	}
	if m, err := st.ReadMarker(context.Background(), "alice", "alice@msim.test", 7); err != nil || !m.Equal(marked) {
		t.Errorf("read marker: got %v, %v; want %v", m, err, marked)
	}
}
