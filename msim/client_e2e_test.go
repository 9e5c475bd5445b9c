package msim_test

// End-to-end tests of msim.Client against msim/server over loopback.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/testlog"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/sirupsen/logrus"
	"go.uber.org/goleak"
)

const e2eWait = 5 * time.Second

func e2eLog(tb testing.TB) *logrus.Entry {
	if _, ok := tb.(*testing.B); ok {
		return testlog.New(tb, logrus.WarnLevel)
	}
	return testlog.New(tb, logrus.InfoLevel)
}

// startServer runs an MSIM server on a loopback port until the test ends.
func startServer(tb testing.TB, demo bool) (*server.Server, string) {
	tb.Helper()
	srv, err := server.New(server.Config{Demo: demo}, server.NewMemStore(), e2eLog(tb).WithField("side", "server"))
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), e2eWait)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		<-served
	})
	return srv, ln.Addr().String()
}

type account struct {
	email, password, name string
	uid                   msim.UID
}

func addAccount(tb testing.TB, srv *server.Server, name string) account {
	tb.Helper()
	a := account{email: name + "@example.com", password: "pw-" + name, name: name}
	if name == "" {
		a.email = "noname@example.com"
	}
	uid, err := srv.AddAccount(a.email, a.password, a.name)
	if err != nil {
		tb.Fatal(err)
	}
	a.uid = uid
	return a
}

func dialAs(tb testing.TB, addr string, a account, mod func(*msim.ClientConfig)) (*msim.Client, error) {
	tb.Helper()
	cfg := msim.ClientConfig{Addr: addr, Email: a.email, Password: a.password, Log: e2eLog(tb).WithField("side", "client"),
		DialTimeout: e2eWait, RequestTimeout: e2eWait}
	if mod != nil {
		mod(&cfg)
	}
	c, err := msim.Dial(context.Background(), cfg)
	if c != nil {
		tb.Cleanup(func() { c.Close() })
	}
	return c, err
}

func mustDial(tb testing.TB, addr string, a account) *msim.Client {
	tb.Helper()
	c, err := dialAs(tb, addr, a, nil)
	if err != nil {
		tb.Fatalf("Dial %s: %v", a.email, err)
	}
	return c
}

// waitFor skips events until one of type T satisfies ok.
func waitFor[T msim.Event](tb testing.TB, c *msim.Client, ok func(T) bool) T {
	tb.Helper()
	timeout := time.After(e2eWait)
	for {
		select {
		case ev, open := <-c.Events():
			if !open {
				var zero T
				tb.Fatalf("events closed while waiting for %T", zero)
			}
			if e, is := ev.(T); is && (ok == nil || ok(e)) {
				return e
			}
			if d, is := ev.(msim.DisconnectedEvent); is {
				var zero T
				tb.Fatalf("disconnected (%v: %v) while waiting for %T", d.Reason, d.Err, zero)
			}
		case <-timeout:
			var zero T
			tb.Fatalf("no %T within %v", zero, e2eWait)
		}
	}
}

// disconnected waits for the DisconnectedEvent, whatever comes before it.
func disconnected(tb testing.TB, c *msim.Client) msim.DisconnectedEvent {
	tb.Helper()
	timeout := time.After(e2eWait)
	for {
		select {
		case ev := <-c.Events():
			if d, ok := ev.(msim.DisconnectedEvent); ok {
				return d
			}
		case <-timeout:
			tb.Fatal("no DisconnectedEvent")
		}
	}
}

func TestE2ELogin(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, true)
	alice := addAccount(t, srv, "alice")
	c := mustDial(t, addr, alice)
	if self := c.Self(); self.UID != alice.uid || self.UserName != "alice" {
		t.Errorf("Self got %+v, want uid %v user name alice", self, alice.uid)
	}
	if !srv.Online(alice.uid) {
		t.Error("server does not see alice online")
	}
	var tom *msim.Contact
	for _, ct := range c.Contacts() {
		if ct.UID == 6221 {
			tom = &ct
		}
	}
	if tom == nil || tom.UserName != "tom" {
		t.Fatalf("Contacts got %+v, want Tom (6221, tom)", c.Contacts())
	}
	// Tom answers.
	if err := c.SendIM(context.Background(), 6221, "hello Tom"); err != nil {
		t.Fatal(err)
	}
	im := waitFor(t, c, func(e msim.IMEvent) bool { return e.From == 6221 })
	if im.Text == "" || im.Offline {
		t.Errorf("Tom's answer got %+v", im)
	}
}

func TestE2ELoginFailures(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, false)
	alice := addAccount(t, srv, "alice")
	noname := addAccount(t, srv, "")
	tests := []struct {
		name string
		acct account
		mod  func(*msim.ClientConfig)
		want error
	}{
		{"wrong password", account{email: alice.email, password: "nope"}, nil, msim.ErrBadPassword},
		// The server answers an unknown e-mail as a wrong password, so
		// that logins cannot be used to find accounts.
		{"unknown account", account{email: "ghost@example.com", password: "x"}, nil, msim.ErrBadPassword},
		{"no user name", noname, nil, msim.ErrNoUserName},
		{"user name declined", noname, func(cfg *msim.ClientConfig) {
			cfg.ChooseUserName = func(context.Context, string) (string, error) { return "", errors.New("later") }
		}, msim.ErrNoUserName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := dialAs(t, addr, tc.acct, tc.mod)
			var le *msim.LoginError
			if c != nil || !errors.Is(err, tc.want) || !errors.As(err, &le) {
				t.Fatalf("Dial got (%v, %v), want a *LoginError wrapping %v", c, err, tc.want)
			}
		})
	}
}

func TestE2EChooseUserName(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, false)
	addAccount(t, srv, "taken")
	noname := addAccount(t, srv, "")
	var asked []string
	c, err := dialAs(t, addr, noname, func(cfg *msim.ClientConfig) {
		cfg.ChooseUserName = func(_ context.Context, suggested string) (string, error) {
			asked = append(asked, suggested)
			if len(asked) == 1 {
				return "taken", nil
			}
			return "fresh_name", nil
		}
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if got := c.Self().UserName; got != "fresh_name" || len(asked) != 2 {
		t.Fatalf("user name got %q after %d questions, want fresh_name after 2", got, len(asked))
	}
	c.Close()
	// The name stuck: the next login needs no callback.
	noname.name = "fresh_name"
	if c2 := mustDial(t, addr, noname); c2.Self().UserName != "fresh_name" {
		t.Errorf("second login user name got %q", c2.Self().UserName)
	}
}

// pair logs in alice and bob, each with the other on their list.
func pair(t *testing.T) (srv *server.Server, addr string, alice, bob account, ca, cb *msim.Client) {
	t.Helper()
	srv, addr = startServer(t, false)
	alice, bob = addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	ca, cb = mustDial(t, addr, alice), mustDial(t, addr, bob)
	ctx := context.Background()
	if err := ca.AddBuddy(ctx, bob.uid, ""); err != nil {
		t.Fatal(err)
	}
	if err := cb.AddBuddy(ctx, alice.uid, "Friends"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ca, func(e msim.PresenceEvent) bool { return e.UID == bob.uid && e.Status == msim.StatusOnline })
	return
}

func TestE2EConversation(t *testing.T) {
	t.Parallel()
	_, _, alice, bob, ca, cb := pair(t)
	ctx := context.Background()

	texts := []string{
		"hello",
		"<b>not bold</b> & <i n=\"happy\"/> &amp;",
		`\final\ \bm\1\ C:\dir/x /1 /2 a//b \\`,
		"smileys :) :-D ;-) :P B) :X :x",
		"line one\nline two\n\nline four",
		"unicode: héllo wörld — ☺ 日本",
	}
	for _, text := range texts {
		if err := cb.SendIM(ctx, alice.uid, text); err != nil {
			t.Fatal(err)
		}
		im := waitFor(t, ca, func(msim.IMEvent) bool { return true })
		if im.From != bob.uid || im.Text != text || im.Offline || im.Markup == text {
			t.Errorf("alice got %+v, want %q from bob as markup", im, text)
		}
	}
	if err := ca.SendIM(ctx, bob.uid, texts[2]); err != nil {
		t.Fatal(err)
	}
	if im := waitFor(t, cb, func(msim.IMEvent) bool { return true }); im.From != alice.uid || im.Text != texts[2] {
		t.Errorf("bob got %+v, want %q", im, texts[2])
	}

	for _, st := range []struct {
		set        msim.Status
		text, seen string
		want       msim.Status
	}{
		{msim.StatusAway, "out to lunch / back 1pm", "out to lunch / back 1pm", msim.StatusAway},
		{msim.StatusIdle, "zzz", "zzz", msim.StatusIdle},
		{msim.StatusInvisible, "hidden", "", msim.StatusOffline},
		{msim.StatusOnline, "back \\o/", "back \\o/", msim.StatusOnline},
	} {
		if err := cb.SetStatus(ctx, st.set, st.text); err != nil {
			t.Fatal(err)
		}
		p := waitFor(t, ca, func(e msim.PresenceEvent) bool { return e.UID == bob.uid })
		if p.Status != st.want || (st.want != msim.StatusOffline && p.Text != st.seen) {
			t.Errorf("after SetStatus(%v, %q) alice saw %+v", st.set, st.text, p)
		}
	}
	for _, ct := range ca.Contacts() {
		if ct.UID == bob.uid && (ct.Status != msim.StatusOnline || ct.StatusText != "back \\o/" || ct.UserName != "bob") {
			t.Errorf("alice's contact bob got %+v", ct)
		}
	}

	for _, typing := range []bool{true, false} {
		if err := ca.SendTyping(ctx, bob.uid, typing); err != nil {
			t.Fatal(err)
		}
		if e := waitFor(t, cb, func(msim.TypingEvent) bool { return true }); e.From != alice.uid || e.Typing != typing {
			t.Errorf("bob got %+v, want typing=%v from alice", e, typing)
		}
	}
	if err := ca.SendZap(ctx, bob.uid, markup.ZapHug); err != nil {
		t.Fatal(err)
	}
	if e := waitFor(t, cb, func(msim.ZapEvent) bool { return true }); e.From != alice.uid || e.Zap != markup.ZapHug {
		t.Errorf("bob got %+v, want a hug from alice", e)
	}
}

func hasContact(c *msim.Client, uid msim.UID) (msim.Contact, bool) {
	for _, ct := range c.Contacts() {
		if ct.UID == uid {
			return ct, true
		}
	}
	return msim.Contact{}, false
}

func TestE2EBuddies(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, false)
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	ca, cb := mustDial(t, addr, alice), mustDial(t, addr, bob)
	ctx := context.Background()

	if err := ca.AddBuddy(ctx, bob.uid, "Pals"); err != nil {
		t.Fatal(err)
	}
	ev := waitFor(t, ca, func(e msim.ContactEvent) bool { return e.Contact.UID == bob.uid })
	if ev.Change != msim.ContactAdded || ev.Contact.UserName != "bob" || ev.Contact.Group != "Pals" {
		t.Errorf("ContactEvent got %+v", ev)
	}
	if a, err := cb.CheckAlerts(ctx); err != nil || !slices.Contains(a, "FriendRequest") {
		t.Errorf("bob's alerts got (%q, %v), want FriendRequest", a, err)
	}
	if ct, err := ca.ContactInfo(ctx, bob.uid); err != nil || ct.UID != bob.uid || ct.Group != "Pals" || ct.Blocked {
		t.Errorf("ContactInfo got (%+v, %v)", ct, err)
	}
	// The list is the server's: a new session sees bob, and kicks the old one.
	ca2 := mustDial(t, addr, alice)
	if ct, ok := hasContact(ca2, bob.uid); !ok || ct.UserName != "bob" || ct.Group != "Pals" {
		t.Errorf("new session's contacts got %+v, want bob in Pals", ca2.Contacts())
	}
	if d := disconnected(t, ca); d.Reason != msim.DisconnectKicked || !errors.Is(d.Err, msim.ErrLoggedInElsewhere) {
		t.Errorf("old session got %v (%v), want kicked", d.Reason, d.Err)
	}
	ca = ca2

	if err := ca.RemoveBuddy(ctx, bob.uid); err != nil {
		t.Fatal(err)
	}
	if _, ok := hasContact(ca, bob.uid); ok {
		t.Errorf("bob still listed after RemoveBuddy: %+v", ca.Contacts())
	}
	if ct, err := ca.ContactInfo(ctx, bob.uid); err != nil || ct.UID != bob.uid {
		t.Errorf("ContactInfo(bob) after removal got (%+v, %v)", ct, err)
	}
	if _, ok := hasContact(ca, bob.uid); ok {
		t.Errorf("ContactInfo put bob back in the contacts: %+v", ca.Contacts())
	}

	// Blocked: bob's IM is dropped. The IM after Allow is the first alice gets.
	if err := ca.Block(ctx, bob.uid); err != nil {
		t.Fatal(err)
	}
	if ct, ok := hasContact(ca, bob.uid); !ok || !ct.Blocked {
		t.Errorf("bob not blocked in contacts: %+v", ca.Contacts())
	}
	if err := cb.SendIM(ctx, alice.uid, "while blocked"); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.LookupUser(ctx, "alice"); err != nil { // barrier: the server has routed the IM
		t.Fatal(err)
	}
	if err := ca.Allow(ctx, bob.uid); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LookupUser(ctx, "bob"); err != nil { // barrier: the blocklist edit is in
		t.Fatal(err)
	}
	if _, ok := hasContact(ca, bob.uid); ok {
		t.Errorf("bob still listed after Allow: %+v", ca.Contacts())
	}
	if err := cb.SendIM(ctx, alice.uid, "after allow"); err != nil {
		t.Fatal(err)
	}
	if im := waitFor(t, ca, func(msim.IMEvent) bool { return true }); im.Text != "after allow" {
		t.Errorf("alice got %q first, want %q (the blocked IM must be dropped)", im.Text, "after allow")
	}
}

// TestE2EAllowKeepsBuddy: a buddy blocked and then allowed is a buddy
// again, at once and after a new login, and presence flows both ways.
func TestE2EAllowKeepsBuddy(t *testing.T) {
	t.Parallel()
	_, addr, alice, bob, ca, cb := pair(t)
	ctx := context.Background()
	if err := ca.Block(ctx, bob.uid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cb, func(e msim.PresenceEvent) bool { return e.UID == alice.uid && e.Status == msim.StatusOffline })
	if err := cb.SetStatus(ctx, msim.StatusAway, "while blocked"); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.LookupUser(ctx, "alice"); err != nil { // barrier: the status is in
		t.Fatal(err)
	}

	if err := ca.Allow(ctx, bob.uid); err != nil {
		t.Fatal(err)
	}
	if ct, ok := hasContact(ca, bob.uid); !ok || ct.Blocked || ct.Group != msim.DefaultGroup {
		t.Errorf("bob after Allow got %+v (listed %v), want listed in %q, not blocked", ct, ok, msim.DefaultGroup)
	}
	// The subscription is back: bob's current presence, then his changes.
	if p := waitFor(t, ca, func(e msim.PresenceEvent) bool { return e.UID == bob.uid }); p.Status != msim.StatusAway || p.Text != "while blocked" {
		t.Errorf("alice got %+v, want bob away %q", p, "while blocked")
	}
	if ev := waitFor(t, ca, func(e msim.ContactEvent) bool { return e.Contact.UID == bob.uid }); ev.Change != msim.ContactUpdated || ev.Contact.Blocked || ev.Contact.Status != msim.StatusAway {
		t.Errorf("ContactEvent got %+v, want bob updated, not blocked, away", ev)
	}
	if err := cb.SetStatus(ctx, msim.StatusIdle, "after allow"); err != nil {
		t.Fatal(err)
	}
	if p := waitFor(t, ca, func(e msim.PresenceEvent) bool { return e.UID == bob.uid }); p.Status != msim.StatusIdle || p.Text != "after allow" {
		t.Errorf("alice got %+v, want bob idle %q", p, "after allow")
	}
	// Alice is visible to bob again, and his IMs reach her.
	waitFor(t, cb, func(e msim.PresenceEvent) bool { return e.UID == alice.uid && e.Status == msim.StatusOnline })
	if err := cb.SendIM(ctx, alice.uid, "hello again"); err != nil {
		t.Fatal(err)
	}
	if im := waitFor(t, ca, func(msim.IMEvent) bool { return true }); im.From != bob.uid || im.Text != "hello again" {
		t.Errorf("alice got %+v, want bob's IM", im)
	}

	ca2 := mustDial(t, addr, alice)
	if ct, ok := hasContact(ca2, bob.uid); !ok || ct.Blocked || ct.Status != msim.StatusIdle {
		t.Errorf("bob at the next login got %+v (listed %v), want listed, not blocked, idle", ct, ok)
	}
}

func TestE2ELookup(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, false)
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	ca := mustDial(t, addr, alice)
	ctx := context.Background()
	for _, q := range []string{"bob", bob.email} {
		if p, err := ca.LookupUser(ctx, q); err != nil || p.UID != bob.uid || p.UserName != "bob" {
			t.Errorf("LookupUser(%q) got (%+v, %v), want bob", q, p, err)
		}
	}
	for _, q := range []string{"nobody", "nobody@example.com"} {
		if p, err := ca.LookupUser(ctx, q); !errors.Is(err, msim.ErrNoSuchUser) {
			t.Errorf("LookupUser(%q) got (%+v, %v), want ErrNoSuchUser", q, p, err)
		}
	}
	if p, err := ca.Profile(ctx, bob.uid); err != nil || p.UserName != "bob" {
		t.Errorf("Profile(bob) got (%+v, %v)", p, err)
	}
	if _, err := ca.Profile(ctx, 99999999); !errors.Is(err, msim.ErrNoSuchUser) {
		t.Errorf("Profile(99999999) got %v, want ErrNoSuchUser", err)
	}
	if _, err := ca.ContactInfo(ctx, 99999999); !errors.Is(err, msim.ErrNoSuchUser) {
		t.Errorf("ContactInfo(99999999) got %v, want ErrNoSuchUser", err)
	}
	if _, err := ca.CheckAlerts(ctx); err != nil {
		t.Errorf("CheckAlerts: %v", err)
	}
}

func TestE2EOfflineMessage(t *testing.T) {
	t.Parallel()
	_, addr, alice, bob, ca, cb := pair(t)
	ctx := context.Background()
	ca.Close()
	waitFor(t, cb, func(e msim.PresenceEvent) bool { return e.UID == alice.uid && e.Status == msim.StatusOffline })
	sent := time.Now()
	text := "while you were out: <b>&</b> :)"
	if err := cb.SendIM(ctx, alice.uid, text); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.LookupUser(ctx, "alice"); err != nil { // barrier: the IM is stored
		t.Fatal(err)
	}
	ca2 := mustDial(t, addr, alice)
	im := waitFor(t, ca2, func(msim.IMEvent) bool { return true })
	if im.From != bob.uid || im.Text != text || !im.Offline {
		t.Errorf("offline IM got %+v, want %q from bob, Offline", im, text)
	}
	if im.Time.Before(sent.Truncate(time.Second)) || im.Time.After(time.Now()) {
		t.Errorf("offline IM date %v, want the send time %v", im.Time, sent)
	}
}

func TestE2EServerGoesAway(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, false)
	alice := addAccount(t, srv, "alice")
	ca := mustDial(t, addr, alice)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := disconnected(t, ca); d.Reason != msim.DisconnectNetwork && d.Reason != msim.DisconnectServerError {
		t.Errorf("got %v (%v), want network or server error", d.Reason, d.Err)
	}
	if _, err := ca.LookupUser(ctx, "alice"); !errors.Is(err, msim.ErrDisconnected) {
		t.Errorf("LookupUser after the server left got %v, want ErrDisconnected", err)
	}
}

// TestE2ECloseNoLeak is not parallel: it checks for leaked goroutines.
func TestE2ECloseNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	func() {
		srv, err := server.New(server.Config{Demo: true}, server.NewMemStore(), e2eLog(t))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx, ln) }()
		alice := addAccount(t, srv, "alice")
		c, err := msim.Dial(ctx, msim.ClientConfig{Addr: ln.Addr().String(), Email: alice.email, Password: alice.password})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendIM(ctx, 6221, "hi"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, c, func(e msim.IMEvent) bool { return e.From == 6221 })
		c.Close()
		c.Close()
		if d := disconnected(t, c); d.Reason != msim.DisconnectClosed {
			t.Errorf("got %v, want closed", d.Reason)
		}
		sctx, scancel := context.WithTimeout(context.Background(), e2eWait)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		<-served
	}()
}

// BenchmarkIMThroughput measures one client's IM rate through the server to
// another client, with up to 256 IMs in flight; the receiver takes its
// events from Events or through Notify and TakeEvents.
func BenchmarkIMThroughput(b *testing.B) {
	for _, mode := range []string{"events", "notify"} {
		b.Run(mode, func(b *testing.B) {
			srv, addr := startServer(b, false)
			alice, bob := addAccount(b, srv, "alice"), addAccount(b, srv, "bob")
			wake := make(chan struct{}, 1)
			ca := mustDial(b, addr, alice)
			cb, err := dialAs(b, addr, bob, func(cfg *msim.ClientConfig) {
				if mode == "notify" {
					cfg.Notify = func() {
						select {
						case wake <- struct{}{}:
						default:
						}
					}
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			window := make(chan struct{}, 256)
			recvd := make(chan error, 1)
			// got handles one event and reports whether it ends the run.
			n := 0
			got := func(ev msim.Event) (bool, error) {
				switch ev.(type) {
				case msim.IMEvent:
					n++
					<-window
				case msim.DisconnectedEvent:
					return true, errors.New("bob disconnected")
				}
				return n == b.N, nil
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			go func() {
				if n == b.N {
					recvd <- nil
					return
				}
				if mode == "events" {
					for ev := range cb.Events() {
						if end, err := got(ev); end {
							recvd <- err
							return
						}
					}
					recvd <- errors.New("bob's events closed")
					return
				}
				var buf []msim.Event
				for range wake {
					buf = cb.TakeEvents(buf[:0])
					for _, ev := range buf {
						if end, err := got(ev); end {
							recvd <- err
							return
						}
					}
				}
			}()
			for i := 0; i < b.N; i++ {
				window <- struct{}{}
				if err := ca.SendIM(ctx, bob.uid, "benchmark message with some <markup> & text :)"); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-recvd; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "IMs/s")
		})
	}
}

// TestE2ECloseKeepsIMsInFlight: IMs the server wrote before it read the
// logout are not lost in the socket when the client closes: Close reads on
// until the server ends the connection, and they arrive on Events.
func TestE2ECloseKeepsIMsInFlight(t *testing.T) {
	_, _, alice, _, ca, cb := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	const n = 300
	body := strings.Repeat("w", 20_000)
	for i := range n {
		if err := cb.SendIM(ctx, alice.uid, fmt.Sprintf("%03d %s", i, body)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cb.LookupUser(ctx, "alice"); err != nil { // the server has routed every IM
		t.Fatal(err)
	}
	got := make(chan int)
	go func() {
		ims := 0
		for ev := range ca.Events() {
			if _, ok := ev.(msim.IMEvent); ok {
				ims++
			}
		}
		got <- ims
	}()
	ca.Close()
	if ims := <-got; ims != n {
		t.Fatalf("got %d IMs on Events, want %d", ims, n)
	}
}
