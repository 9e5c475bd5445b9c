//go:build linux

package channel

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// threadNice reads the nice value of thread tid of this process.
func threadNice(tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0, err
	}
	// The fields after the command (which may hold spaces) start at the
	// third; nice is the nineteenth.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return strconv.Atoi(fields[19-3])
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
