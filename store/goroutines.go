package store

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
)

// ownGoroutines is a Store whose operations run on goroutines of its own,
// as many as the database has connections for them (Open: one for SQLite,
// postgresConns for PostgreSQL, whose pool holds one more for a lease
// listener), taken in the order the callers came.
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
// Ping waits for its turn like any operation, so a store held up fails
// it; ListenLeases runs on the caller's goroutine, as long as its ctx. A
// panic in an operation is raised again on its caller's goroutine.
type ownGoroutines struct {
	wrapped
	n int // goroutines
	// ownTurns are the operations that take a turn for each of their
	// steps themselves (Open: sqlStore's long ones, see sqlStore.step):
	// they run on the caller's goroutine, and others get turns between
	// their steps.
	ownTurns  map[string]bool
	jobs      chan func()
	closed    chan struct{} // closed by Close: the goroutines end
	running   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// errClosed is the error of an operation that comes after Close.
var errClosed = errors.New("store: closed")

// onOwnGoroutines starts st's n goroutines; Close ends them.
func onOwnGoroutines(st Store, n int, ownTurns map[string]bool) *ownGoroutines {
	o := &ownGoroutines{n: max(n, 1), ownTurns: ownTurns, jobs: make(chan func()), closed: make(chan struct{})}
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

// run is ownGoroutines' around: f takes its turn (see take), unless its
// operation takes a turn for each of its steps itself.
func (o *ownGoroutines) run(ctx context.Context, op string, f func()) error {
	if o.ownTurns[op] {
		f()
		return nil
	}
	return o.take(ctx, op, f)
}

// take runs f on one of the store's goroutines when its turn comes, and
// returns once it has. If ctx ends or the store is closed before that
// turn, f never runs and take says why. If f panics, take panics with
// what f panicked with and where.
func (o *ownGoroutines) take(ctx context.Context, op string, f func()) error {
	var (
		done     = make(chan struct{})
		panicked any
		stack    []byte
	)
	job := func() {
		defer func() {
			if panicked = recover(); panicked != nil {
				stack = debug.Stack()
			}
			close(done)
		}()
		f()
	}
	select {
	case o.jobs <- job:
	case <-ctx.Done():
		return fmt.Errorf("store: waiting for its turn (%s): %w", op, ctx.Err())
	case <-o.closed:
		return fmt.Errorf("store: %s: %w", op, errClosed)
	}
	<-done
	if panicked != nil {
		panic(fmt.Sprintf("store: %s: %v\n\non the store's goroutine:\n%s", op, panicked, stack))
	}
	return nil
}

// Ping takes its turn like any operation.
func (o *ownGoroutines) Ping(ctx context.Context) error {
	return o.call0(ctx, "ping", func() error { return o.st.Ping(ctx) })
}

// Close ends the goroutines once the operations under way have ended (it
// waits for them), then closes the store underneath; operations after it
// fail.
func (o *ownGoroutines) Close() error {
	o.closeOnce.Do(func() {
		close(o.closed)
		o.running.Wait()
		o.closeErr = o.st.Close()
	})
	return o.closeErr
}
