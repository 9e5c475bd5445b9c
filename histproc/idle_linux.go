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
// the thread that makes them, so two passes over the process's tasks (the
// second catching a thread made during the first) cover the process.
func idle() error { return setPolicy("/proc/self/task", unix.SCHED_IDLE) }

// isIdle tells whether the calling thread runs under SCHED_IDLE (false
// when that cannot be read).
func isIdle() bool {
	attr, err := unix.SchedGetAttr(0, 0)
	return err == nil && attr.Policy == unix.SCHED_IDLE
}

// raise puts every thread of the process pid (the child) under the
// kernel's normal policy (SCHED_OTHER, nice 0): while the child holds the
// database's write lock and the gateway waits for it. The gateway does it
// itself rather than asking the child to: at idle priority on a machine
// whose cores are all busy, the child could wait seconds for the CPU to
// raise itself. Leaving SCHED_IDLE needs RLIMIT_NICE of 20 (the child
// inherits the gateway's) or CAP_SYS_NICE.
func raise(pid int) error {
	return setPolicy(fmt.Sprintf("/proc/%d/task", pid), unix.SCHED_NORMAL)
}

// priorities: the child runs at idle priority and can be raised.
const priorities = true

// setPolicy puts every thread listed in tasks under policy.
func setPolicy(tasks string, policy uint32) error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy}
	done := map[int]bool{}
	for pass := 0; pass < 2; pass++ {
		ents, err := os.ReadDir(tasks)
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
