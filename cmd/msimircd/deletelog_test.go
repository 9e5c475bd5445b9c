package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/store"
)

// TestStartSaysWhatItDeletes: a start deletes bob, whom the file no longer
// names, and alice's account alice2@example.com, which her [[user]] no
// longer lists, each with an IM held for it that nobody read. Those IMs
// must not go without a word: the start's log names what it deleted.
func TestStartSaysWhatItDeletes(t *testing.T) {
	dir := t.TempDir()
	conf := func(bob bool, alice ...string) string {
		s := fmt.Sprintf("[irc]\nlisten = [\"127.0.0.1:0\"]\n\n[store]\nstate_dir = %q\n\n[[user]]\nname = \"alice\"\npassword = \"irc-alice\"\n", dir)
		for _, e := range alice {
			s += fmt.Sprintf("\n  [[user.account]]\n  email = %q\n  password = \"Msim-x\"\n", e)
		}
		if bob {
			s += "\n[[user]]\nname = \"bob\"\npassword = \"irc-bob\"\n\n  [[user.account]]\n  email = \"bob@example.com\"\n  password = \"Msim-x\"\n"
		}
		return s
	}
	start := func(text string) *logtest.Hook {
		t.Helper()
		cfg, err := LoadConfig(writeConfig(t, text))
		if err != nil {
			t.Fatal(err)
		}
		l, hook := logtest.NewNullLogger()
		g, err := build(context.Background(), cfg, logrus.NewEntry(l))
		if err != nil {
			t.Fatal(err)
		}
		g.close()
		return hook
	}
	start(conf(true, "alice@example.com", "alice2@example.com"))

	cfg := Defaults()
	if err := cfg.resolveStateDir(dir); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), cfg.withState().Store)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []struct{ user, email string }{{"bob", "bob@example.com"}, {"alice", "alice2@example.com"}} {
		if _, err := st.HoldIM(context.Background(), h.user, h.email, store.HeldIM{From: 7, Text: "unread", Seq: 1, Time: time.Now(), Offline: true}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	hook := start(conf(false, "alice@example.com"))
	st, err = openStore(context.Background(), cfg.withState().Store)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.LoadUser(context.Background(), "bob")
	st.Close()
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob after the second start: got %v, want him deleted (the case this test is about)", err)
	}
	said := func(name string) bool {
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, name) {
				return true
			}
			for _, v := range e.Data {
				if fmt.Sprint(v) == name {
					return true
				}
			}
		}
		return false
	}
	for _, name := range []string{"bob", "alice2@example.com"} {
		if !said(name) {
			t.Errorf("the start deleted %s with an unread IM held for it and logged nothing naming it; want a log line", name)
		}
	}
}
