// Package allocs counts the heap allocations of a piece of code, for tests
// of how much a path allocates; owns nothing.
package allocs

import "runtime"

// Of is how many heap allocations f makes, run once (not warmed up first,
// as testing.AllocsPerRun does). Other goroutines' allocations meanwhile
// count too: tests leave room for a few.
func Of(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}
