package store

import (
	"context"
	"sync/atomic"
	"time"
)

// WithSlowWriteHook returns st with hook called whenever one of its
// operations that write has been under way for longer than after:
// waiting for its turn on the store's goroutines, for the database's
// lock, or for the database itself. Operations that only read (readOps)
// never call it: in SQLite's WAL mode they wait for no lock, and one that
// waits for its turn behind a write waits for an operation that calls it.
// hook runs on a goroutine of its own while the operation goes on, never
// twice at once (a call that would overlap one under way is dropped), and
// must not use the store. Ping, ListenLeases and Close go straight to st.
//
// The history writer process (histproc) uses it: a write of the gateway's
// that waits on SQLite's lock is most likely waiting for a writer that
// holds the lock at idle CPU priority on a machine whose cores are all
// busy, and the hook raises the writer's priority.
func WithSlowWriteHook(st Store, after time.Duration, hook func()) Store {
	h := &slowHook{after: after, hook: hook}
	h.wrapped = wrapped{st: st, around: h.around}
	return h
}

// readOps are the operations that only read (HeldIMs writes only to
// remove held IMs it cannot read, which a sound database never has).
var readOps = map[string]bool{
	opUser: true, opUsers: true, opLoadUser: true, opHeldIMs: true, opQueuedIMs: true,
	opHistory: true, opHistoryByMsgID: true, opHistoryTargets: true, opHistorySince: true, opHistoryLatestSince: true,
	opLastHistoryID: true, opReadMarker: true, opClientPosition: true, opLease: true, opLoginFailures: true,
}

// HistoryHurrier is a Store whose history appends may be made at a low
// CPU priority (histproc's, by a process at idle priority): HurryHistory
// has the appends under way finish at normal priority, for a caller that
// waits for them. The store's decorators pass it on.
type HistoryHurrier interface {
	HurryHistory()
}

type slowHook struct {
	wrapped
	after   time.Duration
	hook    func()
	running atomic.Bool // a hook call is under way
}

// around is slowHook's around: it runs f, and hook if f writes and is
// still under way after h.after.
func (h *slowHook) around(_ context.Context, op string, f func()) error {
	if readOps[op] {
		f()
		return nil
	}
	t := time.AfterFunc(h.after, h.fire)
	defer t.Stop()
	f()
	return nil
}

func (h *slowHook) fire() {
	if !h.running.CompareAndSwap(false, true) {
		return
	}
	defer h.running.Store(false)
	h.hook()
}
