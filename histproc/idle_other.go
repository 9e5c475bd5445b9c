//go:build !linux

package histproc

// idle does nothing where msimircd knows no idle CPU priority.
func idle() error { return nil }

// isIdle is true: there is nothing to go back to.
func isIdle() bool { return true }

// raise does nothing either.
func raise(int) error { return nil }

// priorities: there is no priority to raise.
const priorities = false
