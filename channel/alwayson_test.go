package channel_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// countDials makes cfg count the MSIM logins the bridge starts.
func countDials(n *atomic.Int32) func(*channel.Config) {
	return func(cfg *channel.Config) {
		cfg.DialMSIM = func(ctx context.Context, mc msim.ClientConfig) (channel.MSIMClient, error) {
			n.Add(1)
			cl, err := msim.Dial(ctx, mc)
			if cl == nil {
				return nil, err
			}
			return cl, err
		}
	}
}

// waitOnline waits until the MSIM server has uid online (or not).
func waitOnline(t *testing.T, srv *server.Server, uid msim.UID, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Online(uid) != want {
		if time.Now().After(deadline) {
			t.Fatalf("uid %d online: got %v, want %v", uid, !want, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// imsFrom collects the PRIVMSGs from nick until n have come.
func imsFrom(c *ircClient, nick string, n int) []string {
	var got []string
	for len(got) < n {
		m := c.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == nick })
		got = append(got, m.Trailing())
	}
	return got
}

// TestAlwaysOn: with AlwaysOn, Start logs a configured user's account in
// before any IRC client connects; IMs that come meanwhile wait for the
// client; a second connection joins the first (both see an IM) without a
// new MSIM login, and goes on when the first leaves; the account stays
// online after the last client quits, and the next client finds the
// buddies and the IMs sent meanwhile, each once, in order.
func TestAlwaysOn(t *testing.T) {
	var dials atomic.Int32
	st := startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		if _, err := msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
			t.Fatal(err)
		}
		cfg.Directory = &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "al", Password: "al-irc",
			Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}}
		cfg.AlwaysOn = true
		countDials(&dials)(cfg)
	})
	bob := msimUser(t, st, "bob")
	alUID := lookupUID(t, bob, "al")

	n, err := st.bridge.Start(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Start: got %d, %v; want 1 session started", n, err)
	}
	waitOnline(t, st.msrv, alUID, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if err := bob.SendIM(ctx, alUID, fmt.Sprintf("before the client %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	tomBarrier(t, bob)

	c1 := dial(t, st.ircAddr, "al", "al-irc", allCaps...)
	c1.joinedControl("&al")
	c1.expectFrom("PRIVMSG", "root", "Logged in to MSIM") // said at boot, kept for the client
	if got, want := strings.Join(imsFrom(c1, "bob", 3), "|"), "before the client 0|before the client 1|before the client 2"; got != want {
		t.Errorf("IMs sent before the client came: got %q, want %q", got, want)
	}
	c1.add("&al", "bob")

	c2 := dial(t, st.ircAddr, "al", "al-irc", allCaps...)
	c2.joinedControl("&al")
	if names := c2.names("&al"); !contains(names, "+bob") {
		t.Errorf("NAMES &al in the second connection: got %v, want +bob", names)
	}
	if err := bob.SendIM(ctx, alUID, "to both"); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*ircClient{c1, c2} {
		if got := imsFrom(c, "bob", 1); got[0] != "to both" {
			t.Errorf("IM in connection %d: got %q", i+1, got[0])
		}
	}
	c1.send("QUIT")
	c1.expect("ERROR", nil)
	if err := bob.SendIM(ctx, alUID, "to the second"); err != nil {
		t.Fatal(err)
	}
	if got := imsFrom(c2, "bob", 1); got[0] != "to the second" {
		t.Errorf("IM to the second connection after the first left: got %q", got[0])
	}
	c2.send("QUIT")
	c2.expect("ERROR", nil)
	waitLeft(t, st.bridge, "al")
	for i := range 2 {
		if err := bob.SendIM(ctx, alUID, fmt.Sprintf("while away %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	tomBarrier(t, bob)
	if !st.msrv.Online(alUID) {
		t.Error("al went offline on MSIM when the client quit; want the account kept online")
	}
	c3 := dial(t, st.ircAddr, "al", "al-irc", allCaps...)
	c3.joinedControl("&al")
	c3.expectFrom("PRIVMSG", "root", "stayed online")
	if got, want := strings.Join(imsFrom(c3, "bob", 2), "|"), "while away 0|while away 1"; got != want {
		t.Errorf("IMs sent while away: got %q, want %q", got, want)
	}
	for _, m := range c3.sync() {
		if m.Command == "PRIVMSG" && m.Name == "bob" {
			t.Errorf("an IM came twice: %v", m)
		}
	}
	if d := dials.Load(); d != 1 {
		t.Errorf("MSIM logins: got %d, want 1 (attaching never logs in again)", d)
	}
}

// TestAlwaysOnOff: without AlwaysOn, the session ends with its client and
// the account logs out, as in BitlBee.
func TestAlwaysOnOff(t *testing.T) {
	st := startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		if _, err := msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
			t.Fatal(err)
		}
		cfg.Directory = &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "al", Password: "al-irc",
			Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}}
	})
	if n, err := st.bridge.Start(context.Background()); n != 0 || err != nil {
		t.Errorf("Start without AlwaysOn: got %d, %v; want nothing started", n, err)
	}
	bob := msimUser(t, st, "bob")
	alUID := lookupUID(t, bob, "al")
	c := dial(t, st.ircAddr, "al", "al-irc", allCaps...)
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	waitOnline(t, st.msrv, alUID, true)
	c.send("QUIT")
	c.expect("ERROR", nil)
	waitOnline(t, st.msrv, alUID, false)
}

// TestIdentifyJoinsRunningSession: a registered user's account is online
// from the start (always on); a client that connects with the nick and no
// password, then identifies, is attached to that session: it gets the
// channel and the IMs held meanwhile, and no second MSIM login happens.
func TestIdentifyJoinsRunningSession(t *testing.T) {
	var dials atomic.Int32
	stk := startStack(t)
	st := openStore(t)
	if _, err := stk.msrv.AddAccount("kai@example.com", "kaipw", "kai"); err != nil {
		t.Fatal(err)
	}
	if err := createUser(st, "kai", "kai-irc"); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAccount(context.Background(), "kai", store.Account{Email: "kai@example.com", Password: "kaipw", Channel: "&kai", Autoconnect: true}); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, stk.msimAddr, channel.WithStore(st, demoDirectory(stk), ""), st, func(c *channel.Config) {
		c.AlwaysOn = true
		countDials(&dials)(c)
	})
	if n, err := g.bridge.Start(context.Background()); n != 1 || err != nil {
		t.Fatalf("Start: got %d, %v; want 1", n, err)
	}
	bob := msimUser(t, stk, "bob")
	kaiUID := lookupUID(t, bob, "kai")
	waitOnline(t, stk.msrv, kaiUID, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bob.SendIM(ctx, kaiUID, "held for kai"); err != nil {
		t.Fatal(err)
	}
	tomBarrier(t, bob)

	c := dial(t, g.ircAddr, "kai", "", allCaps...)
	c.expectFrom("PRIVMSG", "root", "identify")
	// What the client sends right behind identify, while the connection
	// moves to kai's session, is not lost: it reaches that session.
	c.send("PRIVMSG root :identify kai-irc\r\nPRIVMSG root :account list")
	c.expectFrom("PRIVMSG", "root", "Password accepted")
	c.joinedControl("&kai")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	if got := imsFrom(c, "bob", 1); got[0] != "held for kai" {
		t.Errorf("held IM: got %q", got[0])
	}
	c.expectFrom("PRIVMSG", "root", "0 (msim): kai@example.com in &kai")
	c.command("&kai", "status", "kai@example.com is online")
	if d := dials.Load(); d != 1 {
		t.Errorf("MSIM logins: got %d, want 1", d)
	}
}

// waitPresence reads cl's events until uid's presence is st with text.
func waitPresence(t *testing.T, cl *msim.Client, uid msim.UID, st msim.Status, text string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-cl.Events():
			if !ok {
				t.Fatal("the MSIM client ended")
			}
			if p, isP := ev.(msim.PresenceEvent); isP && p.UID == uid && p.Status == st && p.Text == text {
				return
			}
		case <-timeout:
			t.Fatalf("no presence %v %q of uid %d", st, text, uid)
		}
	}
}

// alWatchedByBob starts a stack whose user al (account al@example.com) is
// always on, with MSIM user bob, who lists al so as to see her presence.
func alWatchedByBob(t *testing.T, opts ...func(*channel.Config)) (*stack, *msim.Client, msim.UID) {
	st := startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		if _, err := msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
			t.Fatal(err)
		}
		cfg.Directory = &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "al", Password: "al-irc",
			Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}}
		cfg.AlwaysOn = true
		for _, o := range opts {
			o(cfg)
		}
	})
	bob := msimUser(t, st, "bob")
	alUID := lookupUID(t, bob, "al")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bob.AddBuddy(ctx, alUID, "IM Friends"); err != nil {
		t.Fatal(err)
	}
	return st, bob, alUID
}

// TestSeveralClients: a user's clients share one session, up to
// MaxClients (the next is refused with the reason); a client may name
// itself (al/phone); /away is the user's: away on MSIM only when every
// attached client is away, back when one comes back, and with no client
// attached away with the auto_away text.
func TestSeveralClients(t *testing.T) {
	st, bob, alUID := alWatchedByBob(t, func(cfg *channel.Config) { cfg.MaxClients = 2 })

	desk := dial(t, st.ircAddr, "al", "al-irc", allCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	phone := dial(t, st.ircAddr, "al", "al/phone:al-irc", allCaps...) // PASS name/client:password
	phone.joinedControl("&al")
	phone.expectFrom("PRIVMSG", "root", "Logged in to MSIM as al")

	nc := mustDial(t, st.ircAddr)
	fmt.Fprintf(nc, "PASS al-irc\r\nNICK al\r\nUSER al 0 * :al\r\n")
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := irc.NewReader(nc)
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("a third client over MaxClients 2: %v before an ERROR", err)
		}
		if m.Command == "001" {
			t.Fatal("a third client over MaxClients 2 was let in")
		}
		if m.Command == "ERROR" || m.Command == "FAIL" || (len(m.Command) == 3 && m.Command[0] == '4') {
			if !strings.Contains(m.Trailing(), "too many IRC clients") {
				t.Errorf("a third client over MaxClients 2: got %v, want a refusal saying too many clients", m)
			}
			break
		}
	}

	desk.send("AWAY :at lunch")
	desk.expect("306", nil)
	desk.command("&al", "status", "al@example.com is online") // the phone is not away
	phone.send("AWAY :on the train")
	phone.expect("306", nil)
	waitPresence(t, bob, alUID, msim.StatusAway, "on the train")
	phone.command("&al", "status", "is away: on the train")
	desk.send("AWAY")
	desk.expect("305", nil)
	waitPresence(t, bob, alUID, msim.StatusOnline, "")

	desk.command("&al", "set auto_away not at my desk", "auto_away = not at my desk")
	desk.quit()
	phone.quit()
	waitPresence(t, bob, alUID, msim.StatusAway, "not at my desk")
	back := dial(t, st.ircAddr, "al", "al-irc", allCaps...)
	back.joinedControl("&al")
	waitPresence(t, bob, alUID, msim.StatusOnline, "")
}

// TestOwnMessagesInOtherClients: what the user types to a buddy in one
// client shows in the other as the user's own message, with the msgid and
// time the first client's echo carries; the buddy gets it once.
func TestOwnMessagesInOtherClients(t *testing.T) {
	st := startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		if _, err := msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
			t.Fatal(err)
		}
		cfg.Directory = &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "al", Password: "al-irc",
			Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}}
	})
	bob := msimUser(t, st, "bob")
	desk := dial(t, st.ircAddr, "al", "al-irc", append(allCaps, "echo-message")...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	phone := dial(t, st.ircAddr, "al", "al-irc", allCaps...)
	phone.joinedControl("&al")

	desk.send("PRIVMSG bob :hello from the desk")
	echo := desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "al" && m.Param(0) == "bob" })
	seen := phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Param(0) == "bob" })
	if seen.Name != "al" || seen.Trailing() != "hello from the desk" {
		t.Errorf("the phone saw %v, want al's own PRIVMSG to bob", seen)
	}
	if seen.Tags["msgid"] == "" || seen.Tags["msgid"] != echo.Tags["msgid"] || seen.Tags["time"] != echo.Tags["time"] {
		t.Errorf("msgid/time: phone %q/%q, desk's echo %q/%q; want the same, set", seen.Tags["msgid"], seen.Tags["time"], echo.Tags["msgid"], echo.Tags["time"])
	}
	phone.send("PRIVMSG &al :bob: and from the phone")
	if m := desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Param(0) == "bob" }); m.Name != "al" || m.Trailing() != "and from the phone" {
		t.Errorf("the desk saw %v, want al's own PRIVMSG to bob", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for len(got) < 2 {
		select {
		case ev := <-bob.Events():
			if im, ok := ev.(msim.IMEvent); ok {
				got = append(got, im.Text)
			}
		case <-ctx.Done():
			t.Fatalf("bob got %q, want both IMs", got)
		}
	}
	if strings.Join(got, "|") != "hello from the desk|and from the phone" {
		t.Errorf("bob got %q", got)
	}
}

// TestClientNameInPass: on the embedded network (the demo directory), a
// nick's own password given as PASS nick/client:password attaches the
// client to the nick's user like PASS password does.
func TestClientNameInPass(t *testing.T) {
	st := startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		cfg.Directory = &channel.DemoDirectory{CreateAccount: msrv.AddAccount, CheckPassword: msrv.CheckPassword,
			Exists: func(err error) bool { return errors.Is(err, server.ErrAccountExists) }}
		cfg.AlwaysOn = true
	})
	first := dial(t, st.ircAddr, "ivy", "ivy-secret", allCaps...)
	first.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	phone := dial(t, st.ircAddr, "ivy", "ivy/phone:ivy-secret", allCaps...)
	phone.joinedControl("&ivy")
	phone.expectFrom("PRIVMSG", "root", "Logged in to MSIM as ivy")
	dialRefused(t, st.ircAddr, "ivy", "ivy/phone:not-the-password")
}

// TestAttachChecksPassword: with a directory that leaves the password to
// the MSIM login (no CheckPassword), a connection with a wrong password is
// still refused, not attached to the session its right password started.
func TestAttachChecksPassword(t *testing.T) {
	st := startStack(t, func(cfg *channel.Config, _ *server.Server) { cfg.AlwaysOn = true })
	first := dial(t, st.ircAddr, "ivy", "ivy-secret", allCaps...)
	first.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	dialRefused(t, st.ircAddr, "ivy", "not-the-password")
	first.command("&ivy", "status", "is online")
}

// TestAwayTextSetLast: with every client away, the user's MSIM away text is
// the one set last, whichever client attached first.
func TestAwayTextSetLast(t *testing.T) {
	st, bob, alUID := alWatchedByBob(t)
	desk := dial(t, st.ircAddr, "al", "al-irc", allCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	phone := dial(t, st.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")
	phone.send("AWAY :on the train")
	phone.expect("306", nil)
	desk.send("AWAY :at lunch") // set last
	desk.expect("306", nil)
	waitPresence(t, bob, alUID, msim.StatusAway, "at lunch")
}

// TestAutoAwayAtBoot: a session started at boot (always on) has no client
// attached, so its accounts log in away with the auto_away text, as they
// are once the last client leaves.
func TestAutoAwayAtBoot(t *testing.T) {
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
		t.Fatal(err)
	}
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bob.AddBuddy(ctx, alUID, "IM Friends"); err != nil {
		t.Fatal(err)
	}
	open, _ := reopenable(t)
	users := []channel.StaticUser{{Name: "al", Password: "al-irc",
		Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}
	start := func(st store.Store) *gateway {
		return startGateway(t, stk.msimAddr, channel.WithStore(st, &channel.StaticDirectory{Users: users}, ""), st,
			func(c *channel.Config) { c.AlwaysOn = true })
	}
	st1 := open()
	g1 := start(st1)
	al := dial(t, g1.ircAddr, "al", "al-irc", allCaps...)
	al.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	al.command("&al", "set auto_away not at my desk", "auto_away = not at my desk")
	al.quit()
	waitPresence(t, bob, alUID, msim.StatusAway, "not at my desk")
	g1.stop()
	waitOnline(t, stk.msrv, alUID, false)
	if err := st1.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := open()
	t.Cleanup(func() { st2.Close() })
	g2 := start(st2)
	if n, err := g2.bridge.Start(ctx); err != nil || n != 1 {
		t.Fatalf("Start: %d, %v", n, err)
	}
	waitOnline(t, stk.msrv, alUID, true)
	// No client is attached: al should be away with the auto_away text.
	waitPresence(t, bob, alUID, msim.StatusAway, "not at my desk")
}

// firstHoldHeld is a store whose first HoldIM waits until released, after
// saying it began.
type firstHoldHeld struct {
	store.Store
	entered, release chan struct{}
	first, free      sync.Once
}

func (s *firstHoldHeld) HoldIM(ctx context.Context, user, email string, im store.HeldIM) (store.HeldIM, error) {
	s.first.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.Store.HoldIM(ctx, user, email, im)
}

func (s *firstHoldHeld) letGo() { s.free.Do(func() { close(s.release) }) }

// TestHeldIMWrittenBeforeARestart: al's session runs with no client (always
// on), and an IM from bob is held for al; the gateway stops while the
// store is still writing it. The stop waits for the write: after the
// restart, al is shown the IM, once.
func TestHeldIMWrittenBeforeARestart(t *testing.T) {
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
		t.Fatal(err)
	}
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")
	open, _ := reopenable(t)
	users := []channel.StaticUser{{Name: "al", Password: "al-irc",
		Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}
	start := func(st store.Store) *gateway {
		return startGateway(t, stk.msimAddr, channel.WithStore(st, &channel.StaticDirectory{Users: users}, ""), st,
			func(c *channel.Config) { c.AlwaysOn = true })
	}
	st1 := open()
	held := &firstHoldHeld{Store: st1, entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(held.letGo) // before the gateway stops
	g1 := start(held)
	al := dial(t, g1.ircAddr, "al", "al-irc", allCaps...)
	al.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	al.add("&al", "bob")
	al.quit()
	waitLeft(t, g1.bridge, "al")
	sendIMs(t, bob, alUID, "held across a restart")
	select {
	case <-held.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the IM was not held")
	}
	stopped := make(chan struct{})
	go func() { g1.stop(); close(stopped) }()
	waitOnline(t, stk.msrv, alUID, false) // the session is ending; the IM is still being written
	held.letGo()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not stop")
	}
	if err := st1.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := open()
	t.Cleanup(func() { st2.Close() })
	g2 := start(st2)
	al = dial(t, g2.ircAddr, "al", "al-irc", allCaps...)
	al.expectFrom("PRIVMSG", "bob", "held across a restart")
	for _, m := range al.sync() {
		if m.Command == "PRIVMSG" && strings.Contains(m.Trailing(), "held across a restart") {
			t.Errorf("the held IM was shown again: %v", m)
		}
	}
}
