package histproc

import (
	"io"
	"os"
	"testing"
)

// TestMain runs the test binary as the history writer when a test's Store
// starts it with Arg. HISTPROC_TEST_CHILD makes that child misbehave after
// its store has opened: "exit" exits instead of answering the first batch
// (once the batch is stored), "hang" never answers it. With "hang",
// HISTPROC_TEST_HANGING names a file the child creates once it has
// stopped at the answer: its batch's transaction has ended by then.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == Arg {
		var out io.Writer = os.Stdout
		if mode := os.Getenv("HISTPROC_TEST_CHILD"); mode != "" {
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
	if m.writes == 1 {
		return m.w.Write(p)
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
