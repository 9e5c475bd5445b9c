package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/store"
)

// storedEmails is the e-mails of the MSIM accounts that the store of
// state directory dir keeps for the user name.
func storedEmails(t *testing.T, dir, name string) []string {
	t.Helper()
	cfg := Defaults()
	if err := cfg.resolveStateDir(dir); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), cfg.withState().Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	state, err := st.LoadUser(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, a := range state.Accounts {
		emails = append(emails, a.Email)
	}
	return emails
}

// keepsRegistration checks that the store of dir still has the user ann
// as she registered: her password opens her entry and her one account is
// there, untouched.
func keepsRegistration(t *testing.T, dir string) {
	t.Helper()
	if err := store.CheckPassword(storedHash(t, dir, "ann"), "ann-pw"); err != nil {
		t.Errorf("ann's registered password: got %v, want it to open her entry still", err)
	}
	if got, want := storedEmails(t, dir, "ann"), []string{"ann@example.com"}; !slices.Equal(got, want) {
		t.Errorf("ann's stored accounts: got %q, want %q", got, want)
	}
}

// TestStartRefusesRegisteredUsersName: msimircd does not start with a
// [[user]] spelled exactly as a user of register or msimircd user add: the
// config's user would take that user's entry in the store (her password
// made unusable, her MSIM accounts, settings and history theirs). The
// error names the [[user]]'s line and key, the name and the way out, and
// nothing is written. Another spelling of the nick is another user, as
// before, and starts.
func TestStartRefusesRegisteredUsersName(t *testing.T) {
	t.Run("same name", func(t *testing.T) {
		dir := t.TempDir()
		withStoredAccount(t, dir, "ann", "ann@example.com")
		path := writeConfig(t, clashConfig(dir, [2]string{"bob", "bob@example.com"}, [2]string{"ann", "conf@example.com"}))
		err := buildFile(t, path)
		for _, w := range []string{"line 16", "user[2].name", `"ann"`, "rename the [[user]]", "msimircd user del 'ann'"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("start: got error %v, want it to name %s", err, w)
			}
		}
		keepsRegistration(t, dir)
	})
	t.Run("another spelling", func(t *testing.T) {
		dir := t.TempDir()
		withStoredAccount(t, dir, "ann", "ann@example.com")
		if err := buildFile(t, writeConfig(t, clashConfig(dir, [2]string{"Ann", "conf@example.com"}))); err != nil {
			t.Fatalf("start: got %v, want it to start", err)
		}
		keepsRegistration(t, dir)
	})
}

// TestRestartKeepsConfiguredUser: a [[user]] that an earlier start saved
// in the store (with a password nobody knows) is the config's own, not a
// registered user of that name: msimircd starts again, and again after a
// reload added the user.
func TestRestartKeepsConfiguredUser(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, clashConfig(dir, [2]string{"ann", "ann@example.com"}))
	for i := range 2 {
		if err := buildFile(t, path); err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
	}
	rl := startReloading(t, path)
	if err := os.WriteFile(path, []byte(clashConfig(dir, [2]string{"ann", "ann@example.com"}, [2]string{"bob", "bob@example.com"})), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.r.reload(); err != nil {
		t.Fatalf("reload adding bob: %v", err)
	}
	if err := buildFile(t, path); err != nil {
		t.Errorf("start after the reload: %v", err)
	}
}

// TestReloadRefusesRegisteredUsersName: a reload that adds a [[user]]
// spelled exactly as a registered user is refused as a whole, naming the
// key, the name and the way out; the registered user keeps her entry and
// logs in with her password, and the config's user cannot log in.
func TestReloadRefusesRegisteredUsersName(t *testing.T) {
	dir := t.TempDir()
	withStoredAccount(t, dir, "ann", "ann@example.com")
	path := writeConfig(t, clashConfig(dir, [2]string{"alice", "alice@example.com"}))
	rl := startReloading(t, path)
	if err := os.WriteFile(path, []byte(clashConfig(dir, [2]string{"alice", "alice@example.com"}, [2]string{"ann", "conf@example.com"})), 0o600); err != nil {
		t.Fatal(err)
	}
	err := rl.r.reload()
	for _, w := range []string{"line 16", "user[2].name", `"ann"`, "rename the [[user]]", "msimircd user del 'ann'"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("reload: got error %v, want it to name %s", err, w)
		}
	}
	if !rl.logged(logrus.ErrorLevel, "reload refused", nil) {
		t.Errorf("the refusal was not logged")
	}
	refused(t, rl.irc, "ann", "irc-ann")
	if _, m := ircRegister(t, rl.irc, "ann", "ann-pw"); m.Command != "001" {
		t.Errorf("ann with her registered password: got %s %q, want 001", m.Command, m.Trailing())
	}
	keepsRegistration(t, dir)
}
