package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/msimircd/msimircd/store"
)

// TestUpgradeStartsAfterAnAccountLeftAUser: a store an earlier build wrote
// keeps the [[user]] carol under a password that looks usable (builds
// before the recognisable unusable password), with the two accounts her
// [[user]] listed then. The file has since dropped one of them (that build
// never removed an account). Upgrading must start: carol's entry is the
// configuration's own, not a registered user's.
func TestUpgradeStartsAfterAnAccountLeftAUser(t *testing.T) {
	dir := t.TempDir()
	conf := func(emails ...string) string {
		s := fmt.Sprintf("[irc]\nlisten = [\"127.0.0.1:0\"]\n\n[store]\nstate_dir = %q\n\n[[user]]\nname = \"carol\"\npassword = \"irc-carol\"\n", dir)
		for _, e := range emails {
			s += fmt.Sprintf("\n  [[user.account]]\n  email = %q\n  password = \"Msim-x\"\n", e)
		}
		return s
	}
	if err := buildFile(t, writeConfig(t, conf("carol@example.com", "carol2@example.com"))); err != nil {
		t.Fatal(err)
	}
	// What an earlier build left: a random-key hash, not recognised as
	// unusable.
	cfg := Defaults()
	if err := cfg.resolveStateDir(dir); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), cfg.withState().Store)
	if err != nil {
		t.Fatal(err)
	}
	h, err := store.HashPassword("random key of an earlier build")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPassword(context.Background(), "carol", h); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := buildFile(t, writeConfig(t, conf("carol@example.com"))); err != nil {
		t.Errorf("upgrade start with carol2@example.com dropped from the file: got %v, want it to start", err)
	}
}
