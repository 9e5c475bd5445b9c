//go:build linux

package histproc

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/msimircd/msimircd/internal/procstat"
	"github.com/msimircd/msimircd/store"
)

// TestChildOutlivesStartingThread: a child started from a goroutine that
// locked its thread and ends without unlocking it (the thread ends too)
// is not killed: its parent-death signal is tied to a thread of its own.
func TestChildOutlivesStartingThread(t *testing.T) {
	s, _ := open(t, setup{})
	type started struct {
		c   *child
		tid int
		err error
	}
	res := make(chan started, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends here
		c, err := startChild(context.Background(), s.exe, s.p, s.log)
		res <- started{c, unix.Gettid(), err}
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.stop()
	pid := r.c.cmd.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", r.tid)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Skip("the starting goroutine's thread did not end")
		}
	}
	if procstat.WaitGone(pid, 500*time.Millisecond) {
		t.Fatal("the child died with the thread that started it")
	}
	batch := []store.HistoryAppend{entry("alice", "t1")}
	rep, dead, err := r.c.call(context.Background(), batch, answerWait)
	if err != nil || dead {
		t.Fatalf("the child: dead %v, %v", dead, err)
	}
	out := make([]store.HistoryResult, len(batch))
	results(batch, rep, out)
	checkStored(t, s, batch, out)
}
