// Package allocs counts the heap allocations of a piece of code, and the
// bytes they take, for tests of how much a path allocates; owns nothing.
package allocs

import "runtime"

// Of is how many heap allocations f makes, run once (not warmed up first,
// as testing.AllocsPerRun does). Other goroutines' allocations meanwhile
// count too: tests leave room for a few, or use Least.
func Of(f func()) uint64 { n, _ := measure(f); return n }

// Bytes is how many bytes f's heap allocations take, run once, as Of.
func Bytes(f func()) uint64 { _, b := measure(f); return b }

// measure runs f once and returns its heap allocations and their bytes.
func measure(f func()) (allocs, bytes uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc
}

// Least is the fewest heap allocations of tries runs of the code that
// prepare returns, each prepared afresh (prepare's own allocations do not
// count). The code's allocations are the same in every run; another
// goroutine's (the runtime's, the test framework's) fall in some runs
// only, so the least is the code's own, for tests that want an exact count.
func Least(tries int, prepare func() func()) uint64 { return least(tries, prepare, Of) }

// LeastBytes is Least for the bytes allocated.
func LeastBytes(tries int, prepare func() func()) uint64 {
	return least(tries, prepare, Bytes)
}

func least(tries int, prepare func() func(), count func(func()) uint64) uint64 {
	least := ^uint64(0)
	for range max(tries, 1) {
		least = min(least, count(prepare()))
		if least == 0 {
			break
		}
	}
	return least
}
