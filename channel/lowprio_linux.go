//go:build linux

package channel

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowPriority gives the calling goroutine a thread of its own, for the
// rest of its life, at the lowest CPU priority (nice 19): background work
// on it, such as the history writer's, then yields the CPU to the IM path
// and to the MSIM server whenever they want it. The thread ends with the
// goroutine (LockOSThread without Unlock), so no other work inherits it.
func lowPriority() error {
	runtime.LockOSThread()
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}
