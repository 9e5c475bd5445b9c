package main

import (
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/msim"
)

// startServe runs serve with cfg (its listeners on loopback ports of its
// choosing) until the test ends; the hook holds its log.
func startServe(t *testing.T, cfg Config) (listening, *logtest.Hook) {
	t.Helper()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	if cfg.MSIM.Server == "" {
		cfg.MSIM.EmbeddedAddr = "127.0.0.1:0"
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logrus.NewEntry(l), ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case at := <-ready:
		return at, hook
	case err := <-done:
		done <- nil // for the cleanup, which waits for serve's end
		t.Fatalf("serve: %v", err)
	}
	panic("unreachable")
}

// ircSession is a registered IRC client.
type ircSession struct {
	nc   net.Conn
	w    *irc.Writer
	wait func(func(*irc.Message) bool) *irc.Message
}

// ircRegister connects as nick with PASS pass ("" = none) and returns the
// client and the reply that ended registration: 001, or the refusal (464
// or ERROR).
func ircRegister(t *testing.T, addr, nick, pass string) (*ircSession, *irc.Message) {
	t.Helper()
	return ircRegisterFrom(t, addr, "", nick, pass)
}

// ircRegisterFrom is ircRegister from the local IP from ("" = any; the
// whole of 127/8 reaches a loopback listener).
func ircRegisterFrom(t *testing.T, addr, from, nick, pass string) (*ircSession, *irc.Message) {
	t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	r, w := irc.NewReader(nc), irc.NewWriter(nc)
	if pass != "" {
		_ = w.Write("PASS " + pass)
	}
	_ = w.Write("NICK " + nick)
	_ = w.Write("USER " + nick + " 0 * :" + nick)
	s := &ircSession{nc: nc, w: w}
	s.wait = func(pred func(*irc.Message) bool) *irc.Message {
		t.Helper()
		for {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("%s: read: %v", nick, err)
			}
			if pred(m) {
				return m
			}
		}
	}
	m := s.wait(func(m *irc.Message) bool { return m.Command == "001" || m.Command == "464" || m.Command == "ERROR" })
	return s, m
}

// loggedIn waits for the control channel's "Logged in" of the account.
func (s *ircSession) loggedIn(channel string) {
	s.wait(func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Param(0) == channel && strings.Contains(m.Trailing(), "Logged in")
	})
}

func msimDial(t *testing.T, addr, email, password string) *msim.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := msim.Dial(ctx, msim.ClientConfig{Addr: addr, Email: email, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func lookupUID(t *testing.T, c *msim.Client, name string) msim.UID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.LookupUser(ctx, name)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	return p.UID
}

// TestSeededAccountIsTheNicksAccount: -msim-account carol@example.com:Carol1
// and the IRC user carol with that password are one account: an MSIM
// client writing to "carol" reaches the IRC user.
func TestSeededAccountIsTheNicksAccount(t *testing.T) {
	cfg := Defaults()
	cfg.MSIM.Accounts = []string{"carol@example.com:Carol1", "bob@example.com:Bob1"}
	at, hook := startServe(t, cfg)

	if _, m := ircRegister(t, at.irc[0], "carol", "carol1"); m.Command == "001" {
		t.Fatal("carol with the password in the wrong case got in")
	}
	carol, m := ircRegister(t, at.irc[0], "carol", "Carol1")
	if m.Command != "001" {
		t.Fatalf("carol with her password: got %s %q, want 001", m.Command, m.Trailing())
	}
	carol.loggedIn("&carol")

	bob := msimDial(t, at.msim, "bob@example.com", "Bob1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bob.SendIM(ctx, lookupUID(t, bob, "carol"), "hello carol"); err != nil {
		t.Fatal(err)
	}
	im := carol.wait(func(m *irc.Message) bool { return m.Command == "PRIVMSG" && m.Name == "bob" })
	if im.Trailing() != "hello carol" {
		t.Errorf("carol got %q, want %q", im.Trailing(), "hello carol")
	}
	for _, e := range hook.AllEntries() {
		if e.Message == "account created" && !strings.HasSuffix(e.Data["email"].(string), "@example.com") {
			t.Errorf("an account %v was made for carol", e.Data["email"])
		}
	}
}

// TestNickWithoutPasswordStartsFresh: a nick that connected without a
// password is not reachable by the next client with that nick while it is
// connected, and once it leaves the next client gets a new account (other
// users no longer reach the old one by its name).
func TestNickWithoutPasswordStartsFresh(t *testing.T) {
	cfg := Defaults()
	cfg.MSIM.Accounts = []string{"bob@example.com:Bob1"}
	at, _ := startServe(t, cfg)
	bob := msimDial(t, at.msim, "bob@example.com", "Bob1")

	dave, m := ircRegister(t, at.irc[0], "dave", "")
	if m.Command != "001" {
		t.Fatalf("dave: got %s %q", m.Command, m.Trailing())
	}
	dave.loggedIn("&dave")
	first := lookupUID(t, bob, "dave")
	for _, pass := range []string{"", "guess"} {
		if _, m := ircRegister(t, at.irc[0], "Dave", pass); m.Command == "001" {
			t.Errorf("a second dave (password %q) got in while dave is connected", pass)
		}
	}
	_ = dave.w.Write("QUIT :bye")
	dave.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })

	// The account is retired once the bridge has logged it out; until then
	// the nick is refused.
	deadline := time.Now().Add(10 * time.Second)
	var next *ircSession
	for next == nil {
		if s, m := ircRegister(t, at.irc[0], "dave", ""); m.Command == "001" {
			next = s
		} else if time.Now().After(deadline) {
			t.Fatalf("dave could not come back: %s %q", m.Command, m.Trailing())
		}
	}
	next.loggedIn("&dave")
	if again := lookupUID(t, bob, "dave"); again == first || again == 0 {
		t.Errorf("dave's account after he left: got uid %d, want a new one (not %d)", again, first)
	}
}

// TestAccountCreationQuota: account_creation_per_hour bounds the accounts
// one address makes; logging in to one's account is not a creation.
func TestAccountCreationQuota(t *testing.T) {
	cfg := Defaults()
	cfg.MSIM.AccountCreationPerHour = 1
	at, hook := startServe(t, cfg)
	if _, m := ircRegister(t, at.irc[0], "erin", "pw"); m.Command != "001" {
		t.Fatalf("erin: got %s %q", m.Command, m.Trailing())
	}
	if _, m := ircRegister(t, at.irc[0], "erin", "pw"); m.Command != "001" {
		t.Fatalf("erin again: got %s %q", m.Command, m.Trailing())
	}
	_, m := ircRegister(t, at.irc[0], "frank", "pw")
	if m.Command == "001" || !strings.Contains(strings.Join(m.Params, " "), "too many new accounts") {
		t.Errorf("frank: got %s %q, want a refusal about too many new accounts", m.Command, m.Params)
	}
	found := false
	for _, e := range hook.AllEntries() {
		found = found || strings.Contains(e.Message, "quota") && e.Data["key"] == "addr:127.0.0.1"
	}
	if !found {
		t.Error("no log line about the quota of addr:127.0.0.1")
	}
}

// TestDemoSASLChecksPassword: SASL PLAIN for an existing demo account
// fails at AUTHENTICATE with a wrong password, not later.
func TestDemoSASLChecksPassword(t *testing.T) {
	at, _ := startServe(t, Defaults())
	if _, m := ircRegister(t, at.irc[0], "gina", "Gina-pw"); m.Command != "001" {
		t.Fatalf("gina: got %s %q", m.Command, m.Trailing())
	}
	for _, tc := range []struct {
		account, pass, want string
	}{
		{"gina", "wrong", "904"},
		{"Gina", "gina-pw", "904"},
		{"gina", "Gina-pw", "903"},
		{"newcomer", "anything", "903"},
	} {
		nc, err := net.Dial("tcp", at.irc[0])
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		r, w := irc.NewReader(nc), irc.NewWriter(nc)
		_ = w.Write("CAP REQ :sasl")
		_ = w.Write("NICK x")
		_ = w.Write("USER x 0 * :x")
		_ = w.Write("AUTHENTICATE PLAIN")
		_ = w.Write("AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("\x00"+tc.account+"\x00"+tc.pass)))
		var got string
		for got == "" {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("%s: %v", tc.account, err)
			}
			if m.Command == "903" || m.Command == "904" {
				got = m.Command
			}
		}
		nc.Close()
		if got != tc.want {
			t.Errorf("SASL %s with %q: got %s, want %s", tc.account, tc.pass, got, tc.want)
		}
	}
}

// TestDemoGateServerPassword: with irc.password on the demo network, PASS
// must hold it ("SERVERPW" or "SERVERPW:OWN", the server password holding a
// ':' here), and a nick that came in with the server password alone still
// gets a fresh account when it comes back (the gate passes the bridge's
// Forget on to the demo directory).
func TestDemoGateServerPassword(t *testing.T) {
	cfg := Defaults()
	cfg.IRC.Password = "open:sesame"
	cfg.MSIM.Accounts = []string{"bob@example.com:Bob1"}
	at, _ := startServe(t, cfg)

	for _, tc := range []struct {
		name, nick, pass string
		want             bool
	}{
		{"no PASS", "ann", "", false},
		{"first part of the server password", "ann", "open", false},
		{"server password", "ann", "open:sesame", true},
		{"server password and own", "ben", "open:sesame:mine", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, m := ircRegister(t, at.irc[0], tc.nick, tc.pass)
			if got := m.Command == "001"; got != tc.want {
				t.Fatalf("got %s %q, want admitted %v", m.Command, m.Trailing(), tc.want)
			}
			if tc.want {
				s.loggedIn("&" + tc.nick)
				_ = s.w.Write("QUIT :bye")
				s.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })
			}
		})
	}

	// ben protected his account: the server password alone is not enough.
	if _, m := ircRegister(t, at.irc[0], "ben", "open:sesame:other"); m.Command == "001" {
		t.Error("ben with another own password got in")
	}

	// ann's ephemeral account is retired once the bridge has logged it
	// out; until then the nick is refused.
	bob := msimDial(t, at.msim, "bob@example.com", "Bob1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, m := ircRegister(t, at.irc[0], "ann", "open:sesame")
		if m.Command == "001" {
			s.loggedIn("&ann")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ann could not come back with the server password: %s %q", m.Command, m.Trailing())
		}
	}
	if uid := lookupUID(t, bob, "ann"); uid == 0 {
		t.Errorf("ann's new account: got uid %d, want one", uid)
	}
}

// TestDemoGateGuessesLogNoPassword: wrong own passwords behind the demo
// network's irc.password ("SERVERPW:OWN") are slowed and logged by the
// nick they try, never by the server password that comes first in PASS.
func TestDemoGateGuessesLogNoPassword(t *testing.T) {
	cfg := Defaults()
	cfg.IRC.Password = "Sesame-Pw"
	at, hook := startServe(t, cfg)
	s, m := ircRegister(t, at.irc[0], "ben", "Sesame-Pw:mine")
	if m.Command != "001" {
		t.Fatalf("ben: got %s %q, want 001", m.Command, m.Trailing())
	}
	s.loggedIn("&ben")
	for i := range 3 {
		if _, m := ircRegister(t, at.irc[0], "ben", "Sesame-Pw:guess"+string(rune('0'+i))); m.Command == "001" {
			t.Fatal("ben with a wrong own password got in")
		}
	}
	slowed := false
	for _, e := range hook.AllEntries() {
		line, _ := e.String()
		if strings.Contains(strings.ToLower(line), "sesame-pw") {
			t.Errorf("the log shows the server password: %s", line)
		}
		if strings.HasPrefix(e.Message, "failed logins:") && strings.Contains(line, "account:ben") {
			slowed = true
		}
	}
	if !slowed {
		t.Error("no log line slowing guesses at account:ben")
	}
}
