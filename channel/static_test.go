package channel_test

import (
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim/server"
)

// staticStack runs the stack with configured users instead of the demo
// directory. Accounts are created on the MSIM server first.
func staticStack(t *testing.T, users []channel.StaticUser, accounts map[string]string) *stack {
	t.Helper()
	return startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		for email, pw := range accounts {
			name, _, _ := strings.Cut(email, "@")
			if _, err := msrv.AddAccount(email, pw, name); err != nil {
				t.Fatal(err)
			}
		}
		cfg.Directory = &channel.StaticDirectory{Users: users}
		cfg.AlertPoll = 50 * time.Millisecond
	})
}

// TestTwoAccountsOneUser: one IRC user with two MSIM accounts gets two
// control channels; a buddy on both gets a suffixed nick in the second;
// /away sets both accounts away.
func TestTwoAccountsOneUser(t *testing.T) {
	st := staticStack(t, []channel.StaticUser{{Name: "multi", Password: "pw", Accounts: []channel.Account{
		{Email: "one@example.com", Password: "One1", AutoConnect: true},
		{Email: "two@example.com", Password: "Two2", AutoConnect: true},
	}}}, map[string]string{"one@example.com": "One1", "two@example.com": "Two2"})
	c := dial(t, st.ircAddr, "someone", "multi:pw", allCaps...)
	joined := func(ch string) func(*irc.Message) bool {
		return func(m *irc.Message) bool { return m.Command == "JOIN" && m.Name == "someone" && m.Param(0) == ch }
	}
	c.expectAll(joined("&one"), joined("&two"), saysRoot("Logged in to MSIM as one"), saysRoot("Logged in to MSIM as two"))
	c.sync()
	one, two := c.names("&one"), c.names("&two")
	// The account that logs in first gets "tom"; the other "tom_2".
	second, secondCh := "tom_2", "&two"
	if contains(one, "+tom_2") {
		second, secondCh = "tom_2", "&one"
	}
	if !(contains(one, "+tom") && contains(two, "+tom_2") || contains(one, "+tom_2") && contains(two, "+tom")) {
		t.Fatalf("NAMES: &one %v, &two %v; want +tom in one and +tom_2 in the other", one, two)
	}
	// Each account lists the other; both get away with /away.
	c.add("&one", "two")
	c.add("&two", "one")
	c.sync()
	c.send("AWAY :gone")
	c.expectAll(isAway("two", "gone"), isAway("one", "gone"))
	c.send("AWAY")
	c.expectAll(isMode("+v", "two"), isMode("+v", "one"))
	// Commands name the account a nick belongs to.
	other := "&one"
	if secondCh == "&one" {
		other = "&two"
	}
	c.command(other, "info "+second, "belongs to account")
}

func TestWrongMSIMPasswordStopsRetrying(t *testing.T) {
	st := staticStack(t, []channel.StaticUser{{Name: "al", Accounts: []channel.Account{
		{Email: "al@example.com", Password: "wrong", AutoConnect: true},
	}}}, map[string]string{"al@example.com": "right"})
	c := dial(t, st.ircAddr, "al", "")
	c.joinedControl("&al")
	m := c.expectFrom("PRIVMSG", "root", "Login failed")
	want := "Login failed: incorrect password (err 260): The e-mail address or password is incorrect. Not retrying: fix the account's settings, then type connect."
	if m.Trailing() != want {
		t.Errorf("got %q, want %q (each word once)", m.Trailing(), want)
	}
	c.sync()
	// No retry follows: the status says so.
	c.command("&al", "status", "link: stopped")
}

func TestFriendRequestAlert(t *testing.T) {
	st := staticStack(t, []channel.StaticUser{
		{Name: "ann", Accounts: []channel.Account{{Email: "ann@example.com", Password: "Ann1", AutoConnect: true}}},
		{Name: "ben", Accounts: []channel.Account{{Email: "ben@example.com", Password: "Ben1", AutoConnect: true}}},
	}, map[string]string{"ann@example.com": "Ann1", "ben@example.com": "Ben1"})
	ann := dial(t, st.ircAddr, "ann", "")
	ann.joinedControl("&ann")
	// ann is online before ben adds her: the JOIN that add waits for
	// comes with her presence.
	ann.expectFrom("PRIVMSG", "root", "Logged in")
	ben := dial(t, st.ircAddr, "ben", "")
	ben.joinedControl("&ben")
	ben.expectFrom("PRIVMSG", "root", "Logged in")
	ben.add("&ben", "ann")
	m := ann.expect("NOTICE", func(m *irc.Message) bool { return m.Name == "root" && strings.Contains(m.Trailing(), "friend request") })
	if m.Param(0) != "&ann" {
		t.Errorf("alert went to %q, want the control channel", m.Param(0))
	}
}

func TestStaticDirectoryAuthentication(t *testing.T) {
	st := staticStack(t, []channel.StaticUser{
		{Name: "ann", Password: "s3cret", Accounts: []channel.Account{{Email: "ann@example.com", Password: "Ann1"}}},
	}, map[string]string{"ann@example.com": "Ann1"})
	for _, tc := range []struct {
		name, nick, pass string
		ok               bool
	}{
		{"nick and password", "ann", "s3cret", true},
		{"name:password", "whatever", "ann:s3cret", true},
		{"wrong password", "ann", "nope", false},
		{"no password", "ann", "", false},
		{"unknown user", "zed", "s3cret", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &ircClient{t: t, nick: tc.nick}
			c.conn = mustDial(t, st.ircAddr)
			c.r, c.w = irc.NewReader(c.conn), irc.NewWriter(c.conn)
			if tc.pass != "" {
				c.send("PASS " + tc.pass)
			}
			c.send("NICK " + tc.nick)
			c.send("USER u 0 * :U")
			m := c.expect("", func(m *irc.Message) bool { return m.Command == "001" || m.Command == "464" })
			if got := m.Command == "001"; got != tc.ok {
				t.Errorf("got %s %q, want success %v", m.Command, m.Trailing(), tc.ok)
			}
		})
	}
	// SASL PLAIN.
	for _, tc := range []struct {
		pw string
		ok bool
	}{{"s3cret", true}, {"bad", false}} {
		c := &ircClient{t: t, nick: "x"}
		c.conn = mustDial(t, st.ircAddr)
		c.r, c.w = irc.NewReader(c.conn), irc.NewWriter(c.conn)
		c.send("CAP REQ :sasl")
		c.send("NICK x")
		c.send("USER u 0 * :U")
		c.expect("CAP", nil)
		c.send("AUTHENTICATE PLAIN")
		c.expect("AUTHENTICATE", nil)
		c.send("AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("\x00ann\x00"+tc.pw)))
		m := c.expect("", func(m *irc.Message) bool { return m.Command == "903" || m.Command == "904" })
		if got := m.Command == "903"; got != tc.ok {
			t.Errorf("SASL with %q: got %s", tc.pw, m.Command)
		}
	}
}

func mustDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestDemoAccountsCannotBeTakenOver: a nick's demo account answers only to
// its password, and the account of a nick without a password is nobody
// else's while it is connected. (What follows its owner's leaving is tested
// in cmd/msimircd, which retires accounts on the embedded server.)
func TestDemoAccountsCannotBeTakenOver(t *testing.T) {
	st := startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		cfg.Directory.(*channel.DemoDirectory).CheckPassword = msrv.CheckPassword
	})
	login(t, st, "alice") // PASS pw-alice
	try := func(nick, pass string) *irc.Message {
		c := &ircClient{t: t, nick: nick}
		c.conn = mustDial(t, st.ircAddr)
		c.r, c.w = irc.NewReader(c.conn), irc.NewWriter(c.conn)
		if pass != "" {
			c.send("PASS " + pass)
		}
		c.send("NICK " + nick)
		c.send("USER u 0 * :U")
		return c.expect("", func(m *irc.Message) bool { return m.Command == "001" || m.Command == "464" })
	}
	c := dial(t, st.ircAddr, "carol", "")
	c.joinedControl("&carol")
	var refusals []string
	for _, tc := range []struct{ name, nick, pass string }{
		{"wrong password", "alice", "guess"},
		{"wrong case", "alice", "PW-ALICE"},
		{"no password for a protected account", "alice", ""},
		{"second passwordless connection", "carol", ""},
		{"password for a passwordless account in use", "carol", "guess"},
	} {
		m := try(tc.nick, tc.pass)
		if m.Command != "464" {
			t.Errorf("%s: got %s, want 464", tc.name, m.Command)
		}
		refusals = append(refusals, m.Trailing())
	}
	// The refusals read the same: none tells whether the account exists or
	// is connected, nor names it.
	for _, r := range refusals {
		if r != refusals[0] || strings.Contains(r, "@") {
			t.Errorf("refusals %q: want one text, naming nothing", refusals)
			break
		}
	}
	// Nicks that differ from alice by more than case are other accounts.
	for _, nick := range []string{"Alice_", "alice2"} {
		if m := try(nick, "pw-alice"); m.Command != "001" {
			t.Errorf("%s: got %s %q, want 001 (an account of its own)", nick, m.Command, m.Trailing())
		}
	}
}
