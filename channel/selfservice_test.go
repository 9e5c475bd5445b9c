package channel_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/internal/testlog"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// selfService is the embedded network, a store and a gateway whose
// directory is the demo network behind WithStore.
type selfService struct {
	stk   *stack
	st    store.Store
	gw    *gateway
	logs  *logtest.Hook
	clock *shiftClock
}

// shiftClock is the wall clock, moved forward by the test.
type shiftClock struct {
	mu    sync.Mutex
	shift time.Duration
}

func (c *shiftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.shift)
}

func (c *shiftClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

func (c *shiftClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shift += d
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(t.TempDir(), "msimircd.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// demoDirectory is the embedded network's directory, as msimircd makes it.
func demoDirectory(stk *stack) *channel.DemoDirectory {
	ms := stk.mstore
	return &channel.DemoDirectory{
		CreateAccount: stk.msrv.AddAccount, CheckPassword: stk.msrv.CheckPassword,
		Exists: func(err error) bool { return errors.Is(err, server.ErrAccountExists) },
		UserNameOwner: func(name string) (string, error) {
			a, err := ms.AccountByUserName(name)
			if errors.Is(err, server.ErrNoSuchAccount) {
				return "", nil
			}
			if err != nil {
				return "", err
			}
			return a.Email, nil
		},
		Retire: func(email string) error {
			a, err := ms.AccountByEmail(email)
			if err != nil {
				return err
			}
			return ms.UpdateAccount(a.UID, func(a *server.Account) error {
				a.UserName = ""
				_, _ = rand.Read(a.Hash[:])
				return nil
			})
		},
	}
}

func startSelfService(t *testing.T, registration string, failures guard.FailureConfig, opts ...func(*channel.Config)) *selfService {
	t.Helper()
	return startSelfServiceOn(t, openStore(t), registration, failures, opts...)
}

// startSelfServiceOn is startSelfService over st.
func startSelfServiceOn(t *testing.T, st store.Store, registration string, failures guard.FailureConfig, opts ...func(*channel.Config)) *selfService {
	t.Helper()
	stk := startStack(t)
	log := testlog.New(t, logrus.DebugLevel) // debug too: no password there either
	hook := logtest.NewLocal(log.Logger)
	clock := &shiftClock{}
	dir := channel.WithStore(st, demoDirectory(stk), registration)
	g := startGateway(t, stk.msimAddr, dir, st, func(c *channel.Config) {
		c.IdentifyFailures = failures
		c.Clock = clock
		c.Log = log.WithField("part", "bridge")
		for _, o := range opts {
			o(c)
		}
	})
	return &selfService{stk: stk, st: st, gw: g, logs: hook, clock: clock}
}

func fastFailures() guard.FailureConfig {
	return guard.FailureConfig{Delay: time.Millisecond, MaxDelay: time.Millisecond}
}

// private types a command to root and waits for its reply.
func (c *ircClient) private(line, want string) *irc.Message {
	c.t.Helper()
	c.send("PRIVMSG root :" + line)
	return c.expectFrom("PRIVMSG", "root", want)
}

// quit ends the client's connection and waits for the server to close it.
func (c *ircClient) quit() {
	c.t.Helper()
	c.send("QUIT")
	c.expect("ERROR", nil)
}

// noLogContains fails if a log entry mentions secret.
func (ss *selfService) noLogContains(t *testing.T, secret string) {
	t.Helper()
	for _, e := range ss.logs.AllEntries() {
		line, _ := e.String()
		if strings.Contains(line, secret) {
			t.Errorf("the log shows a password: %s", line)
		}
	}
}

// dialRefused connects with pass and wants the connection refused (464).
func dialRefused(t *testing.T, addr, nick, pass string) {
	t.Helper()
	c := &ircClient{t: t, nick: nick}
	nc := dialRaw(t, addr)
	c.conn, c.r, c.w = nc, irc.NewReader(nc), irc.NewWriter(nc)
	if pass != "" {
		c.send("PASS " + pass)
	}
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :x")
	c.expect("464", nil)
}

// TestRegisterThenPassword: a nick without a password registers; from then
// on it connects with its password (PASS) and gets its account on the
// embedded network back, a wrong password is refused, and no password
// connects without accounts until identify, whose wrong guesses are refused
// alike. No password reaches the log.
func TestRegisterThenPassword(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	addr := ss.gw.ircAddr
	alice := dial(t, addr, "alice", "", allCaps...)
	alice.joinedControl("&alice")
	alice.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	alice.private("register S3cret-pw", "The nick alice is registered")
	alice.joinedControl("&alice")
	alice.expectFrom("PRIVMSG", "root", "Logged in to MSIM as alice (")
	alice.private("register other", "registered already")
	alice.quit()

	if _, err := ss.st.User(context.Background(), "alice"); err != nil {
		t.Fatalf("the store's user alice: %v", err)
	}
	alice = dial(t, addr, "alice", "S3cret-pw", allCaps...)
	alice.joinedControl("&alice")
	alice.expectFrom("PRIVMSG", "root", "Logged in to MSIM as alice (")
	alice.quit()

	dialRefused(t, addr, "alice", "wrong")

	alice = dial(t, addr, "alice", "", allCaps...)
	alice.expectFrom("PRIVMSG", "root", "identify")
	for _, m := range alice.sync() {
		if m.Command == "JOIN" {
			t.Errorf("an unidentified connection joined %v", m.Params)
		}
	}
	alice.private("account list", "no MSIM accounts")
	alice.private("identify nope", "Incorrect password")
	alice.private("identify S3cret-pw", "Password accepted")
	alice.joinedControl("&alice")
	alice.expectFrom("PRIVMSG", "root", "Logged in to MSIM as alice (")
	alice.private("identify S3cret-pw", "identified already")
	ss.noLogContains(t, "S3cret-pw")
	ss.noLogContains(t, "nope")
}

// TestIdentifyGuessesAreRefused: wrong identify passwords from one address
// are slowed, then refused, even the right one; the burst is logged once,
// by key.
func TestIdentifyGuessesAreRefused(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen,
		guard.FailureConfig{Free: 1, Delay: time.Millisecond, MaxDelay: time.Millisecond, RefuseAfter: 3, RefuseFor: time.Hour})
	if err := createUser(ss.st, "bob", "bobs-pw"); err != nil {
		t.Fatal(err)
	}
	bob := dial(t, ss.gw.ircAddr, "bob", "", allCaps...)
	bob.expectFrom("PRIVMSG", "root", "identify")
	for i := range 3 {
		bob.private(fmt.Sprintf("identify guess%d", i), "Incorrect password")
	}
	bob.private("identify bobs-pw", "Too many wrong passwords")
	n := 0
	for _, e := range ss.logs.AllEntries() {
		if strings.Contains(e.Message, "slowing") {
			n++
			if k, _ := e.Data["key"].(string); !strings.HasPrefix(k, "addr:") && !strings.HasPrefix(k, "account:") {
				t.Errorf("log key: got %q, want addr: or account:", k)
			}
		}
	}
	if n == 0 {
		t.Errorf("slowed guesses logged: got none, want a line per key")
	}
	ss.noLogContains(t, "guess1")
}

func createUser(st store.Store, name, password string) error {
	h, err := store.HashPassword(password)
	if err != nil {
		return err
	}
	_, err = st.CreateUser(context.Background(), name, h)
	return err
}

// TestRegistrationClosed: with closed registration, register explains that
// an administrator makes users, and nothing is stored.
func TestRegistrationClosed(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationClosed, fastFailures())
	c := dial(t, ss.gw.ircAddr, "carol", "pw-carol", allCaps...)
	c.joinedControl("&carol")
	c.private("register pw-carol", "msimircd user add")
	if _, err := ss.st.User(context.Background(), "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stored user after a closed register: got %v, want ErrNotFound", err)
	}
}

// TestSASLForRegisteredNick: SASL PLAIN with a registered nick's password
// connects it with its accounts; a wrong one fails with 904.
func TestSASLForRegisteredNick(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	dave := dial(t, ss.gw.ircAddr, "dave", "", allCaps...)
	dave.joinedControl("&dave")
	dave.private("register dave-pw", "is registered")
	dave.joinedControl("&dave")
	dave.quit()
	for _, tc := range []struct {
		name, pw, want string
	}{
		{"wrong", "nope", "904"},
		{"right", "dave-pw", "903"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &ircClient{t: t, nick: "dave"}
			nc := dialRaw(t, ss.gw.ircAddr)
			c.conn, c.r, c.w = nc, irc.NewReader(nc), irc.NewWriter(nc)
			c.send("CAP LS 302")
			c.send("CAP REQ :sasl")
			c.send("NICK dave")
			c.send("USER dave 0 * :x")
			c.expect("CAP", func(m *irc.Message) bool { return m.Param(1) == "ACK" })
			c.send("AUTHENTICATE PLAIN")
			c.expect("AUTHENTICATE", nil)
			c.send("AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("\x00dave\x00"+tc.pw)))
			c.expect(tc.want, nil)
			if tc.want != "903" {
				return
			}
			c.send("CAP END")
			c.expect("001", nil)
			c.joinedControl("&dave")
			c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as dave (")
		})
	}
}

// TestAccountCommands: a registered user adds an MSIM account of another
// network user, lists, switches off and on, changes its settings (the
// password is never shown), moves its channel, and deletes it; what was
// set is back at the next connection.
func TestAccountCommands(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	msimUser(t, ss.stk, "zed") // zed@example.com, password zedpw; online
	if _, err := ss.stk.msrv.AddAccount("ezra@example.com", "Erin-Secret", "ezra"); err != nil {
		t.Fatal(err)
	}
	addr := ss.gw.ircAddr
	c := dial(t, addr, "erin", "", allCaps...)
	c.joinedControl("&erin")
	c.private("account add msim x@example.com pw", "register <password> first")
	c.private("register erin-irc", "is registered")
	c.joinedControl("&erin")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.private("account add icq 123 pw", "Unknown protocol")
	c.private("account add myspace ezra@example.com Erin-Secret", "Account 1 added: ezra@example.com, in the channel &ezra")
	c.joinedControl("&ezra")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as ezra (")
	c.command("&ezra", "add zed", "Added zed")
	c.command("&ezra", "blist", "zed (zed, ezra@example.com): online")
	c.expectFrom("PRIVMSG", "root", "3 buddies (3 online, 0 away, 0 offline)") // and Tom on each account
	c.private("account list", "0 (msim): erin@msimircd.local in &erin")
	c.expectFrom("PRIVMSG", "root", "1 (msim): ezra@example.com in &ezra, connected, autoconnect")
	c.private("account ezra@example.com off", "Disconnected ezra@example.com")
	c.private("blist offline", "zed (zed, ezra@example.com): offline")
	c.private("account 1 on", "Connecting to MSIM")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as ezra (")
	var seen []*irc.Message
	for _, tc := range []struct{ line, want string }{
		{"account 1 set", "autoconnect = true"},
		{"account 1 set password", "password = ********"},
		{"account 1 set password New-Secret", "password = ******** (used at the next login)"},
		{"account 1 set autoconnect maybe", "takes true or false"},
		{"account 1 set autoconnect false", "autoconnect = false"},
		{"account 1 set colour red", "Unknown account setting"},
		{"account 1 set channel nochan", "is not a channel name"},
		{"account 1 set channel &erin", "is that of erin@msimircd.local"},
	} {
		seen = append(seen, c.private(tc.line, tc.want))
		seen = append(seen, c.sync()...)
	}
	c.send("PRIVMSG root :account 1 set channel &work")
	c.expectAll(func(m *irc.Message) bool { return m.Command == "PART" && m.Param(0) == "&ezra" },
		func(m *irc.Message) bool { return m.Command == "JOIN" && m.Param(0) == "&work" && m.Name == "erin" },
		func(m *irc.Message) bool { return m.Command == "JOIN" && m.Param(0) == "&work" && m.Name == "zed" },
		saysRoot("channel = &work"))
	for _, m := range append(seen, c.sync()...) {
		if strings.Contains(m.String(), "Secret") {
			t.Errorf("a password was shown: %v", m)
		}
	}
	ss.noLogContains(t, "Secret")
	c.quit()

	// Kept: the account, its channel, no autoconnect, the new password.
	c = dial(t, addr, "erin", "erin-irc", allCaps...)
	c.expectAll(func(m *irc.Message) bool { return m.Command == "JOIN" && m.Param(0) == "&erin" && m.Name == "erin" },
		func(m *irc.Message) bool { return m.Command == "JOIN" && m.Param(0) == "&work" && m.Name == "erin" })
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as erin (")
	c.command("&work", "account work set autoconnect", "autoconnect = false")
	c.command("&work", "connect", "Connecting")
	c.expectFrom("PRIVMSG", "root", "Login failed") // New-Secret is not erin's MSIM password
	c.command("&work", "account &work del", "Account ezra@example.com deleted")
	c.private("account list", "0 (msim): erin@msimircd.local")
	// The deleted account's buddies no longer hold their nicks.
	c.send("PRIVMSG &erin :add zed")
	c.expectAll(saysRoot("to your buddy list as zed."), isCmd("JOIN", "zed"))
	st, err := ss.st.LoadUser(context.Background(), "erin")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Accounts) != 1 || st.Accounts[0].Email != "erin@msimircd.local" {
		t.Errorf("stored accounts after del: got %+v, want erin@msimircd.local only", st.Accounts)
	}
}

// TestDropAfterConfirmation: drop wants the password, then yes within a
// minute; anything else cancels, a late yes does nothing, and a yes in time
// deletes the user and their accounts.
func TestDropAfterConfirmation(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	c := dial(t, ss.gw.ircAddr, "fay", "", allCaps...)
	c.joinedControl("&fay")
	c.private("drop x", "not registered")
	c.private("register fay-pw", "is registered")
	c.joinedControl("&fay")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.private("yes", "Nothing to confirm")
	c.private("drop wrong", "Incorrect password")
	c.private("drop fay-pw", "Type yes within a minute")
	c.private("save", "saved as you change them") // cancels
	c.private("yes", "Nothing to confirm")
	c.private("drop fay-pw", "Type yes within a minute")
	ss.clock.advance(2 * time.Minute)
	c.private("yes", "Too late")
	c.private("drop fay-pw", "Type yes within a minute")
	c.send("PRIVMSG root :yes")
	c.expectAll(func(m *irc.Message) bool { return m.Command == "PART" && m.Param(0) == "&fay" },
		saysRoot("are deleted"))
	if _, err := ss.st.User(context.Background(), "fay"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stored user after drop: got %v, want ErrNotFound", err)
	}
	c.private("account list", "no MSIM accounts")
	// The account register set up on the embedded network is retired: its
	// user name is free and no password opens it.
	if _, err := ss.stk.mstore.AccountByUserName("fay"); !errors.Is(err, server.ErrNoSuchAccount) {
		t.Errorf("the embedded network's account fay after drop: got %v, want it retired", err)
	}
}

// TestDropYesInOneBatch: a yes in the same multiline message as its drop
// confirms nothing (the password is checked after the message's lines
// have run), so the drop still waits for a yes of its own.
func TestDropYesInOneBatch(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	c := dial(t, ss.gw.ircAddr, "fay", "", "batch", "draft/multiline")
	c.joinedControl("&fay")
	c.private("register fay-pw", "is registered")
	c.joinedControl("&fay")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.sendMultiline("root", "drop fay-pw", "yes")
	c.expectFrom("PRIVMSG", "root", "Nothing to confirm")
	c.expectFrom("PRIVMSG", "root", "Type yes within a minute")
	if _, err := ss.st.User(context.Background(), "fay"); err != nil {
		t.Errorf("stored user after drop and yes in one message: got %v, want it kept", err)
	}
	c.private("save", "saved as you change them") // cancels
	c.private("yes", "Nothing to confirm")
}

// TestRegisterAfterDrop: registering a dropped nick again cannot set up
// its account on the embedded network (drop retired it for good), and
// says so rather than that its user name is taken.
func TestRegisterAfterDrop(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	c := dial(t, ss.gw.ircAddr, "fay", "", allCaps...)
	c.joinedControl("&fay")
	c.private("register fay-pw", "is registered")
	c.joinedControl("&fay")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.private("drop fay-pw", "Type yes within a minute")
	c.private("yes", "are deleted")
	c.send("PRIVMSG root :register fay-pw2")
	m := c.expectFrom("PRIVMSG", "root", "could not be set up")
	if strings.Contains(m.Trailing(), "user name is taken") || !strings.Contains(m.Trailing(), "dropped") {
		t.Errorf("register after drop: got %q, want that drop closed the nick's account", m.Trailing())
	}
}

// TestConfigUserWins: a user of the configuration connects with its
// password although the store keeps a user of that name, and its nick
// cannot be registered.
func TestConfigUserWins(t *testing.T) {
	stk := startStack(t)
	st := openStore(t)
	if _, err := stk.msrv.AddAccount("gus@example.com", "guspw", "gus"); err != nil {
		t.Fatal(err)
	}
	static := &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "gus", Password: "gus-irc",
		Accounts: []channel.Account{{Email: "gus@example.com", Password: "guspw", Channel: "&gus", AutoConnect: true}}}}}
	if err := createUser(st, "gus", "stored-pw"); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, stk.msimAddr, channel.WithStore(st, static, ""), st)
	c := dial(t, g.ircAddr, "gus", "gus-irc", allCaps...)
	c.joinedControl("&gus")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as gus (")
	c.command("&gus", "register x", "cannot be registered")
	c.command("&gus", "account 0 set autoconnect false", "gateway's configuration")
	c.quit()
	dialRefused(t, g.ircAddr, "gus", "stored-pw")
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestRegisterKeepsSettings: what a nick without a password set before
// registering (kept while connected, as save says, until register) is
// its registered user's, and comes back at its next connection.
func TestRegisterKeepsSettings(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	addr := ss.gw.ircAddr
	c := dial(t, addr, "lou", "", allCaps...)
	c.joinedControl("&lou")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.command("&lou", "set show_offline true", "show_offline = true")
	c.command("&lou", "set auto_away not at my desk", "auto_away = not at my desk")
	c.command("&lou", "save", "Type register <password> to have them kept for good")
	c.private("register lou-pw", "is registered")
	c.joinedControl("&lou")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.command("&lou", "set show_offline", "show_offline = ")
	c.quit()
	c = dial(t, addr, "lou", "lou-pw", allCaps...)
	c.joinedControl("&lou")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	for _, want := range []string{"auto_away = not at my desk", "away_devoice = true", "show_offline = true"} {
		if m := c.command("&lou", "set "+strings.Fields(want)[0], ""); m.Trailing() != want {
			t.Errorf("after register: got %q, want %q", m.Trailing(), want)
		}
	}
}

// TestRegisterKeepsDemoAccount: a nick that connected with a password (its
// demo account's MSIM password is derived from it) registers with another
// one: the account it had is the one kept, and the registered password
// brings it back.
func TestRegisterKeepsDemoAccount(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	addr := ss.gw.ircAddr
	c := login(t, &stack{ircAddr: addr}, "hal")
	c.private("register hal-new", "is registered")
	c.joinedControl("&hal")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as hal (")
	c.quit()
	c = dial(t, addr, "hal", "hal-new", allCaps...)
	c.joinedControl("&hal")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as hal (")
}

// TestIdentifyAfterNickChange: identify acts on the nick the client has
// now: a client that connected as another nick, then took a registered one,
// gets that user's accounts.
func TestIdentifyAfterNickChange(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	addr := ss.gw.ircAddr
	c := dial(t, addr, "ivy", "", allCaps...)
	c.joinedControl("&ivy")
	c.private("register ivy-pw", "is registered")
	c.joinedControl("&ivy")
	c.quit()

	c = dial(t, addr, "guest", "guest-pw", allCaps...)
	c.joinedControl("&guest")
	c.private("identify ivy-pw", "The nick guest is not registered")
	c.send("NICK ivy")
	c.expect("NICK", nil)
	c.nick = "ivy"
	c.private("identify ivy-pw", "Password accepted")
	c.expectAll(func(m *irc.Message) bool { return m.Command == "PART" && m.Param(0) == "&guest" },
		func(m *irc.Message) bool { return m.Command == "JOIN" && m.Param(0) == "&ivy" && m.Name == "ivy" },
		saysRoot("Logged in to MSIM as ivy ("))
}

// TestMoveChannelAnsweredWhereAsked: account set channel answers in
// private when typed to root, even for the first account (which root's
// commands act on), and in the new channel when typed in the old one.
func TestMoveChannelAnsweredWhereAsked(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	c := dial(t, ss.gw.ircAddr, "kim", "", allCaps...)
	c.joinedControl("&kim")
	c.private("register kim-pw", "is registered")
	c.joinedControl("&kim")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.send("PRIVMSG root :account 0 set channel &work")
	if m := c.expectFrom("PRIVMSG", "root", "channel = &work"); m.Param(0) != "kim" {
		t.Errorf("account 0 set channel, typed to root: answered in %s, want in private", m.Param(0))
	}
	c.send("PRIVMSG &work :account 0 set channel &desk")
	if m := c.expectFrom("PRIVMSG", "root", "channel = &desk"); m.Param(0) != "&desk" {
		t.Errorf("account 0 set channel, typed in its channel: answered in %s, want in &desk", m.Param(0))
	}
}

// TestRegisterAfterNickChange: a connection that took a registered nick
// without its password, then changed to a nick nobody registered, can
// register that one (register, like identify, acts on the nick now).
func TestRegisterAfterNickChange(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	if err := createUser(ss.st, "bob", "bobs-pw"); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ss.gw.ircAddr, "bob", "", allCaps...)
	c.expectFrom("PRIVMSG", "root", "identify")
	c.send("NICK rob")
	c.expect("NICK", nil)
	c.nick = "rob"
	if m := c.private("register robs-pw", "The nick rob is registered"); !strings.Contains(m.Trailing(), "From now on") {
		t.Errorf("register after the nick change: got %q, want rob registered", m.Trailing())
	}
	if _, err := ss.st.User(context.Background(), "rob"); err != nil {
		t.Errorf("the store's user rob: %v", err)
	}
}

// TestAccountStatusKept: an account's status and status text, set with
// account set or the status command, are its settings: a registered user's
// account logs in with them at the next connection.
func TestAccountStatusKept(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	addr := ss.gw.ircAddr
	c := dial(t, addr, "jo", "", allCaps...)
	c.joinedControl("&jo")
	c.private("register jo-pw", "is registered")
	c.joinedControl("&jo")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.private("account 0 set status sleepy", "status is one of")
	c.private("account 0 set status away", "status = away")
	c.private("account 0 set status_text out to lunch", "status_text = out to lunch")
	c.quit()
	c = dial(t, addr, "jo", "jo-pw", allCaps...)
	c.joinedControl("&jo")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.command("&jo", "status", "is away: out to lunch")
	c.command("&jo", "status online", "is now online")
	c.quit()
	c = dial(t, addr, "jo", "jo-pw", allCaps...)
	c.joinedControl("&jo")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.command("&jo", "account 0 set", "autoconnect = true")
	c.expectFrom("PRIVMSG", "root", "channel = &jo")
	c.expectFrom("PRIVMSG", "root", "password = ********")
	c.expectFrom("PRIVMSG", "root", "status = online")
}

// TestSelfServiceHelp: help explains each self-service command with an
// example; without a store, register and identify say there are no
// registered users, and account add says where accounts come from.
func TestSelfServiceHelp(t *testing.T) {
	st := startStack(t)
	c := login(t, st, "lee", allCaps...)
	for _, tc := range []struct{ line, want string }{
		{"help register", "register <password> — "},
		{"help identify", "Example: /msg root identify"},
		{"help drop", "yes within a minute"},
		{"help account", "account add msim <e-mail> <password>"},
		{"help blist", "blist [all|online|offline|away]"},
		{"help save", "saved as you change them"},
		{"register pw", "keeps no registered users"},
		{"identify pw", "keeps no registered users"},
		{"account add msim x@example.com pw", "gateway's configuration"},
		{"account list", "0 (msim): lee@msimircd.local in &lee, connected, autoconnect"},
		{"account 7 off", "No account \"7\""},
		{"save", "in memory only"},
	} {
		c.command("&lee", tc.line, tc.want)
	}
	for _, name := range []string{"register", "identify", "drop", "account", "blist"} {
		c.sendf("PRIVMSG &lee :help %s", name)
		if m := c.expectFrom("PRIVMSG", "root", name); !strings.Contains(m.Trailing(), "Example") {
			t.Errorf("help %s: got %q, want an example", name, m.Trailing())
		}
	}
}

// TestRegistrationQuota: an address registers as many nicks as the quota
// allows; the next register is refused and stores nothing.
func TestRegistrationQuota(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures(), func(c *channel.Config) {
		c.Registrations = guard.NewQuota(1, time.Hour, nil)
	})
	a := dial(t, ss.gw.ircAddr, "max", "max-pw", allCaps...)
	a.joinedControl("&max")
	a.private("register max-pw", "is registered")
	b := dial(t, ss.gw.ircAddr, "ned", "ned-pw", allCaps...)
	b.joinedControl("&ned")
	b.private("register ned-pw", "Too many nicks were registered from your address")
	if _, err := ss.st.User(context.Background(), "ned"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stored ned after a refused register: got %v, want ErrNotFound", err)
	}
}

// TestIdentifyFlags: BitlBee's identify -noload and -force are accepted,
// said to have nothing to act on, and the password after them counts.
func TestIdentifyFlags(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	addr := ss.gw.ircAddr
	c := dial(t, addr, "uma", "", allCaps...)
	c.joinedControl("&uma")
	c.private("register uma-pw", "is registered")
	c.joinedControl("&uma")
	c.quit()
	c = dial(t, addr, "uma", "", allCaps...)
	c.expectFrom("PRIVMSG", "root", "identify")
	c.private("identify -noload uma-pw", "identify -noload does nothing here")
	c.expectFrom("PRIVMSG", "root", "Password accepted")
	c.joinedControl("&uma")
}

// TestGuessesCountPerClientAddress: with two clients of one user from two
// addresses, wrong passwords typed in one count against its own address,
// not against the other client's (the address is the typing client's).
func TestGuessesCountPerClientAddress(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen,
		guard.FailureConfig{Free: 1, Delay: time.Millisecond, MaxDelay: time.Millisecond, RefuseAfter: 3, RefuseFor: time.Hour},
		func(c *channel.Config) { c.AlwaysOn = true })
	if err := createUser(ss.st, "bob", "bobs-pw"); err != nil {
		t.Fatal(err)
	}
	desk := dial(t, ss.gw.ircAddr, "bob", "bobs-pw", allCaps...)
	desk.expectFrom("PRIVMSG", "root", "You have no MSIM accounts")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", ss.gw.ircAddr)
	if err != nil {
		t.Fatal(err)
	}
	phone := register(t, nc, "bob", "bobs-pw", allCaps...)
	phone.sync() // attached
	for i := range 3 {
		desk.private(fmt.Sprintf("drop guess%d", i), "Incorrect password")
	}
	desk.private("drop bobs-pw", "Too many wrong passwords")
	phone.private("drop bobs-pw", "Type yes")
}

// TestAccountOnOffAll: account off and account on with no account named,
// as BitlBee has them: every connected account logs out, every autoconnect
// account logs in.
func TestAccountOnOffAll(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	alice.command("&alice", "account off", "Disconnected alice@")
	alice.command("&alice", "account off", "No account is connected.")
	alice.command("&alice", "account on", "Connecting to MSIM")
	alice.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	alice.command("&alice", "account on", "No account to connect")
}

// TestAccountOnWithoutAccounts: account on for a user with no account
// says so, as BitlBee does, rather than that every one is connected.
func TestAccountOnWithoutAccounts(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	if err := createUser(ss.st, "alice", "S3cret-pw"); err != nil {
		t.Fatal(err)
	}
	alice := dial(t, ss.gw.ircAddr, "alice", "", allCaps...)
	alice.expectFrom("PRIVMSG", "root", "identify")
	alice.private("identify S3cret-pw", "You have no MSIM accounts yet")
	alice.private("account on", "No accounts yet. Add one with: account add msim")
}

// TestIdentifyGuessesNotForgivenByOwnPassword: the right password of
// one's own nick does not forget the wrong ones typed from that address
// at another: guessing bob's password, then identifying as one's own
// nick, still gets the address refused.
func TestIdentifyGuessesNotForgivenByOwnPassword(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen,
		guard.FailureConfig{Free: 1, Delay: time.Millisecond, MaxDelay: time.Millisecond, RefuseAfter: 3, RefuseFor: time.Hour})
	for name, pw := range map[string]string{"bob": "bobs-pw", "mallory": "mallorys-pw"} {
		if err := createUser(ss.st, name, pw); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, ss.gw.ircAddr, "bob", "", allCaps...)
	c.expectFrom("PRIVMSG", "root", "identify")
	c.private("identify guess0", "Incorrect password")
	c.private("identify guess1", "Incorrect password")
	c.send("NICK mallory")
	c.expect("NICK", nil)
	c.nick = "mallory"
	c.private("identify mallorys-pw", "Password accepted")
	c.quit()

	c = dial(t, ss.gw.ircAddr, "bob", "", allCaps...)
	c.expectFrom("PRIVMSG", "root", "identify")
	c.private("identify guess2", "Incorrect password")
	c.private("identify bobs-pw", "Too many wrong passwords")
}

// TestSASLTwoClientsAtOnce: two clients of one registered user (a desk and
// a phone, reconnecting together) that log in with SASL at the same time
// both get in: the first to finish registering does not use up the
// other's login.
// The same holds for a nick's account on the demo network.
func TestSASLTwoClientsAtOnce(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	if err := createUser(ss.st, "dave", "dave-pw"); err != nil {
		t.Fatal(err)
	}
	erin := dial(t, ss.gw.ircAddr, "erin", "erin-pw", allCaps...) // makes erin's demo account
	erin.joinedControl("&erin")
	erin.quit()
	for _, nick := range []string{"dave", "erin"} {
		t.Run(nick, func(t *testing.T) {
			var cs []*ircClient
			for _, client := range []string{"desk", "phone"} {
				cs = append(cs, saslClient(t, ss.gw.ircAddr, nick, nick+"/"+client, nick+"-pw", "903"))
			}
			for _, c := range cs {
				c.send("CAP END")
				c.expect("001", nil)
			}
		})
	}
}

// TestMSIMPasswordGuessesAreRefused: the wrong MSIM passwords a
// registered user types (account add, account set password) count, as
// identify's do, against the user: after too many, a login is refused
// before it reaches the MSIM server, whose own limits see only the
// gateway's address (and spare loopback, the embedded network's bridge).
func TestMSIMPasswordGuessesAreRefused(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen,
		guard.FailureConfig{Free: 1, Delay: time.Millisecond, MaxDelay: time.Millisecond, RefuseAfter: 3, RefuseFor: time.Hour})
	if _, err := ss.stk.msrv.AddAccount("victim@example.com", "Victim1", "victim"); err != nil {
		t.Fatal(err)
	}
	if err := createUser(ss.st, "mallory", "mallorys-pw"); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ss.gw.ircAddr, "mallory", "mallorys-pw", allCaps...)
	c.expectFrom("PRIVMSG", "root", "You have no MSIM accounts")
	c.send("PRIVMSG root :account add msim victim@example.com guess0")
	c.expectFrom("PRIVMSG", "root", "Login failed")
	for _, pw := range []string{"guess1", "guess2"} {
		c.private("account 0 set password "+pw, "password = ")
		c.send("PRIVMSG root :account 0 on")
		c.expectFrom("PRIVMSG", "root", "Login failed")
	}
	c.private("account 0 set password Victim1", "password = ")
	c.private("account 0 on", "too many wrong MSIM passwords")
}

// saslClient connects and logs in with SASL PLAIN as account, without
// ending registration; it waits for the SASL answer, reply (903 or 904).
func saslClient(t *testing.T, addr, nick, account, password, reply string) *ircClient {
	t.Helper()
	c := &ircClient{t: t, nick: nick}
	nc := dialRaw(t, addr)
	c.conn, c.r, c.w = nc, irc.NewReader(nc), irc.NewWriter(nc)
	c.send("CAP LS 302")
	c.send("CAP REQ :sasl")
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :x")
	c.expect("CAP", func(m *irc.Message) bool { return m.Param(1) == "ACK" })
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE", nil)
	c.send("AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("\x00"+account+"\x00"+password)))
	c.expect(reply, nil)
	return c
}

// TestDemoSASLLoginIsTheConnections: a client that logs in with SASL as a
// nick without an account yet gets the account with its own password, even
// when another client's SASL login at the nick, with another password,
// comes between its login and its registration: that other password opens
// nothing, then or later.
func TestDemoSASLLoginIsTheConnections(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures())
	victim := saslClient(t, ss.gw.ircAddr, "fay", "fay", "fays-pw", "903")
	attacker := saslClient(t, ss.gw.ircAddr, "fay", "fay", "mallorys-pw", "903")
	victim.send("CAP END")
	victim.expect("001", nil)
	victim.joinedControl("&fay")
	attacker.send("CAP END")
	attacker.expect("464", nil)

	// The account is fay's: her password opens it, the other does not.
	again := saslClient(t, ss.gw.ircAddr, "fay", "fay", "fays-pw", "903")
	again.send("CAP END")
	again.expect("001", nil)
	saslClient(t, ss.gw.ircAddr, "fay", "fay", "mallorys-pw", "904")
}

// TestUnidentifiedCannotRegisterARegisteredNick: a connection that took a
// registered nick without its password (unidentified), then changed to
// another registered nick, cannot register that nick with a password of
// its own, with registration open, behind the embedded network's
// directory or an upstream configuration's: the nick keeps its owner's
// password, and the new one opens nothing.
func TestUnidentifiedCannotRegisterARegisteredNick(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T, st store.Store) string
	}{
		{"embedded", func(t *testing.T, st store.Store) string {
			return startSelfServiceOn(t, st, channel.RegistrationOpen, fastFailures()).gw.ircAddr
		}},
		{"upstream", func(t *testing.T, st store.Store) string {
			stk := startStack(t)
			static := &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "gus", Password: "gus-irc"}}}
			return startGateway(t, stk.msimAddr, channel.WithStore(st, static, channel.RegistrationOpen), st).ircAddr
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			for _, u := range []string{"alice", "bob"} {
				if err := createUser(st, u, u+"-pw"); err != nil {
					t.Fatal(err)
				}
			}
			addr := tc.start(t, st)
			c := dial(t, addr, "alice", "", allCaps...)
			c.expectFrom("PRIVMSG", "root", "identify")
			c.send("NICK bob")
			c.expect("NICK", nil)
			c.nick = "bob"
			if m := c.private("register mallory-pw", "bob"); !strings.Contains(m.Trailing(), "registered already") {
				t.Errorf("register of bob by an unidentified connection: got %q, want it refused as registered already", m.Trailing())
			}
			c.quit()
			u, err := st.User(context.Background(), "bob")
			if err != nil {
				t.Fatal(err)
			}
			if store.CheckPassword(u.PasswordHash, "bob-pw") != nil || store.CheckPassword(u.PasswordHash, "mallory-pw") == nil {
				t.Errorf("bob's password after the unidentified connection's register: got another, want bob-pw alone")
			}
			dialRefused(t, addr, "bob", "mallory-pw")
		})
	}
}
