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
func idle() error {
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
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
