package channel

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/store"
)

// readThenStall is a store whose first read of a user's state reads it,
// then waits until released before returning what it read.
type readThenStall struct {
	store.Store
	once             sync.Once
	entered, release chan struct{}
}

func (s *readThenStall) LoadUser(ctx context.Context, name string) (store.UserState, error) {
	st, err := s.Store.LoadUser(ctx, name)
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.entered)
		<-s.release
	}
	return st, err
}

// TestReloadDeletionLeavesNoStateReadMeanwhile: a read of a removed
// [[user]]'s state under way as the reload deletes their entry
// (deleteRemoved) must not leave the deleted user's state with the
// bridge, where a register of the nick, or the next session, would be
// given it.
func TestReloadDeletionLeavesNoStateReadMeanwhile(t *testing.T) {
	inner, ben := oldBen(t)
	ctx := context.Background()
	gate := &readThenStall{Store: inner, entered: make(chan struct{}), release: make(chan struct{})}
	b := bareBridge(gate)
	loaded := make(chan error, 1)
	go func() { loaded <- b.loadMemory(ben) }()
	<-gate.entered // ben's state is read; the read is not over

	deleted := make(chan struct{})
	go func() { b.deleteRemoved("ben", nil); close(deleted) }()
	select {
	case <-deleted:
	case <-time.After(time.Minute): // a deletion that waits for the read
	}
	close(gate.release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	<-deleted
	if _, err := inner.LoadUser(ctx, "ben"); err == nil {
		t.Fatal("ben's entry was not deleted")
	}
	b.mu.Lock()
	m := b.memory["ben"]
	b.mu.Unlock()
	if m != nil && !m.isForgotten() {
		v, _ := m.setting("auto_away")
		t.Errorf("the bridge keeps the deleted ben's state (auto_away = %q); want none kept once his entry is deleted", v)
	}
}

// deleteThenStall is a store whose deletion of one user deletes the
// entry, then waits until released before returning.
type deleteThenStall struct {
	store.Store
	user             string
	deleted, proceed chan struct{}
	once             sync.Once
}

func (s *deleteThenStall) DeleteUser(ctx context.Context, name string) error {
	err := s.Store.DeleteUser(ctx, name)
	if name == s.user {
		s.once.Do(func() {
			close(s.deleted)
			<-s.proceed
		})
	}
	return err
}

// TestReloadDeletionKeepsNoReadThatEndsBeforeItIsOver: a read of a
// removed [[user]]'s state that started before the reload deleted their
// entry, and is over once the entry is deleted but before the deletion
// is, leaves nothing with the bridge: a register of the nick then, whose
// session starts at once, would be given the deleted user's state. A read
// asked for meanwhile (the register's) is of what the store holds once
// the deletion is over.
func TestReloadDeletionKeepsNoReadThatEndsBeforeItIsOver(t *testing.T) {
	inner, ben := oldBen(t)
	del := &deleteThenStall{Store: inner, user: "ben", deleted: make(chan struct{}), proceed: make(chan struct{})}
	gate := &readThenStall{Store: del, entered: make(chan struct{}), release: make(chan struct{})}
	b := bareBridge(gate)
	loaded := make(chan error, 1)
	go func() { loaded <- b.loadMemory(ben) }()
	<-gate.entered // ben's state is read; the read is not over

	deleted := make(chan struct{})
	go func() { b.deleteRemoved("ben", nil); close(deleted) }()
	<-del.deleted // the entry is deleted; the deletion is not over
	close(gate.release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	m := b.memory["ben"]
	b.mu.Unlock()
	if m != nil && !m.isForgotten() {
		v, _ := m.setting("auto_away")
		close(del.proceed)
		<-deleted
		t.Fatalf("once ben's entry is deleted, before the deletion is over, the bridge keeps the state read before (auto_away = %q); want none kept", v)
	}

	// A register of ben now: his entry is made anew and his state read.
	newBen := registerBen(t, inner)
	reread := make(chan error, 1)
	go func() { reread <- b.loadMemory(newBen) }()
	close(del.proceed)
	<-deleted
	if err := <-reread; err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	m = b.memory["ben"]
	b.mu.Unlock()
	if m == nil {
		t.Fatal("the new ben's state was not kept")
	}
	if v, _ := m.setting("auto_away"); v != "" {
		t.Errorf("the new ben's auto_away: got %q, want none (the deleted ben's not given to him)", v)
	}
}

// TestReloadDeletionForgetsStateOfEndedSession: the reload deletes a
// removed [[user]]'s entry once their session has ended, and the bridge
// forgets that session only after it has ended (ended runs once done is
// closed). A deletion that starts in between lets go of the removed
// user's state as when the session is forgotten already: the session
// has ended and serves the name no more, and a register of the nick once
// the entry is deleted reads its own state, never the removed user's.
func TestReloadDeletionForgetsStateOfEndedSession(t *testing.T) {
	inner, ben := oldBen(t)
	ctx := context.Background()
	b := bareBridge(inner)
	if err := b.loadMemory(ben); err != nil {
		t.Fatal(err)
	}
	// ben's session has ended (what the reload waited for), and the
	// bridge has not forgotten it yet.
	ended := &session{b: b, user: ben, done: make(chan struct{})}
	close(ended.done)
	b.mu.Lock()
	b.sessions["ben"] = ended
	old := b.memory["ben"]
	b.mu.Unlock()

	b.deleteRemoved("ben", nil)
	if _, err := inner.LoadUser(ctx, "ben"); err == nil {
		t.Fatal("ben's entry was not deleted")
	}
	b.mu.Lock()
	kept := b.memory["ben"]
	b.mu.Unlock()
	if kept == old && !old.isForgotten() {
		v, _ := old.setting("auto_away")
		t.Errorf("once ben's entry is deleted, the bridge keeps his ended session's state (auto_away = %q); want it let go", v)
	}

	// A register of ben now: his entry is made anew and his state read.
	newBen := registerBen(t, inner)
	if err := b.loadMemory(newBen); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	m := b.memory["ben"]
	b.mu.Unlock()
	if m == nil {
		t.Fatal("the new ben's state was not kept")
	}
	if v, _ := m.setting("auto_away"); v != "" {
		t.Errorf("the new ben's auto_away: got %q, want none (the deleted ben's not given to him)", v)
	}
	m.setSetting("auto_away", "new ben's text")
	m.settle()
	state, err := inner.LoadUser(ctx, "ben")
	if err != nil {
		t.Fatal(err)
	}
	if got := state.Settings["auto_away"]; got != "new ben's text" {
		t.Errorf("the new ben's stored auto_away: got %q, want %q", got, "new ben's text")
	}
}

// oldBen is a store holding the removed [[user]] ben, his auto_away set.
func oldBen(t *testing.T) (store.Store, User) {
	t.Helper()
	st := sqliteStore(t)
	ctx := context.Background()
	ben := User{Name: "ben", Accounts: []Account{{Email: "ben@example.com", Password: "pw"}}}
	if err := saveUsers(ctx, st, []User{ben}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetSetting(ctx, "ben", "auto_away", "old ben's away text"); err != nil {
		t.Fatal(err)
	}
	return st, ben
}

// registerBen makes ben's entry anew in st, as a register of the nick
// does, and returns the registered user.
func registerBen(t *testing.T, st store.Store) User {
	t.Helper()
	hash, err := store.HashPassword("new-ben-pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "ben", hash); err != nil {
		t.Fatal(err)
	}
	return User{Name: "ben", registered: true}
}

// bareBridge is a Bridge on st with no sessions, memory or loads, for
// the memory's internals.
func bareBridge(st store.Store) *Bridge {
	return &Bridge{cfg: Config{Store: st}, log: quietLog(),
		sessions: map[string]*session{}, memory: map[string]*userMemory{}, loading: map[string]*memLoad{}}
}
