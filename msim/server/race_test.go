//go:build race

package server

// raceEnabled: under the race detector sync.Pool drops some of what it is
// given, so allocation counts do not hold.
const raceEnabled = true
