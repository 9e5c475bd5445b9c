//go:build linux

package histproc

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// idle puts every thread of the process under SCHED_IDLE: the kernel then
// runs them only on a core nothing else wants, and any other task that
// wakes takes the core at once. Threads made later inherit the policy of
// the thread that makes them, so two passes over /proc/self/task (the
// second catching a thread made during the first) cover the process.
func idle() error { return setPolicy(unix.SCHED_IDLE) }

// normal puts every thread of the process back under the kernel's normal
// policy (SCHED_OTHER, nice 0): while the child holds the database's
// write lock and the gateway waits for it.
func normal() error { return setPolicy(unix.SCHED_NORMAL) }

// boostSignal is what the gateway sends the child to have it finish its
// batch at normal priority (see Store.boost).
var boostSignal os.Signal = unix.SIGUSR1

// setPolicy puts every thread of the process under policy.
func setPolicy(policy uint32) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}
	done := map[int]bool{}
	for pass := 0; pass < 2; pass++ {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := unix.SchedSetAttr(tid, &attr, 0); err != nil && err != unix.ESRCH {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			done[tid] = true
		}
	}
	return nil
}
