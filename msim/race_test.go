//go:build race

package msim

// raceEnabled: under the race detector sync.Pool drops some of what it is
// given, so buffers from a pool are allocated again now and then.
const raceEnabled = true
