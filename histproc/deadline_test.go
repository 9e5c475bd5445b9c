package histproc

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/store"
)

// cancelAtRead is a child's stdout on which its answer has come, and
// which ends the start's context (as its deadline would) as it is read:
// the kill is under way while the answer is read.
type cancelAtRead struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelAtRead) Read(p []byte) (int, error) {
	c.cancel()
	return c.r.Read(p)
}

// TestOpenKilledAsItAnswered: a child killed by the start's deadline as
// its answer to the store's parameters came is not taken for started:
// open fails, so the child is never given a batch (which would fail at
// its closed pipes and be counted as the child's failure).
func TestOpenKilledAsItAnswered(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to stand for the child: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var pipes []*os.File
	pipe := func() (*os.File, *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pipes = append(pipes, r, w)
		return r, w
	}
	t.Cleanup(func() {
		for _, f := range pipes {
			f.Close()
		}
	})
	_, inW := pipe()
	outR, _ := pipe()
	errR, _ := pipe()
	log, _ := test.NewNullLogger()
	c := &child{cmd: cmd, in: inW, out: outR, errR: errR, exited: make(chan struct{}), wait: exitWait, log: logrus.NewEntry(log)}
	var answer bytes.Buffer
	if err := writeFrame(bufio.NewWriter(&answer), appendReply(nil, &reply{})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.bw = bufio.NewWriter(io.Discard)
	c.br = bufio.NewReader(&cancelAtRead{r: &answer, cancel: cancel})
	if err := c.open(ctx, Params{Driver: "sqlite", DSN: "state.db", Key: []byte("k")}); err == nil {
		t.Fatal("open of a child killed as it answered: got no error, want one (the child is gone)")
	}
}

// slowAppends is the gateway's store with its appends taking the whole of
// their deadline: a database that answers just in time.
type slowAppends struct{ store.Store }

func (s slowAppends) AppendHistoryBatch(ctx context.Context, batch []store.HistoryAppend, res []store.HistoryResult) []store.HistoryResult {
	res = s.Store.AppendHistoryBatch(ctx, batch, res)
	<-ctx.Done()
	return res
}

// TestRetryLookupsHaveTheirOwnDeadline: when the gateway appends again
// the batch of a child that stored it and failed, and that append takes
// all of its time, the look-ups that find the entries the child stored
// still have time of their own: the entries come back stored, not as
// duplicates.
func TestRetryLookupsHaveTheirOwnDeadline(t *testing.T) {
	t.Setenv("HISTPROC_TEST_CHILD", "exit")
	s, _ := open(t, setup{})
	s.Store = slowAppends{s.Store}
	s.ownWait = 500 * time.Millisecond
	batch := []store.HistoryAppend{entry("alice", "a1"), entry("bob", "b1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
}
