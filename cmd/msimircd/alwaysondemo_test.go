package main

import (
	"testing"

	"gopkg.in/irc.v4"
)

// TestDemoNickWithPasswordOnlineAtStart: a nick of the embedded network
// that connected with a password, without register, is kept in the store
// with its account, so with always_on that account logs in at the next
// start, before any client returns (as README's Always on says); a nick
// that connected without a password leaves nothing to bring back.
func TestDemoNickWithPasswordOnlineAtStart(t *testing.T) {
	cfg := Defaults()
	if err := cfg.resolveStateDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Run("first start", func(t *testing.T) {
		at, _ := startServe(t, cfg)
		for _, c := range []struct{ nick, pass string }{{"alice", "alice-pw"}, {"zed", ""}} {
			s, m := ircRegister(t, at.irc[0], c.nick, c.pass)
			if m.Command != "001" {
				t.Fatalf("%s: got %v, want 001", c.nick, m)
			}
			s.loggedIn("&" + c.nick)
			_ = s.w.Write("QUIT")
			s.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })
		}
	})
	_, hook := startServe(t, cfg)
	if !logged(hook, "always on: logging in the accounts of 1 users") {
		var msgs []string
		for _, e := range hook.AllEntries() {
			msgs = append(msgs, e.Message)
		}
		t.Errorf("the second start's log: got %q, want alice's accounts logged in at start (1 user)", msgs)
	}
}

// TestDemoNicksNotOnlineOutsideTheDemo: the embedded network's nicks kept
// in the store are brought back only while the embedded network serves
// nicks: once the config names [[user]]s, nobody can log in as them, so
// always-on does not log their accounts in to hold their IMs for no one.
func TestDemoNicksNotOnlineOutsideTheDemo(t *testing.T) {
	dir := t.TempDir()
	cfg := Defaults()
	if err := cfg.resolveStateDir(dir); err != nil {
		t.Fatal(err)
	}
	t.Run("the demo", func(t *testing.T) {
		at, _ := startServe(t, cfg)
		s, m := ircRegister(t, at.irc[0], "alice", "alice-pw")
		if m.Command != "001" {
			t.Fatalf("alice: got %v, want 001", m)
		}
		s.loggedIn("&alice")
		_ = s.w.Write("QUIT")
		s.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })
	})
	users, err := LoadConfig(writeConfig(t, clashConfig(dir, [2]string{"carol", "carol@example.com"})))
	if err != nil {
		t.Fatal(err)
	}
	if _, hook := startServe(t, users); !logged(hook, "always on: logging in the accounts of 1 users") {
		t.Errorf("the start with [[user]]s: got %q, want carol's accounts alone logged in (1 user)", messages(hook))
	}
}
