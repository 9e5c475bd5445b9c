// Package testlog gives tests a logger that writes through t.Log, so a
// test's log is shown when it fails (or with -v).
package testlog

import (
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

// New returns an entry logging at level (debug with -v) to t. Lines logged
// after the test has finished (by goroutines still winding down) are dropped
// rather than reported to a finished test, which would panic.
func New(t testing.TB, level logrus.Level) *logrus.Entry {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(level)
	if testing.Verbose() {
		l.SetLevel(logrus.DebugLevel)
	}
	return logrus.NewEntry(l)
}

type writer struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
