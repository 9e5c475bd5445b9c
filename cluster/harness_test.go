package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/leakcheck"
	"github.com/msimircd/msimircd/internal/testlog"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// wait bounds every wait for an event; failover must be seen well within
// it (the bound is 10 s).
const wait = 10 * time.Second

// Short timings, so a node is dead in about a second.
const (
	testHeartbeat = 100 * time.Millisecond
	testDeadAfter = time.Second
)

func testLog(tb testing.TB) *logrus.Entry {
	if _, ok := tb.(*testing.B); ok {
		return testlog.New(tb, logrus.WarnLevel)
	}
	return testlog.New(tb, logrus.InfoLevel)
}

// startLocalNATS runs a NATS server in-process on a loopback port, as
// NATS's documentation recommends for tests, until the test ends.
func startLocalNATS(tb testing.TB) string {
	tb.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		tb.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(wait) {
		tb.Fatal("NATS server not ready")
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns.ClientURL()
}

// node is one msimd node of a test cluster.
type node struct {
	srv     *server.Server
	bus     *Node
	addr    string
	metrics *prometheus.Registry
	stop    func() // shuts it down cleanly; idempotent
}

// startNode runs an msimd node on a loopback port, joined to tn's NATS
// server through url (tn.url, or a proxy's) and with a store handle of
// its own on tn's database, until the test ends.
func startNode(tb testing.TB, tn *testNet, url, name string) *node {
	tb.Helper()
	log := testLog(tb).WithField("side", name)
	reg := prometheus.NewRegistry()
	store := tn.open(tb) // opened first: closed after the node stops
	bus, err := Connect(Config{
		URL: url, Name: name, Subject: tn.subject, Heartbeat: testHeartbeat, DeadAfter: testDeadAfter,
		RequestTimeout: time.Second, Metrics: reg,
	}, log)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(server.Config{Bus: bus, Metrics: reg}, store, log)
	if err != nil {
		bus.Close()
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ctx, ln) }()
	var once sync.Once
	n := &node{srv: srv, bus: bus, addr: ln.Addr().String(), metrics: reg}
	n.stop = func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), wait)
			defer scancel()
			if err := srv.Shutdown(sctx); err != nil {
				tb.Errorf("%s: shutdown: %v", name, err)
			}
			cancel()
			<-served
			bus.Close()
		})
	}
	tb.Cleanup(n.stop)
	return n
}

// startCluster runs n nodes on a NATS server and a database of engine e
// (each node with a handle of its own, as on the shared PostgreSQL of
// production), and returns them with the test's own handle.
func startCluster(tb testing.TB, e engine, n int) ([]*node, server.Store) {
	tb.Helper()
	tn := newNet(tb, e)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(tb, tn, tn.url, fmt.Sprintf("n%d", i+1))
	}
	waitPeers(tb, nodes...)
	return nodes, tn.store
}

// waitPeers waits until every node hears all the others.
func waitPeers(tb testing.TB, nodes ...*node) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for _, n := range nodes {
		for n.bus.peerCount() < len(nodes)-1 || !n.bus.ready() {
			if time.Now().After(deadline) {
				tb.Fatalf("node %s hears %d peers, want %d", n.bus.Node(), n.bus.peerCount(), len(nodes)-1)
			}
			time.Sleep(testHeartbeat / 4)
		}
	}
}

type account struct {
	email, password string
	uid             msim.UID
}

// addAccounts creates the users names (through srv) and lists each
// of them for every other.
func addAccounts(tb testing.TB, srv *server.Server, store server.Store, names ...string) map[string]account {
	tb.Helper()
	out := map[string]account{}
	for _, name := range names {
		a := account{email: name + "@example.com", password: "pw-" + name}
		uid, err := srv.AddAccount(a.email, a.password, name)
		if err != nil {
			tb.Fatal(err)
		}
		a.uid = uid
		out[name] = a
	}
	for _, a := range out {
		for _, b := range out {
			if a.uid != b.uid {
				c := server.Contact{UID: b.uid, GroupName: "IM Friends", Position: 1000, Visibility: 1}
				if err := store.PutContact(a.uid, c); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	return out
}

// client is an MSIM client whose events the test takes in order.
type client struct {
	*msim.Client
	tb   testing.TB
	name string
	wake chan struct{}
	seen []msim.Event // taken but not yet matched
}

func dial(tb testing.TB, n *node, name string, a account, opts ...func(*msim.ClientConfig)) *client {
	tb.Helper()
	c, err := tryDial(tb, n, name, a, opts...)
	if err != nil {
		tb.Fatalf("%s: dial %s: %v", name, n.addr, err)
	}
	return c
}

func tryDial(tb testing.TB, n *node, name string, a account, opts ...func(*msim.ClientConfig)) (*client, error) {
	tb.Helper()
	tc := &client{tb: tb, name: name, wake: make(chan struct{}, 1)}
	cfg := msim.ClientConfig{
		Addr: n.addr, Email: a.email, Password: a.password,
		Log: testLog(tb).WithField("side", name), DialTimeout: wait, RequestTimeout: wait,
		Notify: func() {
			select {
			case tc.wake <- struct{}{}:
			default:
			}
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := msim.Dial(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	tc.Client = c
	tb.Cleanup(func() { c.Close() })
	return tc, nil
}

// next returns the first event (taken before, or arriving within wait)
// that match accepts, and keeps the others.
func (c *client) next(what string, match func(msim.Event) bool) msim.Event {
	c.tb.Helper()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		c.seen = c.Client.TakeEvents(c.seen)
		for i, ev := range c.seen {
			if match(ev) {
				c.seen = append(c.seen[:i:i], c.seen[i+1:]...)
				return ev
			}
		}
		select {
		case <-c.wake:
		case <-timeout.C:
			c.tb.Fatalf("%s: no %s within %v (events: %v)", c.name, what, wait, c.seen)
		}
	}
}

// sync is a barrier: every event the server sent before answering a fresh
// request has been taken when it returns; those are returned and cleared.
func (c *client) sync() []msim.Event {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Profile(ctx, c.UID()); err != nil {
		c.tb.Fatalf("%s: barrier: %v", c.name, err)
	}
	evs := c.Client.TakeEvents(c.seen)
	c.seen = nil
	return evs
}

func presence(uid msim.UID, s msim.Status) func(msim.Event) bool {
	return func(ev msim.Event) bool {
		p, ok := ev.(msim.PresenceEvent)
		return ok && p.UID == uid && p.Status == s
	}
}

func im(from msim.UID, text string) func(msim.Event) bool {
	return func(ev msim.Event) bool {
		m, ok := ev.(msim.IMEvent)
		return ok && m.From == from && m.Text == text
	}
}

func isDisconnected(ev msim.Event) bool {
	_, ok := ev.(msim.DisconnectedEvent)
	return ok
}

func ims(evs []msim.Event) []msim.IMEvent {
	var out []msim.IMEvent
	for _, ev := range evs {
		if m, ok := ev.(msim.IMEvent); ok {
			out = append(out, m)
		}
	}
	return out
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	tb.Cleanup(cancel)
	return ctx
}

// proxy is a TCP relay between a node and NATS that a test can cut (every
// connection dropped, new ones refused) and restore.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(func() {
		ln.Close()
		p.setCut(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = err // either side closing ends the relay
	}
	dst.Close()
	src.Close()
}

// setCut drops every relayed connection and refuses new ones (true), or
// accepts them again (false).
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}
