package channel_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/pgtest"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// sharedPostgres returns a DSN for a schema of its own in the database the
// environment names, dropped when the test ends: every instance of the
// test opens it. Without one the test skips: several instances need
// PostgreSQL.
func sharedPostgres(t *testing.T) string {
	t.Helper()
	return pgtest.DSN(t)
}

// openShared opens a store handle of its own on the shared database.
func openShared(t *testing.T, dsn string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "postgres", dsn, make([]byte, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// instance makes a bridge one of several, always on.
func instance(name string, ttl, wait time.Duration) func(*channel.Config) {
	return func(cfg *channel.Config) {
		cfg.Instance, cfg.LeaseTTL, cfg.HandOverWait = name, ttl, wait
		cfg.AlwaysOn = true
	}
}

// aliceDirectory is a configured user alice with one account that
// autoconnects, the same for every instance.
func aliceDirectory() channel.Directory {
	return &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "alice", Password: "alice-irc",
		Accounts: []channel.Account{{Email: "alice@example.com", Password: "alicepw", Channel: "&alice", AutoConnect: true}}}}}
}

// waitFor fails the test unless ch closes within 10 s.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}

// imLog collects, in order, the texts of the IMs bob's client is shown.
type imLog struct {
	mu  sync.Mutex
	got []string
}

func (l *imLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, s)
}

func (l *imLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

// read reads c, logging bob's IMs, until stop accepts a message (which it
// returns) or the connection ends (nil).
func (l *imLog) read(c *ircClient, stop func(*irc.Message) bool) *irc.Message {
	c.t.Helper()
	for {
		m, err := c.next()
		if err != nil {
			return nil
		}
		if m.Command == "PRIVMSG" && m.Prefix != nil && m.Name == "bob" {
			l.add(m.Trailing())
		}
		if stop(m) {
			return m
		}
	}
}

// check reports IMs lost, doubled or out of order against want.
func (l *imLog) check(t *testing.T, want []string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]int{}
	for _, s := range l.got {
		seen[s]++
	}
	for _, w := range want {
		if seen[w] != 1 {
			t.Errorf("IM %q shown %d times, want once", w, seen[w])
		}
	}
	if len(l.got) != len(want) {
		t.Errorf("got %d IMs, want %d", len(l.got), len(want))
	}
	for i := range min(len(l.got), len(want)) {
		if l.got[i] != want[i] {
			t.Errorf("IM %d: got %q, want %q (in the order sent)", i, l.got[i], want[i])
			break
		}
	}
}

// imsTo collects the IMs an MSIM client gets, by sender; barrier waits
// until the MSIM server has handled what the client sent before (Tom
// answers only after that), and from returns the texts from uid so far.
type imsTo struct {
	cl   *msim.Client
	mu   sync.Mutex
	got  map[msim.UID][]string
	tick chan struct{}
}

func collectIMs(cl *msim.Client) *imsTo {
	c := &imsTo{cl: cl, got: map[msim.UID][]string{}, tick: make(chan struct{}, 1)}
	go func() {
		for ev := range cl.Events() {
			if im, ok := ev.(msim.IMEvent); ok {
				c.mu.Lock()
				c.got[im.From] = append(c.got[im.From], im.Text)
				c.mu.Unlock()
				select {
				case c.tick <- struct{}{}:
				default:
				}
			}
		}
	}()
	return c
}

func (c *imsTo) from(uid msim.UID) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got[uid]...)
}

func (c *imsTo) barrier(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := len(c.from(6221))
	if err := c.cl.SendIM(ctx, 6221, "barrier"); err != nil { // Tom answers every IM once
		t.Fatal(err)
	}
	for len(c.from(6221)) == before {
		select {
		case <-c.tick:
		case <-ctx.Done():
			t.Fatal("Tom did not answer")
		}
	}
}

// TestSessionMovesBetweenInstances: two instances on one PostgreSQL. Alice
// connects to A, queues an IM while A's MSIM link is cut and leaves (her
// session stays on A, always on); while bob sends IMs without pause, her
// client connects to B, which asks A for her session: A hands it over
// (logs out, releases the lease) and B logs in, sending her queued IM once.
// Then her client connects to A while still on B: B closes it, saying the
// session moved, and A takes her back. Every IM bob sent is shown once, in
// the order he sent them, across both moves.
func TestSessionMovesBetweenInstances(t *testing.T) {
	dsn := sharedPostgres(t)
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("alice@example.com", "alicepw", "alice"); err != nil {
		t.Fatal(err)
	}
	bob := msimUser(t, stk, "bob")
	aliceUID := lookupUID(t, bob, "alice")
	// A lease that never expires within the test: only a hand-over moves
	// alice within HandOverWait.
	pxA := newProxy(t, stk.msimAddr, false) // A's MSIM link, which the test cuts
	t.Cleanup(pxA.close)
	gA := startGateway(t, pxA.addr(), aliceDirectory(), openShared(t, dsn), instance("a", time.Minute, 20*time.Second))
	gB := startGateway(t, stk.msimAddr, aliceDirectory(), openShared(t, dsn), instance("b", time.Minute, 20*time.Second))
	waitFor(t, gA.bridge.Listening(), "A listening for notes")
	waitFor(t, gB.bridge.Listening(), "B listening for notes")

	c := dial(t, gA.ircAddr, "alice", "alice-irc", allCaps...)
	c.joinedControl("&alice")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.add("&alice", "bob")
	pxA.setDown(true)
	pxA.cut()
	c.expectFrom("PRIVMSG", "root", "Lost the MSIM connection")
	c.send("PRIVMSG bob :queued while logged out")
	c.expectFrom("NOTICE", "bob", "queued (1 waiting)")
	c.quit()

	const n = 300
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("m%03d", i))
	}
	sent := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i, text := range want {
			if err := bob.SendIM(ctx, aliceUID, text); err != nil {
				sent <- err
				return
			}
			if i%10 == 0 {
				time.Sleep(time.Millisecond) // a steady stream across the moves, not one burst
			}
		}
		sent <- nil
	}()
	toBob := collectIMs(bob)

	var log imLog
	// To B: A hands the session over.
	c = dial(t, gB.ircAddr, "alice", "alice-irc", allCaps...)
	log.read(c, func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Name == "root" && strings.Contains(m.Trailing(), "sent 1 queued message")
	})
	for log.len() < 100 {
		if log.read(c, func(m *irc.Message) bool { return m.Command == "PRIVMSG" }) == nil {
			t.Fatalf("the connection to B ended after %d IMs", log.len())
		}
	}
	// To A while still on B: B closes its connection.
	pxA.setDown(false)
	old := c
	c = dial(t, gA.ircAddr, "alice", "alice-irc", allCaps...)
	end := log.read(old, func(m *irc.Message) bool { return m.Command == "ERROR" })
	if end == nil || !strings.Contains(end.Trailing(), "moved to another gateway instance") {
		t.Errorf("B's connection ended with %v, want an ERROR saying the session moved", end)
	}
	if err := <-sent; err != nil {
		t.Fatalf("bob sending: %v", err)
	}
	for log.len() < n {
		if log.read(c, func(m *irc.Message) bool { return m.Command == "PRIVMSG" }) == nil {
			t.Fatalf("the connection to A ended after %d IMs", log.len())
		}
	}
	c.sync() // nothing more, doubled, behind them
	c.quit()
	log.check(t, want)

	toBob.barrier(t)
	if got := toBob.from(aliceUID); len(got) != 1 || got[0] != "queued while logged out" {
		t.Errorf("bob got from alice %q, want the queued IM once", got)
	}
}

// TestDeadInstanceHandsOverAfterTTL: instance A dies with alice's session
// (it stops renewing and answering, its MSIM link and store go away)
// while IMs are held for her there; her client's connection to B waits
// for A's lease to expire, then B takes her over: the IMs A held and
// those sent while she was nowhere arrive once, in order.
func TestDeadInstanceHandsOverAfterTTL(t *testing.T) {
	dsn := sharedPostgres(t)
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("alice@example.com", "alicepw", "alice"); err != nil {
		t.Fatal(err)
	}
	bob := msimUser(t, stk, "bob")
	aliceUID := lookupUID(t, bob, "alice")
	pxA := newProxy(t, stk.msimAddr, false)
	t.Cleanup(pxA.close)
	stA := openShared(t, dsn)
	const ttl = time.Second
	gA := startGateway(t, pxA.addr(), aliceDirectory(), stA, instance("a", ttl, 20*time.Second))
	gB := startGateway(t, stk.msimAddr, aliceDirectory(), openShared(t, dsn), instance("b", ttl, 20*time.Second))
	waitFor(t, gB.bridge.Listening(), "B listening for notes")

	c := dial(t, gA.ircAddr, "alice", "alice-irc", allCaps...)
	c.joinedControl("&alice")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.add("&alice", "bob")
	c.quit()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var want []string
	for i := range 3 {
		want = append(want, fmt.Sprintf("held on A %d", i))
		if err := bob.SendIM(ctx, aliceUID, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	for { // a barrier: A has held them in the store
		held, err := stA.HeldIMs(ctx, "alice", "alice@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if len(held) == 3 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("A held %d IMs, want 3", len(held))
		case <-time.After(10 * time.Millisecond):
		}
	}

	// A dies: no renewal, no answer, no MSIM link, no store.
	gA.bridge.StopLeases()
	pxA.setDown(true)
	pxA.cut()
	waitOnline(t, stk.msrv, aliceUID, false)
	stA.Close()
	want = append(want, "while alice is nowhere")
	if err := bob.SendIM(ctx, aliceUID, want[3]); err != nil {
		t.Fatal(err)
	}
	tomBarrier(t, bob)

	var log imLog
	c = dial(t, gB.ircAddr, "alice", "alice-irc", allCaps...)
	for log.len() < len(want) {
		if log.read(c, func(m *irc.Message) bool { return m.Command == "PRIVMSG" }) == nil {
			t.Fatalf("the connection to B ended after %d IMs", log.len())
		}
	}
	c.sync()
	log.check(t, want)
	if l, err := openShared(t, dsn).Lease(ctx, "alice"); err != nil || l.Instance != "b" {
		t.Errorf("alice's lease: got %+v, %v; want B's", l, err)
	}
}

// TestInstanceNeedsAStore: an instance among several without a shared
// store is refused at New.
func TestInstanceNeedsAStore(t *testing.T) {
	_, err := channel.New(channel.Config{MSIMAddr: "127.0.0.1:1", Directory: aliceDirectory(), Instance: "a"})
	if err == nil || !strings.Contains(err.Error(), "shared store") {
		t.Errorf("New with an instance and no store: got %v, want an error asking for a shared store", err)
	}
}
