package msim

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/alone"
)

// TestRestedClientReaderStack: an idle client that has read a login's
// and an IM's worth of messages costs one goroutine once its reader has
// rested (Notify set, as the bridge sets it: no pump), on a stack no
// larger than a fresh goroutine's first: the frames from readLoop down to
// the socket's wait fit in it. A second deferred call in read, or
// decoding the next message ahead of the wait, each left every idle
// reader's stack a few times larger; the gateway's memory per idle
// account is mostly such stacks.
func TestRestedClientReaderStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's frames are larger: stack sizes are a normal build's")
	}
	if !alone.Run(t) {
		return
	}
	// A goroutine's stack freed goes to its processor's cache, which a
	// collection does not empty and which counts as in use: two
	// processors, as on the development machine, bound what that adds.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	f := newFake(t)
	const n = 300
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, g0 := ms.StackInuse, runtime.NumGoroutine()
	clients := make([]*Client, n)
	conns := make([]*fakeConn, n)
	for i := range n {
		cfg := testConfig(t, f.addr())
		cfg.Log = nil // the test's log would hold every line
		cfg.Notify = func() {}
		cfg.closeGrace = time.Millisecond // no fake serves a logout
		ch := dialAsync(cfg)
		fc := f.accept()
		fc.login("alice")
		c, err := waitDial(t, ch)
		if err != nil {
			t.Fatalf("client %d: Dial: %v", i, err)
		}
		t.Cleanup(func() { fc.nc.Close() }) // before the client's Close (waitDial's)
		// The fake's serving goroutine ends (its read times out) and
		// leaves the connection open: only the client's goroutines stay.
		// (serve clears the deadline before each message: set it again
		// until serve has ended.)
		for ended := false; !ended; {
			_ = fc.nc.SetReadDeadline(time.Now())
			select {
			case <-fc.eof:
				ended = true
			case <-time.After(time.Millisecond):
			}
		}
		// Messages the reader decodes and queues: presence and IMs, the
		// deepest of its paths.
		fc.write(presenceMsg(2002, StatusOnline, fmt.Sprintf("here %d", i)))
		for j := range 3 {
			fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", fmt.Sprintf("<p>im %d of %d</p>", j, i)))
		}
		clients[i], conns[i] = c, fc
	}
	// Every client's IMs read and taken: its reader waits again.
	for i, c := range clients {
		var evs []Event
		deadline := time.Now().Add(waitLimit)
		for ims := 0; ims < 3; {
			evs = c.TakeEvents(evs[:0])
			for _, ev := range evs {
				if _, ok := ev.(IMEvent); ok {
					ims++
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("client %d: got %d IMs, want 3", i, ims)
			}
			time.Sleep(time.Millisecond)
		}
	}
	runtime.GC() // the starting size of a goroutine: what the idle ones use
	for _, c := range clients {
		c.Rest()
	}
	time.Sleep(100 * time.Millisecond)
	for range 3 { // each collection may halve a stack
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	g := runtime.NumGoroutine() - g0
	if g < n || g > n+5 {
		t.Errorf("goroutines: got %d more for %d idle clients, want one each (the reader)", g, n)
	}
	per := float64(ms.StackInuse-before) / float64(n)
	t.Logf("%d idle clients: %d goroutines more, stack in use %.0f bytes per client", n, g, per)
	if per > 3072 {
		t.Errorf("stack in use per idle client: got %.0f bytes, want its reader's 2 KiB (at most 3 KiB on average)", per)
	}
	for i, fc := range conns { // still served
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", "after the rest"))
		deadline := time.Now().Add(waitLimit)
		for got := false; !got; {
			for _, ev := range clients[i].TakeEvents(nil) {
				if im, ok := ev.(IMEvent); ok && im.Text == "after the rest" {
					got = true
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("client %d: the IM after the rest did not come", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// No fake serves a logout: the server's end closes first, and each
	// client ends on it.
	for i, fc := range conns {
		fc.nc.Close()
		clients[i].Close()
	}
}
