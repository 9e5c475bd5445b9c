package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/store"
)

// withStoredAccount makes, in the store of state directory dir, the user
// name (as msimircd user add does) holding the MSIM account email (as
// account add did).
func withStoredAccount(t *testing.T, dir, name, email string) {
	t.Helper()
	if _, err := userCmd(t, dir, name+"-pw\n", "add", name); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	if err := cfg.resolveStateDir(dir); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), cfg.withState().Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := store.Account{Email: email, Password: "Msim-" + name, Channel: "&" + name, Autoconnect: true}
	if err := st.AddAccount(context.Background(), name, a); err != nil {
		t.Fatal(err)
	}
}

// clashConfig is a config on the embedded network keeping its state in
// dir, with a [[user]] of each name and e-mail.
func clashConfig(dir string, users ...[2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[irc]\nlisten = [\"127.0.0.1:0\"]\n\n[store]\nstate_dir = %q\n\n", dir)
	for _, u := range users {
		fmt.Fprintf(&b, "[[user]]\nname = %q\npassword = \"irc-%s\"\n\n  [[user.account]]\n  email = %q\n  password = \"Msim-x\"\n\n", u[0], u[0], u[1])
	}
	return b.String()
}

// buildFile builds the gateway of the config file at path as msimircd
// does at start, and closes it; its error located in the file.
func buildFile(t *testing.T, path string) error {
	t.Helper()
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := logtest.NewNullLogger()
	g, err := build(context.Background(), cfg, logrus.NewEntry(l))
	if err == nil {
		g.close()
	}
	return locateKey(path, err)
}

// TestStartRefusesAccountOfStoredUser: msimircd does not start with a
// [[user]] whose MSIM account a user kept in the store holds too (one that
// register or msimircd user add made, whom always-on logs in at start):
// the error names the account's line and key, both users and the account.
// (A [[user]] renamed in the file keeps its account: see
// TestRenamedConfigUserStartsWithItsAccount.)
func TestStartRefusesAccountOfStoredUser(t *testing.T) {
	t.Run("registered", func(t *testing.T) {
		dir := t.TempDir()
		withStoredAccount(t, dir, "dave", "carol@example.com")
		path := writeConfig(t, clashConfig(dir, [2]string{"carol", "Carol@Example.com"}))
		err := buildFile(t, path)
		for _, w := range []string{"line 12", "user[1].account[1].email", `"Carol@Example.com"`, `"carol"`, `"dave"`} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("start: got error %v, want it to name %s", err, w)
			}
		}
	})
}

// TestReloadRefusesAccountOfStoredUser: a reload that gives a [[user]] an
// MSIM account a stored user holds is refused as a whole, naming both
// users and the account; the running config stays (the new user cannot
// log in).
func TestReloadRefusesAccountOfStoredUser(t *testing.T) {
	dir := t.TempDir()
	withStoredAccount(t, dir, "dave", "carol@example.com")
	path := writeConfig(t, clashConfig(dir, [2]string{"alice", "alice@example.com"}))
	rl := startReloading(t, path)
	if err := os.WriteFile(path, []byte(clashConfig(dir, [2]string{"alice", "alice@example.com"}, [2]string{"carol", "carol@example.com"})), 0o600); err != nil {
		t.Fatal(err)
	}
	err := rl.r.reload()
	for _, w := range []string{"user[2].account[1].email", `"carol@example.com"`, `"carol"`, `"dave"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("reload: got error %v, want it to name %s", err, w)
		}
	}
	if !rl.logged(logrus.ErrorLevel, "reload refused", nil) {
		t.Errorf("the refusal was not logged")
	}
	refused(t, rl.irc, "carol", "irc-carol")
}

// TestReloadRechecksAccountsAfterApply: an MSIM account that a stored
// user takes (account add) between a reload's checks and its apply, one
// the reload's new [[user]] lists, is logged once the reload is applied,
// naming both users and the account.
func TestReloadRechecksAccountsAfterApply(t *testing.T) {
	dir := t.TempDir()
	withStoredAccount(t, dir, "dave", "dave@example.com")
	path := writeConfig(t, clashConfig(dir, [2]string{"alice", "alice@example.com"}))
	rl := startReloading(t, path)
	if err := os.WriteFile(path, []byte(clashConfig(dir, [2]string{"alice", "alice@example.com"}, [2]string{"carol", "carol@example.com"})), 0o600); err != nil {
		t.Fatal(err)
	}
	testHookBeforeUsers = func() {
		a := store.Account{Email: "carol@example.com", Password: "Msim-dave", Channel: "&carol", Autoconnect: true}
		if err := rl.r.g.st.AddAccount(context.Background(), "dave", a); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookBeforeUsers = nil })
	if err := rl.r.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	var found bool
	for _, e := range rl.hook.AllEntries() {
		err, _ := e.Data[logrus.ErrorKey].(error)
		if e.Level == logrus.ErrorLevel && err != nil && strings.Contains(err.Error(), `"carol@example.com"`) && strings.Contains(err.Error(), `"dave"`) {
			found = true
		}
	}
	if !found {
		t.Error("got no error logged naming the account carol@example.com and the stored user dave, want one after the apply")
	}
}
