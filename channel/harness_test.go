package channel_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/internal/testlog"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim/server"
)

func testLog(t testing.TB) *logrus.Entry { return testlog.New(t, logrus.InfoLevel) }

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// stack is an MSIM server, a cuttable link to it, the bridge and the ircd.
type stack struct {
	msrv     *server.Server
	mstore   server.Store // the MSIM server's accounts
	msimAddr string       // the MSIM server itself, not through the proxy
	proxy    *proxy
	ircAddr  string
	bridge   *channel.Bridge
}

// stackConfig holds the MSIM server's and ircd's settings of a stack.
type stackConfig struct {
	server server.Config
	ircd   ircd.Config
	// smallProxy gives the proxy's connections small receive buffers, so
	// that a paused proxy soon makes the bridge's MSIM writes wait.
	smallProxy bool
	// quiet logs warnings and errors only (a benchmark's many logins).
	quiet bool
}

// startStack runs the embedded demo network (Tom), the bridge with the demo
// directory, and ircd, all on loopback ports. The bridge reaches the MSIM
// server through a proxy the test can cut.
func startStack(t testing.TB, opts ...func(*channel.Config, *server.Server)) *stack {
	t.Helper()
	return startStackWith(t, stackConfig{server: server.Config{Demo: true}, ircd: testIRCConfig()}, opts...)
}

// testIRCConfig is ircd's configuration in tests: refused passwords are
// slowed by a millisecond, not by seconds.
func testIRCConfig() ircd.Config {
	fast := guard.FailureConfig{Delay: time.Millisecond, MaxDelay: time.Millisecond}
	return ircd.Config{ServerName: "msimircd.test", AuthFailures: fast, AccountFailures: fast}
}

// startStackWith is startStack with the MSIM server's and ircd's settings.
func startStackWith(t testing.TB, sc stackConfig, opts ...func(*channel.Config, *server.Server)) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := testLog(t)
	if sc.quiet {
		log = testlog.New(t, logrus.WarnLevel)
	}
	mstore := server.NewMemStore()
	msrv, err := server.New(sc.server, mstore, log.WithField("part", "msim"))
	if err != nil {
		t.Fatal(err)
	}
	mln := listenLoopback(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = msrv.Serve(ctx, mln) }()
	px := newProxy(t, mln.Addr().String(), sc.smallProxy)
	cfg := channel.Config{
		MSIMAddr:     px.addr(),
		Directory:    &channel.DemoDirectory{CreateAccount: msrv.AddAccount, Exists: func(err error) bool { return errors.Is(err, server.ErrAccountExists) }},
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, QueueLimit: 3,
		DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second,
		Log: log.WithField("part", "bridge"),
	}
	for _, o := range opts {
		o(&cfg, msrv)
	}
	b, err := channel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	isrv := ircd.NewServer(sc.ircd, b, log.WithField("part", "ircd"))
	iln := listenLoopback(t)
	wg.Add(1)
	go func() { defer wg.Done(); _ = isrv.Serve(ctx, iln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = isrv.Shutdown(sctx)
		_ = b.Shutdown(sctx)
		_ = msrv.Shutdown(sctx)
		cancel()
		px.close()
		wg.Wait()
	})
	return &stack{msrv: msrv, mstore: mstore, msimAddr: mln.Addr().String(), proxy: px, ircAddr: iln.Addr().String(), bridge: b}
}

// smallBuffers is a socket option setter for a small buffer of option opt
// (syscall.SO_RCVBUF or SO_SNDBUF).
func smallBuffers(opt int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 4096) })
		return errors.Join(err, serr)
	}
}

// listenSmall listens on loopback with small receive buffers.
func listenSmall(t testing.TB) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: smallBuffers(syscall.SO_RCVBUF)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// proxy forwards TCP connections to target and can cut them all.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool          // refuse new connections
	paused chan struct{} // non-nil: bytes towards the server wait until it is closed
	wg     sync.WaitGroup
}

// pause stops forwarding bytes towards the server (they pile up in the
// client's socket buffers, then in its writer) until resume.
func (p *proxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused == nil {
		p.paused = make(chan struct{})
	}
}

func (p *proxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused != nil {
		close(p.paused)
		p.paused = nil
	}
}

// gate returns the channel to wait on before forwarding towards the server.
func (p *proxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// upstream copies c to u, waiting while the proxy is paused.
func (p *proxy) upstream(u, c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if g := p.gate(); g != nil {
			<-g
		}
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := u.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// setDown makes the proxy refuse (accept and close) new connections.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

func newProxy(t testing.TB, target string, small bool) *proxy {
	ln := listenLoopback(t)
	if small {
		ln = listenSmall(t)
	}
	p := &proxy{t: t, ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.upstream(u, c); u.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, u); c.Close() }()
	}
}

// waitUnread waits until the proxy's side of some connection from a
// client has bytes it has not forwarded (while paused: what the client
// wrote), and fails the test if none come within d. Where that cannot be
// told it returns at once.
func (p *proxy) waitUnread(d time.Duration) {
	p.t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		total, known := 0, false
		for i := 0; i < len(p.conns); i += 2 { // client side, then upstream
			if n := unread(p.conns[i]); n >= 0 {
				total, known = total+n, true
			}
		}
		p.mu.Unlock()
		if !known && len(p.conns) > 0 || total > 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no bytes from a client reached the paused proxy within %v", d)
		}
	}
}

// cut closes every proxied connection (the MSIM link drops).
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	n := len(p.conns) / 2
	p.conns = nil
	return n
}

func (p *proxy) close() {
	p.resume()
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// ircClient is a test IRC client on a raw socket.
type ircClient struct {
	t    testing.TB
	nick string
	conn net.Conn
	r    *irc.Reader
	w    *irc.Writer
	seq  int
	// patience is how long next waits for a message (0: 5 s).
	patience time.Duration
}

// dial connects and registers; caps are requested with CAP REQ.
func dial(t testing.TB, addr, nick, pass string, caps ...string) *ircClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return register(t, nc, nick, pass, caps...)
}

// register registers on an open connection; caps are requested with CAP REQ.
func register(t testing.TB, nc net.Conn, nick, pass string, caps ...string) *ircClient {
	t.Helper()
	return sendRegistration(t, nc, nick, pass, caps...).welcomed()
}

// registration is a connection that has sent its registration.
type registration struct{ c *ircClient }

// sendRegistration sends the registration on an open connection (caps
// requested with CAP REQ and acknowledged), without waiting for the
// welcome.
func sendRegistration(t testing.TB, nc net.Conn, nick, pass string, caps ...string) registration {
	t.Helper()
	c := &ircClient{t: t, nick: nick, conn: nc, r: irc.NewReader(nc), w: irc.NewWriter(nc)}
	t.Cleanup(func() { nc.Close() })
	if len(caps) > 0 {
		c.send("CAP LS 302")
		c.send("CAP REQ :" + strings.Join(caps, " "))
	}
	if pass != "" {
		c.send("PASS " + pass)
	}
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :Test " + nick)
	if len(caps) > 0 {
		c.expect("CAP", func(m *irc.Message) bool { return m.Param(1) == "ACK" })
		c.send("CAP END")
	}
	return registration{c}
}

// welcomed waits for the welcome.
func (r registration) welcomed() *ircClient {
	r.c.t.Helper()
	r.c.expect("001", nil)
	return r.c
}

func (c *ircClient) send(line string) {
	c.t.Helper()
	if err := c.w.Write(line); err != nil {
		c.t.Fatalf("%s: write %q: %v", c.nick, line, err)
	}
}

func (c *ircClient) sendf(f string, args ...any) { c.send(fmt.Sprintf(f, args...)) }

// sendMultiline sends lines to target as one draft/multiline batch.
func (c *ircClient) sendMultiline(target string, lines ...string) {
	c.t.Helper()
	c.send("BATCH +ml draft/multiline " + target)
	for _, l := range lines {
		c.send("@batch=ml PRIVMSG " + target + " :" + l)
	}
	c.send("BATCH -ml")
}

// next reads one message, with a 5 s deadline (or the client's patience).
func (c *ircClient) next() (*irc.Message, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(cmp.Or(c.patience, 5*time.Second)))
	return c.r.ReadMessage()
}

// expect reads until a message with command cmd that pred accepts (nil:
// any), failing the test after 5 s. It returns the match.
func (c *ircClient) expect(cmd string, pred func(*irc.Message) bool) *irc.Message {
	c.t.Helper()
	var seen []string
	for {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v; saw:\n%s", c.nick, cmd, err, strings.Join(seen, "\n"))
		}
		if (cmd == "" || m.Command == cmd) && (pred == nil || pred(m)) {
			return m
		}
		seen = append(seen, m.String())
	}
}

// expectFrom waits for cmd from nick whose trailing parameter contains text.
func (c *ircClient) expectFrom(cmd, nick, text string) *irc.Message {
	c.t.Helper()
	return c.expect(cmd, func(m *irc.Message) bool {
		return m.Prefix != nil && strings.EqualFold(m.Name, nick) && strings.Contains(m.Trailing(), text)
	})
}

// sync sends a PING and returns everything received before its PONG.
func (c *ircClient) sync() []*irc.Message {
	c.t.Helper()
	c.seq++
	tok := fmt.Sprintf("sync%d", c.seq)
	c.send("PING " + tok)
	var got []*irc.Message
	for {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("%s: sync: %v", c.nick, err)
		}
		if m.Command == "PONG" && m.Trailing() == tok {
			return got
		}
		got = append(got, m)
	}
}

// names returns the control channel's NAMES list (with prefixes).
func (c *ircClient) names(ch string) []string {
	c.t.Helper()
	c.send("NAMES " + ch)
	var out []string
	for {
		m := c.expect("", func(m *irc.Message) bool { return m.Command == "353" || m.Command == "366" })
		if m.Command == "366" {
			return out
		}
		out = append(out, strings.Fields(m.Trailing())...)
	}
}

// joinedControl waits until the client is in channel ch.
func (c *ircClient) joinedControl(ch string) {
	c.t.Helper()
	c.expect("JOIN", func(m *irc.Message) bool { return m.Name == c.nick && strings.EqualFold(m.Param(0), ch) })
	c.expect("366", nil)
}

// command types a control command and returns the service's first reply.
func (c *ircClient) command(ch, line, want string) *irc.Message {
	c.t.Helper()
	c.sendf("PRIVMSG %s :%s", ch, line)
	return c.expectFrom("PRIVMSG", "root", want)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// expectAll reads until every predicate has matched a message, in any order.
func (c *ircClient) expectAll(preds ...func(*irc.Message) bool) {
	c.t.Helper()
	done := make([]bool, len(preds))
	left := len(preds)
	var seen []string
	for left > 0 {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("%s: %d expected messages missing: %v; saw:\n%s", c.nick, left, err, strings.Join(seen, "\n"))
		}
		seen = append(seen, m.String())
		for i, p := range preds {
			if !done[i] && p(m) {
				done[i] = true
				left--
				break
			}
		}
	}
}

func isMode(mode, nick string) func(*irc.Message) bool {
	return func(m *irc.Message) bool { return m.Command == "MODE" && m.Param(1) == mode && m.Param(2) == nick }
}

func isAway(nick, text string) func(*irc.Message) bool {
	return func(m *irc.Message) bool {
		return m.Command == "AWAY" && m.Name == nick && (text == "" && len(m.Params) == 0 || m.Trailing() == text && text != "")
	}
}

func isCmd(cmd, nick string) func(*irc.Message) bool {
	return func(m *irc.Message) bool { return m.Command == cmd && m.Name == nick }
}

func saysRoot(text string) func(*irc.Message) bool {
	return func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Name == "root" && strings.Contains(m.Trailing(), text)
	}
}

// wireLen is the length of m on the wire without its tags, CRLF included:
// what the 512-byte limit counts.
func wireLen(m *irc.Message) int {
	return len((&irc.Message{Prefix: m.Prefix, Command: m.Command, Params: m.Params}).String()) + 2
}

// add adds an online user to the buddy list of the control channel ch and
// waits for both the service's answer and the buddy's JOIN, which may come
// in either order.
func (c *ircClient) add(ch, nick string) {
	c.t.Helper()
	c.sendf("PRIVMSG %s :add %s", ch, nick)
	c.expectAll(saysRoot("Added "+nick), isCmd("JOIN", nick))
}

// stored is a barrier for the client's IMs: it messages Tom and waits for
// his answer, which the MSIM server sends only after handling every earlier
// message on the same link (so an IM to an offline buddy has been stored).
func (c *ircClient) stored() {
	c.t.Helper()
	c.seq++
	tok := fmt.Sprintf("barrier %d", c.seq)
	c.send("PRIVMSG tom :" + tok)
	// Tom answers every IM once: a greeting the first time, then an echo.
	c.expect("PRIVMSG", func(m *irc.Message) bool {
		return m.Name == "tom" && (strings.Contains(m.Trailing(), tok) || strings.HasPrefix(m.Trailing(), "Hi!"))
	})
}
