package main

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/msim/server"
)

func TestServerNameFlag(t *testing.T) {
	o, err := parseOptions([]string{"-state", t.TempDir(), "-server-name", "irc.example.net"}, nil)
	if err != nil || o.cfg.IRC.ServerName != "irc.example.net" {
		t.Fatalf("got %q, %v; want irc.example.net", o.cfg.IRC.ServerName, err)
	}
	// The flag overrides the config.
	path := writeConfig(t, "[irc]\nserver_name = \"from.config\"\n")
	if o, err := parseOptions([]string{"-config", path}, nil); err != nil || o.cfg.IRC.ServerName != "from.config" {
		t.Errorf("config: got %q, %v", o.cfg.IRC.ServerName, err)
	}
	if o, err := parseOptions([]string{"-config", path, "-server-name", "flag.wins"}, nil); err != nil || o.cfg.IRC.ServerName != "flag.wins" {
		t.Errorf("config and flag: got %q, %v", o.cfg.IRC.ServerName, err)
	}
	if _, err := parseOptions([]string{"-server-name", "two words"}, nil); err == nil || !strings.Contains(err.Error(), "server_name") {
		t.Errorf("bad name: got %v", err)
	}
	// Clients see it.
	at, _ := startServe(t, o.cfg)
	_, m := ircRegister(t, at.irc[0], "ivy", "")
	if m.Command != "001" || m.Name != "irc.example.net" {
		t.Errorf("got %s from %q, want 001 from irc.example.net", m.Command, m.Name)
	}
}

// TestExampleConfigWorks: config.toml.example, copied as it is, runs on
// the embedded network: its user's MSIM account is made there and logs in.
func TestExampleConfigWorks(t *testing.T) {
	cfg, err := LoadConfig("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	at, _ := startServe(t, cfg)
	alice, m := ircRegister(t, at.irc[0], "alice", "change-me")
	if m.Command != "001" {
		t.Fatalf("alice: got %s %q", m.Command, m.Trailing())
	}
	alice.loggedIn("&alice")
	_ = alice.w.Write("PRIVMSG tom :hi")
	alice.wait(func(m *irc.Message) bool { return m.Command == "PRIVMSG" && m.Name == "tom" })
}

// TestUserAccountWithAnotherPassword: a [[user.account]] that exists on the
// embedded network with another password stops the start, naming the key
// and its line.
func TestUserAccountWithAnotherPassword(t *testing.T) {
	path := writeConfig(t, "[msim]\naccounts = [\"alice@example.com:Other1\"]\n\n[[user]]\nname = \"alice\"\n\n[[user.account]]\nemail = \"alice@example.com\"\npassword = \"Secret1\"\n")
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	l := logrus.New()
	l.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logrus.NewEntry(l), ready) }()
	select {
	case <-ready:
		cancel()
		<-done
		t.Fatal("started; want an error at start")
	case err = <-done:
	}
	err = locateKey(path, err)
	var ke *keyError
	if !errors.As(err, &ke) || !strings.Contains(err.Error(), "line 9") || !strings.Contains(err.Error(), "user[1].account[1].password") || strings.Contains(err.Error(), "Secret1") {
		t.Errorf("got %v, want the key user[1].account[1].password on line 9, without the password", err)
	}
}

// TestBridgeNets: the embedded server does not limit per address the
// addresses the bridge logs its users in from.
func TestBridgeNets(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		trusted []string
		not     []string
	}{
		{"", []string{"127.0.0.1", "127.1.2.3", "::1"}, []string{"192.0.2.1", "::2"}},
		{"127.0.0.1:1863", []string{"127.0.0.1"}, []string{"192.0.2.1"}},
		{"0.0.0.0:1863", []string{"127.0.0.1"}, []string{"192.0.2.1"}},
		{"192.0.2.7:1863", []string{"192.0.2.7", "127.0.0.1"}, []string{"192.0.2.8"}},
		{"[2001:db8::7]:1863", []string{"2001:db8::7", "::1"}, []string{"2001:db8::8"}},
	} {
		nets := bridgeNets(tc.listen)
		has := func(a string) bool {
			ip := netip.MustParseAddr(a)
			for _, n := range nets {
				if n.Contains(ip) {
					return true
				}
			}
			return false
		}
		for _, a := range tc.trusted {
			if !has(a) {
				t.Errorf("listen %q: %s is not trusted (nets %v)", tc.listen, a, nets)
			}
		}
		for _, a := range tc.not {
			if has(a) {
				t.Errorf("listen %q: %s is trusted (nets %v)", tc.listen, a, nets)
			}
		}
	}
}

// TestSeedUserAccountsAllOrNone: when one [[user.account]] exists on the
// embedded network with another password, the start or reload it stops
// leaves none of the others made: they were the refused file's.
func TestSeedUserAccountsAllOrNone(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	srv, err := server.New(server.Config{}, server.NewMemStore(), logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AddAccount("bob@example.com", "Other1", ""); err != nil {
		t.Fatal(err)
	}
	users := []UserEntry{
		{Name: "alice", Accounts: []AccountEntry{{Email: "alice@example.com", Password: "Secret1"}}},
		{Name: "bob", Accounts: []AccountEntry{{Email: "bob@example.com", Password: "Secret2"}}},
	}
	var ke *keyError
	if err := seedUserAccounts(srv, users, logrus.NewEntry(l)); !errors.As(err, &ke) || ke.key != "user[2].account[1].password" {
		t.Fatalf("got %v, want the key user[2].account[1].password", err)
	}
	if err := srv.CheckPassword("alice@example.com", "Secret1"); !errors.Is(err, server.ErrNoSuchAccount) {
		t.Errorf("alice@example.com after the refusal: got %v, want %v", err, server.ErrNoSuchAccount)
	}

	// An account the network cannot read is refused too, before any is
	// made: not taken for one that is missing or matches.
	broken := &unreadableStore{Store: server.NewMemStore(), email: "bob@example.com"}
	srv, err = server.New(server.Config{}, broken, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	if err := seedUserAccounts(srv, users, logrus.NewEntry(l)); !errors.As(err, &ke) || ke.key != "user[2].account[1].password" || !strings.Contains(err.Error(), "could not be checked") {
		t.Fatalf("an account that does not read: got %v, want it refused at user[2].account[1].password", err)
	}
	if err := srv.CheckPassword("alice@example.com", "Secret1"); !errors.Is(err, server.ErrNoSuchAccount) {
		t.Errorf("alice@example.com after the refusal: got %v, want %v", err, server.ErrNoSuchAccount)
	}
}

// unreadableStore is a store whose account email cannot be read.
type unreadableStore struct {
	server.Store
	email string
}

func (s *unreadableStore) AccountByEmail(email string) (*server.Account, error) {
	if email == s.email {
		return nil, errors.New("store: account row cannot be read")
	}
	return s.Store.AccountByEmail(email)
}
