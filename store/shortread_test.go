package store

import (
	"context"
	"errors"
	"runtime/metrics"
	"testing"
	"time"
)

// goroutinesCreated is how many goroutines the process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestLoginReadsStartNoGoroutine: on SQLite, the reads a login makes (the
// user's state, held and queued IMs, notes, a client's position, its
// failed logins, and their clearing when there are none) start no
// goroutine of their own, though their context can end: the driver's and
// database/sql's watchers cost more than such a read. A context that has
// ended already still stops each of them before it starts.
func TestLoginReadsStartNoGoroutine(t *testing.T) {
	s := newSQLiteDB(t).open(t, testKey(1))
	user, email := userWithAccount(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reads := []struct {
		name string
		f    func(context.Context) error
	}{
		{"LoadUser", func(ctx context.Context) error { _, err := s.LoadUser(ctx, user); return err }},
		{"HeldIMs", func(ctx context.Context) error { _, err := s.HeldIMs(ctx, user, email); return err }},
		{"QueuedIMs", func(ctx context.Context) error { _, err := s.QueuedIMs(ctx, user, email); return err }},
		{"TakeNotes", func(ctx context.Context) error { _, err := s.TakeNotes(ctx, user); return err }},
		{"ClientPosition", func(ctx context.Context) error { _, _, err := s.ClientPosition(ctx, user, "phone"); return err }},
		{"LoginFailures", func(ctx context.Context) error {
			_, err := s.LoginFailures(ctx, "account:"+user, time.Now(), time.Hour)
			return err
		}},
		{"ClearLoginFailures", func(ctx context.Context) error { return s.ClearLoginFailures(ctx, "account:"+user) }},
	}
	const rounds = 50
	for _, r := range reads {
		check(t, r.name, r.f(ctx)) // statements prepared
		before := goroutinesCreated()
		for range rounds {
			check(t, r.name, r.f(ctx))
		}
		// Before: two or more per statement. A few are allowed for the
		// runtime's own (a collection's workers).
		if n := goroutinesCreated() - before; n > rounds/10 {
			t.Errorf("%s: %d goroutines started in %d reads", r.name, n, rounds)
		}
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	for _, r := range reads {
		for range 20 { // the store's hand-off picks at random between a turn and the end
			if err := r.f(done); !errors.Is(err, context.Canceled) {
				t.Fatalf("%s with an ended context: %v, want context.Canceled", r.name, err)
			}
		}
	}
	// What they read is still read: a note taken once.
	check(t, "AddNote", s.AddNote(ctx, user, "hello"))
	notes, err := s.TakeNotes(ctx, user)
	check(t, "TakeNotes", err)
	if len(notes) != 1 || notes[0] != "hello" {
		t.Errorf("notes %q, want [hello]", notes)
	}
}
