//go:build race

package channel

// raceEnabled: the race detector's instrumentation makes frames larger,
// so stack sizes measured under it say nothing of a normal build's.
const raceEnabled = true
