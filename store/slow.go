package store

import (
	"context"
	"sync/atomic"
	"time"
)

// WithSlowHook returns st with hook called whenever one of its
// operations has been under way for longer than after: waiting for its
// turn on the store's goroutines, for the database's lock, or for the
// database itself. hook runs on a goroutine of its own while the
// operation goes on, never twice at once (a call that would overlap one
// under way is dropped), and must not use the store. Ping, ListenLeases
// and Close go straight to st.
//
// The history writer process (histproc) uses it: an operation of the
// gateway's that waits on SQLite's lock is most likely waiting for a
// writer that holds the lock at idle CPU priority on a machine whose
// cores are all busy, and the hook raises the writer's priority.
func WithSlowHook(st Store, after time.Duration, hook func()) Store {
	h := &slowHook{after: after, hook: hook}
	h.wrapped = wrapped{st: st, around: h.around}
	return h
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

// around is slowHook's around: it runs f, and hook if f is still under
// way after h.after.
func (h *slowHook) around(_ context.Context, _ string, f func()) error {
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
