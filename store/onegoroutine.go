package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// oneGoroutine is a Store whose operations run one at a time on a
// goroutine of its own; Open puts SQLite's store behind one. That store
// has a single connection, so its operations take turns anyway. Run by
// their callers, SQLite's deep calls grew the stack of every goroutine
// that made one (an IRC client's reader at its login, a session's
// goroutine, which starts small each time it runs), copying the whole
// stack at each doubling, and each garbage collection shrank those stacks
// again. The store's own goroutine keeps the stack SQLite needs (a
// collection can halve it once before its next operation grows it back),
// and the callers' stacks stay small.
//
// Ping and ListenLeases run on the caller's goroutine (see wrapped).
type oneGoroutine struct {
	wrapped
	jobs      chan func()
	closed    chan struct{} // closed once Close has closed the store: the goroutine ends
	closeOnce sync.Once
	closeErr  error
}

// errClosed is the error of an operation that comes after Close.
var errClosed = errors.New("store: closed")

// onOneGoroutine starts st's goroutine; Close ends it.
func onOneGoroutine(st Store) *oneGoroutine {
	o := &oneGoroutine{jobs: make(chan func()), closed: make(chan struct{})}
	o.wrapped = wrapped{st: st, around: o.run}
	go o.loop()
	return o
}

// loop is the store's goroutine: it runs the operations one at a time.
func (o *oneGoroutine) loop() {
	for {
		select {
		case f := <-o.jobs:
			f()
		case <-o.closed:
			return
		}
	}
}

// run is oneGoroutine's around: f runs on the store's goroutine when its
// turn comes, and run returns once it has. If ctx ends or the store is
// closed before that turn, f never runs and run says why.
func (o *oneGoroutine) run(ctx context.Context, op string, f func()) error {
	done := make(chan struct{})
	select {
	case o.jobs <- func() { f(); close(done) }:
	case <-ctx.Done():
		return fmt.Errorf("store: %s: waiting for the store: %w", op, ctx.Err())
	case <-o.closed:
		return fmt.Errorf("store: %s: %w", op, errClosed)
	}
	<-done
	return nil
}

// Close closes the store underneath on its goroutine, after the
// operation under way, and ends the goroutine; operations after it fail.
func (o *oneGoroutine) Close() error {
	o.closeOnce.Do(func() {
		o.closeErr = o.call0(context.Background(), "close", o.st.Close)
		close(o.closed)
	})
	return o.closeErr
}
