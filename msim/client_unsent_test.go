package msim

// Tests of what the client reports about its own IMs when the link goes:
// Unsent (accepted by SendIM, never fully written) and Unconfirmed (written
// shortly before the loss). A gatedConn stands between the client and a
// real loopback socket so a test can hold the writer the way a peer that
// stops reading would; a fakeClock dates the writes.

import (
	"context"
	"errors"
	"net"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim/markup"
)

var errCut = errors.New("test: write cut short")

// gatedConn passes writes through until hold is called; from then on each
// write is shown on writes and waits for a byte budget on release: a budget
// short of the write passes that many bytes and fails it. Close releases a
// held write with net.ErrClosed.
type gatedConn struct {
	net.Conn
	mu      sync.Mutex
	held    bool
	writes  chan []byte
	release chan int
	closed  chan struct{}
	once    sync.Once
}

func (g *gatedConn) hold() {
	g.mu.Lock()
	g.held = true
	g.mu.Unlock()
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if !held {
		return g.Conn.Write(p)
	}
	select {
	case g.writes <- append([]byte(nil), p...):
	case <-g.closed:
		return 0, net.ErrClosed
	}
	select {
	case k := <-g.release:
		if k >= len(p) {
			return g.Conn.Write(p)
		}
		n, _ := g.Conn.Write(p[:k])
		return n, errCut
	case <-g.closed:
		return 0, net.ErrClosed
	}
}

func (g *gatedConn) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.Conn.Close()
}

// gated makes the client dial through a gatedConn, which it returns once
// the client has dialled.
func gated(cfg *ClientConfig) <-chan *gatedConn {
	ch := make(chan *gatedConn, 1)
	cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		g := &gatedConn{Conn: nc, writes: make(chan []byte, 16), release: make(chan int), closed: make(chan struct{})}
		ch <- g
		return g, nil
	}
	return ch
}

// fakeClock is a clock the test steps by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// gatedClient logs in over a gatedConn with a fake clock.
func gatedClient(t *testing.T, mod func(*ClientConfig)) (*Client, *fakeConn, *gatedConn, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	var gch <-chan *gatedConn
	c, fc := loggedIn(t, func(cfg *ClientConfig) {
		gch = gated(cfg)
		cfg.Now = clk.Now
		if mod != nil {
			mod(cfg)
		}
	})
	return c, fc, <-gch, clk
}

func texts(ims []OutgoingIM) []string {
	var out []string
	for _, im := range ims {
		out = append(out, im.Text)
	}
	return out
}

// sendIMs sends each text to 2001 and fails the test if one is refused.
func sendIMs(t *testing.T, c *Client, ts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for _, text := range ts {
		if err := c.SendIM(ctx, 2001, text); err != nil {
			t.Fatalf("SendIM(%q): %v", text, err)
		}
	}
}

// receivedIMs waits for the fake server to receive IMs with these texts.
func receivedIMs(t *testing.T, fc *fakeConn, ts ...string) {
	t.Helper()
	for _, want := range ts {
		m := fc.expect("bm")
		if got := markup.ToPlain(m.StrOr("msg", "")); got != want {
			t.Fatalf("server got IM %q, want %q", got, want)
		}
	}
}

// barrier returns once every IM queued before it was written and stamped.
// The first request's reply proves the IMs' batch was written (the request
// was in it or after it); the second request is queued after that, so it is
// in a later batch, and the writer stamps a batch before it takes the next.
func barrier(t *testing.T, c *Client) {
	t.Helper()
	for range 2 {
		if _, err := c.LookupUser(context.Background(), "bob"); err != nil {
			t.Fatalf("barrier: %v", err)
		}
	}
}

// imMessage is the message SendIM(ctx, 2001, text) writes.
func imMessage(c *Client, text string) *Message {
	return c.bmMessage(BMIM, 2001, markup.FromPlain(text))
}

func checkIMs(t *testing.T, what string, got []OutgoingIM, wantTexts []string, queued, written time.Time) {
	t.Helper()
	if g := texts(got); !reflect.DeepEqual(g, wantTexts) {
		t.Fatalf("%s got %q, want %q", what, g, wantTexts)
	}
	for _, im := range got {
		if im.To != 2001 || !im.Queued.Equal(queued) || !im.Written.Equal(written) {
			t.Errorf("%s: %q got To %v, Queued %v, Written %v; want 2001, %v, %v", what, im.Text, im.To, im.Queued, im.Written, queued, written)
		}
	}
}

// TestClientUnsentIMs: IMs queued while the peer does not read are all
// handed back when the link is cut, in order, each with the text it was
// given, and none is also reported as unconfirmed.
func TestClientUnsentIMs(t *testing.T) {
	t.Parallel()
	c, fc, g, clk := gatedClient(t, nil)
	t0 := clk.Now()
	sendIMs(t, c, "sent1", "sent2")
	receivedIMs(t, fc, "sent1", "sent2")

	g.hold() // the peer stops reading
	var queued []string
	for i := range 10 {
		queued = append(queued, "queued"+strconv.Itoa(i))
		sendIMs(t, c, queued[i])
		if err := c.SendTyping(context.Background(), 2001, true); err != nil { // not an IM: not reported
			t.Fatal(err)
		}
	}
	// A styled IM comes back with the text it was given, not its markup.
	styled := "\x02bold\x02"
	if err := c.SendStyledIM(context.Background(), 2001, styled, []markup.Span{{Text: "bold", Style: markup.Bold}}); err != nil {
		t.Fatal(err)
	}
	queued = append(queued, styled)
	<-g.writes    // the writer is stuck in a write
	fc.nc.Close() // the link is cut
	d := waitDisconnect(t, c)
	if d.Reason != DisconnectNetwork {
		t.Errorf("reason got %v (%v), want network", d.Reason, d.Err)
	}
	checkIMs(t, "Unsent", d.Unsent, queued, t0, time.Time{})
	checkIMs(t, "Unconfirmed", d.Unconfirmed, []string{"sent1", "sent2"}, t0, t0)
	if err := c.SendIM(context.Background(), 2001, "late"); !errors.Is(err, ErrDisconnected) {
		t.Errorf("SendIM after the loss got %v, want ErrDisconnected", err)
	}
}

// TestClientUnsentRace: a sender keeps queueing while the link is cut.
// Exactly the IMs SendIM accepted are handed back, in order; those it
// refused are not.
func TestClientUnsentRace(t *testing.T) {
	t.Parallel()
	c, fc, g, _ := gatedClient(t, nil)
	g.hold()
	accepted := make(chan []string, 1)
	go func() {
		var ok []string
		for i := range 3 * outQueue {
			text := "im" + strconv.Itoa(i)
			if err := c.SendIM(context.Background(), 2001, text); err != nil {
				if !errors.Is(err, ErrDisconnected) {
					t.Errorf("SendIM(%q) got %v, want nil or ErrDisconnected", text, err)
				}
				continue
			}
			ok = append(ok, text)
		}
		accepted <- ok
	}()
	<-g.writes
	fc.nc.Close()
	d := waitDisconnect(t, c)
	want := <-accepted
	if len(want) == 0 || len(want) == 3*outQueue {
		t.Fatalf("%d IMs accepted: want some, not all (the queue is bounded)", len(want))
	}
	if got := texts(d.Unsent); !reflect.DeepEqual(got, want) {
		t.Errorf("Unsent got %q, want the %d accepted %q", got, len(want), want)
	}
	if len(d.Unconfirmed) != 0 {
		t.Errorf("Unconfirmed got %q, want none (nothing was written)", texts(d.Unconfirmed))
	}
}

// fillStuck holds the writer in the write of an IM "first", then fills the
// queue behind it; it returns the queued IMs' texts.
func fillStuck(t *testing.T, c *Client, g *gatedConn) []string {
	t.Helper()
	g.hold()
	sendIMs(t, c, "first")
	<-g.writes // the writer is stuck in first's write
	var queued []string
	for i := range outQueue {
		queued = append(queued, "q"+strconv.Itoa(i))
	}
	sendIMs(t, c, queued...)
	return queued
}

// TestClientQueueFullWaits: with the writer stuck and the queue full, a
// sender waits; once the write goes out it is let in, and every IM is
// written in order.
func TestClientQueueFullWaits(t *testing.T) {
	t.Parallel()
	c, fc, g, _ := gatedClient(t, nil)
	want := fillStuck(t, c, g)
	sent := make(chan error, 1)
	go func() { sent <- c.SendIM(context.Background(), 2001, "last") }()
	for waiting := false; !waiting; { // until the sender waits for room
		c.wmu.Lock()
		waiting = c.out.room != nil
		c.wmu.Unlock()
		select {
		case err := <-sent:
			t.Fatalf("SendIM with the queue full returned %v, want it to wait", err)
		default:
		}
		runtime.Gosched()
	}
	g.release <- 1 << 20 // first goes out; the writer takes the queue
	go func() {          // and the batches after it
		for {
			select {
			case <-g.writes:
				g.release <- 1 << 20
			case <-g.closed:
				return
			}
		}
	}()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatalf("SendIM once there was room got %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("SendIM still waits with room in the queue")
	}
	want = append([]string{"first"}, append(want, "last")...)
	for _, w := range want {
		m := fc.expect("bm")
		if got := m.StrOr("msg", ""); !strings.Contains(got, w) {
			t.Fatalf("IM got %q, want %q (in order)", got, w)
		}
	}
}

// TestClientCloseQueueFull: Close with the writer stuck and the queue full
// gives up on the logout once its grace is over, rather than waiting for
// the stuck write; what was queued is Unsent.
func TestClientCloseQueueFull(t *testing.T) {
	t.Parallel()
	c, _, g, _ := gatedClient(t, func(cfg *ClientConfig) { cfg.closeGrace = 50 * time.Millisecond })
	queued := fillStuck(t, c, g)
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("Close still waits for the stuck write after its grace")
	}
	d := waitDisconnect(t, c)
	if got := texts(d.Unsent); !reflect.DeepEqual(got, append([]string{"first"}, queued...)) {
		t.Errorf("Unsent got %q, want first and the %d queued", got, len(queued))
	}
}

// TestClientPartialWrite: when a write fails part-way through a batch, the
// IMs whose bytes all went out are written (unconfirmed), the others unsent.
func TestClientPartialWrite(t *testing.T) {
	t.Parallel()
	c, fc, g, clk := gatedClient(t, nil)
	t0 := clk.Now()
	g.hold()
	sendIMs(t, c, "alpha")
	if got, want := string(<-g.writes), string(Encode(imMessage(c, "alpha"))); got != want {
		t.Fatalf("first held write got %q, want alpha's IM alone", got)
	}
	sendIMs(t, c, "bravo", "charlie") // queued behind the held write: one batch
	clk.advance(time.Second)
	g.release <- 1 << 20 // alpha goes out
	b := Encode(imMessage(c, "bravo"))
	batch := <-g.writes
	if want := string(b) + string(Encode(imMessage(c, "charlie"))); string(batch) != want {
		t.Fatalf("second write got %q, want bravo and charlie in one batch", batch)
	}
	clk.advance(time.Second)
	g.release <- len(b) + 5 // bravo and a few bytes of charlie
	receivedIMs(t, fc, "alpha", "bravo")
	d := waitDisconnect(t, c)
	if d.Reason != DisconnectNetwork || !errors.Is(d.Err, errCut) {
		t.Errorf("got %v (%v), want network wrapping the write error", d.Reason, d.Err)
	}
	checkIMs(t, "Unsent", d.Unsent, []string{"charlie"}, t0, time.Time{})
	if got := texts(d.Unconfirmed); !reflect.DeepEqual(got, []string{"alpha", "bravo"}) {
		t.Fatalf("Unconfirmed got %q, want alpha, bravo", got)
	}
	if w := d.Unconfirmed[0].Written; !w.Equal(t0.Add(time.Second)) {
		t.Errorf("alpha written at %v, want %v", w, t0.Add(time.Second))
	}
	if w := d.Unconfirmed[1].Written; !w.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("bravo written at %v, want %v", w, t0.Add(2*time.Second))
	}
}

// TestClientUnconfirmedWindow: the IMs written within the window before the
// link went are reported; older ones are not.
func TestClientUnconfirmedWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		window time.Duration
		dead   time.Duration // DeadAfter: a timeout dates the loss back by it
		lose   func(fc *fakeConn)
		// The IMs are written at t0 ("old"), t0+2.5s ("mid") and t0+7s
		// ("new"); the loss is noticed at t0+8s.
		reason DisconnectReason
		want   []string
	}{
		{"peer closes", 0, 0, func(fc *fakeConn) { fc.nc.Close() }, DisconnectNetwork, []string{"new"}},
		{"wide window", 10 * time.Second, 0, func(fc *fakeConn) { fc.nc.Close() }, DisconnectNetwork, []string{"old", "mid", "new"}},
		{"reporting off", -1, 0, func(fc *fakeConn) { fc.nc.Close() }, DisconnectNetwork, nil},
		{"kicked", 0, 0, func(fc *fakeConn) { fc.write(ErrorMessage(6, true, "elsewhere")) }, DisconnectKicked, []string{"new"}},
		// Silent for DeadAfter: the link may have died a second before
		// the loss was noticed, so the window reaches back to t0+2s.
		{"timeout", 0, time.Second, func(fc *fakeConn) {}, DisconnectTimeout, []string{"mid", "new"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, fc, _, clk := gatedClient(t, func(cfg *ClientConfig) {
				cfg.UnconfirmedWindow, cfg.DeadAfter = tc.window, tc.dead
			})
			t0 := clk.Now()
			sendIMs(t, c, "old")
			barrier(t, c)
			clk.advance(2500 * time.Millisecond)
			sendIMs(t, c, "mid")
			barrier(t, c)
			clk.advance(4500 * time.Millisecond)
			sendIMs(t, c, "new")
			barrier(t, c)
			clk.advance(time.Second)
			tc.lose(fc)
			d := waitDisconnect(t, c)
			if d.Reason != tc.reason {
				t.Errorf("reason got %v (%v), want %v", d.Reason, d.Err, tc.reason)
			}
			if got := texts(d.Unconfirmed); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Unconfirmed got %q, want %q", got, tc.want)
			}
			written := map[string]time.Time{"old": t0, "mid": t0.Add(2500 * time.Millisecond), "new": t0.Add(7 * time.Second)}
			for _, im := range d.Unconfirmed {
				if !im.Written.Equal(written[im.Text]) || !im.Queued.Equal(written[im.Text]) {
					t.Errorf("%q got Queued %v, Written %v, want both %v", im.Text, im.Queued, im.Written, written[im.Text])
				}
			}
			if len(d.Unsent) != 0 || d.MoreUnconfirmed {
				t.Errorf("Unsent got %q, MoreUnconfirmed %v; want none, false", texts(d.Unsent), d.MoreUnconfirmed)
			}
		})
	}
}

// TestClientUnconfirmedBounded: only the latest IMs are kept, and the event
// says when some written within the window are missing.
func TestClientUnconfirmedBounded(t *testing.T) {
	t.Parallel()
	c, fc, _, _ := gatedClient(t, nil)
	var all []string
	for i := range recentIMs + 3 {
		all = append(all, "n"+strconv.Itoa(i))
	}
	sendIMs(t, c, all...)
	barrier(t, c)
	fc.nc.Close()
	d := waitDisconnect(t, c)
	if got := texts(d.Unconfirmed); !reflect.DeepEqual(got, all[3:]) || !d.MoreUnconfirmed {
		t.Errorf("Unconfirmed got %d IMs %q, MoreUnconfirmed %v; want the last %d, true", len(got), got, d.MoreUnconfirmed, recentIMs)
	}
}

// TestClientCloseReportsIMs: a Close that flushed everything reports
// nothing; one that gave up on a stuck write hands the queued IMs back.
func TestClientCloseReportsIMs(t *testing.T) {
	t.Parallel()
	t.Run("flushed", func(t *testing.T) {
		t.Parallel()
		c, fc, _, _ := gatedClient(t, nil)
		sendIMs(t, c, "one", "two", "three")
		c.Close()
		receivedIMs(t, fc, "one", "two", "three")
		fc.expect("logout")
		d := waitDisconnect(t, c)
		if d.Reason != DisconnectClosed || len(d.Unsent) != 0 || len(d.Unconfirmed) != 0 || d.MoreUnconfirmed {
			t.Errorf("got %v, Unsent %q, Unconfirmed %q, MoreUnconfirmed %v; want closed with none",
				d.Reason, texts(d.Unsent), texts(d.Unconfirmed), d.MoreUnconfirmed)
		}
	})
	t.Run("stuck", func(t *testing.T) {
		t.Parallel()
		c, fc, g, _ := gatedClient(t, func(cfg *ClientConfig) { cfg.closeGrace = 50 * time.Millisecond })
		sendIMs(t, c, "out")
		receivedIMs(t, fc, "out")
		g.hold()
		sendIMs(t, c, "stuck1", "stuck2")
		c.Close()
		d := waitDisconnect(t, c)
		if d.Reason != DisconnectClosed {
			t.Errorf("reason got %v, want closed", d.Reason)
		}
		if got := texts(d.Unsent); !reflect.DeepEqual(got, []string{"stuck1", "stuck2"}) {
			t.Errorf("Unsent got %q, want stuck1, stuck2", got)
		}
		if got := texts(d.Unconfirmed); !reflect.DeepEqual(got, []string{"out"}) {
			t.Errorf("Unconfirmed got %q, want out (the logout never went)", got)
		}
	})
}
