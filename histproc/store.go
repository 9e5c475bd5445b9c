package histproc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/metrics"
	"github.com/msimircd/msimircd/store"
)

const (
	// startWait bounds a child's start: its store's opening included.
	startWait = time.Minute
	// answerWait is how long a child may take over one batch before it
	// is taken for hung. A child starved of CPU (its priority is idle)
	// is slow, not hung: this is far beyond what a batch takes it on a
	// machine whose cores are all busy.
	answerWait = 2 * time.Minute
	// inProcessWait bounds a batch appended in the gateway's process,
	// and, apart, the look-ups of what a failed child had stored of it.
	inProcessWait = 10 * time.Second
	// restartWait is how long after a child failed to start, or failed
	// the first batch it was given, before another is started; each such
	// failure in a row doubles it (backOffLocked), up to maxRestartWait.
	restartWait = time.Second
	// maxRestartWait bounds the wait before a child is started again:
	// one that cannot work (a store it cannot open, a process limit) is
	// tried, and its failure logged, a few times an hour.
	maxRestartWait = 5 * time.Minute
	// exitWait bounds the wait for the child to finish its last batch
	// and exit once its stdin is closed.
	exitWait = 10 * time.Second
	// boostAfter is how long one of the gateway's own store writes may
	// be under way before the child's batch in progress is finished
	// at normal priority (boost): with SQLite, such an operation is most
	// likely waiting for the write lock the child holds.
	boostAfter = 50 * time.Millisecond
)

// Store is the gateway's store with its history appends
// (AppendHistoryBatch, and AppendHistory through it) made by the child
// process; every other method is the embedded store's. When the child
// fails (it exits, or hangs), the batch it had is appended in the
// gateway's process, and another child is started in the background;
// until it runs, batches are appended in the gateway's process too. An
// entry is never left out because of the child, and entries a failed
// child had stored already come back as stored, not as duplicates.
//
// A batch waits for the child as long as the child works on it (up to
// answerWait): on a machine whose cores are all busy, the idle-priority
// child gets no CPU and history falls behind, which the caller bounds.
// The gateway's other store operations do not wait on it: with SQLite,
// a write that has waited boostAfter (for the write lock the child holds
// through its batch) has the child finish that batch at normal priority.
type Store struct {
	store.Store
	p        Params
	exe      string // the msimircd binary
	log      *logrus.Entry
	failures prometheus.Counter // nil: not counted
	starts   sync.WaitGroup     // background starts
	// startsCtx bounds the background starts; Close ends it (stopStarts)
	// rather than wait for a child's store to open.
	startsCtx  context.Context
	stopStarts context.CancelFunc
	hung       time.Duration         // answerWait (tests shorten it)
	ownWait    time.Duration         // inProcessWait (tests shorten it)
	busy       atomic.Pointer[child] // the child while it has a batch
	// raiseFailed: boost could not raise a child's priority, which has
	// been logged (once).
	raiseFailed atomic.Bool

	mu       sync.Mutex // one batch at a time; guards what follows
	ch       *child     // nil: none running
	starting bool       // a child is being started in the background
	retryAt  time.Time  // no new child before then
	// restartDelay is the wait set after the last of the children that
	// failed in a row without answering a batch (backOffLocked); 0: the
	// last child answered.
	restartDelay time.Duration
	closed       bool
}

// New returns st with its history appends made by a child process: exe
// (the running msimircd, os.Executable) started with Arg, opening the
// store p says (the same as st). The child is started at once (ctx and
// startWait bound that); one that does not start is logged, and batches
// are appended in this process until another does. Close stops the
// child, then closes st. With reg, the child's failures are counted
// (msimircd_history_writer_failures_total).
func New(ctx context.Context, st store.Store, p Params, exe string, reg prometheus.Registerer, log *logrus.Entry) *Store {
	p.Key = append([]byte(nil), p.Key...)
	s := &Store{Store: st, p: p, exe: exe, log: log.WithField("part", "history-writer"), hung: answerWait, ownWait: inProcessWait}
	s.startsCtx, s.stopStarts = context.WithCancel(context.Background())
	if priorities && p.Driver == "sqlite" {
		s.Store = store.WithSlowWriteHook(st, boostAfter, s.boost)
	}
	if reg != nil {
		s.failures = metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msimircd_history_writer_failures_total",
			Help: "Times the history writer process failed: it did not start, exited or hung (its batch was appended by the gateway).",
		}))
	}
	ctx, cancel := context.WithTimeout(ctx, startWait)
	defer cancel()
	ch, err := startChild(ctx, exe, s.p, s.log)
	if err != nil {
		s.failed()
		s.log.WithError(err).Warn("history: the writer process did not start; appending in the gateway's process until one does")
		s.backOffLocked()
		return s
	}
	s.ch = ch
	return s
}

// AppendHistory appends one entry, through AppendHistoryBatch.
func (s *Store) AppendHistory(ctx context.Context, user string, e store.HistoryEntry) (store.HistoryEntry, error) {
	r := s.AppendHistoryBatch(ctx, []store.HistoryAppend{{User: user, Entry: e}}, nil)[0]
	return r.Entry, r.Err
}

// AppendHistoryBatch has the child append batch, as the store's
// AppendHistoryBatch would. ctx ending fails the batch (the child may
// have stored some of it). A batch longer than one request may be
// (maxFrame, maxBatch) goes to the child in parts; an entry that alone
// is longer is appended in this process.
func (s *Store) AppendHistoryBatch(ctx context.Context, batch []store.HistoryAppend, res []store.HistoryResult) []store.HistoryResult {
	if len(batch) == 0 {
		return res[:0]
	}
	res = slices.Grow(res[:0], len(batch))[:len(batch)]
	s.mu.Lock()
	defer s.mu.Unlock()
	for lo := 0; lo < len(batch); {
		hi, fits := requestPart(batch, lo)
		part, out := batch[lo:hi], res[lo:hi:hi]
		if !fits {
			s.inProcess(ctx, part, false, out)
		} else if err := s.appendPart(ctx, part, out); err != nil {
			for i := range res[lo:] {
				res[lo+i] = store.HistoryResult{Err: err}
			}
			break
		}
		lo = hi
	}
	return res
}

// requestPart returns the end of the part of batch from lo that one
// request holds: entries up to maxBatch, of which the request is at most
// maxFrame long. fits is false when the entry at lo alone is longer (the
// part is that entry).
func requestPart(batch []store.HistoryAppend, lo int) (hi int, fits bool) {
	size := 2 * binary.MaxVarintLen64 // seq, n
	for hi = lo; hi < len(batch) && hi-lo < maxBatch; hi++ {
		size += entryBound(&batch[hi])
		if size > maxFrame {
			if hi == lo {
				return lo + 1, false
			}
			break
		}
	}
	return hi, true
}

// entryBound is the most bytes appendRequest takes for a.
func entryBound(a *store.HistoryAppend) int {
	e := &a.Entry
	strs := len(a.User) + len(e.MsgID) + len(e.Account) + len(e.Kind) + len(e.Text)
	// Five strings' lengths, the time (flag, seconds, nanoseconds), the
	// buddy and outgoing.
	return strs + 5*binary.MaxVarintLen64 + 1 + 2*binary.MaxVarintLen64 + binary.MaxVarintLen64 + 1
}

// appendPart has the child append part, its results in out (as long as
// part); the error is ctx's when it ended first, and then out is not set.
// Caller holds s.mu.
func (s *Store) appendPart(ctx context.Context, part []store.HistoryAppend, out []store.HistoryResult) error {
	if s.ch == nil {
		s.restartLocked()
		s.inProcess(ctx, part, false, out)
		return nil
	}
	ch := s.ch
	s.busy.Store(ch)
	rep, dead, err := ch.call(ctx, part, s.hung)
	s.busy.Store(nil)
	ch.served++
	if err == nil {
		s.restartDelay = 0 // it answered: the failures in a row end
	}
	if dead {
		// Failed, or killed as it answered: either way gone.
		s.ch = nil
		if ch.served == 1 {
			s.backOffLocked() // the batch may be what it fails at
		}
	}
	if err == nil {
		if dead {
			s.restartLocked()
		}
		results(part, rep, out)
		ch.res = kept(ch.res, keptResults)
		return nil
	}
	if ctx.Err() != nil {
		s.restartLocked()
		return fmt.Errorf("store: append history: %w", ctx.Err())
	}
	s.failed()
	// It may have stored some of part before it failed.
	s.log.WithError(err).Warn("history: the writer process failed; its batch is appended by the gateway")
	s.restartLocked()
	s.inProcess(ctx, part, true, out)
	return nil
}

// HoldIM holds an IM in the store, the child's batch in progress finished
// at normal priority first (boost).
func (s *Store) HoldIM(ctx context.Context, user, email string, im store.HeldIM) (store.HeldIM, error) {
	s.boost()
	return s.Store.HoldIM(ctx, user, email, im)
}

// QueueIM queues an IM in the store, the child's batch in progress
// finished at normal priority first (boost).
func (s *Store) QueueIM(ctx context.Context, user, email string, im store.QueuedIM) (store.QueuedIM, error) {
	s.boost()
	return s.Store.QueueIM(ctx, user, email, im)
}

// HurryHistory has the child finish the batch it has at normal priority
// (raiseBusy), for a caller of the gateway's that waits for the history
// (store.HistoryHurrier), whatever the database.
func (s *Store) HurryHistory() { s.raiseBusy() }

// boost has the child finish the batch it has at normal priority
// (raiseBusy) when the database is SQLite: the child holds its write lock
// for the whole batch, and an IM that must be committed before it counts
// as handled, or any other write of the gateway's, waits for that.
// (PostgreSQL locks rows, and the gateway takes none the child holds.)
func (s *Store) boost() {
	if s.p.Driver == "sqlite" {
		s.raiseBusy()
	}
}

// raiseBusy raises the child's threads to normal priority if it has a
// batch in progress. At idle priority on a machine whose cores are all
// busy a batch could take seconds; at normal priority it takes the
// batch's CPU time. The gateway raises the child itself (a child at idle
// priority might not get the CPU to do it); the child goes back to idle
// once its batch is done.
func (s *Store) raiseBusy() {
	c := s.busy.Load()
	if c == nil || !priorities {
		return
	}
	if err := raise(c.cmd.Process.Pid); err != nil {
		if !errors.Is(err, fs.ErrNotExist) && s.raiseFailed.CompareAndSwap(false, true) {
			s.log.WithError(err).Warn("history writer: cannot raise its priority while the gateway waits for it (allow it with LimitNICE=20 or ulimit -e 20); it finishes its batches at idle priority")
		}
	}
}

// inProcess appends batch in this process, its results in out (as long
// as batch); again: the batch may have been stored in part already, and
// those entries count as stored. Caller holds s.mu.
func (s *Store) inProcess(ctx context.Context, batch []store.HistoryAppend, again bool, out []store.HistoryResult) {
	actx, cancel := context.WithTimeout(ctx, s.ownWait)
	copy(out, s.Store.AppendHistoryBatch(actx, batch, out))
	cancel()
	if again {
		// A deadline of their own: an append that took its time must
		// not leave the look-ups none, and what the child stored come
		// back as duplicates.
		lctx, cancel := context.WithTimeout(ctx, s.ownWait)
		defer cancel()
		s.storedAlready(lctx, batch, out)
	}
}

// restartLocked starts a child in the background unless one is starting,
// the last failed a moment ago, or the store is closed. Caller holds s.mu.
func (s *Store) restartLocked() {
	if s.ch != nil || s.starting || s.closed || time.Now().Before(s.retryAt) {
		return
	}
	s.starting = true
	s.starts.Add(1)
	go func() {
		defer s.starts.Done()
		ctx, cancel := context.WithTimeout(s.startsCtx, startWait)
		ch, err := startChild(ctx, s.exe, s.p, s.log)
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.starting = false
		switch {
		case err != nil && s.closed:
			// Called off by Close.
		case err != nil:
			s.failed()
			s.backOffLocked()
			s.log.WithError(err).Warn("history: the writer process did not start; appending in the gateway's process until one does")
		case s.closed:
			ch.stop()
		default:
			s.ch = ch
		}
	}()
}

// backOffLocked sets when the next child may start after one failed to
// start or failed the first batch it was given: restartWait after the
// first such failure in a row, twice the wait before after each next, up
// to maxRestartWait. A child replacing one that answered a batch is
// started at once. Caller holds s.mu.
func (s *Store) backOffLocked() {
	s.restartDelay = min(max(2*s.restartDelay, restartWait), maxRestartWait)
	s.retryAt = time.Now().Add(s.restartDelay)
}

// storedAlready turns the duplicates of a batch appended again into the
// entries stored the first time: those of the same msgid stored for the
// user with the same content.
func (s *Store) storedAlready(ctx context.Context, batch []store.HistoryAppend, res []store.HistoryResult) {
	for i, r := range res {
		if !errors.Is(r.Err, store.ErrExists) {
			continue
		}
		want := batch[i].Entry
		e, err := s.Store.HistoryByMsgID(ctx, batch[i].User, want.MsgID)
		if err == nil && e.Account == want.Account && e.Buddy == want.Buddy && e.Outgoing == want.Outgoing && e.Kind == want.Kind && e.Text == want.Text {
			res[i] = store.HistoryResult{Entry: e}
		}
	}
}

// failed counts a failure of the child.
func (s *Store) failed() {
	if s.failures != nil {
		s.failures.Inc()
	}
}

// results sets out (as long as batch) to the child's answer to batch as
// the store gives it.
func results(batch []store.HistoryAppend, rep *reply, out []store.HistoryResult) {
	clear(out)
	for i, r := range rep.Results {
		if err := r.err(); err != nil {
			out[i].Err = err
			continue
		}
		e := batch[i].Entry
		e.ID, e.Time = r.ID, r.Time
		out[i].Entry = e
	}
}

// Close stops the child (it finishes the batch it has) and closes the
// embedded store.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stopStarts()  // a child still starting is killed
	s.starts.Wait() // a child started meanwhile is stopped
	s.mu.Lock()
	if s.ch != nil {
		s.ch.stop()
		s.ch = nil
	}
	clear(s.p.Key)
	s.mu.Unlock()
	return s.Store.Close()
}

// keptResults bounds the results array a child keeps for its next answer:
// a batch of the bridge's fits.
const keptResults = txEntries

// child is one running history writer process.
type child struct {
	cmd    *exec.Cmd
	in     *os.File // its stdin
	out    *os.File // its stdout
	errR   *os.File // its stderr (read by reap)
	bw     *bufio.Writer
	br     *bufio.Reader
	wbuf   []byte   // the frame being sent; at most keptFrame kept
	rbuf   []byte   // the frame last read; at most keptFrame kept
	res    []result // the results last read (an answer's, until results has them); at most keptResults kept
	seq    uint64
	served int           // batches given (by the Store, under its mu)
	exited chan struct{} // closed once it has exited and its stderr ended
	wait   time.Duration // how long to wait for it to exit: exitWait (tests shorten it)
	log    *logrus.Entry

	lastErr string // its last line on stderr but notes (set before exited is closed)
	lines   int    // lines read from its stderr
	logged  int    // bytes of them logged
	quiet   bool   // the rest of its stderr is not logged
	crashed bool   // it said it panicked: lastErr holds the panic's line
	status  error  // its exit status (set before exited is closed)
}

// selfExe is a path that runs this process's own binary ("" where there
// is none).
func selfExe() string {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe"
	}
	return ""
}

// startChild starts exe as the history writer and waits for its store
// to open.
func startChild(ctx context.Context, exe string, p Params, log *logrus.Entry) (*child, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd := exec.Command(exe, Arg)
	if self := selfExe(); self != "" {
		// The binary running, even if exe was replaced since (an
		// upgrade): a newer one would migrate the database under this
		// one. ps still shows exe.
		cmd.Path = self
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	dieWithParent(cmd)
	reaper := make(chan *child, 1)
	err = startLocked(cmd, reaper)
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("starting %s %s: %w", exe, Arg, err)
	}
	c := &child{cmd: cmd, in: inW, out: outR, errR: errR, exited: make(chan struct{}), wait: exitWait, log: log.WithField("pid", cmd.Process.Pid)}
	c.bw, c.br = bufio.NewWriter(inW), bufio.NewReader(outR)
	reaper <- c
	if err := c.open(ctx, p); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

// startLocked starts cmd from a goroutine locked to its OS thread, which
// then reaps the child (c.reap, c sent on reaper once cmd has started)
// and only then lets the thread go. The child's parent-death signal
// (dieWithParent) is sent when the thread that started it ends, and a
// thread ends with a goroutine that locked it and never unlocked: the
// thread startChild's caller runs on could end so, the child's does not.
// (Go's fork also kills a child whose parent died before the signal was
// set.) The cost is a thread per child while it lives: one, or one more
// for each child that a kill could not end, as a restart leaves them.
func startLocked(cmd *exec.Cmd, reaper <-chan *child) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			(<-reaper).reap()
		}
	}()
	return <-started
}

// reap logs the child's stderr, then reaps it. Its stderr ends when the
// child has exited, or when kill closes it.
func (c *child) reap() {
	sc := bufio.NewScanner(c.errR)
	for sc.Scan() {
		c.stderrLine(sc.Text())
	}
	io.Copy(io.Discard, c.errR) // past a line too long: the child never blocks on it
	c.errR.Close()
	c.status = c.cmd.Wait()
	c.in.Close()
	c.out.Close()
	close(c.exited)
}

// maxStderrLines bounds the lines of one child's stderr that are logged:
// a Go panic's trace would otherwise be tens of warnings.
const maxStderrLines = 20

// maxStderrLine and maxStderrBytes bound what is logged of one line of a
// child's stderr and of all of them: a panic's value or a store's error
// may hold an IM's text, which the log keeps no more of than that.
const (
	maxStderrLine  = 200
	maxStderrBytes = 2048
)

// cutSuffix bounds what cutLine adds to a line it cuts.
const cutSuffix = 40

// cutLine is line, cut to maxStderrLine bytes (at a character's start)
// and saying how much was left out.
func cutLine(line string) string {
	if len(line) <= maxStderrLine {
		return line
	}
	i := maxStderrLine
	for i > 0 && !utf8.RuneStart(line[i]) {
		i--
	}
	return fmt.Sprintf("%s… (%d bytes more not logged)", line[:i], len(line)-i)
}

// stderrLine logs a line of the child's stderr, cut (cutLine; past
// maxStderrLines or maxStderrBytes, no more), and, unless it is a note,
// keeps it, cut, as what the child last said of why it fails; once the
// child said it panicked, that line is the cause, not the trace after it.
func (c *child) stderrLine(line string) {
	c.lines++
	line = cutLine(line)
	switch {
	case c.quiet:
	case c.lines <= maxStderrLines && c.logged+len(line) <= maxStderrBytes:
		c.logged += len(line)
		c.log.Warn(line)
	default:
		c.quiet = true
		c.log.Warn("the history writer says more on stderr; the rest is not logged")
	}
	if strings.HasPrefix(line, notePrefix) || c.crashed {
		return
	}
	c.lastErr = line
	c.crashed = strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")
}

// open sends the store's parameters and waits for the store to open.
func (c *child) open(ctx context.Context, p Params) error {
	b := appendParams(c.wbuf[:0], &p)
	c.wbuf = b
	rep, killed, err := c.exchange(ctx, 0)
	clear(b) // the key
	if err != nil {
		return err
	}
	if killed {
		// Its answer came as the start's deadline killed it: gone all
		// the same, and its first batch would fail.
		return fmt.Errorf("killed as it answered: %w", ctx.Err())
	}
	if rep.Err != "" {
		return errors.New(rep.Err)
	}
	return nil
}

// call sends one batch and reads its answer, killing the child if it has
// not answered after hung; dead: the child is gone (failed, or killed as
// it answered) and must not be used again.
func (c *child) call(ctx context.Context, batch []store.HistoryAppend, hung time.Duration) (rep *reply, dead bool, err error) {
	c.seq++
	req := request{Seq: c.seq, Batch: batch}
	c.wbuf = appendRequest(c.wbuf[:0], &req)
	ctx, cancel := context.WithTimeout(ctx, hung)
	defer cancel()
	rep, killed, err := c.exchange(ctx, len(batch))
	switch {
	case err != nil:
	case rep.Seq != req.Seq:
		err = fmt.Errorf("answered request %d, want %d", rep.Seq, req.Seq)
	case rep.Err != "":
		err = errors.New(rep.Err)
	}
	if err != nil {
		c.kill()
		return nil, true, err
	}
	return rep, killed, nil
}

// exchange sends c.wbuf and reads the answer, of want results. When ctx
// ends first the child is killed (what it was doing is lost with it, and
// it is not left to answer later); killed: that happened, even if the
// answer came.
func (c *child) exchange(ctx context.Context, want int) (_ *reply, killed bool, _ error) {
	stop := context.AfterFunc(ctx, c.kill)
	defer func() {
		if !stop() && ctx.Err() != nil {
			killed = true
		}
	}()
	err := writeFrame(c.bw, c.wbuf)
	c.wbuf = kept(c.wbuf, keptFrame)
	if err == nil {
		c.rbuf, err = readFrame(c.br, c.rbuf)
	}
	if err == nil {
		rep, err := decodeReply(c.rbuf, want, c.res)
		c.rbuf = kept(c.rbuf, keptFrame) // the reply holds none of it
		if err != nil {
			return nil, false, fmt.Errorf("its answer: %w", err)
		}
		if cap(rep.Results) > cap(c.res) {
			c.res = rep.Results
		}
		return &rep, false, nil
	}
	if ctx.Err() != nil {
		return nil, false, fmt.Errorf("no answer in time: %w", ctx.Err())
	}
	return nil, false, c.failure(err)
}

// failure describes the child's end after a pipe error err.
func (c *child) failure(err error) error {
	select {
	case <-c.exited:
	case <-time.After(c.wait):
		return fmt.Errorf("%w (it has not exited)", err)
	}
	if c.lastErr != "" {
		return fmt.Errorf("%v: %s", c.status, c.lastErr)
	}
	return fmt.Errorf("%w (%v)", err, c.status)
}

// kill ends the child at once, and closes the gateway's ends of its
// pipes: a read or write waiting on them returns even if the child does
// not end (one stuck in the kernel ends only when that lets it), and reap
// goes on to reap it even if another process holds its stderr (one the
// child started): what a killed child says there no longer matters.
func (c *child) kill() {
	c.cmd.Process.Kill()
	c.in.Close()
	c.out.Close()
	c.errR.Close()
}

// stop closes the child's stdin, so it finishes and exits, and waits for
// that; after c.wait, it kills the child, and waits c.wait again at most.
func (c *child) stop() {
	c.in.Close()
	select {
	case <-c.exited:
		return
	case <-time.After(c.wait):
	}
	c.kill()
	select {
	case <-c.exited:
	case <-time.After(c.wait):
		c.log.Warn("history: the writer process has not ended after it was killed; no longer waiting for it")
	}
}
