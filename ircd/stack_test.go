package ircd

import (
	"fmt"
	"runtime"
	"testing"
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

// TestIdleReaderStack: a registered client's reader that once went deep
// (its stack grown to 8 KiB) and now waits for the next line is left, by
// the collector, with 4 KiB of stack: the frames it waits in are small
// enough for the runtime to shrink the stack. (The bound leaves room for
// the few other goroutines counted.)
func TestIdleReaderStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's frames are larger: stack sizes are a normal build's")
	}
	b := newBackend()
	cfg := testConfig()
	cfg.MaxConnectionsPerAddr = 200
	addr, _ := startServer(t, cfg, b)
	const n = 100
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, g0 := ms.StackInuse, runtime.NumGoroutine()
	for i := range n {
		c, fc, _ := register(t, addr, b, fmt.Sprintf("n%03d", i))
		c.send(t, "PRIVMSG tom :"+deepText)
		c.sync(t) // the handler has run
		if evs := fc.drain(); len(evs) == 0 || evs[len(evs)-1] != "message PRIVMSG tom "+deepText {
			t.Fatalf("events: got %q, want the message last", evs)
		}
	}
	for range 3 { // each collection may halve a stack
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	g := runtime.NumGoroutine() - g0
	if g < n {
		t.Fatalf("goroutines: got %d more, want at least a reader per client (%d)", g, n)
	}
	if per := float64(ms.StackInuse-before) / float64(g); per > 5120 {
		t.Errorf("stack per goroutine once idle: got %.0f bytes, want 4 KiB each (at most 5 KiB on average)", per)
	}
}
