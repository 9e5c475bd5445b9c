package histproc

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestMain runs the test binary as the history writer when a test's Store
// starts it with Arg. HISTPROC_TEST_CHILD makes that child misbehave after
// its store has opened: "exit" exits instead of answering the first batch
// (once the batch is stored), "hang" never answers it. With "hang",
// HISTPROC_TEST_HANGING names a file the child creates once it has
// stopped at the answer: its batch's transaction has ended by then.
// "hang open" never answers the store's parameters either (a child whose
// store takes long to open).
// "hold" answers, but first starts a process that keeps the child's
// stdout and stderr open until it is killed (a child that does not end
// when killed, as one stuck in the kernel), its pid written to the file
// HISTPROC_TEST_HOLDER names; with "hold hang" the child then never
// answers a batch either.
//
// Started with gatewayArg, the test binary is instead a gateway
// (runGateway) whose child hangs at a batch.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == gatewayArg {
		os.Exit(runGateway(os.Getenv("HISTPROC_TEST_GATEWAY")))
	}
	if len(os.Args) == 2 && os.Args[1] == Arg {
		mode := os.Getenv("HISTPROC_TEST_CHILD")
		if strings.HasPrefix(mode, "hold") {
			holdPipes()
			mode = strings.TrimSpace(strings.TrimPrefix(mode, "hold"))
		}
		var out io.Writer = os.Stdout
		if mode != "" {
			out = &misbehave{w: os.Stdout, mode: mode}
		}
		os.Exit(Serve(os.Stdin, out, os.Stderr))
	}
	os.Exit(m.Run())
}

// misbehave passes the child's first answer (the store opened) and fails
// at the second.
type misbehave struct {
	w      io.Writer
	mode   string
	writes int
}

func (m *misbehave) Write(p []byte) (int, error) {
	m.writes++
	if m.writes == 1 && m.mode != "hang open" {
		return m.w.Write(p)
	}
	if m.mode == "hang open" {
		select {}
	}
	if m.mode == "hang" {
		if path := os.Getenv("HISTPROC_TEST_HANGING"); path != "" {
			_ = os.WriteFile(path, nil, 0o600)
		}
		select {}
	}
	os.Exit(3)
	return 0, nil
}

// holdPipes starts a process holding this one's stdout and stderr (see
// TestMain).
func holdPipes() {
	cmd := exec.Command("sleep", "600")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "holding the pipes:", err)
		os.Exit(4)
	}
	if err := os.WriteFile(os.Getenv("HISTPROC_TEST_HOLDER"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "holding the pipes:", err)
		os.Exit(4)
	}
}
