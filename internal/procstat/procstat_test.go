package procstat

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func requireProc(t *testing.T) {
	t.Helper()
	if _, err := Process(os.Getpid()); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
}

// TestFields: this process's stat gives its pid, its parent, its state
// and its times by proc(5)'s numbers, a command with spaces and
// parentheses included.
func TestFields(t *testing.T) {
	requireProc(t)
	f, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Field(4), strconv.Itoa(os.Getppid()); got != want {
		t.Errorf("parent: got %q, want %q", got, want)
	}
	if s := f.Field(3); s != "R" && s != "S" {
		t.Errorf("state: got %q, want R or S", s)
	}
	if _, err := f.Int(14); err != nil {
		t.Errorf("user time: %v", err)
	}
	if f.Field(2) != "" || f.Field(1000) != "" {
		t.Errorf("fields 2 and 1000: got %q and %q, want none", f.Field(2), f.Field(1000))
	}
	dir := t.TempDir()
	odd := dir + "/stat"
	os.WriteFile(odd, []byte("42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 9 1 1 1"), 0o600)
	if f, err := Stat(odd); err != nil || f.Field(3) != "S" || f.Field(4) != "7" || f.Field(15) != "6" {
		t.Errorf("a command with spaces and parentheses: got %v, %v", f, err)
	}
	if _, err := Stat(odd + "-missing"); err == nil {
		t.Error("a missing file: no error")
	}
}

// TestChildrenAndGone: a child shows among Children while it runs, and
// is Gone once it has exited (even before it is reaped).
func TestChildrenAndGone(t *testing.T) {
	requireProc(t)
	if runtime.GOOS != "linux" {
		t.Skip("Linux's /proc")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	pid := cmd.Process.Pid
	found := false
	for _, c := range Children(os.Getpid()) {
		found = found || c == pid
	}
	if !found || Gone(pid) {
		t.Fatalf("running child %d: in Children %v, Gone %v", pid, found, Gone(pid))
	}
	cmd.Process.Kill()
	if !WaitGone(pid, 10*time.Second) { // a zombie until Wait
		t.Errorf("killed child %d: not gone", pid)
	}
	cmd.Wait()
	if !Gone(pid) {
		t.Errorf("reaped child %d: not gone", pid)
	}
}
