//go:build !linux

package histproc

import "os"

// idle does nothing where msimircd knows no idle CPU priority.
func idle() error { return nil }

// normal does nothing either.
func normal() error { return nil }

// boostSignal is none: there is no priority to raise.
var boostSignal os.Signal
