package channel_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// gateway is a bridge and its ircd, which a test can stop as a restart
// would.
type gateway struct {
	ircAddr string
	bridge  *channel.Bridge
	stop    func()
}

func startGateway(t *testing.T, msimAddr string, dir channel.Directory, st store.Store, opts ...func(*channel.Config)) *gateway {
	t.Helper()
	return startGatewayIRC(t, msimAddr, dir, st, testIRCConfig(), opts...)
}

// startGatewayIRC is startGateway with ircd's config.
func startGatewayIRC(t *testing.T, msimAddr string, dir channel.Directory, st store.Store, icfg ircd.Config, opts ...func(*channel.Config)) *gateway {
	t.Helper()
	log := testLog(t)
	cfg := channel.Config{
		MSIMAddr: msimAddr, Directory: dir, Store: st,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second,
		Log: log.WithField("part", "bridge"),
	}
	for _, o := range opts {
		o(&cfg)
	}
	b, err := channel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	isrv := ircd.NewServer(icfg, b, log.WithField("part", "ircd"))
	ln := listenLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = isrv.Serve(ctx, ln) }()
	var once sync.Once
	g := &gateway{ircAddr: ln.Addr().String(), bridge: b, stop: func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = isrv.Shutdown(sctx)
			_ = b.Shutdown(sctx)
			cancel()
			wg.Wait()
		})
	}}
	t.Cleanup(g.stop)
	return g
}

// reopenable returns a function that opens one SQLite store, again after
// each Close (a gateway's restart), and the store's key.
func reopenable(t *testing.T) (open func() store.Store, key []byte) {
	path := filepath.Join(t.TempDir(), "msimircd.db")
	key = make([]byte, 32)
	return func() store.Store {
		st, err := store.Open(context.Background(), "sqlite", path, key)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}, key
}

// TestStateSurvivesARestart: with a store, what a user built up — a
// buddy's new nick, a setting, the IMs held for them — is there after the
// gateway restarts, and the held IM arrives once, with its time (and its
// styles).
func TestStateSurvivesARestart(t *testing.T) {
	open, key := reopenable(t)
	stk := startStack(t)
	dir := &channel.DemoDirectory{CreateAccount: stk.msrv.AddAccount, CheckPassword: stk.msrv.CheckPassword,
		Exists: func(err error) bool { return errors.Is(err, server.ErrAccountExists) }, Key: key}

	st1 := open()
	g1 := startGateway(t, stk.msimAddr, dir, st1)
	msimUser(t, stk, "bob")
	alice := login(t, &stack{ircAddr: g1.ircAddr}, "alice", allCaps...)
	alice.add("&alice", "bob")
	alice.command("&alice", "rename bob bobby", "bob is now known as bobby")
	alice.command("&alice", "set typing false", "typing")
	alice.send("QUIT")
	alice.expect("ERROR", nil)
	at := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	g1Bridge := func() { // hold an IM as the bridge does for a detached user
		mem := channel.MemoryOf(t, st1, "demo/alice@msimircd.local")
		mem.Hold("alice@msimircd.local", msim.IMEvent{From: 6221, Text: "held across a restart", Time: at})
		mem.Hold("alice@msimircd.local", msim.IMEvent{From: 6221, Text: "bold too", Time: at,
			Markup: "<p><f f='Times' h='16'><f s='1'>bold</f> too</f></p>"})
	}
	g1Bridge()
	g1.stop()
	if err := st1.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := open()
	t.Cleanup(func() { st2.Close() })
	g2 := startGateway(t, stk.msimAddr, dir, st2)
	alice = dial(t, g2.ircAddr, "alice", "pw-alice", allCaps...)
	alice.joinedControl("&alice")
	var held, styled *irc.Message
	alice.expectAll(saysRoot("Logged in to MSIM"), func(m *irc.Message) bool {
		if m.Command == "PRIVMSG" && m.Name == "tom" && strings.Contains(m.Trailing(), "held across") {
			held = m
			return true
		}
		return false
	}, func(m *irc.Message) bool {
		if m.Command == "PRIVMSG" && m.Name == "tom" && strings.Contains(m.Trailing(), "too") {
			styled = m
			return true
		}
		return false
	})
	// Its styles kept in the store with it.
	if got, want := styled.Trailing(), "\x02bold\x02 too"; got != want {
		t.Errorf("held styled IM: got %q, want %q", got, want)
	}
	if held.Tags["time"] != "2026-11-23T08:00:00.000Z" {
		t.Errorf("held IM's time: got %q", held.Tags["time"])
	}
	if n := alice.names("&alice"); !contains(n, "+bobby") {
		t.Errorf("NAMES after the restart: got %v, want +bobby", n)
	}
	alice.command("&alice", "set typing", "typing = false")
	// Shown once: it is no longer held.
	alice.send("QUIT")
	alice.expect("ERROR", nil)
	alice = dial(t, g2.ircAddr, "alice", "pw-alice", allCaps...)
	alice.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	for _, m := range alice.sync() {
		if strings.Contains(m.Trailing(), "held across") {
			t.Errorf("the held IM came again: %v", m)
		}
	}
}

// TestSaveUsers: the configuration's users are put in the store at start,
// and the configuration wins for what it names while what the store kept
// for them stays.
func TestSaveUsers(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite", filepath.Join(t.TempDir(), "s.db"), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	al := channel.User{Name: "al", Accounts: []channel.Account{{Email: "al@example.com", Password: "AlPw1", AutoConnect: true}}}
	if err := channel.SaveUsers(ctx, st, []channel.User{al}, channel.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetNick(ctx, "al", "al@example.com", 7, "bobby"); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateAccount(ctx, "al", store.Account{Email: "al@example.com", Password: "AlPw1", Channel: "&remembered", Autoconnect: true}); err != nil {
		t.Fatal(err)
	}
	// The config changes the password and autoconnect, and names no channel.
	al.Accounts[0].Password, al.Accounts[0].AutoConnect = "AlPw2", false
	if err := channel.SaveUsers(ctx, st, []channel.User{al}, channel.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	state, err := st.LoadUser(ctx, "al")
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Accounts) != 1 {
		t.Fatalf("accounts: got %d, want 1", len(state.Accounts))
	}
	a := state.Accounts[0]
	if a.Password != "AlPw2" || a.Autoconnect || a.Channel != "&remembered" || a.Nicks[7] != "bobby" {
		t.Errorf("got password %q, autoconnect %v, channel %q, nick %q; want AlPw2, false, &remembered, bobby", a.Password, a.Autoconnect, a.Channel, a.Nicks[7])
	}
}
