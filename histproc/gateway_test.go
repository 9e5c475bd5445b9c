package histproc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/procstat"
	"github.com/msimircd/msimircd/store"
)

// gatewayArg starts the test binary as a gateway (runGateway).
const gatewayArg = "histproc-test-gateway"

// runGateway is a gateway with a history writer child (this test binary)
// in dir's store: the child stores a batch and never answers it (TestMain's
// "hang"), holding the store; the gateway then writes the child's pid to
// dir/child and waits to be killed (it exits after a minute on its own).
func runGateway(dir string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		return 2
	}
	ctx := context.Background()
	key, err := store.LoadOrCreateKey(filepath.Join(dir, "key"))
	if err != nil {
		return fail(err)
	}
	p := Params{Driver: "sqlite", DSN: filepath.Join(dir, "state.db"), Key: key}
	st, err := store.Open(ctx, p.Driver, p.DSN, key)
	if err != nil {
		return fail(err)
	}
	if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
		return fail(err)
	}
	if err := st.AddAccount(ctx, "alice", store.Account{Email: account, Password: "pw", Channel: "&msim"}); err != nil {
		return fail(err)
	}
	hanging := filepath.Join(dir, "hanging")
	os.Setenv("HISTPROC_TEST_CHILD", "hang")
	os.Setenv("HISTPROC_TEST_HANGING", hanging)
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	s := New(ctx, st, p, exe, nil, logrus.NewEntry(logrus.StandardLogger()))
	pid := childPid(s)
	if pid == 0 {
		return fail(fmt.Errorf("no child"))
	}
	go s.AppendHistoryBatch(ctx, []store.HistoryAppend{entry("alice", "a1")}, nil)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(hanging); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("the child never stored the batch"))
		}
	}
	tmp := filepath.Join(dir, "child.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "child")); err != nil {
		return fail(err)
	}
	time.Sleep(time.Minute)
	return 0
}

// TestChildDiesWithGateway: a gateway killed (SIGKILL: no Close) while
// its child is stuck in a batch does not leave the child running, holding
// the store.
func TestChildDiesWithGateway(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	gw := exec.Command(exe, gatewayArg)
	gw.Env = append(os.Environ(), "HISTPROC_TEST_GATEWAY="+dir, "HISTPROC_TEST_CHILD=", "HISTPROC_TEST_HANGING=")
	var stderr bytes.Buffer
	gw.Stdout, gw.Stderr = &stderr, &stderr
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { gw.Wait(); close(exited) }()
	t.Cleanup(func() {
		gw.Process.Kill()
		<-exited
	})
	// The child starts and stores at idle priority: on busy cores, slowly.
	var pid int
	for deadline := time.Now().Add(time.Minute); pid == 0; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "child")); err == nil {
			if pid, err = strconv.Atoi(string(b)); err != nil {
				t.Fatal(err)
			}
			break
		}
		select {
		case <-exited:
			t.Fatalf("the gateway exited (%v) before its child was busy: %s", gw.ProcessState, stderr.Bytes())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway's child was not busy after a minute: %s", stderr.Bytes())
		}
	}
	t.Cleanup(func() {
		if !procstat.Gone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if f, err := procstat.Process(pid); err != nil || f.Field(4) != strconv.Itoa(gw.Process.Pid) {
		t.Fatalf("child %d: parent %q (%v), want the gateway %d", pid, f.Field(4), err, gw.Process.Pid)
	}
	if err := gw.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !procstat.WaitGone(pid, 10*time.Second) {
		f, _ := procstat.Process(pid)
		t.Fatalf("child %d still running (state %s, parent %s) 10 s after its gateway was killed", pid, f.Field(3), f.Field(4))
	}
}
