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
