package ircd

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/internal/leakcheck"
)

// TestMain checks that no test leaves a goroutine behind. Fuzzing is left
// out: the fuzzing engine's own goroutines are still running when m.Run
// returns, and waiting for them makes the engine time out while stopping.
func TestMain(m *testing.M) { leakcheck.Main(m) }

const testServer = "irc.test"

func testLog() (*logrus.Entry, *logtest.Hook) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l), hook
}

// fakeBackend accepts everyone unless told otherwise and records what each
// connection's handler sees.
type fakeBackend struct {
	setup   func(c *Client) error // builds the world inside Connect
	authErr func(account, password string) error
	connErr func(reg Registration) error // refuses a registration before setup
	whois   func(nick string) []string   // when set, handlers implement AsyncWhoisHandler, answering at once
	// realNames, when set, makes handlers implement RealNameHandler,
	// sending each name on it.
	realNames chan string
	// async, when set, makes handlers implement AsyncWhoisHandler.
	async func(fc *fakeConn, nick string, answer func(lines []string))

	mu    sync.Mutex
	regs  []Registration
	conns map[string]chan *fakeConn // by the client's address
}

type fakeConn struct {
	c       *Client
	reg     Registration
	events  chan string
	closed  chan string
	panicOn string // Message text that makes the handler panic

	mu   sync.Mutex
	last Input // the last Message's
}

// lastInput returns the Input of the last Message.
func (f *fakeConn) lastInput() Input {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func newBackend() *fakeBackend {
	return &fakeBackend{conns: make(map[string]chan *fakeConn), setup: stdWorld}
}

// connOf returns the channel on which the backend hands over the connection
// from addr.
func (b *fakeBackend) connOf(addr string) chan *fakeConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.conns[addr]
	if ch == nil {
		ch = make(chan *fakeConn, 1)
		b.conns[addr] = ch
	}
	return ch
}

// conn waits for the backend connection of test client c.
func (b *fakeBackend) conn(t testing.TB, c *tclient) *fakeConn {
	t.Helper()
	select {
	case fc := <-b.connOf(c.nc.LocalAddr().String()):
		return fc
	case <-time.After(5 * time.Second):
		t.Fatal("backend Connect not called")
		return nil
	}
}

func (b *fakeBackend) Authenticate(_ context.Context, account, password string) error {
	if b.authErr != nil {
		return b.authErr(account, password)
	}
	if password != "secret" {
		return fmt.Errorf("bad password for %s", account)
	}
	return nil
}

func (b *fakeBackend) Connect(c *Client, reg Registration) (Handler, error) {
	b.mu.Lock()
	b.regs = append(b.regs, reg)
	b.mu.Unlock()
	if reg.Pass == "wrong" {
		return nil, fmt.Errorf("invalid password")
	}
	if b.connErr != nil {
		if err := b.connErr(reg); err != nil {
			return nil, err
		}
	}
	if b.setup != nil {
		if err := b.setup(c); err != nil {
			return nil, err
		}
	}
	fc := &fakeConn{c: c, reg: reg, events: make(chan string, 1024), closed: make(chan string, 2), panicOn: "PANIC"}
	b.connOf(reg.Remote.String()) <- fc
	if b.realNames != nil {
		return &realNameConn{fc, b.realNames}, nil
	}
	if b.async != nil {
		return &asyncWhoisConn{fc, b.async}, nil
	}
	if b.whois != nil {
		return &whoisConn{fc, b.whois}, nil
	}
	return fc, nil
}

func (f *fakeConn) Message(in Input) {
	if in.Text == f.panicOn {
		panic("handler panic")
	}
	if in.Text == deepText {
		deep(deepFrames) // a handler that goes deep, as a real backend's may
	}
	f.mu.Lock()
	f.last = in
	f.mu.Unlock()
	ev := fmt.Sprintf("message %s %s %s", in.Command, in.Target, in.Text)
	if len(in.Tags) > 0 {
		ev += " tags=" + in.Tags.String()
	}
	f.events <- ev
}
func (f *fakeConn) Join(ch string)         { f.events <- "join " + ch }
func (f *fakeConn) Part(ch, reason string) { f.events <- "part " + ch + " " + reason }
func (f *fakeConn) Away(text string)       { f.events <- "away " + text }
func (f *fakeConn) Nick(n string)          { f.events <- "nick " + n }
func (f *fakeConn) Closed(reason string)   { f.closed <- reason }

// whoisConn is a handler that supplies WHOIS lines on demand.
type whoisConn struct {
	*fakeConn
	fn func(nick string) []string
}

func (w *whoisConn) WhoisAsync(nick string, answer func([]string)) { answer(w.fn(nick)) }

// asyncWhoisConn is a handler that answers WHOIS when its fn decides.
type asyncWhoisConn struct {
	*fakeConn
	fn func(fc *fakeConn, nick string, answer func(lines []string))
}

func (w *asyncWhoisConn) WhoisAsync(nick string, answer func(lines []string)) {
	w.fn(w.fakeConn, nick, answer)
}

func (f *fakeConn) drain() (evs []string) {
	for {
		select {
		case e := <-f.events:
			evs = append(evs, e)
		default:
			return evs
		}
	}
}

// waitClosed returns the reason given to Closed.
func (f *fakeConn) waitClosed(t *testing.T) string {
	t.Helper()
	select {
	case r := <-f.closed:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("Closed not called")
		return ""
	}
}

// stdWorld: &bitlbee (topic "Welcome") with +tom (away) and ann, the client
// in it; #other without topic; ghost in no channel.
func stdWorld(c *Client) error {
	for _, err := range []error{
		c.CreateChannel("&bitlbee", "Welcome"),
		c.CreateChannel("#other", ""),
		c.AddUser(User{Nick: "tom", User: "tom", Host: "msim", RealName: "Tom", Away: "lunch"}),
		c.AddUser(User{Nick: "ann", User: "ann", Host: "msim", RealName: "Ann"}),
		c.AddUser(User{Nick: "ghost", RealName: "Ghost"}),
	} {
		if err != nil {
			return err
		}
	}
	c.JoinUser("&bitlbee", "tom", true)
	c.JoinUser("&bitlbee", "ann", false)
	c.JoinClient("&bitlbee", time.Time{})
	return nil
}

func testConfig() Config {
	return Config{ServerName: testServer, Network: "TestNet", Version: "v-test", MOTD: []string{"hello"}}
}

// startServer runs a server on a loopback port until the test ends.
func startServer(t testing.TB, cfg Config, b Backend) (string, *Server) {
	t.Helper()
	log, _ := testLog()
	return startWith(t, NewServer(cfg, b, log))
}

// startWith runs srv on a loopback port until the test ends.
func startWith(t testing.TB, srv *Server) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
	return ln.Addr().String(), srv
}

// tclient is the test side of a connection.
type tclient struct {
	nc    net.Conn
	r     *irc.Reader
	w     *irc.Writer
	syncs atomic.Int64
	raw   []string // raw lines read, when keepRaw is set
	keep  bool
}

func dial(t testing.TB, addr string) *tclient {
	t.Helper()
	return dialFrom(t, addr, "")
}

// dialFrom connects from the local IP from ("" = any); the server listens
// on 127.0.0.1, and Linux routes all of 127/8 to the loopback interface.
func dialFrom(t testing.TB, addr, from string) *tclient {
	t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	c := &tclient{nc: nc, r: irc.NewReader(nc), w: irc.NewWriter(nc)}
	c.r.DebugCallback = func(l string) {
		if c.keep {
			c.raw = append(c.raw, l)
		}
	}
	return c
}

func (c *tclient) send(t testing.TB, lines ...string) {
	t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, l := range lines {
		if _, err := c.w.RawWrite([]byte(l + "\r\n")); err != nil {
			t.Fatalf("write %q: %v", l, err)
		}
	}
}

func (c *tclient) read(t testing.TB) *irc.Message {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := c.r.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

// expect reads the next message and fails unless its command is cmd.
func expect(t testing.TB, c *tclient, cmd string) *irc.Message {
	t.Helper()
	m := c.read(t)
	if m.Command != cmd {
		t.Fatalf("got %q, want command %s", m.String(), cmd)
	}
	return m
}

// sync sends a PING and returns everything received before its PONG.
func (c *tclient) sync(t testing.TB) []*irc.Message {
	t.Helper()
	tok := fmt.Sprintf("sync-%d", c.syncs.Add(1))
	c.send(t, "PING "+tok)
	var got []*irc.Message
	for {
		m := c.read(t)
		if m.Command == "PONG" && m.Trailing() == tok {
			return got
		}
		got = append(got, m)
	}
}

// readUntil reads until a message with command cmd and returns all read.
func (c *tclient) readUntil(t testing.TB, cmds ...string) []*irc.Message {
	t.Helper()
	var got []*irc.Message
	for {
		m := c.read(t)
		got = append(got, m)
		for _, cmd := range cmds {
			if m.Command == cmd {
				return got
			}
		}
	}
}

// expectClosed reads until ERROR and then EOF; it returns the ERROR text.
func (c *tclient) expectClosed(t testing.TB) string {
	t.Helper()
	msgs := c.readUntil(t, "ERROR")
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if m, err := c.r.ReadMessage(); err == nil {
		t.Fatalf("got %q after ERROR, want EOF", m)
	}
	return msgs[len(msgs)-1].Trailing()
}

// register connects, registers as nick with caps and returns the client,
// its backend connection and the lines after the MOTD (held world lines).
func register(t testing.TB, addr string, b *fakeBackend, nick string, caps ...string) (*tclient, *fakeConn, []*irc.Message) {
	t.Helper()
	c := dial(t, addr)
	if len(caps) > 0 {
		c.send(t, "CAP LS 302", "CAP REQ :"+strings.Join(caps, " "))
		expect(t, c, "CAP")
		if m := expect(t, c, "CAP"); m.Param(1) != "ACK" {
			t.Fatalf("got %q, want ACK", m)
		}
		c.send(t, "CAP END")
	}
	c.send(t, "NICK "+nick, "USER u 0 * :Real Name")
	c.readUntil(t, irc.RPL_ENDOFMOTD, irc.ERR_NOMOTD)
	fc := b.conn(t, c)
	return c, fc, c.sync(t)
}

// want describes an expected message: command and params, "?" matches any
// param. A nil params slice skips the param check.
type want struct {
	cmd    string
	params []string
}

func w(cmd string, params ...string) want { return want{cmd, params} }

func checkMsgs(t testing.TB, got []*irc.Message, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d messages %v, want %d %v", len(got), msgStrings(got), len(wants), wants)
	}
	for i, wt := range wants {
		checkMsg(t, got[i], wt)
	}
}

func checkMsg(t testing.TB, m *irc.Message, wt want) {
	t.Helper()
	if m.Command != wt.cmd {
		t.Fatalf("got %q, want command %s", m, wt.cmd)
	}
	if wt.params == nil {
		return
	}
	if len(m.Params) != len(wt.params) {
		t.Fatalf("got params %q of %q, want %q", m.Params, m, wt.params)
	}
	for j, p := range wt.params {
		if p != "?" && m.Params[j] != p {
			t.Fatalf("got param %d %q of %q, want %q", j, m.Params[j], m, p)
		}
	}
}

func msgStrings(ms []*irc.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}
