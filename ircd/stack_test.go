package ircd

import (
	"fmt"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/alone"
)

// deepText is the message text on which the fake backend's handler runs
// deep (deepFrames frames of deep), growing the reader's stack.
const (
	deepText   = "go deep"
	deepFrames = 40
)

// deep uses about 150 bytes of stack per frame.
//
//go:noinline
func deep(n int) int {
	var pad [128]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%len(pad)])
}

// goDeep registers n clients, each of which sends a line on which the
// handler runs deep, growing its reader's stack to 8 KiB.
func goDeep(t *testing.T, addr string, b *fakeBackend, n int) []*tclient {
	t.Helper()
	clients := make([]*tclient, n)
	for i := range n {
		c, fc, _ := register(t, addr, b, fmt.Sprintf("n%03d", i))
		c.send(t, "PRIVMSG tom :"+deepText)
		c.sync(t) // the handler has run
		if evs := fc.drain(); len(evs) == 0 || evs[len(evs)-1] != "message PRIVMSG tom "+deepText {
			t.Fatalf("events: got %q, want the message last", evs)
		}
		clients[i] = c
	}
	return clients
}

// TestRestedReaderStack: readers that went deep (their stacks grown to 8
// KiB) and were asked to rest once the collector had seen them idle wait
// on fresh goroutines with the smallest stack, 2 KiB. (The bound leaves
// room for the few other goroutines counted.) Without the hand-over the
// collector leaves them 4 KiB at best. Every client is served after.
func TestRestedReaderStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's frames are larger: stack sizes are a normal build's")
	}
	if !alone.Run(t) {
		return
	}
	b := newBackend()
	cfg := testConfig()
	cfg.MaxConnectionsPerAddr = 200
	addr, srv := startServer(t, cfg, b)
	const n = 190
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, g0 := ms.StackInuse, runtime.NumGoroutine()
	clients := goDeep(t, addr, b, n)
	runtime.GC() // the starting size of a goroutine: what the idle ones use
	srv.mu.Lock()
	for c := range srv.clients {
		c.Rest()
	}
	srv.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	for range 3 { // each collection may halve a stack
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	g := runtime.NumGoroutine() - g0
	if g < n {
		t.Fatalf("goroutines: got %d more, want at least a reader per client (%d)", g, n)
	}
	if per := float64(ms.StackInuse-before) / float64(g); per > 3072 {
		t.Errorf("stack per goroutine once rested: got %.0f bytes, want 2 KiB each (at most 3 KiB on average; 4 KiB without the hand-over)", per)
	}
	for _, c := range clients {
		c.send(t, "PRIVMSG tom :after the rest")
		c.sync(t)
	}
}

// handedOver counts the readers that have handed their wait to a fresh
// goroutine (readers that readLoop started).
func handedOver() int {
	var buf strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	return strings.Count(buf.String(), "created by github.com/msimircd/msimircd/ircd.(*Client).readLoop")
}

// TestReaderRests: a reader that handled a line and then got none for
// ReaderRest hands its wait to a fresh goroutine (started by the reader)
// and still reads; one that gets lines meanwhile keeps reading them all.
func TestReaderRests(t *testing.T) {
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "resting")
	c.send(t, "PRIVMSG tom :one")
	c.sync(t)
	deadline := time.Now().Add(10 * time.Second)
	for handedOver() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reader did not hand over after resting")
		}
		time.Sleep(ReaderRest / 4)
	}
	// Lines faster than the rest: none is lost or cut.
	for i := range 20 {
		c.send(t, fmt.Sprintf("PRIVMSG tom :busy %d", i))
		time.Sleep(ReaderRest / 8)
	}
	c.sync(t)
	var got []string
	for _, e := range fc.drain() {
		if strings.HasPrefix(e, "message PRIVMSG tom ") {
			got = append(got, strings.TrimPrefix(e, "message PRIVMSG tom "))
		}
	}
	want := []string{"one"}
	for i := range 20 {
		want = append(want, fmt.Sprintf("busy %d", i))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages: got %q, want %q", got, want)
	}
}

// TestReaderRestKeepsState: the reader hands its whole state to the
// fresh goroutine, not a new one: a line cut by the rest is completed by
// what comes after it, and the registration deadline is not moved by the
// hand-overs (a client that sends a line a little less often than it
// times out, never registering, is still dropped in time). The subtests
// run one after the other: the first counts the process's hand-overs.
func TestReaderRestKeepsState(t *testing.T) {
	t.Run("a line cut by the rest", func(t *testing.T) {
		b := newBackend()
		addr, _ := startServer(t, testConfig(), b)
		c, fc, _ := register(t, addr, b, "cut")
		c.send(t, "PRIVMSG tom :one")
		c.sync(t)
		before := handedOver()
		if _, err := c.nc.Write([]byte("PRIVMSG tom :across")); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * ReaderRest)
		for handedOver() == before { // the reader rests and hands over
			if time.Now().After(deadline) {
				t.Fatal("the reader did not hand over after resting")
			}
			time.Sleep(ReaderRest / 10)
		}
		c.send(t, " the rest")
		c.sync(t)
		var got []string
		for _, e := range fc.drain() {
			if strings.HasPrefix(e, "message PRIVMSG tom ") {
				got = append(got, strings.TrimPrefix(e, "message PRIVMSG tom "))
			}
		}
		if want := []string{"one", "across the rest"}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("messages: got %q, want %q", got, want)
		}
	})
	t.Run("the registration deadline", func(t *testing.T) {
		cfg := testConfig()
		cfg.RegistrationTimeout = 2*ReaderRest + ReaderRest/2
		addr, _ := startServer(t, cfg, newBackend())
		c := dial(t, addr)
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			// A line every 1.2 rests: each one arms a rest, which then
			// hands over before the next line.
			tick := time.NewTicker(ReaderRest + ReaderRest/5)
			defer tick.Stop()
			for {
				if _, err := c.nc.Write([]byte("NICK stall\r\n")); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		for {
			if time.Since(start) > cfg.RegistrationTimeout+3*ReaderRest {
				t.Fatalf("still connected %v after connecting, registration timeout %v", time.Since(start).Round(time.Millisecond), cfg.RegistrationTimeout)
			}
			m := c.read(t)
			if m.Command == "ERROR" {
				if got := m.Trailing(); got != "Closing link: 127.0.0.1 (Registration timed out)" {
					t.Fatalf("got ERROR %q", got)
				}
				return
			}
		}
	})
}
