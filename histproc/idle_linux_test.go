//go:build linux

package histproc

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// requireLeaveIdle skips the test unless this process may leave SCHED_IDLE
// (root, or RLIMIT_NICE 20), which the boost needs. The check runs on a
// thread of its own, which ends with it.
func requireLeaveIdle(t *testing.T) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends here
		if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0); err != nil {
			errc <- err
			return
		}
		errc <- unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
	}()
	if err := <-errc; err != nil {
		t.Skipf("this process may not leave idle CPU priority (%v): run as root, or with ulimit -e 20, to test the boost", err)
	}
}
