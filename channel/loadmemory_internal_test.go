package channel

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/msimircd/msimircd/store"
)

// sqliteStore opens a store in a file of the test's, closed with it.
func sqliteStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "msimircd.db"), make([]byte, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// stallStore is a store whose reads of a user's state wait until released.
type stallStore struct {
	store.Store
	entered, release chan struct{}
}

func (s *stallStore) LoadUser(ctx context.Context, name string) (store.UserState, error) {
	close(s.entered)
	<-s.release
	return s.Store.LoadUser(ctx, name)
}

// TestLoadMemoryKeepsItUnderTheSameLease: with several instances, a user's
// state read without the bridge's lock is kept only if this instance held
// the same lease of the user from before the read to after it: taken back
// meanwhile (another instance may have served the user in between) or
// given up, the state read is left, and read again at the next login.
// Giving a lease up with no session running forgets the state read for a
// session about to start.
func TestLoadMemoryKeepsItUnderTheSameLease(t *testing.T) {
	st := sqliteStore(t)
	u := User{Name: "ann", Accounts: []Account{{Email: "ann@example.com", Password: "pw"}}}
	l := &leases{st: st, log: quietLog(), held: map[string]heldLease{}}
	hold := func(epoch int64) {
		l.mu.Lock()
		l.held[u.Name] = heldLease{Lease: store.Lease{User: u.Name, Instance: "a", Epoch: epoch}, until: time.Now().Add(time.Hour)}
		l.mu.Unlock()
	}
	for _, tc := range []struct {
		name   string
		during func()
		keep   bool
	}{
		{"the same lease throughout", func() {}, true},
		{"the lease taken back meanwhile", func() { l.drop(u.Name); hold(2) }, false},
		{"the lease given up meanwhile", func() { l.drop(u.Name) }, false},
	} {
		gate := &stallStore{Store: st, entered: make(chan struct{}), release: make(chan struct{})}
		b := bareBridge(gate)
		b.lease = l
		hold(1)
		done := make(chan error, 1)
		go func() { done <- b.loadMemory(u) }()
		<-gate.entered
		tc.during()
		close(gate.release)
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := b.memory[u.Name] != nil; got != tc.keep {
			t.Errorf("%s: state kept %v, want %v", tc.name, got, tc.keep)
		}
		if len(b.loading) != 0 {
			t.Errorf("%s: %d reads still under way", tc.name, len(b.loading))
		}
		if tc.keep {
			b.endSession(u.Name, "moved")
			if b.memory[u.Name] != nil {
				t.Errorf("%s: the state stayed after the lease was given up with no session running", tc.name)
			}
		}
		l.drop(u.Name)
	}
}
