package channel

import (
	"context"
	"testing"

	"github.com/msimircd/msimircd/store"
)

// stallDelete is a store whose deletions of an account wait until
// released.
type stallDelete struct {
	store.Store
	entered, release chan struct{}
}

func (s *stallDelete) DeleteAccount(ctx context.Context, user, email string) error {
	close(s.entered)
	<-s.release
	return s.Store.DeleteAccount(ctx, user, email)
}

// TestReloadForgetsAfterDeleting: a reload that removes an account of a
// user with no session deletes it from the store and then forgets what
// memory keeps of it, so a read of the user's state in between (a login,
// a session started at boot) does not bring the account's buddy nicks back.
func TestReloadForgetsAfterDeleting(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	x := Account{Email: "x@example.com", Password: "xpw", Channel: "&x"}
	y := Account{Email: "y@example.com", Password: "ypw", Channel: "&y"}
	users := []StaticUser{{Name: "al", Password: "al-irc", Accounts: []Account{x, y}}}
	if err := SaveUsers(ctx, st, []User{{Name: "al", Accounts: users[0].Accounts}}, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetNick(ctx, "al", x.Email, 7, "bobby"); err != nil {
		t.Fatal(err)
	}
	gate := &stallDelete{Store: st, entered: make(chan struct{}), release: make(chan struct{})}
	b, err := New(Config{Directory: NewLiveDirectory(users, ""), Store: gate, MSIMAddr: "127.0.0.1:1", Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Shutdown(ctx) }()

	reloaded := make(chan error, 1)
	go func() {
		_, err := b.ReloadUsers([]StaticUser{{Name: "al", Password: "al-irc", Accounts: []Account{y}}}, "")
		reloaded <- err
	}()
	<-gate.entered // the reload is deleting x
	if err := b.loadMemory(User{Name: "al", Accounts: []Account{y}}); err != nil {
		t.Fatal(err)
	}
	close(gate.release)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	m := b.memoryOf("al")
	if m == nil {
		t.Fatal("al's state: none kept")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if nick, ok := m.nicks[buddyKey{x.Email, 7}]; ok {
		t.Errorf("the removed account's buddy nick %q is still remembered", nick)
	}
}
