package ircd

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	return writeSerialCert(t, t.TempDir(), 1, "ircd test")
}

func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := writeCert(t)
	ln, err := ListenTLS("127.0.0.1:0", certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend()
	log, _ := testLog()
	srv := NewServer(testConfig(), b, log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &tclient{nc: nc, r: irc.NewReader(nc), w: irc.NewWriter(nc)}
	c.send(t, "NICK me", "USER u 0 * :R")
	expect(t, c, irc.RPL_WELCOME)
	c.readUntil(t, irc.RPL_ENDOFMOTD)
	c.send(t, "PRIVMSG ann :over tls")
	c.sync(t)
	if evs := b.conn(t, c).drain(); len(evs) != 1 || evs[0] != "message PRIVMSG ann over tls" {
		t.Fatalf("got events %q", evs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Server shutting down)" {
		t.Fatalf("got ERROR %q", got)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
}

// watchedListener hands out its connections, wrapped to report the read
// deadline in effect at each Read.
type watchedListener struct {
	net.Listener
	conns chan *watchedConn
}

func (l *watchedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &watchedConn{Conn: nc, reads: make(chan time.Time, 64)}
	l.conns <- w
	return w, nil
}

type watchedConn struct {
	net.Conn
	mu    sync.Mutex
	rdl   time.Time
	reads chan time.Time // the read deadline of each Read, as it begins
}

func (w *watchedConn) SetDeadline(t time.Time) error {
	w.mu.Lock()
	w.rdl = t
	w.mu.Unlock()
	return w.Conn.SetDeadline(t)
}

func (w *watchedConn) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	w.rdl = t
	w.mu.Unlock()
	return w.Conn.SetReadDeadline(t)
}

func (w *watchedConn) Read(b []byte) (int, error) {
	w.mu.Lock()
	d := w.rdl
	w.mu.Unlock()
	select {
	case w.reads <- d:
	default:
	}
	return w.Conn.Read(b)
}

// CloseWrite lets closeConn and sayGoodbye half-close as on a TCP socket.
func (w *watchedConn) CloseWrite() error { return w.Conn.(*net.TCPConn).CloseWrite() }

// serveWatchedTLS serves srv over TLS on a loopback listener whose
// connections it hands out, until the test ends.
func serveWatchedTLS(t *testing.T, srv *Server) (addr string, conns chan *watchedConn) {
	t.Helper()
	certFile, keyFile := writeCert(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := &watchedListener{Listener: ln, conns: make(chan *watchedConn, 16)}
	tln := tls.NewListener(wl, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), tln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String(), wl.conns
}

// accepted waits for the server's side of the next connection.
func accepted(t *testing.T, conns chan *watchedConn) *watchedConn {
	t.Helper()
	select {
	case w := <-conns:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// nextRead waits for the server's next Read on w and returns its read
// deadline.
func nextRead(t *testing.T, w *watchedConn) time.Time {
	t.Helper()
	select {
	case d := <-w.reads:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not read")
		return time.Time{}
	}
}

// A TLS connection refused over the connection cap gets its ERROR after a
// handshake, and the handshake reads: a client that never sends its
// ClientHello must not hold the refusal (its goroutine and socket, and
// Shutdown, which waits for it) for ever.
func TestTLSRefusalIsBounded(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxConnectionsPerAddr = 1
	log, _ := testLog()
	addr, conns := serveWatchedTLS(t, NewServer(cfg, newBackend(), log))

	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() }) // before Shutdown
	accepted(t, conns)
	silent, err := net.Dial("tcp", addr) // over the cap; sends nothing
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	if d := nextRead(t, accepted(t, conns)); d.IsZero() {
		t.Fatal("got the refused connection's handshake read without a deadline, want one")
	}
}

// Rest asked of every reader (after a burst of logins, say) while a TLS
// client is in its handshake leaves the handshake be: a read deadline
// moved to now would end it with an error the connection keeps, whose
// every later read fails at once.
func TestTLSHandshakeOutlastsRest(t *testing.T) {
	t.Parallel()
	log, _ := testLog()
	srv := NewServer(testConfig(), newBackend(), log)
	addr, conns := serveWatchedTLS(t, srv)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	nextRead(t, accepted(t, conns)) // the handshake waits for the hello
	srv.mu.Lock()
	for c := range srv.clients {
		c.Rest()
	}
	srv.mu.Unlock()

	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake after Rest: %v", err)
	}
	c := &tclient{nc: tc, r: irc.NewReader(tc), w: irc.NewWriter(tc)}
	c.send(t, "NICK me", "USER u 0 * :R")
	expect(t, c, irc.RPL_WELCOME)
}
