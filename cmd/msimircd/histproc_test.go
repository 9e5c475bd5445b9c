package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/histproc"
	"github.com/msimircd/msimircd/internal/procstat"
	"github.com/msimircd/msimircd/store"
)

// historyWriters lists the children of process ppid running as the
// history writer (histproc.Arg).
func historyWriters(t *testing.T, ppid int) []int {
	t.Helper()
	if _, err := procstat.Process(os.Getpid()); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	var pids []int
	for _, pid := range procstat.Children(ppid) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00"); len(args) == 2 && args[1] == histproc.Arg {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestHistoryWriterProcess: with history on, the gateway's history appends
// are made by a child process (this binary again, with histproc.Arg),
// which ends with the gateway; with history off no such process starts.
func TestHistoryWriterProcess(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("history %v", on), func(t *testing.T) {
			cfg := Defaults()
			cfg.IRC.Listen = []string{"127.0.0.1:0"}
			cfg.Store.StateDir = t.TempDir()
			cfg.History.Enabled = on
			g, _ := mustBuild(t, cfg)
			closed := false
			defer func() {
				if !closed {
					g.close()
				}
			}()
			ctx := context.Background()
			if _, err := g.st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
				t.Fatal(err)
			}
			if err := g.st.AddAccount(ctx, "alice", store.Account{Email: "alice@example.com", Password: "pw", Channel: "&msim"}); err != nil {
				t.Fatal(err)
			}
			e := store.HistoryEntry{MsgID: "m1", Account: "alice@example.com", Buddy: 7, Kind: store.KindIM, Text: "hi"}
			if got, err := g.st.AppendHistory(ctx, "alice", e); err != nil || got.ID == 0 {
				t.Fatalf("append: got %+v, %v", got, err)
			}
			pids := historyWriters(t, os.Getpid())
			if on != (len(pids) == 1) {
				t.Fatalf("history writer processes: got %v", pids)
			}
			if !on {
				return
			}
			g.close()
			closed = true
			waitExited(t, pids[0])
		})
	}
}

// waitExited waits up to 10 s for process pid to have exited.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	if !procstat.WaitGone(pid, 10*time.Second) {
		t.Fatalf("process %d still running", pid)
	}
}
