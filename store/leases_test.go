package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// leaseClock is a clock a test steps by hand.
type leaseClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *leaseClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *leaseClock) step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestLeases: on each engine, a lease is acquired by one instance and
// refused to another (naming the holder and what is left) until it is
// released or expires; renewing keeps it past its first expiry; its epoch
// rises with every acquisition, and a holder whose epoch is stale can
// neither renew nor release it.
func TestLeases(t *testing.T) {
	const ttl = 30 * time.Second
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			s := e.fresh(t).open(t, testKey(1))
			clk := &leaseClock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
			sqlOf(s).now = clk.Now

			if _, err := s.Lease(ctx, "alice"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Lease of a user never leased: got %v, want ErrNotFound", err)
			}
			a1, err := s.AcquireLease(ctx, "alice", "a", ttl)
			if err != nil {
				t.Fatalf("AcquireLease(alice, a): %v", err)
			}
			if a1.Epoch != 1 || a1.Instance != "a" || !a1.Expires.Equal(clk.Now().Add(ttl)) {
				t.Errorf("first lease: got %+v, want epoch 1, instance a, expiring in %s", a1, ttl)
			}
			clk.step(10 * time.Second)
			_, err = s.AcquireLease(ctx, "alice", "b", ttl)
			var he *LeaseHeldError
			if !errors.As(err, &he) || !errors.Is(err, ErrLeaseHeld) || he.Holder != "a" || he.Left != 20*time.Second {
				t.Fatalf("AcquireLease(alice, b) while a holds it: got %v, want a LeaseHeldError naming a with 20s left", err)
			}
			if got, err := s.Lease(ctx, "alice"); err != nil || got.Instance != "a" || got.Epoch != 1 {
				t.Errorf("Lease(alice): got %+v, %v; want a's at epoch 1", got, err)
			}

			// Renewed, it outlives its first expiry.
			bob, err := s.AcquireLease(ctx, "bob", "a", ttl)
			if err != nil {
				t.Fatal(err)
			}
			renewed, err := s.RenewLeases(ctx, "a", ttl, []Lease{a1, bob})
			if err != nil || len(renewed) != 2 {
				t.Fatalf("RenewLeases: got %v, %v; want both", renewed, err)
			}
			for _, l := range renewed {
				if !l.Expires.Equal(clk.Now().Add(ttl)) {
					t.Errorf("renewed %s: expires %v, want %v", l.User, l.Expires, clk.Now().Add(ttl))
				}
			}
			clk.step(25 * time.Second) // past the first expiry, within the renewed one
			if _, err := s.AcquireLease(ctx, "alice", "b", ttl); !errors.Is(err, ErrLeaseHeld) {
				t.Errorf("AcquireLease after a renewal: got %v, want ErrLeaseHeld", err)
			}
			// Another instance's name does not renew a's leases.
			if got, err := s.RenewLeases(ctx, "b", ttl, []Lease{a1}); err != nil || len(got) != 0 {
				t.Errorf("RenewLeases by b of a's lease: got %v, %v; want none", got, err)
			}

			// Expired, it is b's, at a new epoch; a is fenced.
			clk.step(6 * time.Second)
			if got, err := s.Lease(ctx, "alice"); err != nil || got.Instance != "" {
				t.Errorf("Lease(alice) once expired: got %+v, %v; want no holder", got, err)
			}
			b1, err := s.AcquireLease(ctx, "alice", "b", ttl)
			if err != nil || b1.Epoch != 2 || b1.Instance != "b" {
				t.Fatalf("AcquireLease(alice, b) after expiry: got %+v, %v; want b's at epoch 2", b1, err)
			}
			got, err := s.RenewLeases(ctx, "a", ttl, []Lease{a1, bob})
			if err != nil || len(got) != 1 || got[0].User != "bob" {
				t.Errorf("RenewLeases by a after b took alice: got %v, %v; want bob's only", got, err)
			}
			if ok, err := s.ReleaseLease(ctx, a1); err != nil || ok {
				t.Errorf("ReleaseLease of a's stale lease: got %v, %v; want false", ok, err)
			}
			if l, err := s.Lease(ctx, "alice"); err != nil || l.Instance != "b" || l.Epoch != 2 {
				t.Errorf("Lease(alice) after a's stale release: got %+v, %v; want b's at epoch 2", l, err)
			}

			// b acquiring again starts a new epoch; the old one is fenced.
			b2, err := s.AcquireLease(ctx, "alice", "b", ttl)
			if err != nil || b2.Epoch != 3 {
				t.Fatalf("AcquireLease(alice, b) by its holder: got %+v, %v; want epoch 3", b2, err)
			}
			if ok, err := s.ReleaseLease(ctx, b1); err != nil || ok {
				t.Errorf("ReleaseLease at epoch 2 after epoch 3: got %v, %v; want false", ok, err)
			}
			// Released, it is free at once.
			if ok, err := s.ReleaseLease(ctx, b2); err != nil || !ok {
				t.Errorf("ReleaseLease(b2): got %v, %v; want true", ok, err)
			}
			if l, err := s.Lease(ctx, "alice"); err != nil || l.Instance != "" || l.Epoch != 3 {
				t.Errorf("Lease(alice) released: got %+v, %v; want no holder, epoch 3", l, err)
			}
			a2, err := s.AcquireLease(ctx, "alice", "a", ttl)
			if err != nil || a2.Epoch != 4 {
				t.Errorf("AcquireLease(alice, a) after the release: got %+v, %v; want epoch 4", a2, err)
			}

			// Bad input is refused, not stored.
			if _, err := s.AcquireLease(ctx, "carol", "a", 0); err == nil {
				t.Error("AcquireLease with a zero TTL: got nil, want an error")
			}
			if _, err := s.AcquireLease(ctx, "carol", "", ttl); err == nil {
				t.Error("AcquireLease with no instance: got nil, want an error")
			}
		})
	}
}

// TestRenewLeasesBatches: many leases are renewed by one call, across the
// statements' chunks, and only those still held come back.
func TestRenewLeasesBatches(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			s := e.fresh(t).open(t, testKey(1))
			var held []Lease
			for i := range renewChunk + 10 {
				l, err := s.AcquireLease(ctx, "user"+strconv.Itoa(i), "a", time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, l)
			}
			lost := held[renewChunk+3]
			if _, err := s.AcquireLease(ctx, lost.User, "a", time.Minute); err != nil { // a new epoch
				t.Fatal(err)
			}
			got, err := s.RenewLeases(ctx, "a", time.Minute, held)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(held)-1 || slices.ContainsFunc(got, func(l Lease) bool { return l.User == lost.User }) {
				t.Errorf("renewed %d of %d, %s among them: want all but %s", len(got), len(held), lost.User, lost.User)
			}
		})
	}
}

// TestLeaseNotes: on PostgreSQL an ask reaches the holder it names and no
// other instance, a release reaches every instance, and notes of another
// schema (another store in the same database) are not seen; on SQLite the
// notes are refused with ErrNoNotify.
func TestLeaseNotes(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		s := newSQLiteDB(t).open(t, testKey(1))
		if err := s.AskLease(ctx, "alice", "a", "b"); !errors.Is(err, ErrNoNotify) {
			t.Errorf("AskLease: got %v, want ErrNoNotify", err)
		}
		if err := s.ListenLeases(ctx, "a", func(LeaseNote) {}); !errors.Is(err, ErrNoNotify) {
			t.Errorf("ListenLeases: got %v, want ErrNoNotify", err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		requireEngine(t, "postgres")
		db := newPostgresDB(t)
		s := db.open(t, testKey(1))
		other := newPostgresDB(t).open(t, testKey(1)) // another schema
		listen := func(instance string) chan LeaseNote {
			notes := make(chan LeaseNote, 16)
			lctx, cancel := contextWithCancel()
			done := make(chan error, 1)
			go func() { done <- s.ListenLeases(lctx, instance, func(n LeaseNote) { notes <- n }) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; !errors.Is(err, lctx.Err()) {
					t.Errorf("ListenLeases(%s) ended with %v, want its context's error", instance, err)
				}
			})
			if n := nextNote(t, notes); n.Kind != LeaseListening {
				t.Fatalf("first note: got %+v, want listening", n)
			}
			return notes
		}
		a, b := listen("a"), listen("b")
		if err := other.AskLease(ctx, "alice", "a", "b"); err != nil { // not for this schema
			t.Fatal(err)
		}
		if err := s.AskLease(ctx, "alice", "a", "b"); err != nil {
			t.Fatal(err)
		}
		if n := nextNote(t, a); n != (LeaseNote{Kind: LeaseAsked, User: "alice", From: "b"}) {
			t.Errorf("a's note: got %+v, want b's ask for alice", n)
		}
		l, err := s.AcquireLease(ctx, "alice", "a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReleaseLease(ctx, l); err != nil {
			t.Fatal(err)
		}
		want := LeaseNote{Kind: LeaseReleased, User: "alice", From: "a"}
		for name, ch := range map[string]chan LeaseNote{"a": a, "b": b} {
			if n := nextNote(t, ch); n != want {
				t.Errorf("%s's note: got %+v, want %+v (the ask for a, and the other schema's, are not b's)", name, n, want)
			}
		}
	})
}

func nextNote(t *testing.T, ch chan LeaseNote) LeaseNote {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no lease note within 10s")
		return LeaseNote{}
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
