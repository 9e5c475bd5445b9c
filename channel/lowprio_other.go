//go:build !linux

package channel

// lowPriority does nothing where threads have no priority of their own
// that msimircd knows how to set.
func lowPriority() error { return nil }
