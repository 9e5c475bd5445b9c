package ircd

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

	"gopkg.in/irc.v4"
)

// gateConn is a server-side connection whose writes the test can hold at a
// gate or make fail.
type gateConn struct {
	net.Conn
	hold    atomic.Bool   // Write waits for open
	entered chan struct{} // a Write reached the gate
	open    chan struct{} // closed to let held writes go
	fail    atomic.Bool   // Write fails
}

func (g *gateConn) Write(b []byte) (int, error) {
	if g.fail.Load() {
		return 0, errors.New("test: write failed")
	}
	if g.hold.Load() {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-g.open
	}
	return g.Conn.Write(b)
}

// hookListener passes every accepted connection through wrap.
type hookListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l hookListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(nc), nil
}

// startGated runs a server whose connections are gateConns, handed to the
// test on the returned channel as they are accepted.
func startGated(t *testing.T, cfg Config, b Backend) (string, *Server, chan *gateConn) {
	t.Helper()
	gates := make(chan *gateConn, 4)
	addr, srv := startWrapped(t, cfg, b, func(nc net.Conn) net.Conn {
		g := &gateConn{Conn: nc, entered: make(chan struct{}, 1), open: make(chan struct{})}
		gates <- g
		return g
	})
	return addr, srv, gates
}

// startWrapped runs a server on a loopback port until the test ends, its
// connections wrapped by wrap as they are accepted.
func startWrapped(t *testing.T, cfg Config, b Backend, wrap func(net.Conn) net.Conn) (string, *Server) {
	t.Helper()
	log, _ := testLog()
	srv := NewServer(cfg, b, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, &hookListener{ln, wrap})
	return ln.Addr().String(), srv
}

// serveOn runs srv on ln until the test ends.
func serveOn(t *testing.T, srv *Server, ln net.Listener) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		<-served
	})
}

// sentLog records the Sent calls of named deliveries.
type sentLog struct {
	mu    sync.Mutex
	calls map[string][]bool
	ch    chan string
	c     *Client // when set, each callback calls its Room: no ircd lock may be held
}

func newSentLog() *sentLog {
	return &sentLog{calls: make(map[string][]bool), ch: make(chan string, 1024)}
}

func (r *sentLog) cb(name string) func(bool) {
	return func(ok bool) {
		r.mu.Lock()
		c := r.c
		r.calls[name] = append(r.calls[name], ok)
		r.mu.Unlock()
		if c != nil {
			_ = c.Room() // deadlocks if Sent runs under the client's lock
		}
		r.ch <- name
	}
}

// wait waits until every name has had its Sent call.
func (r *sentLog) wait(t *testing.T, names ...string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		missing := ""
		for _, n := range names {
			if len(r.calls[n]) == 0 {
				missing = n
				break
			}
		}
		r.mu.Unlock()
		if missing == "" {
			return
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("Sent of %q never called", missing)
		}
	}
}

// check fails unless each named delivery's Sent was called exactly once
// with want[name].
func (r *sentLog) check(t *testing.T, want map[string]bool) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, ok := range want {
		if got := r.calls[name]; len(got) != 1 || got[0] != ok {
			t.Errorf("Sent of %s: got calls %v, want exactly [%v]", name, got, ok)
		}
	}
	for name := range r.calls {
		if _, ok := want[name]; !ok {
			t.Errorf("Sent of unexpected delivery %s: %v", name, r.calls[name])
		}
	}
}

func tmsg(text string, sent func(bool)) Delivery {
	return Delivery{From: "tom", Text: text, Sent: sent}
}

// Deliver reports whether a delivery was queued, and Sent whether it was
// written, exactly once, in each way a delivery can end.
func TestDeliverSent(t *testing.T) {
	t.Parallel()

	t.Run("written", func(t *testing.T) {
		t.Parallel()
		b := newBackend()
		addr, srv := startServer(t, testConfig(), b)
		c, fc, _ := register(t, addr, b, "me", "batch")
		r := newSentLog()
		r.c = fc.c
		for _, d := range []struct {
			name string
			d    Delivery
		}{
			{"two lines", tmsg("one\ntwo", r.cb("two lines"))},
			{"tagmsg without message-tags", Delivery{Command: "TAGMSG", From: "tom", Tags: irc.Tags{"+typing": "active"}, Sent: r.cb("tagmsg without message-tags")}},
			{"empty text", tmsg("", r.cb("empty text"))},
		} {
			if !fc.c.Deliver(d.d) {
				t.Fatalf("Deliver(%s) = false, want true", d.name)
			}
		}
		if !fc.c.DeliverHistory("tom", []Delivery{tmsg("h1", r.cb("h1")), tmsg("h2", r.cb("h2"))}) {
			t.Fatal("DeliverHistory = false, want true")
		}
		got := c.sync(t)
		checkMsgs(t, got, []want{
			w("PRIVMSG", "me", "one"), w("PRIVMSG", "me", "two"),
			w("BATCH", "?", "chathistory", "tom"), w("PRIVMSG", "me", "h1"), w("PRIVMSG", "me", "h2"), w("BATCH", "?"),
		})
		r.wait(t, "two lines", "tagmsg without message-tags", "empty text", "h1", "h2")
		c.send(t, "QUIT")
		fc.waitClosed(t)
		shutdown(t, srv)
		r.check(t, map[string]bool{"two lines": true, "tagmsg without message-tags": true, "empty text": true, "h1": true, "h2": true})
	})

	t.Run("sendq overflow discards", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig()
		cfg.SendQ, cfg.MOTD = 32, nil
		b := newBackend()
		addr, srv, gates := startGated(t, cfg, b)
		_, fc, _ := register(t, addr, b, "me")
		g := <-gates
		r := newSentLog()
		g.hold.Store(true)
		if !fc.c.Deliver(tmsg("in flight", r.cb("in flight"))) {
			t.Fatal("Deliver(in flight) = false, want true")
		}
		<-g.entered // the writer holds "in flight" at the gate
		if !fc.c.Deliver(tmsg("queued", r.cb("queued"))) {
			t.Fatal("Deliver(queued) = false, want true")
		}
		if got := fc.c.Room(); got != cfg.SendQ-1 {
			t.Fatalf("got Room %d, want %d", got, cfg.SendQ-1)
		}
		long := strings.TrimSuffix(strings.Repeat("line\n", cfg.SendQ+5), "\n")
		if fc.c.Deliver(tmsg(long, r.cb("overflowing"))) {
			t.Fatal("Deliver(overflowing) = true, want false")
		}
		if got := fc.c.Room(); got != 0 {
			t.Fatalf("got Room %d after the overflow, want 0", got)
		}
		if fc.c.Deliver(tmsg("after", r.cb("after"))) {
			t.Fatal("Deliver(after) = true, want false")
		}
		if fc.c.DeliverHistory("tom", []Delivery{tmsg("h1", r.cb("h1")), tmsg("h2", r.cb("h2"))}) {
			t.Fatal("DeliverHistory after the overflow = true, want false")
		}
		close(g.open)
		if got := fc.waitClosed(t); got != "SendQ exceeded" {
			t.Fatalf("got Closed(%q), want SendQ exceeded", got)
		}
		r.wait(t, "in flight", "queued", "overflowing", "after", "h1", "h2")
		shutdown(t, srv)
		r.check(t, map[string]bool{"in flight": false, "queued": false, "overflowing": false, "after": false, "h1": false, "h2": false})
	})

	t.Run("refused before welcome", func(t *testing.T) {
		t.Parallel()
		b := newBackend()
		r := newSentLog()
		var room int
		b.setup = func(c *Client) error {
			c.Deliver(tmsg("held", r.cb("held")))
			room = c.Room()
			return errors.New("no")
		}
		addr, srv := startServer(t, testConfig(), b)
		c := dial(t, addr)
		c.send(t, "NICK me", "USER u 0 * :R")
		c.expectClosed(t)
		r.wait(t, "held")
		shutdown(t, srv)
		r.check(t, map[string]bool{"held": false})
		if want := srv.cfg.SendQ - srv.welcomeLines - 1; room != want {
			t.Fatalf("got Room %d before the welcome, want %d", room, want)
		}
	})

	t.Run("closed before welcome", func(t *testing.T) {
		t.Parallel()
		b := newBackend()
		r := newSentLog()
		ret := make(chan bool, 1)
		b.setup = func(c *Client) error {
			c.Deliver(tmsg("held", r.cb("held")))
			c.Close("bye")
			ret <- c.Deliver(tmsg("after close", r.cb("after close")))
			return nil
		}
		addr, srv := startServer(t, testConfig(), b)
		c := dial(t, addr)
		c.send(t, "NICK me", "USER u 0 * :R")
		if got := c.expectClosed(t); !strings.Contains(got, "bye") {
			t.Fatalf("got ERROR %q, want the reason bye", got)
		}
		if <-ret {
			t.Fatal("Deliver after Close = true, want false")
		}
		r.wait(t, "held", "after close")
		shutdown(t, srv)
		r.check(t, map[string]bool{"held": false, "after close": false})
	})

	t.Run("write error", func(t *testing.T) {
		t.Parallel()
		b := newBackend()
		addr, srv, gates := startGated(t, testConfig(), b)
		_, fc, _ := register(t, addr, b, "me")
		g := <-gates
		r := newSentLog()
		g.fail.Store(true)
		if !fc.c.Deliver(tmsg("lost", r.cb("lost"))) {
			t.Fatal("Deliver(lost) = false, want true")
		}
		if got := fc.waitClosed(t); !strings.HasPrefix(got, "Write error") {
			t.Fatalf("got Closed(%q), want a write error", got)
		}
		if fc.c.Deliver(tmsg("closed", r.cb("closed"))) {
			t.Fatal("Deliver on a closed client = true, want false")
		}
		r.wait(t, "lost", "closed")
		shutdown(t, srv)
		r.check(t, map[string]bool{"lost": false, "closed": false})
	})
}

func shutdown(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A backend that paces a large replay by Room and Sent never overflows the
// SendQ of a client that reads slowly, and every line arrives in order.
func TestDeliverPacedByRoom(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.SendQ, cfg.MOTD = 32, nil
	b := newBackend()
	addr, _ := startWrapped(t, cfg, b, func(nc net.Conn) net.Conn {
		_ = nc.(*net.TCPConn).SetWriteBuffer(4096) // fill the socket early
		return nc
	})
	c, fc, _ := register(t, addr, b, "me")
	_ = c.nc.(*net.TCPConn).SetReadBuffer(4096)

	const n = 1000
	text := strings.Repeat("x", 100)
	var failed, written atomic.Int64
	progress := make(chan struct{}, 1)
	sent := func(ok bool) {
		if ok {
			written.Add(1)
		} else {
			failed.Add(1)
		}
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	waited := make(chan struct{}) // closed when the pacer first found no room
	paced := make(chan error, 1)
	go func() {
		var once sync.Once
		for i := 0; i < n; {
			if fc.c.Room() == 0 {
				once.Do(func() { close(waited) })
				select {
				case <-progress:
				case <-time.After(10 * time.Second):
					paced <- fmt.Errorf("no Sent callback for 10s at delivery %d", i)
					return
				}
				continue
			}
			if !fc.c.Deliver(Delivery{From: "tom", Text: fmt.Sprintf("%d %s", i, text), Sent: sent}) {
				paced <- fmt.Errorf("Deliver(%d) = false", i)
				return
			}
			i++
		}
		paced <- nil
	}()
	select {
	case <-waited: // the client has not read: the queue filled up
	case err := <-paced:
		t.Fatalf("the pacer finished without waiting (err %v); want it to have been held back", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the pacer never had to wait for room")
	}
	for i := range n {
		m := expect(t, c, "PRIVMSG")
		if want := fmt.Sprintf("%d %s", i, text); m.Trailing() != want {
			t.Fatalf("got message %.20q, want %.20q", m.Trailing(), want)
		}
	}
	if err := <-paced; err != nil {
		t.Fatal(err)
	}
	c.sync(t)
	for written.Load()+failed.Load() < n {
		select {
		case <-progress:
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d Sent calls, want %d", written.Load()+failed.Load(), n)
		}
	}
	if failed.Load() != 0 || fc.c.isClosed() {
		t.Fatalf("got %d Sent(false), closed %v; want none and the client connected", failed.Load(), fc.c.isClosed())
	}
}
