package ircd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	tests := []struct {
		name   string
		raw    string // written as is
		want   []want
		events []string
		closed string // ERROR text when the line closes the connection
	}{
		{"body over 512 bytes", "PRIVMSG ann :" + strings.Repeat("x", 600) + "\r\n", []want{w("417", "me", "Input line was too long")}, nil, ""},
		{"body of exactly 510 bytes", "PRIVMSG ann :" + strings.Repeat("x", 510-13) + "\r\n", nil,
			[]string{"message PRIVMSG ann " + strings.Repeat("x", 510-13)}, ""},
		// message-tags: a client's tag data is at most 4094 bytes, '@' and
		// the space apart; a line with more gets 417 and is dropped.
		{"client tags of 4094 bytes", "@+x=" + strings.Repeat("t", 4094-3) + " PRIVMSG ann :hi\r\n", nil,
			[]string{"message PRIVMSG ann hi tags=+x=" + strings.Repeat("t", 4094-3)}, ""},
		{"client tags over 4094 bytes", "@+x=" + strings.Repeat("t", 4094-2) + " PRIVMSG ann :hi\r\n", []want{w("417", "me", "Input line was too long")}, nil, ""},
		{"tags over 8191 bytes", "@+x=" + strings.Repeat("t", 8190) + " PRIVMSG ann :hi\r\n", []want{w("417", nil...)}, nil, ""},
		{"line over the buffer", strings.Repeat("x", 9000), nil, nil, "Closing link: 127.0.0.1 (Input line was too long)"},
		{"NUL byte", "PRIVMSG ann :a\x00b\r\n", nil, nil, "Closing link: 127.0.0.1 (Malformed line (NUL byte))"},
		{"invalid UTF-8", "PRIVMSG ann :\xff\xfe\r\n", []want{w("FAIL", "PRIVMSG", "INVALID_UTF8", "?")}, nil, ""},
		{"bare CR ends a line", "PING a\rPING b\r\n", []want{w("PONG", testServer, "a"), w("PONG", testServer, "b")}, nil, ""},
		{"LF alone ends a line", "PING a\n", []want{w("PONG", testServer, "a")}, nil, ""},
		{"blank lines", "\r\n\n   \r\n", nil, nil, ""},
		{"prefix only", ":prefix\r\n:prefix \r\n", nil, nil, ""},
		{"tags only", "@a=b\r\n@a=b \r\n@\r\n", nil, nil, ""},
		{"client prefix ignored", ":spoof!x@y PRIVMSG ann :hi\r\n", nil, []string{"message PRIVMSG ann hi"}, ""},
		// Parameters beyond the 14th are one 15th (RFC 2812): every nick
		// ISON is given gets its answer.
		{"parameter flood", "ISON" + strings.Repeat(" tom", 40) + "\r\n", []want{w("303", "me", strings.TrimSpace(strings.Repeat(" tom", 40)))}, nil, ""},
		{"many join targets", "JOIN " + strings.Repeat("#x,", 30) + "#other\r\n", append(slices.Repeat([]want{w("403", "me", "#x", "?")}, 30),
			w("JOIN", "#other"), w("353", nil...), w("366", nil...)), []string{"join #other"}, ""},
		{"lower-case command", "ping :lower\r\n", []want{w("PONG", testServer, "lower")}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, fc, _ := register(t, addr, b, "me")
			_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.w.RawWrite([]byte(tc.raw)); err != nil {
				t.Fatal(err)
			}
			if tc.closed != "" {
				if got := c.expectClosed(t); got != tc.closed {
					t.Fatalf("got ERROR %q, want %q", got, tc.closed)
				}
				fc.waitClosed(t)
				return
			}
			checkMsgs(t, c.sync(t), tc.want)
			if evs := fc.drain(); !slices.Equal(evs, tc.events) {
				t.Fatalf("got events %.80q, want %.80q", evs, tc.events)
			}
		})
	}
}

// A client that never reads must not hold up anyone: delivering to it never
// blocks, it is dropped once its queue is full, and another client keeps
// receiving in the meantime.
func TestSlowClientDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.SendQ = 64
	cfg.MOTD = nil
	b := newBackend()
	addr, _ := startServer(t, cfg, b)
	_, slow, _ := register(t, addr, b, "slow") // never read from again
	fast, fastConn, _ := register(t, addr, b, "fast")

	// Deliver in small batches and let the writer drain each one, so that
	// the queue only overflows once the socket itself is full because the
	// client does not read.
	text := strings.Repeat("spam ", 80)
	start := time.Now()
	sent, refused := 0, false
	for !refused {
		if sent > 200000 {
			t.Fatal("slow client never dropped")
		}
		for range 16 {
			if !slow.c.Deliver(Delivery{From: "tom", Text: text}) {
				refused = true // the queue overflowed: the client is being dropped
				break
			}
			sent++
		}
		drained := time.Now().Add(100 * time.Millisecond)
		for slow.c.queued() > 0 && time.Now().Before(drained) {
			runtime.Gosched()
		}
		if sent%1024 == 0 {
			fastConn.c.Deliver(Delivery{From: "ann", Text: "still here"})
			checkMsg(t, expect(t, fast, "PRIVMSG"), w("PRIVMSG", "fast", "still here"))
		}
	}
	// Closed comes once the socket is closed, after the lingering read of
	// the client's input.
	reason := slow.waitClosed(t)
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("filling the slow client took %v", el)
	}
	if sent < 4*cfg.SendQ {
		t.Fatalf("dropped after %d messages, want the socket to have absorbed more than the queue first", sent)
	}
	t.Logf("slow client dropped after %d messages (%d KiB) in %v", sent, sent*len(text)/1024, time.Since(start))
	if reason != "SendQ exceeded" {
		t.Fatalf("got Closed(%q), want SendQ exceeded", reason)
	}
	fastConn.c.Deliver(Delivery{From: "ann", Text: "after"})
	checkMsg(t, expect(t, fast, "PRIVMSG"), w("PRIVMSG", "fast", "after"))
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	b := newBackend()
	log, _ := testLog()
	srv := NewServer(testConfig(), b, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	addr := ln.Addr().String()
	c1, f1, _ := register(t, addr, b, "one")
	c2, f2, _ := register(t, addr, b, "two")
	pending := dial(t, addr) // not registered yet
	pending.send(t, "NICK three")
	pending.sync(t)

	f1.c.Deliver(Delivery{From: "tom", Text: "queued before shutdown"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	checkMsg(t, expect(t, c1, "PRIVMSG"), w("PRIVMSG", "one", "queued before shutdown"))
	for _, c := range []*tclient{c1, c2, pending} {
		if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Server shutting down)" {
			t.Fatalf("got ERROR %q", got)
		}
	}
	for _, f := range []*fakeConn{f1, f2} {
		if got := f.waitClosed(t); got != "Server shutting down" {
			t.Fatalf("got Closed(%q)", got)
		}
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
	if err := srv.Serve(context.Background(), ln); err != ErrClosed {
		t.Fatalf("Serve after Shutdown returned %v, want ErrClosed", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("listener still accepts after Shutdown")
	}
}

// served is a server with Serve running on listeners of its own, each
// under its context, for the tests of how Serve's context ends things.
type served struct {
	t   *testing.T
	b   *fakeBackend
	srv *Server
	ret chan error // what each Serve returned
}

func newServed(t *testing.T) *served {
	log, _ := testLog()
	b := newBackend()
	return &served{t: t, b: b, srv: NewServer(testConfig(), b, log), ret: make(chan error, 4)}
}

// serve starts Serve(ctx) on a new loopback listener.
func (sv *served) serve(ctx context.Context) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sv.t.Fatal(err)
	}
	go func() { sv.ret <- sv.srv.Serve(ctx, ln) }()
	return ln
}

// returned waits for one Serve to return nil.
func (sv *served) returned() {
	sv.t.Helper()
	if err := <-sv.ret; err != nil {
		sv.t.Fatalf("Serve returned %v, want nil", err)
	}
}

// shutdown shuts the server down.
func (sv *served) shutdown() {
	sv.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sv.srv.Shutdown(ctx); err != nil {
		sv.t.Fatal(err)
	}
}

// expectShutDown checks that c was closed as the server shutting down.
func expectShutDown(t *testing.T, c *tclient) {
	t.Helper()
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Server shutting down)" {
		t.Fatalf("got ERROR %q", got)
	}
}

func TestServeContextCancel(t *testing.T) {
	t.Parallel()
	sv := newServed(t)
	ctx, cancel := context.WithCancel(context.Background())
	ln := sv.serve(ctx)
	c, fc, _ := register(t, ln.Addr().String(), sv.b, "me")
	cancel()
	sv.returned()
	expectShutDown(t, c)
	fc.waitClosed(t)
	sv.shutdown()
}

// TestServeContextOutlivesItsListener: a connection Serve accepted is
// closed when Serve's context ends even if the listener was closed (and
// Serve returned) before.
func TestServeContextOutlivesItsListener(t *testing.T) {
	t.Parallel()
	sv := newServed(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln := sv.serve(ctx)
	c, _, _ := register(t, ln.Addr().String(), sv.b, "me")
	_ = ln.Close()
	sv.returned()
	cancel()
	expectShutDown(t, c)
	sv.shutdown()
}

// TestServeContextCancelClosesItsOwn: with two listeners served under
// different contexts, ending one closes the connections it accepted and
// leaves the other's open.
func TestServeContextCancelClosesItsOwn(t *testing.T) {
	t.Parallel()
	sv := newServed(t)
	ctx1, cancel1 := context.WithCancel(context.Background())
	ln1, ln2 := sv.serve(ctx1), sv.serve(context.Background())
	c1, _, _ := register(t, ln1.Addr().String(), sv.b, "one")
	c2, _, _ := register(t, ln2.Addr().String(), sv.b, "two")
	cancel1()
	sv.returned()
	expectShutDown(t, c1)
	c2.send(t, "PING still")
	if m := expect(t, c2, "PONG"); m.Trailing() != "still" {
		t.Fatalf("got %q, want the PONG", m)
	}
	sv.shutdown()
	sv.returned()
}

func TestHandlerPanicEndsOnlyItsConnection(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	bad, fc, _ := register(t, addr, b, "me")
	good, _, _ := register(t, addr, b, "me")
	bad.send(t, "PRIVMSG ann :PANIC")
	if got := bad.expectClosed(t); got != "Closing link: 127.0.0.1 (Internal error)" {
		t.Fatalf("got ERROR %q", got)
	}
	if got := fc.waitClosed(t); got != "Internal error" {
		t.Fatalf("got Closed(%q)", got)
	}
	good.send(t, "PING alive")
	checkMsg(t, expect(t, good, "PONG"), w("PONG", testServer, "alive"))
	again, _, _ := register(t, addr, b, "me")
	again.send(t, "PING alive")
	expect(t, again, "PONG")
}

func TestCloseFromBackend(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me")
	fc.c.Deliver(Delivery{From: "tom", Text: "last words"})
	fc.c.Close("Account logged in elsewhere")
	fc.c.Close("second close is a no-op")
	checkMsg(t, expect(t, c, "PRIVMSG"), w("PRIVMSG", "me", "last words"))
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Account logged in elsewhere)" {
		t.Fatalf("got ERROR %q", got)
	}
	if got := fc.waitClosed(t); got != "Account logged in elsewhere" {
		t.Fatalf("got Closed(%q)", got)
	}
	select {
	case r := <-fc.closed:
		t.Fatalf("Closed called twice, second with %q", r)
	default:
	}
	// Driving a closed client is harmless.
	fc.c.Deliver(Delivery{From: "tom", Text: "into the void"})
	if err := fc.c.AddUser(User{Nick: "late"}); err != nil {
		t.Fatalf("AddUser after close: %v", err)
	}
}

func TestParseLineRecovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		ok   bool
		cmd  string
	}{
		{"@a=b ", false, ""},
		{"@a=b", false, ""},
		{":p", false, ""},
		{"", false, ""},
		{"privmsg #a :b c", true, "PRIVMSG"},
		{"@+typing=active :n!u@h TAGMSG x", true, "TAGMSG"},
	} {
		m, err := parseLine(tc.line)
		if (err == nil) != tc.ok {
			t.Fatalf("parseLine(%q): got err %v, want ok=%v", tc.line, err, tc.ok)
		}
		if tc.ok && m.Command != tc.cmd {
			t.Fatalf("parseLine(%q): got command %q, want %s", tc.line, m.Command, tc.cmd)
		}
	}
}

func TestListenTLSErrors(t *testing.T) {
	t.Parallel()
	if _, err := ListenTLS("127.0.0.1:0", "/nonexistent/cert.pem", "/nonexistent/key.pem"); err == nil {
		t.Fatal("got nil error for missing key pair")
	}
}

// TestSendQueueLetsBurstGo: the queue's array grows with a burst and is let
// go once written; a small one is kept for reuse.
func TestSendQueueLetsBurstGo(t *testing.T) {
	t.Parallel()
	c, done := fuzzClient(t) // no writer: the test plays it
	defer done()
	c.giveBack(c.take()) // the world's lines
	queue := func(n int) {
		for range n {
			c.send(msg(nil, "PING", "x"))
		}
	}
	queue(1000)
	if got := c.queued(); got != 1000 {
		t.Fatalf("got %d queued, want 1000", got)
	}
	c.giveBack(c.take())
	if c.queued() != 0 || cap(c.q)+cap(c.spare) > keptQueue {
		t.Fatalf("after the burst: got %d queued, arrays of %d and %d, want at most %d slots kept", c.queued(), cap(c.q), cap(c.spare), keptQueue)
	}
	queue(10)
	c.giveBack(c.take())
	if cap(c.q)+cap(c.spare) == 0 || cap(c.q)+cap(c.spare) > keptQueue {
		t.Fatalf("after 10: got arrays of %d and %d, want one of at most %d kept", cap(c.q), cap(c.spare), keptQueue)
	}
	batch := c.take()
	if len(batch) != 0 {
		t.Fatalf("got %d queued, want 0", len(batch))
	}
}

// TestIdleConnectionHasNoWriter: the writer goroutine runs only while
// there are lines to write. Once a client's lines are out it ends; a later
// Deliver starts it again, and Close starts it to send the final ERROR.
func TestIdleConnectionHasNoWriter(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me")
	writing := func() bool {
		fc.c.qmu.Lock()
		defer fc.c.qmu.Unlock()
		return fc.c.writing
	}
	waitIdle := func(when string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for writing() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: got a writer still running 5s after the lines went out, want none", when)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitIdle("after registration")
	for i := range 3 {
		sent := make(chan bool, 1)
		if !fc.c.Deliver(Delivery{From: "tom", Text: fmt.Sprintf("hello %d", i), Sent: func(ok bool) { sent <- ok }}) {
			t.Fatalf("Deliver %d: got false, want true", i)
		}
		m := expect(t, c, "PRIVMSG")
		if got, want := m.Trailing(), fmt.Sprintf("hello %d", i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if ok := <-sent; !ok {
			t.Fatalf("Sent: got false, want true")
		}
		waitIdle(fmt.Sprintf("after delivery %d", i))
	}
	fc.c.Close("bye")
	if got := c.expectClosed(t); !strings.Contains(got, "bye") {
		t.Fatalf("ERROR: got %q, want the reason", got)
	}
	if got := fc.waitClosed(t); got != "bye" {
		t.Fatalf("Closed: got %q, want %q", got, "bye")
	}
}

// TestIdleWriterKeepsNoQueue: once the writer has written everything and
// stopped, the connection holds no queue array; the next line starts it
// again and arrives.
func TestIdleWriterKeepsNoQueue(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me")
	state := func() (writing bool, q, spare []entry) {
		fc.c.qmu.Lock()
		defer fc.c.qmu.Unlock()
		return fc.c.writing, fc.c.q, fc.c.spare
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		writing, q, spare := state()
		if !writing && q == nil && spare == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writing %v, arrays of %d and %d: want no writer and none kept", writing, cap(q), cap(spare))
		}
		time.Sleep(time.Millisecond)
	}
	c.send(t, "PING again")
	if m := expect(t, c, "PONG"); m.Trailing() != "again" {
		t.Fatalf("got %q, want the PONG", m)
	}
}

// The backend's text in a refusal (Connect's error) or a close reason is
// one parameter of one line: a line break in it never starts a line of
// its own.
func TestBackendReasonStaysOneLine(t *testing.T) {
	t.Parallel()
	b := newBackend()
	b.connErr = func(reg Registration) error {
		if reg.Nick == "refused" {
			return errors.New("no\r\nPRIVMSG refused :spoof\x00")
		}
		return nil
	}
	addr, _ := startServer(t, testConfig(), b)

	c := dial(t, addr)
	c.send(t, "NICK refused", "USER u 0 * :R")
	checkMsg(t, expect(t, c, irc.ERR_PASSWDMISMATCH), w(irc.ERR_PASSWDMISMATCH, "refused", "no  PRIVMSG refused :spoof\uFFFD"))
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Access denied: no  PRIVMSG refused :spoof\uFFFD)" {
		t.Fatalf("got ERROR %q", got)
	}

	c, fc, _ := register(t, addr, b, "me")
	fc.c.Close("bye\n:x PRIVMSG me :spoof")
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (bye :x PRIVMSG me :spoof)" {
		t.Fatalf("got ERROR %q", got)
	}
}
