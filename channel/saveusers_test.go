package channel_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/pgtest"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
)

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
		{"a changed account", []channel.User{{Name: "al", Accounts: []channel.Account{{Email: "al@example.com", Password: "AlPw2", AutoConnect: true}}}, users[1]}, []string{"UpdateAccount al"}},
	} {
		if err := channel.SaveUsers(ctx, st, step.users, channel.SaveOptions{}); err != nil {
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
		if err := channel.SaveUsers(ctx, st, users[1:], channel.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := st.take(), []string{"SetPassword bo"}; !slices.Equal(got, want) {
		t.Errorf("a password kept before: got writes %q, want %q (once)", got, want)
	}
}

// saveEngines opens a store on SQLite and, with MSIMIRCD_TEST_POSTGRES
// set, on PostgreSQL (a schema of the test's own).
func saveEngines(t *testing.T) map[string]func(*testing.T) store.Store {
	engines := map[string]func(*testing.T) store.Store{"sqlite": func(t *testing.T) store.Store { return openStore(t) }}
	if os.Getenv("MSIMIRCD_TEST_POSTGRES") != "" {
		engines["postgres"] = func(t *testing.T) store.Store {
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			st, err := store.Open(context.Background(), "postgres", pgtest.DSN(t), key)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
	}
	return engines
}

// TestSaveUsersDeletesWhatTheConfigDropped: a start's SaveUsers leaves
// the store as the configuration says: the account alice no longer lists
// and bob, whom it no longer names, are deleted with their sealed MSIM
// passwords; a registered user and a demo nick, which the configuration
// never named, keep theirs.
func TestSaveUsersDeletesWhatTheConfigDropped(t *testing.T) {
	for engine, open := range saveEngines(t) {
		t.Run(engine, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			acct := func(email string) channel.Account {
				return channel.Account{Email: email, Password: "Secret-" + email, AutoConnect: true}
			}
			first := []channel.User{
				{Name: "alice", Accounts: []channel.Account{acct("alice@example.com"), acct("alice2@example.com")}},
				{Name: "bob", Accounts: []channel.Account{acct("bob@example.com")}},
			}
			if err := channel.SaveUsers(ctx, st, first, channel.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := createUser(st, "reg", "reg-pw"); err != nil {
				t.Fatal(err)
			}
			if err := st.AddAccount(ctx, "reg", store.Account{Email: "reg@example.com", Password: "RegSecret1"}); err != nil {
				t.Fatal(err)
			}
			demo := "demo/dan@msim.example"
			if _, err := st.CreateUser(ctx, demo, store.UnusablePasswordHash()); err != nil {
				t.Fatal(err)
			}
			if err := st.AddAccount(ctx, demo, store.Account{Email: "dan@msim.example", Password: "DemoSecret1"}); err != nil {
				t.Fatal(err)
			}

			second := []channel.User{{Name: "alice", Accounts: []channel.Account{acct("alice@example.com")}}}
			log, hook := logtest.NewNullLogger()
			if err := channel.SaveUsers(ctx, st, second, channel.SaveOptions{Log: logrus.NewEntry(log)}); err != nil {
				t.Fatal(err)
			}
			emails := func(name string) []string {
				state, err := st.LoadUser(ctx, name)
				if err != nil {
					t.Fatalf("LoadUser(%s): %v", name, err)
				}
				var es []string
				for _, a := range state.Accounts {
					es = append(es, a.Email+":"+a.Password)
				}
				slices.Sort(es)
				return es
			}
			for _, tc := range []struct {
				user string
				want []string
			}{
				{"alice", []string{"alice@example.com:Secret-alice@example.com"}},
				{"reg", []string{"reg@example.com:RegSecret1"}},
				{demo, []string{"dan@msim.example:DemoSecret1"}},
			} {
				if got := emails(tc.user); !slices.Equal(got, tc.want) {
					t.Errorf("%s's accounts: got %v, want %v", tc.user, got, tc.want)
				}
			}
			if _, err := st.LoadUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("bob, whom the configuration no longer names: got %v, want ErrNotFound (his entry and sealed password deleted)", err)
			}
			// The operator is told what went, and only that.
			var told []string
			for _, e := range hook.AllEntries() {
				if e.Level != logrus.WarnLevel {
					continue
				}
				switch {
				case e.Data["user"] == "bob" && e.Data["accounts"] == 1 && strings.Contains(e.Message, "history and held IMs"):
					told = append(told, "bob")
				case e.Data["user"] == "alice" && e.Data["email"] == "alice2@example.com":
					told = append(told, "alice2")
				default:
					told = append(told, fmt.Sprintf("%s %v", e.Message, e.Data))
				}
			}
			slices.Sort(told)
			if want := []string{"alice2", "bob"}; !slices.Equal(told, want) {
				t.Errorf("Warn entries of the deletions: got %q, want %q (bob with his account, alice's account alice2)", told, want)
			}
		})
	}
}

// TestLeftConfigUserIsNoRegistration: an entry the configuration used to
// name and no longer does, as a store of an earlier build keeps it (a
// password nobody knows), is no registered user: the nick connects as the
// directory behind the store decides, not as one asked to identify.
func TestLeftConfigUserIsNoRegistration(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if err := channel.SaveUsers(ctx, st, []channel.User{{Name: "carol", Accounts: []channel.Account{{Email: "carol@example.com", Password: "Secret1"}}}}, channel.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	next := &recordingDirectory{}
	d := channel.WithStore(st, next, "")
	u, err := d.Lookup(ircd.Registration{Nick: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "carol" || len(next.looked) != 1 {
		t.Errorf("carol, no longer configured: got user %q (directory behind asked %d times), want the directory behind's user \"carol\"", u.Name, len(next.looked))
	}
	if err := d.Authenticate("carol", "Secret1"); err != nil || len(next.authenticated) != 1 {
		t.Errorf("SASL as carol: got %v (directory behind asked %v), want the directory behind to decide", err, next.authenticated)
	}
}
