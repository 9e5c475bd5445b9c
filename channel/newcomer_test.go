package channel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// startUpstream runs a gateway in front of an MSIM server of its own
// choosing (upstream): its users are the configuration's [[user]]s,
// here gus (password gus-irc), and those kept in st.
func startUpstream(t *testing.T, st store.Store, registration, serverPassword string) (*stack, string) {
	t.Helper()
	stk := startStack(t)
	static := &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "gus", Password: "gus-irc"}}, ServerPassword: serverPassword}
	return stk, startGateway(t, stk.msimAddr, channel.WithStore(st, static, registration), st).ircAddr
}

// TestNewcomerRegistersUpstream: on a gateway in front of an upstream MSIM
// server, with registration open, a nick that nobody registered and no
// [[user]] has connects (as in BitlBee), is told what to do, registers,
// adds its MSIM account of the upstream server and exchanges IMs there
// with a buddy; from then on the nick needs its password, and the
// account is kept.
func TestNewcomerRegistersUpstream(t *testing.T) {
	st := openStore(t)
	stk, addr := startUpstream(t, st, channel.RegistrationOpen, "")
	if _, err := stk.msrv.AddAccount("nina@example.com", "Nina-Secret", "nina"); err != nil {
		t.Fatal(err)
	}
	zed := msimUser(t, stk, "zed")

	c := dial(t, addr, "nina", "", allCaps...)
	greeting := c.expectFrom("PRIVMSG", "root", "is not registered here").Trailing()
	for _, want := range []string{"register <password>", "account add msim <e-mail> <password>"} {
		if !strings.Contains(greeting, want) {
			t.Errorf("the greeting: got %q, want it to mention %q", greeting, want)
		}
	}
	c.private("account add msim nina@example.com Nina-Secret", "type register <password> first")
	c.private("register nina-irc", "The nick nina is registered")
	c.expectFrom("PRIVMSG", "root", "You have no MSIM accounts yet")
	c.private("account add msim nina@example.com Nina-Secret", "Account 0 added: nina@example.com, in the channel &nina")
	c.joinedControl("&nina")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as nina (")
	c.add("&nina", "zed")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.send("PRIVMSG zed :hello from IRC")
	for ev := range zed.Events() {
		if im, ok := ev.(msim.IMEvent); ok {
			if im.Text != "hello from IRC" {
				t.Errorf("zed got %q, want %q", im.Text, "hello from IRC")
			}
			break
		}
	}
	p, err := zed.LookupUser(ctx, "nina")
	if err != nil {
		t.Fatal(err)
	}
	if err := zed.SendIM(ctx, p.UID, "hello from MSIM"); err != nil {
		t.Fatal(err)
	}
	if m := c.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "zed" }); m.Trailing() != "hello from MSIM" {
		t.Errorf("nina got %q from zed, want %q", m.Trailing(), "hello from MSIM")
	}
	c.quit()

	u, err := st.LoadUser(context.Background(), "nina")
	if err != nil {
		t.Fatal(err)
	}
	if store.CheckPassword(u.User.PasswordHash, "nina-irc") != nil || len(u.Accounts) != 1 || u.Accounts[0].Email != "nina@example.com" {
		t.Errorf("stored nina: got %d accounts %+v, want the password nina-irc and nina@example.com", len(u.Accounts), u.Accounts)
	}
	dialRefused(t, addr, "nina", "wrong-pw")
	again := dial(t, addr, "nina", "nina-irc", allCaps...)
	again.joinedControl("&nina")
	again.expectFrom("PRIVMSG", "root", "Logged in to MSIM as nina (")
}

// TestNewcomerAdmission: who comes in as a newcomer in front of an
// upstream MSIM server. Registration closed refuses the nick that an open
// one admits; irc.password, when set, is required of a newcomer, and
// without it a newcomer gives no password; a [[user]]'s nick with a wrong
// password, or none, a PASS naming a [[user]] with a wrong password, and
// a password that opens nothing are refused on a gateway that admits
// newcomers, as is SASL for an account nobody has.
func TestNewcomerAdmission(t *testing.T) {
	welcomed := func(t *testing.T, addr, nick, pass string) {
		t.Helper()
		c := dial(t, addr, nick, pass, allCaps...)
		c.expectFrom("PRIVMSG", "root", "is not registered here")
		c.quit()
	}
	t.Run("registration closed", func(t *testing.T) {
		st := openStore(t)
		_, open := startUpstream(t, st, channel.RegistrationOpen, "")
		welcomed(t, open, "nina", "")
		_, closed := startUpstream(t, st, channel.RegistrationClosed, "")
		dialRefused(t, closed, "nina", "")
		dialRefused(t, closed, "nina", "any-pw")
	})
	t.Run("server password", func(t *testing.T) {
		_, addr := startUpstream(t, openStore(t), channel.RegistrationOpen, "letmein")
		dialRefused(t, addr, "nina", "")
		dialRefused(t, addr, "nina", "wrong")
		dialRefused(t, addr, "nina", "letmein:more")
		welcomed(t, addr, "nina", "letmein")
	})
	t.Run("configured user", func(t *testing.T) {
		_, addr := startUpstream(t, openStore(t), channel.RegistrationOpen, "")
		welcomed(t, addr, "nina", "")
		dialRefused(t, addr, "gus", "wrong")
		dialRefused(t, addr, "GUS", "wrong")
		dialRefused(t, addr, "gus", "")
		dialRefused(t, addr, "nina", "gus:wrong")
		dialRefused(t, addr, "nina", "nina-pw")
		saslClient(t, addr, "nina", "nina", "any-pw", "904")
		gus := dial(t, addr, "gus", "gus-irc", allCaps...)
		gus.expectFrom("NOTICE", "root", "You have no MSIM accounts configured.")
	})
}

// TestUnidentifiedCannotRegisterPastTheServerPassword: with irc.password
// set, a newcomer must give it to connect and register. A connection as a
// registered nick without its password comes in unidentified, which
// takes no password at all: after a change to a nick nobody has, it may
// not register that nick, or it would be a newcomer that never gave
// irc.password. Without irc.password (loopback only) it may, as any
// newcomer may.
func TestUnidentifiedCannotRegisterPastTheServerPassword(t *testing.T) {
	for _, tc := range []struct {
		name, registration, serverPassword, want string
		registered                               bool
	}{
		{"with irc.password", channel.RegistrationOpen, "letmein", "connect with it and the server password", false},
		{"without irc.password", channel.RegistrationOpen, "", "The nick mallory is registered", true},
		{"registration closed", channel.RegistrationClosed, "letmein", "Registration is closed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			hash, err := store.HashPassword("nina-irc")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateUser(context.Background(), "nina", hash); err != nil {
				t.Fatal(err)
			}
			_, addr := startUpstream(t, st, tc.registration, tc.serverPassword)

			c := dial(t, addr, "nina", "", allCaps...)
			c.expectFrom("PRIVMSG", "root", "identify")
			c.send("NICK mallory")
			c.expect("NICK", nil)
			c.nick = "mallory"
			c.private("register mal-pw", tc.want)
			_, err = st.LoadUser(context.Background(), "mallory")
			if got := err == nil; got != tc.registered {
				t.Errorf("mallory registered: got %v (%v), want %v", got, err, tc.registered)
			}
		})
	}
}
