package main

import (
	"strings"
	"testing"
)

// TestUpstreamWithStoredUsersOnly: a config with an upstream MSIM server
// and no [[user]] (its users are those of the store, as README's several
// instances have them) loads, on a public listener too; msimircd user add
// makes a user with it, and that user connects and adds their MSIM
// account.
func TestUpstreamWithStoredUsersOnly(t *testing.T) {
	up := startMSIMServer(t, "bob@example.com:BobPw1")
	public := writeConfig(t, "[irc]\nlisten = [\"0.0.0.0:6667\"]\n[msim]\nserver = \""+up.addr+"\"\n")
	if _, err := LoadConfig(public); err != nil {
		t.Errorf("an upstream server, no [[user]], a public listener: got %v, want it loaded", err)
	}
	path := writeConfig(t, "[msim]\nserver = \""+up.addr+"\"\n")
	state := t.TempDir()
	if out, err := userCmd(t, state, "bob-irc-pw\n", "-config", path, "add", "bob"); err != nil || !strings.Contains(out, "added bob") {
		t.Fatalf("msimircd user -config %s add bob: got %q, %v; want added bob", path, out, err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.resolveStateDir(state); err != nil {
		t.Fatal(err)
	}
	at, _ := startServe(t, cfg)
	bob, m := ircRegister(t, at.irc[0], "bob", "bob-irc-pw")
	if m.Command != "001" {
		t.Fatalf("bob: got %v, want 001", m)
	}
	_ = bob.w.Write("PRIVMSG root :account add msim bob@example.com BobPw1")
	bob.loggedIn("&bob")
}
