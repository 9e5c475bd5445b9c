package channel

import (
	"runtime"
	"sync"
	"testing"

	"github.com/msimircd/msimircd/internal/fakeclock"
	"github.com/msimircd/msimircd/internal/rest"
)

// TestMemReleaserAfterABurst: memory is given back once a burst of logins
// is over (none in progress, none ended for releaseQuiet), not while one
// is, not in a short pause of one, not after a few logins, not when little
// is spare, and at most once per releaseGap.
func TestMemReleaserAfterABurst(t *testing.T) {
	clock := fakeclock.New()
	r := newMemReleaser(clock)
	spare, released := uint64(100<<20), 0
	r.spare = func() uint64 { return spare }
	r.release = func() { released++ }
	burst := func(n int) {
		for range n {
			r.begin()
		}
		for range n {
			r.end()
		}
	}
	check := func(step string, want int) {
		t.Helper()
		clock.Advance(releaseQuiet)
		if released != want {
			t.Fatalf("%s: got %d releases, want %d", step, released, want)
		}
	}

	burst(releaseLogins - 1)
	check("a few logins", 0)

	r.begin()
	for range releaseLogins {
		r.begin()
		r.end()
	}
	check("logins while one is still in progress", 0)
	r.end()
	check("the burst's last login", 1)

	burst(releaseLogins)
	check("the next burst, within the gap", 1)
	clock.Advance(releaseGap)
	check("the next burst, once the gap is over", 2)

	spare = releaseFree - 1
	clock.Advance(releaseGap)
	burst(releaseLogins)
	check("little spare memory", 2)

	// A burst that begins before the scheduled release: its end schedules it.
	spare = releaseFree
	clock.Advance(releaseGap)
	burst(releaseLogins)
	r.begin()
	clock.Advance(releaseGap)
	check("a release due while logins are in progress", 2)
	r.end()
	check("after that burst", 3)

	// A pause shorter than releaseQuiet is not a burst's end.
	clock.Advance(releaseGap)
	burst(releaseLogins)
	clock.Advance(releaseQuiet / 2)
	burst(1)
	clock.Advance(releaseQuiet / 2)
	if released != 3 {
		t.Fatalf("in a pause of a burst: got %d releases, want 3", released)
	}
	check("once no login has ended for releaseQuiet", 4)
	if got := clock.Pending(); len(got) != 0 {
		t.Errorf("timers left: %v, want none", got)
	}
}

// TestLoginsCountedForRelease: a session counts each login from its start
// until its result is handled, and one it will never handle when it ends.
func TestLoginsCountedForRelease(t *testing.T) {
	r := newRig(t, nil)
	rel := r.s.b.rel
	counts := func() (int, int) {
		rel.mu.Lock()
		defer rel.mu.Unlock()
		return rel.inflight, rel.logins
	}
	r.failDial()
	r.s.start()
	if in, done := counts(); in != 1 || done != 0 {
		t.Fatalf("dialing: got %d in progress, %d done; want 1, 0", in, done)
	}
	r.stepUntil("the failed login handled", func() bool { return r.a.state == linkWaiting })
	if in, done := counts(); in != 0 || done != 1 {
		t.Fatalf("after the result: got %d in progress, %d done; want 0, 1", in, done)
	}
	r.failDial()
	r.s.disconnect(r.a, "Disconnected.")
	r.s.connect(r.a)
	r.s.shutdown()
	if in, done := counts(); in != 0 || done != 2 {
		t.Fatalf("after the session ended: got %d in progress, %d done; want 0, 2", in, done)
	}
}

// growStack uses about 200 bytes of stack per level.
//
//go:noinline
func growStack(n int) byte {
	var pad [160]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return growStack(n-1) + pad[n%len(pad)]
}

// TestReleaseShrinksGrownStacks: goroutines whose stacks grew during a
// burst (to 64 KiB here) and that now wait keep, after a release, an
// eighth of what they grew at most: the release collects often enough for
// the stacks to shrink step by step (64 → 32 → 16 → 8 → 4 KiB), not once
// or twice by half.
func TestReleaseShrinksGrownStacks(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's frames are larger: stack sizes are a normal build's")
	}
	const n = 64
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.StackInuse
	ready, stop := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			growStack(200) // about 40 KiB: the stack grows to 64 KiB
			ready <- struct{}{}
			<-stop
		})
	}
	for range n {
		<-ready
	}
	defer func() { close(stop); wg.Wait() }()
	runtime.ReadMemStats(&ms)
	grown := ms.StackInuse - base
	if grown < n*32<<10 {
		t.Fatalf("stacks grew by %d bytes, want at least %d", grown, n*32<<10)
	}
	releaseMemory()
	runtime.ReadMemStats(&ms)
	if left := int64(ms.StackInuse) - int64(base); left > int64(grown/8) {
		t.Errorf("after a release the stacks keep %d of the %d bytes they grew, want at most an eighth", left, grown)
	}
}

// restCounter is a connection reader that counts the calls to rest.
type restCounter struct {
	mu sync.Mutex
	n  int
}

func (r *restCounter) Rest() {
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
}

// TestReleaseRestsReaders: a release asks every connection's reader to
// hand its wait to a fresh goroutine (see package rest).
func TestReleaseRestsReaders(t *testing.T) {
	r := &restCounter{}
	rest.Add(r)
	defer rest.Remove(r)
	releaseMemory()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n != 1 {
		t.Errorf("Rest calls: got %d, want 1", r.n)
	}
}
