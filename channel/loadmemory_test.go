package channel_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// gatedStore is a store whose reads of one user's state wait until
// released, once armed, and which counts them.
type gatedStore struct {
	store.Store
	user     string
	armed    atomic.Bool
	entered  chan struct{} // closed when the first gated read begins
	release  chan struct{}
	once     sync.Once
	reads    atomic.Int32 // the gated user's reads begun
	returned atomic.Bool  // a gated read has returned
	fail     atomic.Bool  // the gated reads fail once released
}

// newGatedStore returns st with the reads of user's state gated (armed).
func newGatedStore(st store.Store, user string) *gatedStore {
	s := &gatedStore{Store: st, user: user, entered: make(chan struct{}), release: make(chan struct{})}
	s.armed.Store(true)
	return s
}

func (s *gatedStore) LoadUser(ctx context.Context, name string) (store.UserState, error) {
	if name != s.user || !s.armed.Load() {
		return s.Store.LoadUser(ctx, name)
	}
	s.reads.Add(1)
	s.once.Do(func() { close(s.entered) })
	defer s.returned.Store(true)
	select {
	case <-s.release:
	case <-ctx.Done():
		return store.UserState{}, ctx.Err()
	}
	if s.fail.Load() {
		return store.UserState{}, errors.New("the database went away")
	}
	return s.Store.LoadUser(ctx, name)
}

// TestLoginWaitsForNoOtherUsersState: a user's state is read from the
// store without holding up anyone else. While ann's read hangs (a slow
// database), bob logs in and is welcomed; a second connection of ann's
// waits for the same read rather than making another; once the read
// returns, both of ann's connections are welcomed into one session.
func TestLoginWaitsForNoOtherUsersState(t *testing.T) {
	stk := startStack(t)
	key := make([]byte, 32)
	dir := &channel.DemoDirectory{CreateAccount: stk.msrv.AddAccount, CheckPassword: stk.msrv.CheckPassword,
		Exists: func(err error) bool { return errors.Is(err, server.ErrAccountExists) }, Key: key}
	st := newGatedStore(openStore(t), "demo/ann@msimircd.local")
	g := startGateway(t, stk.msimAddr, dir, st)
	gw := &stack{ircAddr: g.ircAddr}

	anns := startTwoWaiting(t, g, st, "ann")
	login(t, gw, "bob")
	if st.returned.Load() {
		t.Fatal("bob was welcomed only after ann's state was read: his login waited for hers")
	}
	if n := st.reads.Load(); n != 1 {
		t.Errorf("reads of ann's state while two of her connections waited: got %d, want 1", n)
	}
	close(st.release)
	for _, ann := range anns {
		ann.welcomed().joinedControl("&ann")
	}
	if n := st.reads.Load(); n != 1 {
		t.Errorf("reads of ann's state: got %d, want 1", n)
	}
}

// TestBringingOnlineWaitsForNoOtherUser: with AlwaysOn, the sessions that
// start at boot read each user's state without holding up anyone else:
// while al's read hangs, bob logs in and is welcomed, and al comes online
// once it returns.
func TestBringingOnlineWaitsForNoOtherUser(t *testing.T) {
	var st *gatedStore
	stk := startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		if _, err := msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
			t.Fatal(err)
		}
		st = newGatedStore(openStore(t), "al")
		cfg.Store = st
		cfg.Directory = &channel.StaticDirectory{Users: []channel.StaticUser{
			{Name: "al", Password: "al-irc", Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}},
			{Name: "bob", Password: "bob-irc", Accounts: []channel.Account{{Email: "bob@example.com", Password: "bobpw", Channel: "&bob"}}},
		}}
		cfg.AlwaysOn = true
	})
	if _, err := stk.msrv.AddAccount("bob@example.com", "bobpw", "bob"); err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() {
		n, err := stk.bridge.Start(context.Background())
		if err == nil && n != 1 {
			err = fmt.Errorf("%d sessions started, want 1", n)
		}
		started <- err
	}()
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("al's state was never read")
	}
	bob := dial(t, stk.ircAddr, "bob", "bob-irc")
	bob.joinedControl("&bob")
	if st.returned.Load() {
		t.Fatal("bob was welcomed only after al's state was read: his login waited for it")
	}
	close(st.release)
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after al's state was read")
	}
	cl := msimUser(t, stk, "cy")
	waitOnline(t, stk.msrv, lookupUID(t, cl, "al"), true)
}

// TestIdentifyWaitsForNoOtherUser: identify reads the user's state without
// holding up anyone else's login.
func TestIdentifyWaitsForNoOtherUser(t *testing.T) {
	var st *gatedStore
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures(), func(c *channel.Config) {
		st = newGatedStore(c.Store, "alice")
		st.armed.Store(false)
		c.Store = st
	})
	addr := ss.gw.ircAddr
	// Registered before this gateway started: it has none of alice's
	// state yet.
	hash, err := store.HashPassword("S3cret-pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.st.CreateUser(context.Background(), "alice", hash); err != nil {
		t.Fatal(err)
	}
	st.armed.Store(true)
	alice := dial(t, addr, "alice", "", allCaps...)
	alice.expectFrom("PRIVMSG", "root", "identify")
	alice.send("PRIVMSG root :identify S3cret-pw")
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("alice's state was never read")
	}
	bob := dial(t, addr, "bob", "", allCaps...)
	bob.joinedControl("&bob")
	if st.returned.Load() {
		t.Fatal("bob was welcomed only after alice's state was read: his login waited for hers")
	}
	close(st.release)
	alice.expectFrom("PRIVMSG", "root", "Password accepted")
	alice.expectFrom("PRIVMSG", "root", "You have no MSIM accounts yet")
}

// startTwoWaiting starts two registrations of nick and waits until the
// first reads the user's state (held by st) and the second waits for that
// read.
func startTwoWaiting(t *testing.T, g *gateway, st *gatedStore, nick string) []registration {
	t.Helper()
	first := startRegister(t, g.ircAddr, nick, "pw-"+nick)
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s's state was never read", nick)
	}
	second := startRegister(t, g.ircAddr, nick, "pw-"+nick)
	for deadline := time.Now().Add(10 * time.Second); g.bridge.LoadWaiters(st.user) != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s's second connection never waited for the first's read", nick)
		}
	}
	return []registration{first, second}
}

// TestLoginsShareAFailedRead: when the read of a user's state fails, the
// logins that waited for it are refused with it, at once, rather than each
// trying the database again in turn.
func TestLoginsShareAFailedRead(t *testing.T) {
	stk := startStack(t)
	dir := &channel.DemoDirectory{CreateAccount: stk.msrv.AddAccount, CheckPassword: stk.msrv.CheckPassword,
		Exists: func(err error) bool { return errors.Is(err, server.ErrAccountExists) }, Key: make([]byte, 32)}
	st := newGatedStore(openStore(t), "demo/ann@msimircd.local")
	g := startGateway(t, stk.msimAddr, dir, st)
	anns := startTwoWaiting(t, g, st, "ann")
	st.fail.Store(true)
	close(st.release)
	for i, registered := range anns {
		c := registered.c
		m := c.expect("ERROR", nil)
		if !strings.Contains(m.Trailing(), "database is not available") {
			t.Errorf("connection %d: got %v, want an ERROR saying the database is not available", i+1, m)
		}
	}
	if n := st.reads.Load(); n != 1 {
		t.Errorf("reads of ann's state: got %d, want 1 (the second login shares the first's failure)", n)
	}
}

// startRegister connects and sends the registration, without waiting for
// the welcome.
func startRegister(t *testing.T, addr, nick, pass string) registration {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return sendRegistration(t, nc, nick, pass)
}
