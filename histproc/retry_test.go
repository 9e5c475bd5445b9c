package histproc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/msimircd/msimircd/store"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// retrier is a store that has retried n batches, the last for err.
type retrier struct {
	n   int64
	err error
}

func (r *retrier) HistoryBatchRetries() (int64, error) { return r.n, r.err }

// TestRetryReport: retried batches are told in one line, with how many
// since the last line and the last failure, at most once per
// retryReportEvery; none, no line.
func TestRetryReport(t *testing.T) {
	var r retryReport
	var w strings.Builder
	st := &retrier{}
	t0 := time.Unix(1_700_000_000, 0)
	steps := []struct {
		n    int64
		at   time.Duration
		want string // "" : no line
	}{
		{0, 0, ""},
		{2, time.Second, "2 batches appended again one entry at a time, their transaction having failed (the last time: disk I/O error)"},
		{3, 5 * time.Second, ""},
		{3, 11 * time.Second, "1 batches"},
		{3, 30 * time.Second, ""},
	}
	for i, s := range steps {
		st.n, st.err = s.n, errors.New("disk I/O error")
		w.Reset()
		r.check(st, &w, t0.Add(s.at))
		switch got := w.String(); {
		case s.want == "" && got != "":
			t.Errorf("step %d: got %q, want no line", i, got)
		case s.want != "" && !strings.Contains(got, s.want):
			t.Errorf("step %d: got %q, want a line with %q", i, got, s.want)
		}
	}
	w.Reset()
	r.check(struct{}{}, &w, t0.Add(time.Hour)) // a store that does not tell
	if w.Len() != 0 {
		t.Errorf("a store without retries to tell: got %q", w.String())
	}
}

// TestStoreTellsRetries: the store the child opens tells its retried
// batches (retryReport would otherwise never report).
func TestStoreTellsRetries(t *testing.T) {
	dir := t.TempDir()
	key, err := store.LoadOrCreateKey(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), "sqlite", filepath.Join(dir, "state.db"), key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.(batchRetrier); !ok {
		t.Errorf("store %T: does not tell its retried batches", st)
	}
}

// TestChildNotesAreNotCauses: the child's notes (a retried batch, a
// priority it cannot take) are logged, but a failure is described by the
// last line that is not one.
func TestChildNotesAreNotCauses(t *testing.T) {
	log, hook := test.NewNullLogger()
	c := &child{log: logrus.NewEntry(log)}
	var notes strings.Builder
	(&retryReport{}).check(&retrier{n: 1, err: errors.New("locked")}, &notes, time.Now())
	for _, line := range []string{"history writer: reading a request: unexpected EOF", strings.TrimSuffix(notes.String(), "\n")} {
		c.stderrLine(line)
	}
	if got, want := c.lastErr, "history writer: reading a request: unexpected EOF"; got != want {
		t.Errorf("last error: got %q, want %q (not the note after it)", got, want)
	}
	if n := len(hook.AllEntries()); n != 2 {
		t.Errorf("lines logged: got %d, want both", n)
	}
}

// TestChildPanicIsItsCause: a child that panics is described by its
// panic's line, not by the last line of the trace after it, and the trace
// is not logged whole (a warning per line).
func TestChildPanicIsItsCause(t *testing.T) {
	log, hook := test.NewNullLogger()
	c := &child{log: logrus.NewEntry(log)}
	c.stderrLine("panic: runtime error: index out of range [3] with length 3")
	c.stderrLine("")
	c.stderrLine("goroutine 1 [running]:")
	for i := range 200 {
		c.stderrLine(fmt.Sprintf("github.com/msimircd/msimircd/histproc.f%d(...)", i))
		c.stderrLine(fmt.Sprintf("\t/src/histproc/serve.go:%d +0x1d", i))
	}
	c.stderrLine("exit status 2")
	if got, want := c.lastErr, "panic: runtime error: index out of range [3] with length 3"; got != want {
		t.Errorf("last error: got %q, want %q", got, want)
	}
	if n := len(hook.AllEntries()); n > maxStderrLines+1 {
		t.Errorf("lines logged: got %d, want at most %d and a word that the rest is not", n, maxStderrLines+1)
	}
}

// TestChildStderrIsLoggedCut: what the child writes on stderr (a panic's
// value, a store's error: either may hold an IM's text) is logged cut,
// each line and all of them, and the failure it describes is cut too.
func TestChildStderrIsLoggedCut(t *testing.T) {
	log, hook := test.NewNullLogger()
	c := &child{log: logrus.NewEntry(log)}
	c.stderrLine("history writer: " + strings.Repeat("é", 5000))
	for range maxStderrLines {
		c.stderrLine(strings.Repeat("y", maxStderrLine))
	}
	if n := len(c.lastErr); n > maxStderrLine+cutSuffix {
		t.Errorf("last error: got %d bytes, want at most %d", n, maxStderrLine+cutSuffix)
	}
	all := 0
	for _, e := range hook.AllEntries() {
		if n := len(e.Message); n > maxStderrLine+cutSuffix {
			t.Errorf("a line logged of %d bytes, want at most %d: %.40q…", n, maxStderrLine+cutSuffix, e.Message)
		}
		if !utf8.ValidString(e.Message) {
			t.Errorf("a line logged cut inside a character: %.40q…", e.Message)
		}
		all += len(e.Message)
	}
	if limit := maxStderrBytes + maxStderrLines*cutSuffix + 100; all > limit {
		t.Errorf("logged %d bytes in all, want at most %d", all, limit)
	}
	if last := hook.LastEntry(); last == nil || !strings.Contains(last.Message, "the rest is not logged") {
		t.Errorf("last line logged: got %v, want a word that the rest is not", last)
	}
}

// TestRetryNoteTellsNoValue: the child's note of retried batches tells
// the last failure without the values a driver quotes in its error (the
// PostgreSQL driver quotes one it cannot encode: an entry's text, say),
// keeping the rest.
func TestRetryNoteTellsNoValue(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("store: append history: failed to encode args[3]: unable to encode %#v into binary format for text (OID 25): bad", "secret IM \"quoted\" \\ here"),
		errors.New(`ERROR: invalid input syntax for type integer: "secret IM" (SQLSTATE 22P02)`),
		errors.New("near 'secret IM': syntax error"),
		errors.New("unable to encode `secret IM"),
	} {
		var w strings.Builder
		(&retryReport{}).check(&retrier{n: 1, err: err}, &w, time.Now())
		got := w.String()
		if strings.Contains(got, "secret") || strings.Contains(got, "quoted") || strings.Contains(got, "here") {
			t.Errorf("note for %q: got %q, want none of the quoted value", err, got)
		}
		if first, _, _ := strings.Cut(err.Error(), " "); !strings.Contains(got, "(the last time: "+first) {
			t.Errorf("note for %q: got %q, want the error's words but the value", err, got)
		}
	}
}
