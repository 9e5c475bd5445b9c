//go:build !race

package ircd

const raceEnabled = false
