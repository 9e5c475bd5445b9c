package channel_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"sync"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// TestConfiguredUserTakesStoredNameForGood: a user of the configuration
// saved under the name of a registered user makes the registration's
// password unusable, so that the registrant cannot identify, once the
// configuration drops the user, to the accounts it saved there.
func TestConfiguredUserTakesStoredNameForGood(t *testing.T) {
	st := openStore(t)
	if err := createUser(st, "alice", "reg-pw"); err != nil {
		t.Fatal(err)
	}
	users := []channel.User{{Name: "alice", Accounts: []channel.Account{{Email: "alice@example.com", Password: "Secret1", AutoConnect: true}}}}
	if err := channel.SaveUsers(context.Background(), st, users); err != nil {
		t.Fatal(err)
	}
	u, err := st.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if store.CheckPassword(u.PasswordHash, "reg-pw") == nil {
		t.Error("the registration's password after the configuration saved its user there: got it accepted, want it refused")
	}
}

// writeCounter is a store that counts the writes SaveUsers may make.
type writeCounter struct {
	store.Store
	mu     sync.Mutex
	writes []string
}

func (w *writeCounter) wrote(op, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, op+" "+name)
}

// take returns the writes counted since the last call.
func (w *writeCounter) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.writes
	w.writes = nil
	return ws
}

func (w *writeCounter) CreateUser(ctx context.Context, name, hash string) (store.User, error) {
	w.wrote("CreateUser", name)
	return w.Store.CreateUser(ctx, name, hash)
}

func (w *writeCounter) SetPassword(ctx context.Context, name, hash string) error {
	w.wrote("SetPassword", name)
	return w.Store.SetPassword(ctx, name, hash)
}

func (w *writeCounter) AddAccount(ctx context.Context, user string, a store.Account) error {
	w.wrote("AddAccount", user)
	return w.Store.AddAccount(ctx, user, a)
}

func (w *writeCounter) UpdateAccount(ctx context.Context, user string, a store.Account) error {
	w.wrote("UpdateAccount", user)
	return w.Store.UpdateAccount(ctx, user, a)
}

// TestSaveUsersWritesWhatChanged: saving the configuration's users writes
// to the store only what it does not keep already: a user made with an
// unusable password is not given another, and saving them again (the next
// start) writes nothing. A password that may be usable (a registration's,
// or one kept before unusable ones were told apart) is replaced, once.
func TestSaveUsersWritesWhatChanged(t *testing.T) {
	ctx := context.Background()
	st := &writeCounter{Store: openStore(t)}
	users := []channel.User{
		{Name: "al", Accounts: []channel.Account{{Email: "al@example.com", Password: "AlPw1", AutoConnect: true}}},
		{Name: "bo", Accounts: []channel.Account{{Email: "bo@example.com", Password: "BoPw1", AutoConnect: true}}},
	}
	for _, step := range []struct {
		name  string
		users []channel.User
		want  []string
	}{
		{"first start", users, []string{"CreateUser al", "AddAccount al", "CreateUser bo", "AddAccount bo"}},
		{"next start", users, nil},
		{"a changed account", []channel.User{{Name: "al", Accounts: []channel.Account{{Email: "al@example.com", Password: "AlPw2", AutoConnect: true}}}}, []string{"UpdateAccount al"}},
	} {
		if err := channel.SaveUsers(ctx, st, step.users); err != nil {
			t.Fatal(err)
		}
		if got := st.take(); !slices.Equal(got, step.want) {
			t.Errorf("%s: got writes %q, want %q", step.name, got, step.want)
		}
	}

	old := make([]byte, 48) // a random key, as unusable hashes had
	_, _ = rand.Read(old)
	oldHash := "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + base64.RawStdEncoding.EncodeToString(old[:32])
	if err := st.Store.SetPassword(ctx, "bo", oldHash); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := channel.SaveUsers(ctx, st, users[1:]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := st.take(), []string{"SetPassword bo"}; !slices.Equal(got, want) {
		t.Errorf("a password kept before: got writes %q, want %q (once)", got, want)
	}
}
