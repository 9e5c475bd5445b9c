// Returning memory to the operating system after a burst of logins.
//
// A login makes garbage (the login's messages, the contact list as it
// arrived, the first presence of every buddy) several times the size of
// what the account keeps. After many logins at once (the gateway's start,
// every user coming back after a restart or a network cut), the Go runtime
// keeps the pages that garbage took for the heap to grow into again, and an
// idle gateway never does: its resident memory stays about twice its live
// heap. So once a burst is over (no login in progress, none ended for
// releaseQuiet) the bridge asks the runtime to collect and give the free
// pages back, at most once per releaseGap.

package channel

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/msimircd/msimircd/internal/rest"
)

const (
	// releaseLogins is how many logins since the last release make a
	// burst worth releasing after.
	releaseLogins = 32
	// releaseFree is how much memory the process must hold beyond its
	// live heap for a release to be worth its collection.
	releaseFree = 8 << 20
	// releaseGap is the least time between two releases.
	releaseGap = time.Minute
	// releaseQuiet is how long no login may have ended for a burst to be
	// over: a pause in a burst that is still coming is not its end (a
	// release then would be the only one for releaseGap). Some of the
	// logins' sessions may still have their goroutines (sessionLinger)
	// then; their stacks go with the next collection.
	releaseQuiet = 300 * time.Millisecond
)

// memReleaser counts the logins in progress across the bridge and
// releases memory when a burst of them is over. Sessions call begin when a
// login starts and end when its result has been handled (or dropped).
type memReleaser struct {
	clock Clock
	// spare is the memory held beyond the live heap; release gives it
	// back. Tests replace both.
	spare   func() uint64
	release func()

	mu       sync.Mutex
	inflight int
	logins   int // ended since the last release
	last     time.Time
	lastEnd  time.Time // when a login last ended
	pending  bool      // a release is scheduled
}

func newMemReleaser(clock Clock) *memReleaser {
	return &memReleaser{clock: clock, spare: spareMemory, release: releaseMemory}
}

// releaseCollections is how many collections a release runs before the
// one that returns the free pages.
const releaseCollections = 3

// restHandover is how long a release gives the connections' readers,
// asked to rest, to hand their waits to fresh goroutines before the
// collection that returns the free pages (their old stacks included).
const restHandover = 50 * time.Millisecond

// releaseMemory collects, has every connection's reader hand its wait to
// a fresh goroutine, and gives the free pages back. A collection halves,
// at most, each goroutine stack that is mostly unused, and an idle
// gateway runs one only every two minutes: stacks grown during the logins
// would stay grown that long. So the release runs a few collections first,
// each taking the stacks a step down. A waiting reader's stack never goes
// below 4 KiB that way; but a goroutine started after those collections,
// which found the goroutines idle, starts at the smallest size (see
// package rest), so the readers move to fresh ones.
func releaseMemory() {
	for range releaseCollections {
		runtime.GC()
	}
	if rest.All() > 0 {
		time.Sleep(restHandover)
	}
	debug.FreeOSMemory()
}

func (r *memReleaser) begin() {
	r.mu.Lock()
	r.inflight++
	r.mu.Unlock()
}

// end counts a login done; the last of a burst schedules a release.
func (r *memReleaser) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight--
	r.logins++
	r.lastEnd = r.clock.Now()
	if r.inflight > 0 || r.pending || r.logins < releaseLogins {
		return
	}
	r.pending = true
	wait := releaseQuiet
	if !r.last.IsZero() {
		wait = max(wait, releaseGap-r.lastEnd.Sub(r.last))
	}
	r.clock.AfterFunc(wait, r.run)
}

// run releases memory unless another burst has begun (its end schedules
// the release again) or a login ended less than releaseQuiet ago (then it
// waits for the quiet).
func (r *memReleaser) run() {
	r.mu.Lock()
	r.pending = false
	if r.inflight > 0 {
		r.mu.Unlock()
		return
	}
	now := r.clock.Now()
	if wait := releaseQuiet - now.Sub(r.lastEnd); wait > 0 {
		r.pending = true
		r.clock.AfterFunc(wait, r.run)
		r.mu.Unlock()
		return
	}
	r.logins = 0
	r.last = now
	r.mu.Unlock()
	if r.spare() >= releaseFree {
		r.release()
	}
}

// spareMemory is what the Go runtime holds from the OS beyond the live
// heap as of the last collection.
func spareMemory() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0
		}
	}
	held := s[0].Value.Uint64() - s[1].Value.Uint64()
	if live := s[2].Value.Uint64(); held > live {
		return held - live
	}
	return 0
}
