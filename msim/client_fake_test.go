package msim

// A tiny scripted MSIM server for the client's unit tests: it speaks raw
// messages over loopback, answers persist requests from a table the test can
// override, records everything the client sends, and lets the test inject
// any message (or garbage) at any time.

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/internal/testlog"
)

const (
	fakeEmail    = "alice@example.com"
	fakePassword = "Secret-Pass" // 11 characters: exercises the truncation
	fakeUID      = UID(1001)
	fakeSessKey  = 424242
	waitLimit    = 5 * time.Second
)

// responder answers one persist request; nil means no reply.
type responder func(fc *fakeConn, p *Persist) Dict

type fakeServer struct {
	t     *testing.T
	ln    net.Listener
	conns chan *fakeConn
}

func newFake(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{t: t, ln: ln, conns: make(chan *fakeConn, 4)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns <- newFakeConn(t, nc)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return f
}

func (f *fakeServer) addr() string { return f.ln.Addr().String() }

func (f *fakeServer) accept() *fakeConn {
	f.t.Helper()
	select {
	case fc := <-f.conns:
		return fc
	case <-time.After(waitLimit):
		f.t.Fatal("no connection from the client")
		return nil
	}
}

type fakeConn struct {
	t    *testing.T
	nc   net.Conn
	dec  *Decoder
	wmu  sync.Mutex
	got  chan *Message // everything read by serve
	eof  chan struct{} // closed when serve's read fails
	mu   sync.Mutex
	resp map[DSNLID]responder
}

func newFakeConn(t *testing.T, nc net.Conn) *fakeConn {
	fc := &fakeConn{t: t, nc: nc, dec: NewDecoder(nc), got: make(chan *Message, 1<<14), eof: make(chan struct{})}
	fc.resp = defaultResponders()
	t.Cleanup(func() { nc.Close() })
	return fc
}

func (fc *fakeConn) write(m *Message) { fc.writeRaw(string(Encode(m))) }

func (fc *fakeConn) writeRaw(s string) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = fc.nc.SetWriteDeadline(time.Now().Add(waitLimit))
	_, _ = io.WriteString(fc.nc, s) // a closed client shows up in the test's assertions
}

// hangUp ends the server's side of the connection after what it wrote:
// it half-closes, so the client reads all of it and then the end of the
// stream, and serve goes on reading (its answers fail) until the client
// closes too. A full close with the client's messages unread would make
// the kernel reset the connection, and the reset discards whatever the
// client had not read yet.
func (fc *fakeConn) hangUp() {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if cw, ok := fc.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	fc.nc.Close()
}

// read reads one message synchronously (before serve runs).
func (fc *fakeConn) read() *Message {
	fc.t.Helper()
	_ = fc.nc.SetReadDeadline(time.Now().Add(waitLimit))
	m, err := fc.dec.Decode()
	if err != nil {
		fc.t.Fatalf("fake server read: %v", err)
	}
	return m
}

// challenge sends server info and the login challenge; it returns the nonce.
func (fc *fakeConn) challenge() []byte {
	nonce := make([]byte, NonceSize)
	for i := range nonce {
		nonce[i] = byte(21*i + 44) // the spec's test nonce: its base64 has '/'
	}
	info := &Persist{Cmd: CmdGet | CmdReply, DSN: 101, LID: 20, RID: 1,
		Body: Dict{{"AdUnitRefreshInterval", "10"}, {"MaxContacts", "1000"}}}
	fc.write(info.Reply())
	fc.write(NewInt("lc", 1).AddBase64("nc", nonce).AddInt("id", 1))
	return nonce
}

// login runs the handshake up to lc 2 with the given uniquenick, then starts
// serving persist requests.
// An empty uniquenick leaves the field out of lc 2.
func (fc *fakeConn) login(uniquenick string) {
	fc.t.Helper()
	nonce := fc.challenge()
	m := fc.read()
	if !m.Is("login2") {
		fc.t.Fatalf("got %s, want login2", m)
	}
	resp, err := m.Base64("response")
	if err != nil {
		fc.t.Fatal(err)
	}
	if ok, _ := VerifyLogin(nonce, HashPassword(fakePassword), fakeEmail, resp); !ok {
		fc.t.Fatalf("login2 response does not verify")
	}
	lc := NewInt("lc", 2).AddInt("sesskey", fakeSessKey).AddInt("proof", int(fakeUID)).
		AddInt("userid", int(fakeUID)).AddInt("profileid", int(fakeUID))
	if uniquenick != "" {
		lc.Add("uniquenick", uniquenick)
	}
	fc.write(lc.AddInt("id", 1))
	go fc.serve()
}

// override replaces the responder for a kind of persist request.
func (fc *fakeConn) override(k DSNLID, r responder) {
	fc.mu.Lock()
	fc.resp[k] = r
	fc.mu.Unlock()
}

func (fc *fakeConn) serve() {
	defer close(fc.eof)
	for {
		_ = fc.nc.SetReadDeadline(time.Time{})
		m, err := fc.dec.Decode()
		if err != nil {
			return
		}
		fc.got <- m
		if !m.Is("persist") {
			continue
		}
		p, err := ParsePersist(m)
		if err != nil {
			fc.t.Errorf("fake server: bad persist %s: %v", m, err)
			continue
		}
		fc.mu.Lock()
		r := fc.resp[p.Kind()]
		fc.mu.Unlock()
		if r == nil {
			continue
		}
		if body := r(fc, p); body != nil {
			fc.reply(p, p.Cmd|CmdReply, body)
		}
	}
}

func (fc *fakeConn) reply(p *Persist, cmd int, body Dict) {
	r := &Persist{Cmd: cmd, DSN: p.DSN, LID: p.LID, UID: p.UID, RID: p.RID, Body: body}
	fc.write(r.Reply())
}

// expect returns the next message the client sent that is of type typ
// (skipping others, which are returned in skipped order by the caller's
// later calls only if they match).
func (fc *fakeConn) expect(typ string) *Message {
	fc.t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-fc.got:
			if m.Is(typ) {
				return m
			}
		case <-deadline:
			fc.t.Fatalf("client sent no %s", typ)
			return nil
		}
	}
}

// next returns the next message the client sent, whatever it is.
func (fc *fakeConn) next() *Message {
	fc.t.Helper()
	select {
	case m := <-fc.got:
		return m
	case <-time.After(waitLimit):
		fc.t.Fatal("client sent nothing")
		return nil
	}
}

// expectPersist returns the next persist request of kind k.
func (fc *fakeConn) expectPersist(k DSNLID) *Persist {
	fc.t.Helper()
	for {
		m := fc.expect("persist")
		p, err := ParsePersist(m)
		if err != nil {
			fc.t.Fatal(err)
		}
		if p.Kind() == k {
			if got, _ := m.Int("sesskey"); got != fakeSessKey {
				fc.t.Errorf("persist %v: sesskey got %d, want %d", k, got, fakeSessKey)
			}
			return p
		}
	}
}

// waitEOF waits until the client has closed the connection.
func (fc *fakeConn) waitEOF() {
	fc.t.Helper()
	select {
	case <-fc.eof:
	case <-time.After(waitLimit):
		fc.t.Fatal("client did not close the connection")
	}
}

func presenceMsg(from UID, s Status, text string) *Message {
	return NewInt("bm", BMStatus).AddInt("f", int(from)).AddList("msg", Presence{Status: s, Text: text}.List())
}

// defaultResponders is the fake account: alice (1001) lists bob (2001, no
// user name in the list), carol (2002) and a blocked 2003.
func defaultResponders() map[DSNLID]responder {
	profiles := map[string]Dict{
		"2001": {{"UserID", "2001"}, {"UserName", "bob"}, {"DisplayName", "Bob"}, {"ImageURL", "http://x/b.png"}},
		"2002": {{"UserID", "2002"}, {"UserName", "carol"}, {"DisplayName", "Carol"}},
		"2004": {{"UserID", "2004"}, {"UserName", "dave"}, {"DisplayName", "Dave"}, {"Age", "30"}},
	}
	return map[DSNLID]responder{
		PersistOwnProfile: func(_ *fakeConn, p *Persist) Dict {
			return Dict{{"UserID", "1001"}, {"UserName", "alice"}, {"DisplayName", "Alice"},
				{"Location", "Providence"}, {"LastLogin", "128956033800000000"}}
		},
		PersistOwnIMInfo: func(_ *fakeConn, p *Persist) Dict {
			return Dict{{"UserID", "1001"}, {"ShowOnlyToList", "True"}, {"PrivacyMode", "1"}}
		},
		PersistContactList: func(fc *fakeConn, p *Persist) Dict {
			fc.write(presenceMsg(2001, StatusAway, "lunch")) // before the list: must not be lost
			return Dict{
				{"ContactID", "2001"}, {"GroupName", "Friends"}, {"Position", "1000"}, {"Visibility", "1"},
				{"ContactID", "2002"}, {"GroupName", ""}, {"Visibility", "1"}, {"UserName", "carol"}, {"DisplayName", "Carol"},
				{"ContactID", "2003"}, {"Visibility", "2"}, {"UserName", "spammer"},
			}
		},
		PersistGroupList: func(_ *fakeConn, p *Persist) Dict {
			return Dict{{"GroupID", "1"}, {"GroupName", "Friends"}, {"Position", "1"},
				{"GroupID", "2"}, {"GroupName", "IM Friends"}, {"Position", "2"}}
		},
		PersistProfile: func(_ *fakeConn, p *Persist) Dict {
			if d, ok := profiles[p.Body.Str("UserID")]; ok {
				return d
			}
			return Dict{}
		},
		PersistLookup: func(_ *fakeConn, p *Persist) Dict {
			if p.Body.Str("UserName") == "bob" || p.Body.Str("Email") == "bob@example.com" {
				return profiles["2001"]
			}
			return p.Body // unknown: the query echoed, no UserID
		},
		PersistContactInfo: func(_ *fakeConn, p *Persist) Dict {
			if p.Body.Str("ContactID") == "2002" {
				return Dict{{"ContactID", "2002"}, {"GroupName", "Work"}, {"Visibility", "1"}, {"NickName", "cc"}}
			}
			return Dict{}
		},
		PersistSetContact:    func(_ *fakeConn, p *Persist) Dict { return p.Body },
		PersistDeleteContact: func(_ *fakeConn, p *Persist) Dict { return p.Body },
		PersistAlerts: func(_ *fakeConn, p *Persist) Dict {
			return Dict{{"Mail", "On"}, {"FriendRequest", "On"}, {"BlogComment", "Off"}}
		},
	}
}

// testLog sends the client's log, protocol traces included, to the test.
func testLog(t *testing.T) *logrus.Entry { return testlog.New(t, logrus.DebugLevel) }

func testConfig(t *testing.T, addr string) ClientConfig {
	return ClientConfig{Addr: addr, Email: fakeEmail, Password: fakePassword, Log: testLog(t),
		DialTimeout: waitLimit, RequestTimeout: waitLimit}
}

type dialResult struct {
	c   *Client
	err error
}

func dialAsync(cfg ClientConfig) <-chan dialResult {
	ch := make(chan dialResult, 1)
	go func() {
		c, err := Dial(context.Background(), cfg)
		ch <- dialResult{c, err}
	}()
	return ch
}

func waitDial(t *testing.T, ch <-chan dialResult) (*Client, error) {
	t.Helper()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
		return r.c, r.err
	case <-time.After(2 * waitLimit):
		t.Fatal("Dial did not return")
		return nil, nil
	}
}

// loggedIn dials the fake and completes a normal login.
func loggedIn(t *testing.T, cfg func(*ClientConfig)) (*Client, *fakeConn) {
	t.Helper()
	f := newFake(t)
	c2 := testConfig(t, f.addr())
	if cfg != nil {
		cfg(&c2)
	}
	ch := dialAsync(c2)
	fc := f.accept()
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c, fc
}

// nextEvent returns the next event, failing after waitLimit.
func nextEvent(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatal("events channel closed")
		}
		return ev
	case <-time.After(waitLimit):
		t.Fatal("no event")
		return nil
	}
}

// waitDisconnect skips events up to the DisconnectedEvent and checks that
// the channel is then closed.
func waitDisconnect(t *testing.T, c *Client) DisconnectedEvent {
	t.Helper()
	for {
		if d, ok := nextEvent(t, c).(DisconnectedEvent); ok {
			select {
			case ev, ok := <-c.Events():
				if ok {
					t.Fatalf("event %#v after DisconnectedEvent", ev)
				}
			case <-time.After(waitLimit):
				t.Fatal("events channel not closed after DisconnectedEvent")
			}
			return d
		}
	}
}

// TestLogFields: what the client logs once logged in names its account and
// uid, though it keeps no log entry of its own.
func TestLogFields(t *testing.T) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	c, fc := loggedIn(t, func(cfg *ClientConfig) {
		cfg.Log = logrus.NewEntry(l).WithField("user", "alice")
		cfg.closeGrace = time.Millisecond
	})
	fc.writeRaw(`\strange\1\final\`)
	deadline := time.Now().Add(waitLimit)
	for {
		for _, e := range hook.AllEntries() {
			if e.Message != "msim: ignoring message" {
				continue
			}
			if e.Data["account"] != fakeEmail || e.Data["uid"] != c.uid || e.Data["user"] != "alice" {
				t.Errorf("fields %v, want the account, the uid and the caller's", e.Data)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the ignored message was not logged")
		}
		time.Sleep(time.Millisecond)
	}
}
