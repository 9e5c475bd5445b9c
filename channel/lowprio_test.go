//go:build linux

package channel

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/procstat"
	"github.com/msimircd/msimircd/store"
	"golang.org/x/sys/unix"
)

// threadNice reads the nice value of thread tid of this process.
func threadNice(tid int) (int, error) {
	f, err := procstat.Stat(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0, err
	}
	n, err := f.Int(19)
	return int(n), err
}

// TestLowPriority: the goroutine's thread runs at nice 19, and the rest of
// the process keeps its priority.
func TestLowPriority(t *testing.T) {
	before, err := threadNice(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		nice int
		err  error
	}
	got := make(chan result, 1)
	go func() {
		if err := lowPriority(); err != nil {
			got <- result{err: err}
			return
		}
		n, err := threadNice(unix.Gettid())
		got <- result{n, err}
	}()
	r := <-got
	if r.err != nil {
		t.Fatalf("lowPriority: %v", r.err)
	}
	if r.nice != 19 {
		t.Errorf("the goroutine's thread: got nice %d, want 19", r.nice)
	}
	if n, err := threadNice(unix.Gettid()); err != nil || n != before {
		t.Errorf("the test's thread: got nice %d (%v), want %d as before", n, err, before)
	}
}

// niceStore records the nice value of the thread each batch is appended
// on, and whether the batch had a deadline.
type niceStore struct {
	store.Store
	nice     chan int
	deadline chan bool
}

func (s *niceStore) AppendHistoryBatch(ctx context.Context, batch []store.HistoryAppend, _ []store.HistoryResult) []store.HistoryResult {
	n, err := threadNice(unix.Gettid())
	if err != nil {
		n = -100
	}
	_, d := ctx.Deadline()
	s.nice <- n
	s.deadline <- d
	return make([]store.HistoryResult, len(batch))
}

// TestHistoryWriterPriority: the history writer appends at nice 19, each
// batch with a deadline, when the store appends in this process; at the
// process's own priority and waiting as long as it takes when the store
// appends in another (Config.HistoryElsewhere).
func TestHistoryWriterPriority(t *testing.T) {
	own, err := threadNice(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		inProc bool
		want   int
	}{{true, 19}, {false, own}} {
		st := &niceStore{nice: make(chan int, 1), deadline: make(chan bool, 1)}
		w := startHistoryWriter(st, c.inProc, quietLog(), nil, time.Millisecond)
		w.append("ann", store.HistoryEntry{}, func(error) {})
		if got := <-st.nice; got != c.want {
			t.Errorf("in process %v: the appends ran at nice %d, want %d", c.inProc, got, c.want)
		}
		if got := <-st.deadline; got != c.inProc {
			t.Errorf("in process %v: the batch had a deadline: %v", c.inProc, got)
		}
		w.close()
	}
}
