package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/testlog"
	"github.com/msimircd/msimircd/msim"
)

const testWait = 5 * time.Second

func testLog(t testing.TB) *logrus.Entry { return testlog.New(t, logrus.InfoLevel) }

// startServer runs a Server on a loopback port until the test ends.
func startServer(t testing.TB, cfg Config, store Store) (*Server, string) {
	t.Helper()
	srv, err := New(cfg, store, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	return srv, serve(t, srv)
}

// serve runs srv on a loopback port until the test ends and returns its
// address.
func serve(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		sctx, stop := context.WithTimeout(context.Background(), testWait)
		defer stop()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func addAccount(t testing.TB, srv *Server, email, pw, name string) msim.UID {
	t.Helper()
	uid, err := srv.AddAccount(email, pw, name)
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// client is a raw-protocol MSIM client for tests.
type client struct {
	t     testing.TB
	nc    net.Conn
	dec   *msim.Decoder
	nonce []byte
	uid   msim.UID
	key   int
	nick  string
	rid   int
	seen  []*msim.Message // messages expect skipped over
}

// dial connects and reads the login challenge and the server information.
func dial(t testing.TB, addr string) *client {
	t.Helper()
	return dialFrom(t, "", addr)
}

// dialFrom is dial from a local loopback address ("" for any): Linux
// routes all of 127.0.0.0/8 to lo, so 127.0.0.2 is another address.
func dialFrom(t testing.TB, local, addr string) *client {
	t.Helper()
	c := connect(t, local, addr)
	lc := c.expect("lc 1", isType("lc", 1))
	var err error
	if c.nonce, err = lc.Base64("nc"); err != nil || len(c.nonce) != msim.NonceSize {
		t.Fatalf("lc 1 nonce: %v (len %d)", err, len(c.nonce))
	}
	c.expect("server info", isPersistr(msim.PersistServerInfo, -1))
	return c
}

// connect opens a connection from local ("" for any) and reads nothing.
func connect(t testing.TB, local, addr string) *client {
	t.Helper()
	var d net.Dialer
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, dec: msim.NewDecoder(nc), rid: 1}
	c.dec.MaxSize = msim.ClientMaxSize
	return c
}

// login dials and logs in; it fails the test unless the login succeeds.
func login(t testing.TB, addr, email, pw string) *client {
	t.Helper()
	return loginFrom(t, "", addr, email, pw)
}

// loginFrom is login from a local loopback address.
func loginFrom(t testing.TB, local, addr, email, pw string) *client {
	t.Helper()
	c := dialFrom(t, local, addr)
	lc := c.tryLogin(email, pw)
	if !lc.Is("lc") {
		t.Fatalf("login %s: got %v, want lc 2", email, lc)
	}
	return c
}

// tryLogin sends login2 and returns the lc 2 or error answer.
func (c *client) tryLogin(email, pw string) *msim.Message {
	c.t.Helper()
	resp, err := msim.LoginResponse(c.nonce, email, msim.HashPassword(pw), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(msim.NewInt("login2", msim.LoginAlgorithm).Add("username", email).AddBase64("response", resp).
		AddInt("clientver", 673).AddInt("reconn", 0).AddInt("status", 100).AddInt("id", 1))
	m := c.expect("login answer", func(m *msim.Message) bool { return m.Is("error") || isType("lc", 2)(m) })
	if m.Is("lc") {
		c.key, _ = m.Int("sesskey")
		uid, _ := m.Int("userid")
		c.uid = msim.UID(uid)
		c.nick, _ = m.Str("uniquenick")
	}
	return m
}

func (c *client) send(m *msim.Message) {
	c.t.Helper()
	c.write(msim.Encode(m))
}

func (c *client) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(testWait))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) read() (*msim.Message, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(testWait))
	return c.dec.Decode()
}

// expect reads until a message satisfies match, skipping keepalives and
// recording other messages in c.seen.
func (c *client) expect(what string, match func(*msim.Message) bool) *msim.Message {
	c.t.Helper()
	for {
		m, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v (skipped %v)", what, err, c.seen)
		}
		if match(m) {
			return m
		}
		if !m.Is("ka") {
			c.seen = append(c.seen, m)
		}
	}
}

// expectClosed reads until the server closes the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	for {
		m, err := c.read()
		if err == nil {
			c.seen = append(c.seen, m)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v", testWait)
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
			c.t.Fatalf("waiting for close: %v", err)
		}
		return
	}
}

// persist sends a persist request and returns its reply.
func (c *client) persist(cmd int, k msim.DSNLID, body msim.Dict) *msim.Persist {
	c.t.Helper()
	c.rid++
	rid := c.rid
	c.send((&msim.Persist{Cmd: cmd, DSN: k.DSN, LID: k.LID, UID: c.uid, RID: rid, Body: body}).Request(c.key))
	m := c.expect(fmt.Sprintf("persistr rid %d", rid), isPersistr(k, rid))
	p, err := msim.ParsePersist(m)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// sync is a barrier: everything the server queued for c before handling a
// fresh request has been read (into c.seen) when it returns.
func (c *client) sync() {
	c.t.Helper()
	c.persist(msim.CmdGet, msim.PersistOwnIMInfo, nil)
}

// takeSeen returns and clears the skipped messages.
func (c *client) takeSeen() []*msim.Message {
	s := c.seen
	c.seen = nil
	return s
}

func (c *client) status(code msim.Status, text string) {
	c.send(msim.NewInt("status", int(code)).AddInt("sesskey", c.key).Add("statstring", text).Add("locstring", ""))
}

func (c *client) bm(typ int, to msim.UID, msg string) {
	c.send(msim.NewInt("bm", typ).AddInt("sesskey", c.key).AddInt("t", int(to)).AddInt("cv", 673).Add("msg", msg))
}

func (c *client) addBuddy(uid msim.UID) {
	c.send(msim.New("addbuddy", "").AddInt("sesskey", c.key).AddInt("newprofileid", int(uid)).Add("reason", ""))
}

func (c *client) blocklist(idlist string) {
	c.send(msim.New("blocklist", "").AddInt("sesskey", c.key).AddList("idlist", strings.Split(idlist, "|")))
}

func isType(typ string, v int) func(*msim.Message) bool {
	return func(m *msim.Message) bool {
		n, err := m.TypeInt()
		return m.Is(typ) && err == nil && n == v
	}
}

// isPersistr matches a persistr of kind k and (unless rid < 0) that rid.
func isPersistr(k msim.DSNLID, rid int) func(*msim.Message) bool {
	return func(m *msim.Message) bool {
		if !m.Is("persistr") {
			return false
		}
		p, err := msim.ParsePersist(m)
		return err == nil && p.Kind() == k && (rid < 0 || p.RID == rid)
	}
}

// isBM matches a bm of type typ from uid.
func isBM(typ int, from msim.UID) func(*msim.Message) bool {
	return func(m *msim.Message) bool {
		f, err := m.Int("f")
		return isType("bm", typ)(m) && err == nil && msim.UID(f) == from
	}
}

// isPresence matches a bm 100 from uid with status s.
func isPresence(from msim.UID, s msim.Status) func(*msim.Message) bool {
	return func(m *msim.Message) bool {
		if !isBM(msim.BMStatus, from)(m) {
			return false
		}
		l, err := m.List("msg")
		if err != nil {
			return false
		}
		p, err := msim.ParsePresence(l)
		return err == nil && p.Status == s
	}
}

func isError(code int) func(*msim.Message) bool {
	return func(m *msim.Message) bool {
		n, err := m.Int("err")
		return m.Is("error") && err == nil && n == code
	}
}

// none fails if any of msgs matches.
func none(t testing.TB, msgs []*msim.Message, what string, match func(*msim.Message) bool) {
	t.Helper()
	for _, m := range msgs {
		if match(m) {
			t.Errorf("got unexpected %s: %v", what, m)
		}
	}
}
