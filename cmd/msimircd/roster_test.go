package main

import (
	"strings"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestRemovedConfigUserNotOnlineAtStart: a [[user]] removed from the
// config file keeps its entry in the store, with a password nobody knows:
// nobody can log in as it, so always-on no longer logs its MSIM accounts
// in at start, to hold their IMs for no one. The [[user]]s the file names
// and a user of msimircd user add are still brought online.
func TestRemovedConfigUserNotOnlineAtStart(t *testing.T) {
	dir := t.TempDir()
	withStoredAccount(t, dir, "dave", "dave@example.com")
	start := func(t *testing.T, users ...[2]string) *logtest.Hook {
		cfg, err := LoadConfig(writeConfig(t, clashConfig(dir, users...)))
		if err != nil {
			t.Fatal(err)
		}
		_, hook := startServe(t, cfg)
		return hook
	}
	alice, carol := [2]string{"alice", "alice@example.com"}, [2]string{"carol", "carol@example.com"}
	t.Run("with carol", func(t *testing.T) {
		if hook := start(t, alice, carol); !logged(hook, "always on: logging in the accounts of 3 users") {
			t.Errorf("the first start's log: got %q, want alice, carol and dave logged in (3 users)", messages(hook))
		}
	})
	if hook := start(t, alice); !logged(hook, "always on: logging in the accounts of 2 users") {
		t.Errorf("the start without carol: got %q, want alice and dave logged in (2 users)", messages(hook))
	}
}

// TestRenamedConfigUserStartsWithItsAccount: a [[user]] renamed in the
// config file (carol to carla) keeps its MSIM account: the old name's
// entry, which nobody can log in as and always-on no longer logs in, is no
// clash, so msimircd starts, and logs in carla's account, not carol's.
func TestRenamedConfigUserStartsWithItsAccount(t *testing.T) {
	dir := t.TempDir()
	start := func(t *testing.T, users ...[2]string) *logtest.Hook {
		cfg, err := LoadConfig(writeConfig(t, clashConfig(dir, users...)))
		if err != nil {
			t.Fatal(err)
		}
		_, hook := startServe(t, cfg)
		return hook
	}
	ann, carla := [2]string{"ann", "ann@example.com"}, [2]string{"carla", "carol@example.com"}
	t.Run("as carol", func(t *testing.T) { start(t, [2]string{"carol", "carol@example.com"}) })
	if err := buildFile(t, writeConfig(t, clashConfig(dir, ann, carla))); err != nil {
		t.Fatalf("the start as carla: got error %v, want none", err)
	}
	hook := start(t, ann, carla)
	if !logged(hook, "always on: logging in the accounts of 2 users") {
		t.Errorf("the start as carla: got %q, want ann and carla logged in (2 users)", messages(hook))
	}
}

// messages are the always-on messages logged to hook.
func messages(hook *logtest.Hook) []string {
	var msgs []string
	for _, e := range hook.AllEntries() {
		if strings.HasPrefix(e.Message, "always on") {
			msgs = append(msgs, e.Message)
		}
	}
	return msgs
}
