//go:build !race

package msim

const raceEnabled = false
