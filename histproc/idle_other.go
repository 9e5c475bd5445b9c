//go:build !linux

package histproc

// idle does nothing where msimircd knows no idle CPU priority.
func idle() error { return nil }
