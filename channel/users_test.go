package channel_test

import (
	"errors"
	"net"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
)

// TestWithStoreLookup: a registered nick needs its password (PASS or a
// SASL login checked by the store); without one it gets a user with no
// accounts that must identify; other nicks go to the directory behind.
func TestWithStoreLookup(t *testing.T) {
	st := openStore(t)
	if err := createUser(st, "alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAccount(t.Context(), "alice", store.Account{Email: "a@example.com", Password: "msim-pw", Channel: "&a", Autoconnect: true}); err != nil {
		t.Fatal(err)
	}
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	for _, tc := range []struct {
		name     string
		reg      ircd.Registration
		sasl     string // password given to Authenticate first
		wantErr  bool
		wantName string // "" = the directory behind
		accounts int
	}{
		{name: "right PASS", reg: ircd.Registration{Nick: "alice", Pass: "alice-pw"}, wantName: "alice", accounts: 1},
		{name: "casemapped nick", reg: ircd.Registration{Nick: "ALICE", Pass: "alice-pw"}, wantName: "alice", accounts: 1},
		{name: "wrong PASS", reg: ircd.Registration{Nick: "alice", Pass: "nope"}, wantErr: true},
		{name: "no PASS", reg: ircd.Registration{Nick: "alice"}, wantName: "unidentified/alice/"},
		{name: "SASL checked", reg: ircd.Registration{Nick: "x", Account: "alice"}, sasl: "alice-pw", wantName: "alice", accounts: 1},
		{name: "SASL unchecked", reg: ircd.Registration{Nick: "x", Account: "alice"}, wantErr: true},
		{name: "other nick", reg: ircd.Registration{Nick: "bob", Pass: "whatever"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := &recordingDirectory{}
			d := channel.WithStore(st, next, "")
			tc.reg.Remote = remote
			if tc.sasl != "" {
				if err := d.Authenticate(tc.reg.Account, tc.sasl); err != nil {
					t.Fatalf("Authenticate: got %v, want nil", err)
				}
			}
			u, err := d.Lookup(tc.reg)
			if tc.wantErr {
				if !errors.Is(err, ircd.ErrBadCredentials) {
					t.Fatalf("Lookup: got %+v, %v; want ErrBadCredentials", u, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup: got %v", err)
			}
			if tc.wantName == "" {
				if len(next.looked) != 1 || u.Name != tc.reg.Nick {
					t.Fatalf("got %+v (behind: %v), want the directory behind's user", u, next.looked)
				}
				return
			}
			if len(next.looked) != 0 {
				t.Errorf("the directory behind was asked: %v", next.looked)
			}
			if len(u.Name) < len(tc.wantName) || u.Name[:len(tc.wantName)] != tc.wantName || len(u.Accounts) != tc.accounts {
				t.Errorf("got %s with %d accounts, want %s… with %d", u.Name, len(u.Accounts), tc.wantName, tc.accounts)
			}
			if tc.accounts > 0 && u.Accounts[0].Password != "msim-pw" {
				t.Errorf("account password: got %q, want the stored one", u.Accounts[0].Password)
			}
		})
	}
	if err := channel.WithStore(st, &recordingDirectory{}, "").Authenticate("alice", "nope"); !errors.Is(err, ircd.ErrBadCredentials) {
		t.Errorf("Authenticate with a wrong password: got %v, want ErrBadCredentials", err)
	}
}
