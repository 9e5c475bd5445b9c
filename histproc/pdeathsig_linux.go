//go:build linux

package histproc

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the child (SIGKILL) when its parent
// dies: a gateway killed (SIGKILL, the OOM killer, a crash) does not leave
// it running, holding the store, to the end of its batch or for ever when
// the batch is stuck. The signal is sent when the *thread* that started
// the child ends, not the process: startLocked starts it from a thread
// that lasts as long as the child.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
