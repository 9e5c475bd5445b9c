package channel_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// TestUnreadableAccountLeavesTheOthers: a registered user one of whose
// MSIM accounts has a sealed password that does not open (a corrupt row)
// connects with their other account logged in, is told which account
// could not be read, and adding it again seals its password anew.
func TestUnreadableAccountLeavesTheOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msimircd.db")
	key := make([]byte, store.KeySize)
	_, _ = rand.Read(key)
	db, err := store.Open(context.Background(), "sqlite", path, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := createUser(db, "dave", "dave-pw"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.Account{
		{Email: "dave@example.com", Password: "Dave1", Channel: "&dave", Autoconnect: true},
		{Email: "dave2@example.com", Password: "Dave2", Channel: "&dave2", Autoconnect: true},
	} {
		if err := db.AddAccount(context.Background(), "dave", a); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE accounts SET password = substr(password, 1, 10) WHERE email = 'dave2@example.com'`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	st := liveStack(t, nil, map[string]string{"dave@example.com": "Dave1", "dave2@example.com": "Dave2"}, db)
	c := dial(t, st.ircAddr, "dave", "dave-pw")
	c.expectFrom("NOTICE", "root", "dave2@example.com could not be read")
	c.joinedControl("&dave")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as")

	c.private("account add msim dave2@example.com Dave2", "Account 1 added")
	state, err := db.LoadUser(context.Background(), "dave")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"dave@example.com": "Dave1", "dave2@example.com": "Dave2"}
	if len(state.Accounts) != len(want) {
		t.Errorf("stored accounts after account add: got %d, want %d", len(state.Accounts), len(want))
	}
	for _, a := range state.Accounts {
		if a.Unreadable != nil || a.Password != want[a.Email] {
			t.Errorf("stored account %s after account add: password %q, unreadable %v", a.Email, a.Password, a.Unreadable)
		}
	}
}

// TestUnreadableConfiguredAccountSealedAgain: an account of a
// configuration's user whose sealed password in the store does not open
// is sealed again with the configuration's password when the user
// connects, and logs in.
func TestUnreadableConfiguredAccountSealedAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msimircd.db")
	key := make([]byte, store.KeySize)
	_, _ = rand.Read(key)
	db, err := store.Open(context.Background(), "sqlite", path, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateUser(context.Background(), "carol", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	if err := db.AddAccount(context.Background(), "carol", store.Account{Email: "carol@example.com", Password: "Carol1", Channel: "&carol", Autoconnect: true}); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE accounts SET password = X'00' WHERE email = 'carol@example.com'`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	st := liveStack(t, []channel.StaticUser{user("carol", "conf-pw", acct("carol@example.com", "Carol1"))},
		map[string]string{"carol@example.com": "Carol1"}, db)
	loginAs(t, st, "carol", "conf-pw", "&carol")
	state, err := db.LoadUser(context.Background(), "carol")
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Accounts) != 1 || state.Accounts[0].Unreadable != nil || state.Accounts[0].Password != "Carol1" {
		t.Errorf("carol's stored accounts after her login: %+v, want carol@example.com sealed again", state.Accounts)
	}
}
