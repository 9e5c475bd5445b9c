package histproc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/internal/pgtest"
	"github.com/msimircd/msimircd/internal/procstat"
	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

const account = "alice@example.com"

// setup says how open makes a store.
type setup struct {
	engine string        // "sqlite" (""), or "postgres" (a schema of its own; skipped without pgtest.Env)
	params func(*Params) // changes the children's parameters
	exe    string        // the path the children are started as; "": this test binary
}

// open makes a store with users alice and bob (each with an account) and
// wraps it: the children are this test binary (TestMain).
func open(t *testing.T, su setup) (*Store, *test.Hook) {
	t.Helper()
	dir := t.TempDir()
	key, err := store.LoadOrCreateKey(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Driver: "sqlite", DSN: filepath.Join(dir, "state.db"), Key: key}
	if su.engine == "postgres" {
		p.Driver, p.DSN = "postgres", pgtest.DSN(t)
	}
	st, err := store.Open(context.Background(), p.Driver, p.DSN, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if _, err := st.CreateUser(ctx, u, store.UnusablePasswordHash()); err != nil {
			t.Fatal(err)
		}
		if err := st.AddAccount(ctx, u, store.Account{Email: account, Password: "pw", Channel: "&msim"}); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if su.exe != "" {
		exe = su.exe
	}
	if su.params != nil {
		su.params(&p)
	}
	log, hook := test.NewNullLogger()
	reg := prometheus.NewRegistry()
	s := New(context.Background(), st, p, exe, reg, logrus.NewEntry(log))
	registries[s] = reg
	t.Cleanup(func() { s.Close() })
	return s, hook
}

func entry(user, msgid string) store.HistoryAppend {
	return store.HistoryAppend{User: user, Entry: store.HistoryEntry{
		MsgID: msgid, Time: time.Now(), Account: account, Buddy: msim.UID(7), Kind: store.KindIM, Text: "hello " + msgid,
	}}
}

// childPid is the running child's pid; 0 if none.
func childPid(s *Store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		return 0
	}
	return s.ch.cmd.Process.Pid
}

// checkStored fails unless every result is stored with an ID and the store
// returns it by msgid.
func checkStored(t *testing.T, s *Store, batch []store.HistoryAppend, res []store.HistoryResult) {
	t.Helper()
	if len(res) != len(batch) {
		t.Fatalf("got %d results for %d entries", len(res), len(batch))
	}
	for i, r := range res {
		if r.Err != nil || r.Entry.ID == 0 {
			t.Errorf("entry %d: got %+v, want stored", i, r)
			continue
		}
		got, err := s.Store.HistoryByMsgID(context.Background(), batch[i].User, batch[i].Entry.MsgID)
		if err != nil || got.ID != r.Entry.ID || got.Text != batch[i].Entry.Text {
			t.Errorf("entry %d: the store has %+v (%v), want ID %d", i, got, err, r.Entry.ID)
		}
	}
}

// TestResultsInCallersArray: the results go in the caller's array when it
// is large enough, with nothing left of what it held, batch after batch,
// from the child and from the gateway's own process alike.
func TestResultsInCallersArray(t *testing.T) {
	for _, c := range []struct {
		name string
		su   setup
	}{
		{"child", setup{}},
		// The child cannot open the store (another key): the gateway
		// appends itself.
		{"gateway", setup{params: func(p *Params) { p.Key = make([]byte, len(p.Key)) }}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := open(t, c.su)
			arr := make([]store.HistoryResult, 0, 4)
			for i := range 3 {
				stale := arr[:cap(arr)]
				for j := range stale {
					stale[j] = store.HistoryResult{Err: errors.New("stale")}
				}
				batch := []store.HistoryAppend{entry("alice", fmt.Sprint("a", i)), entry("bob", fmt.Sprint("b", i))}
				res := s.AppendHistoryBatch(context.Background(), batch, arr)
				checkStored(t, s, batch, res)
				if &res[0] != &arr[:1][0] {
					t.Errorf("batch %d: results in a new array", i)
				}
			}
			if got := childPid(s) != 0; got != (c.name == "child") {
				t.Errorf("a child runs: %v, want %v", got, c.name == "child")
			}
		})
	}
}

// TestAppendsInChild: a batch is appended by a child process running at
// idle priority, with IDs, times and refusals as the store gives them,
// and the child exits when the store is closed; on both engines.
func TestAppendsInChild(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { testAppendsInChild(t, engine) })
	}
}

func testAppendsInChild(t *testing.T, engine string) {
	s, _ := open(t, setup{engine: engine})
	ctx := context.Background()
	batch := []store.HistoryAppend{entry("alice", "a1"), entry("bob", "b1"), entry("alice", "a2")}
	res := s.AppendHistoryBatch(ctx, batch, nil)
	checkStored(t, s, batch, res)
	if !(res[0].Entry.ID < res[2].Entry.ID) {
		t.Errorf("alice's IDs: got %d then %d, want increasing", res[0].Entry.ID, res[2].Entry.ID)
	}
	if !res[0].Entry.Time.Equal(batch[0].Entry.Time.Truncate(time.Millisecond)) {
		t.Errorf("time: got %v, want %v to the millisecond", res[0].Entry.Time, batch[0].Entry.Time)
	}
	pid := childPid(s)
	if pid == 0 || pid == os.Getpid() {
		t.Fatalf("child pid %d: want a process of its own", pid)
	}
	checkIdle(t, pid)
	if got := failures(t, s); got != 0 {
		t.Errorf("failures counted: got %v, want 0", got)
	}

	// Refusals keep their text and their sentinel.
	bad := entry("alice", "bad")
	bad.Entry.Kind = "nonsense"
	batch = []store.HistoryAppend{entry("alice", "a1"), entry("carol", "c1"), bad, entry("bob", "b2")}
	res = s.AppendHistoryBatch(ctx, batch, nil)
	if !errors.Is(res[0].Err, store.ErrExists) {
		t.Errorf("duplicate msgid: got %v, want ErrExists", res[0].Err)
	}
	if !errors.Is(res[1].Err, store.ErrNotFound) {
		t.Errorf("unknown user: got %v, want ErrNotFound", res[1].Err)
	}
	if res[2].Err == nil || errors.Is(res[2].Err, store.ErrExists) || errors.Is(res[2].Err, store.ErrNotFound) {
		t.Errorf("bad kind: got %v, want an error of its own", res[2].Err)
	}
	checkStored(t, s, batch[3:], res[3:])
	if e, err := s.AppendHistory(ctx, "bob", entry("bob", "b3").Entry); err != nil || e.ID == 0 {
		t.Errorf("AppendHistory: got %+v, %v", e, err)
	}
	if got := childPid(s); got != pid {
		t.Errorf("child pid: got %d, want %d still", got, pid)
	}

	s.Close()
	waitGone(t, pid)
}

// TestChildKeepsAnyTime: the child stores an entry's time, and gives it
// back, as the store in the gateway's process does: to the millisecond
// (truncated), in UTC, whatever the year (the Unix epoch, and years past
// what int64 nanoseconds hold, which a remote server's \date can be); the
// zero Time is when the entry is appended.
func TestChildKeepsAnyTime(t *testing.T) {
	s, _ := open(t, setup{})
	ctx := context.Background()
	pid := childPid(s)
	if pid == 0 {
		t.Fatal("no child runs")
	}
	for i, when := range []time.Time{
		{},
		time.Unix(0, 0).UTC(),
		time.Date(2300, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(1600, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Unix(99999999999, 0), // msim's \date\99999999999
		time.Date(2024, 5, 6, 7, 8, 9, 123_456_789, time.FixedZone("", 3600)),
		time.Unix(-1, 999_999_999),       // before the epoch: down to -1 ms
		time.Time{}.Add(time.Nanosecond), // not zero; to the millisecond, it is
	} {
		child, own := entry("alice", fmt.Sprint("c", i)), entry("bob", fmt.Sprint("o", i))
		child.Entry.Time, own.Entry.Time = when, when
		before := time.Now()
		got := s.AppendHistoryBatch(ctx, []store.HistoryAppend{child}, nil)[0]
		want := s.Store.AppendHistoryBatch(ctx, []store.HistoryAppend{own}, nil)[0]
		if got.Err != nil || want.Err != nil {
			t.Fatalf("append at %v: %v; in the gateway's process: %v", when, got.Err, want.Err)
		}
		if when.IsZero() {
			// Now, in the child: before the gateway's own append.
			if got.Entry.Time.Before(before.Truncate(time.Millisecond)) || got.Entry.Time.After(want.Entry.Time) || got.Entry.Time.Location() != time.UTC {
				t.Errorf("append at the zero Time: got %v, want between %v and %v in UTC", got.Entry.Time, before, want.Entry.Time)
			}
			continue
		}
		if !got.Entry.Time.Equal(want.Entry.Time) || got.Entry.Time.Location() != want.Entry.Time.Location() {
			t.Errorf("append at %v: got %v, want %v as in the gateway's process", when, got.Entry.Time, want.Entry.Time)
		}
		stored, err := s.Store.HistoryByMsgID(ctx, "alice", child.Entry.MsgID)
		if err != nil {
			t.Fatal(err)
		}
		ownStored, err := s.Store.HistoryByMsgID(ctx, "bob", own.Entry.MsgID)
		if err != nil {
			t.Fatal(err)
		}
		if !stored.Time.Equal(ownStored.Time) {
			t.Errorf("append at %v: stored at %v, want %v as in the gateway's process", when, stored.Time, ownStored.Time)
		}
	}
	// Not appended in the gateway's process after a child failed.
	if got := childPid(s); got != pid {
		t.Errorf("child pid: got %d, want %d still", got, pid)
	}
}

// stoppedBusyChild opens a store whose child has stored a batch and
// never answers it (the batch stays its own, so a boost lasts), then
// stops the child: one that gets no CPU (at idle priority on busy cores,
// nearly so) must be raised by the gateway. done has the batch's results
// once the child is killed.
func stoppedBusyChild(t *testing.T, su setup) (s *Store, pid int, batch []store.HistoryAppend, done chan []store.HistoryResult) {
	t.Helper()
	t.Setenv("HISTPROC_TEST_CHILD", "hang") // stores the batch, never answers
	hanging := filepath.Join(t.TempDir(), "hanging")
	t.Setenv("HISTPROC_TEST_HANGING", hanging)
	s, hook := open(t, su)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(messages(hook))
		}
	})
	t.Setenv("HISTPROC_TEST_CHILD", "")
	t.Setenv("HISTPROC_TEST_HANGING", "")
	pid = childPid(s)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // it would never answer
	done = make(chan []store.HistoryResult, 1)
	batch = []store.HistoryAppend{entry("alice", "a1")}
	go func() { done <- s.AppendHistoryBatch(context.Background(), batch, nil) }()
	// The batch is seen stored before the child has let go of SQLite's
	// write lock: stopped in between, it would keep it. It is stopped
	// once it waits at its answer, its transaction over.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Stat(hanging)
		if err == nil && s.busy.Load() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never stored the batch")
		}
		time.Sleep(time.Millisecond)
	}
	checkIdle(t, pid)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return s, pid, batch, done
}

// checkIdle fails unless every thread of pid runs under SCHED_IDLE.
func checkIdle(t *testing.T, pid int) {
	t.Helper()
	if got := policies(t, pid); len(got) != 1 || got[0] != "5" {
		t.Errorf("the child's threads' scheduling policies: got %v, want only 5 (SCHED_IDLE)", got)
	}
}

// policies lists the scheduling policies of pid's threads, without
// repeats.
func policies(t *testing.T, pid int) []string {
	t.Helper()
	if _, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	return policiesOf(pid)
}

// policiesOf is policies for any goroutine: nil when pid has no threads
// to read.
func policiesOf(pid int) []string {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []string
	for _, task := range tasks {
		f, err := procstat.Stat(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue // a thread that ended
		}
		if p := f.Field(41); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// waitPolicy waits up to 10 s for every thread of pid to run under policy.
func waitPolicy(t *testing.T, pid int, policy string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := policies(t, pid)
		if len(got) == 1 && got[0] == policy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child's threads' policies: got %v, want only %s", got, policy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits up to 10 s for the child pid to have exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	if !procstat.WaitGone(pid, 10*time.Second) {
		t.Fatalf("child %d still running", pid)
	}
}

// TestChildKilled: a child that died between batches is replaced, and
// the next batch is appended by the new one.
func TestChildKilled(t *testing.T) {
	s, hook := open(t, setup{})
	ctx := context.Background()
	checkStored(t, s, []store.HistoryAppend{entry("alice", "a1")}, s.AppendHistoryBatch(ctx, []store.HistoryAppend{entry("alice", "a1")}, nil))
	pid := childPid(s)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	batch := []store.HistoryAppend{entry("alice", "a2"), entry("bob", "b1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(ctx, batch, nil))
	newPid := waitChild(t, s, pid)
	// The new child answers: at idle priority on a machine whose cores
	// are busy (a CI host), it may take longer than the short bound.
	s.hung = answerWait
	batch = []store.HistoryAppend{entry("alice", "a3")}
	checkStored(t, s, batch, s.AppendHistoryBatch(ctx, batch, nil))
	if got := childPid(s); got != newPid {
		t.Errorf("child pid: got %d, want %d, the new child, still", got, newPid)
	}
	if !logged(hook, "appended by the gateway") {
		t.Errorf("the child's failure was not logged: %v", messages(hook))
	}
	if got := failures(t, s); got != 1 {
		t.Errorf("failures counted: got %v, want 1", got)
	}
}

// TestChildExitsAfterStoring: children that store a batch and exit
// before answering leave the batch stored once, each entry reported as
// stored (not as a duplicate): the gateway appends it itself meanwhile.
func TestChildExitsAfterStoring(t *testing.T) {
	t.Setenv("HISTPROC_TEST_CHILD", "exit")
	s, hook := open(t, setup{})
	batch := []store.HistoryAppend{entry("alice", "a1"), entry("bob", "b1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	if !logged(hook, "appended by the gateway") {
		t.Errorf("the fallback was not logged: %v", messages(hook))
	}
	es, err := s.Store.History(context.Background(), "alice", store.HistoryQuery{Account: account, Buddy: 7, Limit: 10})
	if err != nil || len(es) != 1 {
		t.Errorf("alice's history: got %d entries (%v), want 1", len(es), err)
	}
	// While no child may start, batches are appended in process.
	batch = []store.HistoryAppend{entry("alice", "a2")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
}

// TestChildHangs: a child that does not answer in time is killed, its
// batch is appended by the gateway, and the next batch goes to a new
// child.
func TestChildHangs(t *testing.T) {
	t.Setenv("HISTPROC_TEST_CHILD", "hang")
	s, _ := open(t, setup{})
	t.Setenv("HISTPROC_TEST_CHILD", "") // the children started from now on answer
	s.hung = 300 * time.Millisecond
	pid := childPid(s)
	batch := []store.HistoryAppend{entry("alice", "a1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	if got := failures(t, s); got != 1 {
		t.Errorf("failures counted: got %v, want 1", got)
	}
	waitGone(t, pid)
	// It failed the first batch it had: none replaces it for a moment,
	// and batches go to the gateway meanwhile.
	time.Sleep(restartWait)
	batch = []store.HistoryAppend{entry("alice", "a2")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	newPid := waitChild(t, s, pid)
	// The new child answers: at idle priority on a machine whose cores
	// are busy (a CI host), it may take longer than the short bound.
	s.hung = answerWait
	batch = []store.HistoryAppend{entry("alice", "a3")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	if got := childPid(s); got != newPid {
		t.Errorf("child pid: got %d, want %d, the new child, still", got, newPid)
	}
}

// TestCallerDeadline: a batch whose context ends while the child works on
// it fails with the context's error, and the child is replaced.
func TestCallerDeadline(t *testing.T) {
	t.Setenv("HISTPROC_TEST_CHILD", "hang")
	s, _ := open(t, setup{})
	t.Setenv("HISTPROC_TEST_CHILD", "")
	pid := childPid(s)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := s.AppendHistoryBatch(ctx, []store.HistoryAppend{entry("alice", "a1")}, nil)
	if !errors.Is(res[0].Err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", res[0].Err)
	}
	waitGone(t, pid)
	time.Sleep(restartWait)
	batch := []store.HistoryAppend{entry("alice", "a2")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	waitChild(t, s, pid)
}

// waitChild waits for the store to have a running child other than old
// and returns its pid.
func waitChild(t *testing.T, s *Store, old int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if pid := childPid(s); pid != 0 && pid != old {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new child after %d", old)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestChildIgnoresSignals: a signal meant for the gateway (Ctrl-C, a
// service manager stopping its processes, a hang-up) leaves the child
// running: it ends when the gateway closes its stdin.
func TestChildIgnoresSignals(t *testing.T) {
	s, _ := open(t, setup{})
	pid := childPid(s)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	batch := []store.HistoryAppend{entry("alice", "a1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	if got := childPid(s); got != pid {
		t.Errorf("child pid: got %d, want %d still", got, pid)
	}
	if got := failures(t, s); got != 0 {
		t.Errorf("failures counted: got %v, want 0", got)
	}
	s.Close()
	waitGone(t, pid)
}

// TestRetryKeepsDuplicates: when a batch is appended again after its child
// failed, an entry the child had stored counts as stored, but an entry
// whose msgid was already taken by other content stays a duplicate.
func TestRetryKeepsDuplicates(t *testing.T) {
	t.Setenv("HISTPROC_TEST_CHILD", "exit")
	s, _ := open(t, setup{})
	ctx := context.Background()
	other := entry("alice", "dup")
	other.Entry.Text = "said before"
	if _, err := s.Store.AppendHistory(ctx, other.User, other.Entry); err != nil {
		t.Fatal(err)
	}
	batch := []store.HistoryAppend{entry("alice", "dup"), entry("alice", "a1")}
	res := s.AppendHistoryBatch(ctx, batch, nil)
	if !errors.Is(res[0].Err, store.ErrExists) {
		t.Errorf("an msgid taken by other content: got %+v, want ErrExists", res[0])
	}
	checkStored(t, s, batch[1:], res[1:])
}

// TestChildCannotOpen: a child whose store does not open (here: the wrong
// key) is reported with the store's error, and the batch is appended in
// the gateway's process.
func TestChildCannotOpen(t *testing.T) {
	s, hook := open(t, setup{params: func(p *Params) { p.Key = make([]byte, len(p.Key)) }})
	if !logged(hook, "key") {
		t.Errorf("the store's error was not logged at the start: %v", messages(hook))
	}
	s.mu.Lock()
	s.retryAt = time.Time{} // the retry, at once
	s.mu.Unlock()
	batch := []store.HistoryAppend{entry("alice", "a1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	if !logged(hook, "key") {
		t.Errorf("the store's error was not logged: %v", messages(hook))
	}
	if childPid(s) != 0 {
		t.Error("a child runs with a store that did not open")
	}
}

// TestNoSecretsOnCommandLine: the child's command line and environment
// hold neither the DSN nor the key.
func TestNoSecretsOnCommandLine(t *testing.T) {
	s, _ := open(t, setup{})
	s.AppendHistoryBatch(context.Background(), []store.HistoryAppend{entry("alice", "a1")}, nil)
	pid := childPid(s)
	for _, f := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			t.Skipf("no /proc here: %v", err)
		}
		if strings.Contains(string(b), s.p.DSN) || strings.Contains(string(b), string(s.p.Key)) {
			t.Errorf("the child's %s holds the store's parameters", f)
		}
	}
}

func logged(h *test.Hook, substr string) bool {
	for _, e := range h.AllEntries() {
		if strings.Contains(e.Message, substr) || strings.Contains(fmt.Sprint(e.Data[logrus.ErrorKey]), substr) {
			return true
		}
	}
	return false
}

func messages(h *test.Hook) []string {
	var out []string
	for _, e := range h.AllEntries() {
		out = append(out, fmt.Sprintf("%s (%v)", e.Message, e.Data[logrus.ErrorKey]))
	}
	return out
}

// TestChildIsThisBinary: the child runs the binary that is running, even
// when the path it was found at has been replaced or removed since (an
// upgrade), and shows that path.
func TestChildIsThisBinary(t *testing.T) {
	if selfExe() == "" {
		t.Skip("no /proc/self/exe here")
	}
	gone := filepath.Join(t.TempDir(), "msimircd-replaced")
	s, _ := open(t, setup{exe: gone})
	batch := []store.HistoryAppend{entry("alice", "a1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	pid := childPid(s)
	if pid == 0 {
		t.Fatal("no child")
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := gone + "\x00" + Arg + "\x00"; string(cmd) != want {
		t.Errorf("the child's command line: got %q, want %q", cmd, want)
	}
}

// registries are the tests' stores' metric registries.
var registries = map[*Store]*prometheus.Registry{}

// failures reads msimircd_history_writer_failures_total of s.
func failures(t *testing.T, s *Store) float64 {
	t.Helper()
	return promtest.Value(t, registries[s], "msimircd_history_writer_failures_total")
}

// sizesStore records the size of each AppendHistoryBatch it is given.
type sizesStore struct {
	store.HistoryStore
	sizes []int
}

func (s *sizesStore) AppendHistoryBatch(_ context.Context, batch []store.HistoryAppend, _ []store.HistoryResult) []store.HistoryResult {
	s.sizes = append(s.sizes, len(batch))
	res := make([]store.HistoryResult, len(batch))
	for i := range res {
		res[i].Entry.ID = int64(len(s.sizes)*10000 + i)
	}
	return res
}

// TestChildTransactionsBounded: the child appends a long batch in
// transactions of at most txEntries, in order, and answers for every
// entry.
func TestChildTransactionsBounded(t *testing.T) {
	st := &sizesStore{}
	req := request{Seq: 3, Batch: make([]store.HistoryAppend, 2*txEntries+10)}
	rep := appendBatch(st, &req)
	if want := []int{txEntries, txEntries, 10}; !slices.Equal(st.sizes, want) {
		t.Errorf("transactions: got %v, want %v", st.sizes, want)
	}
	if rep.Seq != 3 || len(rep.Results) != len(req.Batch) {
		t.Fatalf("reply: seq %d, %d results; want 3, %d", rep.Seq, len(rep.Results), len(req.Batch))
	}
	if last := rep.Results[len(rep.Results)-1].ID; last != 30009 {
		t.Errorf("the last entry's result: ID %d, want 30009 (the third transaction's tenth)", last)
	}
}

// TestBoost: an IM held or queued while the child has a batch makes the
// child finish it at normal priority (it holds the database's write
// lock); the next batch is at idle priority again.
func TestBoost(t *testing.T) {
	requireLeaveIdle(t)
	t.Run("hold while a batch is in progress", func(t *testing.T) {
		s, pid, batch, done := stoppedBusyChild(t, setup{})
		ctx := context.Background()
		if _, err := s.HoldIM(ctx, "alice", account, store.HeldIM{Seq: 1, From: 7, Text: "while you were away", Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if got := policies(t, pid); len(got) != 1 || got[0] != "0" {
			t.Errorf("the stopped child's threads' policies after the hold: got %v, want only 0", got)
		}
		syscall.Kill(pid, syscall.SIGCONT)
		waitPolicy(t, pid, "0")
		if _, err := s.QueueIM(ctx, "alice", account, store.QueuedIM{To: 7, Text: "typed while the link was down"}); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		checkStored(t, s, batch, <-done)
	})
	t.Run("an operation waiting for the lock", func(t *testing.T) {
		s, pid, batch, done := stoppedBusyChild(t, setup{})
		// Another connection holds SQLite's write lock for a while, as a
		// child at idle priority does through its batch on busy cores.
		raw, err := sql.Open("sqlite", s.p.DSN+sqldb.SQLiteParams)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		tx, err := raw.BeginTx(context.Background(), nil) // _txlock=immediate: holds the write lock
		if err != nil {
			t.Fatal(err)
		}
		// The lock is let go once the waiting write has raised the child
		// (or after 10 s without), however late the write starts to wait.
		raised := make(chan []string, 1)
		go func() {
			defer tx.Rollback()
			deadline := time.Now().Add(10 * time.Second)
			for {
				got := policiesOf(pid)
				if len(got) == 1 && got[0] == "0" || time.Now().After(deadline) {
					raised <- got
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		if err := s.SetSetting(context.Background(), "alice", "auto_away", "gone fishing"); err != nil {
			t.Fatal(err)
		}
		if got := <-raised; len(got) != 1 || got[0] != "0" {
			t.Errorf("the stopped child's threads' policies while a write waited for the lock: got %v, want only 0", got)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		checkStored(t, s, batch, <-done)
	})
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run("hurried for a caller waiting, "+engine, func(t *testing.T) {
			s, pid, batch, done := stoppedBusyChild(t, setup{engine: engine})
			s.HurryHistory()
			if got := policies(t, pid); len(got) != 1 || got[0] != "0" {
				t.Errorf("the stopped child's threads' policies once hurried: got %v, want only 0", got)
			}
			syscall.Kill(pid, syscall.SIGKILL)
			checkStored(t, s, batch, <-done)
		})
	}
	t.Run("back to idle after the batch", func(t *testing.T) {
		s, _ := open(t, setup{})
		pid := childPid(s)
		// Raised (between batches here, as a boost that comes as a
		// batch ends is): the batch after it is at idle priority again.
		if err := raise(pid); err != nil {
			t.Fatal(err)
		}
		waitPolicy(t, pid, "0")
		batch := []store.HistoryAppend{entry("alice", "a1")}
		checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
		checkIdle(t, pid)
	})
	t.Run("no child busy: no boost", func(t *testing.T) {
		s, _ := open(t, setup{})
		pid := childPid(s)
		if _, err := s.HoldIM(context.Background(), "alice", account, store.HeldIM{Seq: 1, From: 7, Text: "hi", Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		checkIdle(t, pid)
	})
}

// TestLongBatchStaysWithChild: a batch whose request would be longer than
// a frame may be (maxFrame) is sent to the child in parts that fit; the
// child does not fail at it and stays.
func TestLongBatchStaysWithChild(t *testing.T) {
	s, hook := open(t, setup{})
	pid := childPid(s)
	if pid == 0 {
		t.Fatal("no child runs")
	}
	long := strings.Repeat("x", 1<<20) // as long an IM as a client takes
	var batch []store.HistoryAppend
	for i := 0; i*len(long) <= maxFrame; i++ {
		e := entry([]string{"alice", "bob"}[i%2], fmt.Sprint("m", i))
		e.Entry.Text = long
		batch = append(batch, e)
	}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	if got := failures(t, s); got != 0 {
		t.Errorf("failures counted: got %v, want 0 (%v)", got, messages(hook))
	}
	if got := childPid(s); got != pid {
		t.Errorf("child pid: got %d, want %d still", got, pid)
	}
}

// holdingChild opens a store whose child keeps its pipes open after it
// is killed (TestMain's "hold"), mode the rest of HISTPROC_TEST_CHILD.
// The process holding them is killed when the test ends.
func holdingChild(t *testing.T, mode string) (*Store, *test.Hook) {
	t.Helper()
	holder := filepath.Join(t.TempDir(), "holder")
	t.Setenv("HISTPROC_TEST_CHILD", strings.TrimSpace("hold "+mode))
	t.Setenv("HISTPROC_TEST_HOLDER", holder)
	s, hook := open(t, setup{})
	t.Setenv("HISTPROC_TEST_CHILD", "") // the children started from now on answer
	b, err := os.ReadFile(holder)
	if err != nil {
		t.Fatalf("the child started no process holding its pipes: %v", err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return s, hook
}

// TestChildNotEndingWhenKilled: a child that does not answer in time and
// does not end when killed (stuck in the kernel; here its pipes are held
// open) does not keep the batch waiting: the gateway appends it itself.
func TestChildNotEndingWhenKilled(t *testing.T) {
	s, hook := holdingChild(t, "hang")
	s.hung = 300 * time.Millisecond
	batch := []store.HistoryAppend{entry("alice", "a1")}
	done := make(chan []store.HistoryResult, 1)
	go func() { done <- s.AppendHistoryBatch(context.Background(), batch, nil) }()
	select {
	case res := <-done:
		checkStored(t, s, batch, res)
	case <-time.After(30 * time.Second):
		t.Fatalf("the batch still waits for a child killed 30 s ago (%v)", messages(hook))
	}
	if got := failures(t, s); got != 1 {
		t.Errorf("failures counted: got %v, want 1", got)
	}
}

// TestCloseChildNotEnding: Close does not wait for ever for a child that
// does not end when killed.
func TestCloseChildNotEnding(t *testing.T) {
	s, _ := holdingChild(t, "")
	s.mu.Lock()
	s.ch.wait = 100 * time.Millisecond
	s.mu.Unlock()
	batch := []store.HistoryAppend{entry("alice", "a1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close still waits for a child killed 30 s ago")
	}
}

// TestHungChildReaped: a child that does not answer in time is killed and
// reaped, and the goroutine reading its stderr ends, even when another
// process still holds its stderr open; its batch is counted as a failure
// and appended by the gateway.
func TestHungChildReaped(t *testing.T) {
	s, hook := holdingChild(t, "hang")
	s.hung = 300 * time.Millisecond
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	batch := []store.HistoryAppend{entry("alice", "a1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	select {
	case <-ch.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the child killed 30 s ago is not reaped (%v)", messages(hook))
	}
	if got := failures(t, s); got != 1 {
		t.Errorf("failures counted: got %v, want 1", got)
	}
	if !logged(hook, "appended by the gateway") {
		t.Errorf("the child's failure was not logged: %v", messages(hook))
	}
}

// TestBuffersAfterBurst: after a batch longer than the gateway keeps
// buffers for (many entries, some long), the child's pipes keep at most
// keptFrame to encode and read frames in and keptResults results, and the
// next batch still goes to the same child.
func TestBuffersAfterBurst(t *testing.T) {
	s, _ := open(t, setup{})
	pid := childPid(s)
	long := strings.Repeat("x", 1<<20)
	var batch []store.HistoryAppend
	for i := 0; i < keptResults+keptFrame/len(long)+1; i++ {
		e := entry([]string{"alice", "bob"}[i%2], fmt.Sprint("m", i))
		if i < keptFrame/len(long)+1 {
			e.Entry.Text = long
		}
		batch = append(batch, e)
	}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	if ch == nil || ch.cmd.Process.Pid != pid {
		t.Fatalf("the child failed at the burst")
	}
	if got := cap(ch.wbuf); got > keptFrame {
		t.Errorf("request buffer kept: got %d bytes, want at most %d", got, keptFrame)
	}
	if got := cap(ch.rbuf); got > keptFrame {
		t.Errorf("reply buffer kept: got %d bytes, want at most %d", got, keptFrame)
	}
	if got := cap(ch.res); got > keptResults {
		t.Errorf("results kept: got %d, want at most %d", got, keptResults)
	}
	batch = []store.HistoryAppend{entry("alice", "after")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	if got := childPid(s); got != pid {
		t.Errorf("child pid: got %d, want %d still", got, pid)
	}
}

// TestRequestBufferKeptForAFullBatch: a full batch of the bridge's
// (keptResults entries of IMs of a few hundred bytes), its request no
// longer than keptFrame, leaves the gateway's request buffer kept for the
// next batch rather than dropped and grown anew for each.
func TestRequestBufferKeptForAFullBatch(t *testing.T) {
	s, _ := open(t, setup{})
	text := strings.Repeat("x", 880)
	var batch []store.HistoryAppend
	for i := range keptResults {
		e := entry([]string{"alice", "bob"}[i%2], fmt.Sprint("m", i))
		e.Entry.Text = text
		batch = append(batch, e)
	}
	size := len(appendRequest(nil, &request{Seq: 1, Batch: batch}))
	if size > keptFrame {
		t.Fatalf("the request is %d bytes, longer than keptFrame", size)
	}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	if ch == nil {
		t.Fatal("the child failed at the batch")
	}
	if got := cap(ch.wbuf); got < size {
		t.Errorf("request buffer kept after a request of %d bytes (keptFrame %d): got %d bytes", size, keptFrame, got)
	}
}

// TestRestartBacksOff: children that fail one after another without
// answering a batch (here: their store does not open) are started again
// ever less often, up to maxRestartWait, rather than every restartWait
// for ever (a process started, a database opened and a warning logged
// each second); once a child has answered a batch, the next failure
// waits restartWait again.
func TestRestartBacksOff(t *testing.T) {
	s, _ := open(t, setup{params: func(p *Params) { p.Key = make([]byte, len(p.Key)) }})
	ctx := context.Background()
	// wait is how long after now the next child may start.
	wait := func() time.Duration {
		s.mu.Lock()
		defer s.mu.Unlock()
		return time.Until(s.retryAt)
	}
	// fail has a child started at once, and waits for it to fail.
	fail := func(i int) {
		t.Helper()
		s.mu.Lock()
		s.retryAt = time.Time{}
		s.mu.Unlock()
		batch := []store.HistoryAppend{entry("alice", fmt.Sprint("f", i))}
		checkStored(t, s, batch, s.AppendHistoryBatch(ctx, batch, nil))
		s.starts.Wait()
		if pid := childPid(s); pid != 0 {
			t.Fatalf("failure %d: child %d runs with a store that does not open", i, pid)
		}
	}
	prev := wait()
	for i := range 4 {
		fail(i)
		got := wait()
		if got <= prev+restartWait/2 {
			t.Fatalf("failure %d in a row: the next start in %v, after %v the time before; want it later each time", i+2, got, prev)
		}
		prev = got
	}
	for i := 4; i < 20; i++ {
		fail(i)
	}
	if got := wait(); got > maxRestartWait {
		t.Errorf("after 21 failures in a row: the next start in %v, want at most %v", got, maxRestartWait)
	}

	// A child that answers a batch ends the run of failures.
	key, err := store.LoadOrCreateKey(filepath.Join(filepath.Dir(s.p.DSN), "key"))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	copy(s.p.Key, key)
	s.retryAt = time.Time{}
	s.mu.Unlock()
	s.AppendHistoryBatch(ctx, []store.HistoryAppend{entry("alice", "g0")}, nil)
	s.starts.Wait()
	pid := childPid(s)
	if pid == 0 {
		t.Fatal("no child started with the right key")
	}
	batch := []store.HistoryAppend{entry("alice", "g1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(ctx, batch, nil))
	if got := childPid(s); got != pid {
		t.Fatalf("child pid: got %d, want %d still", got, pid)
	}
	s.mu.Lock()
	clear(s.p.Key)
	s.mu.Unlock()
	syscall.Kill(pid, syscall.SIGKILL)
	waitGone(t, pid)
	batch = []store.HistoryAppend{entry("alice", "g2")}
	checkStored(t, s, batch, s.AppendHistoryBatch(ctx, batch, nil)) // the child's failure; a new one starts
	s.starts.Wait()
	if got := wait(); got > restartWait {
		t.Errorf("the first failure after a child answered: the next start in %v, want at most %v", got, restartWait)
	}
}

// TestCloseDuringStart: Close does not wait for a child being started in
// the background to open its store (up to startWait): the start is called
// off, and the child ends.
func TestCloseDuringStart(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	s, _ := open(t, setup{})
	batch := []store.HistoryAppend{entry("alice", "a0")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	pid := childPid(s)
	t.Setenv("HISTPROC_TEST_CHILD", "hang open") // the next child never opens
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	batch = []store.HistoryAppend{entry("alice", "a1")}
	checkStored(t, s, batch, s.AppendHistoryBatch(context.Background(), batch, nil))
	s.mu.Lock()
	starting := s.starting
	s.mu.Unlock()
	if !starting {
		t.Fatal("no child is being started after the first failed")
	}
	// The child being started, once it runs.
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); len(pids) == 0; time.Sleep(10 * time.Millisecond) {
		for _, c := range procstat.Children(os.Getpid()) {
			if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c)); err == nil && strings.HasSuffix(string(cmd), "\x00"+Arg+"\x00") && !procstat.Gone(c) {
				pids = append(pids, c)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the child being started does not run")
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(startWait / 3):
		t.Fatalf("Close still waits %v after it was called, for a child that does not open its store", startWait/3)
	}
	for _, pid := range pids {
		waitGone(t, pid)
	}
}
