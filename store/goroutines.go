package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ownGoroutines is a Store whose operations run on goroutines of its own,
// as many as the database has connections (Open: one for SQLite, the
// pool's size for PostgreSQL), taken in the order the callers came.
//
//   - Stacks: run by their callers, the database's deep calls (SQLite's
//     above all) grew the stack of every goroutine that made one (an IRC
//     client's reader at its login, a session's goroutine, which starts
//     small each time it runs), copying the whole stack at each doubling,
//     and each garbage collection shrank those stacks again. The store's
//     goroutines keep the stack the database needs (a collection can
//     halve one before its next operation grows it back), and the
//     callers' stacks stay small.
//   - Order: callers wait for a goroutine in a queue, first come first
//     served. Waiting in database/sql's pool instead, the caller a freed
//     connection went to was picked at random, so with many callers at
//     once (clients fetching history as they reconnect) some waited for
//     nearly all the others.
//
// Ping and ListenLeases run on the caller's goroutine (see wrapped).
type ownGoroutines struct {
	wrapped
	n         int // goroutines
	jobs      chan func()
	closed    chan struct{} // closed by Close: the goroutines end
	running   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// errClosed is the error of an operation that comes after Close.
var errClosed = errors.New("store: closed")

// onOwnGoroutines starts st's n goroutines; Close ends them.
func onOwnGoroutines(st Store, n int) *ownGoroutines {
	o := &ownGoroutines{n: max(n, 1), jobs: make(chan func()), closed: make(chan struct{})}
	o.wrapped = wrapped{st: st, around: o.run}
	for range o.n {
		o.running.Go(o.loop)
	}
	return o
}

// loop is one of the store's goroutines: it runs operations, one at a
// time, until Close.
func (o *ownGoroutines) loop() {
	for {
		select {
		case f := <-o.jobs:
			f()
		case <-o.closed:
			return
		}
	}
}

// run is ownGoroutines' around: f runs on one of the store's goroutines
// when its turn comes, and run returns once it has. If ctx ends or the
// store is closed before that turn, f never runs and run says why.
func (o *ownGoroutines) run(ctx context.Context, op string, f func()) error {
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

// Close ends the goroutines once the operations under way have ended, then
// closes the store underneath; operations after it fail.
func (o *ownGoroutines) Close() error {
	o.closeOnce.Do(func() {
		close(o.closed)
		o.running.Wait()
		o.closeErr = o.st.Close()
	})
	return o.closeErr
}
