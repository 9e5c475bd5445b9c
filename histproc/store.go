package histproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/metrics"
	"github.com/msimircd/msimircd/store"
)

const (
	// restartWait is how long after the child failed Store appends in
	// its own process before it starts another child.
	restartWait = time.Second
	// exitWait bounds the wait for the child to finish its last batch
	// and exit once its stdin is closed.
	exitWait = 10 * time.Second
)

// Store is the gateway's store with its history appends
// (AppendHistoryBatch, and AppendHistory through it) made by the child
// process; every other method is the embedded store's. When the child
// cannot do a batch (it does not start, it exits, it does not answer in
// time), the batch goes to a fresh child, or while none can be started
// to the embedded store, in this process: an entry is never left out
// because of the child. Entries a failed child had stored already come
// back as stored, not as duplicates.
type Store struct {
	store.Store
	p   Params
	exe string // the msimircd binary
	log *logrus.Entry

	failures prometheus.Counter // nil: not counted

	mu      sync.Mutex // one batch at a time; guards what follows
	ch      *child     // nil: none running
	retryAt time.Time  // no new child before then
}

// New returns st with its history appends made by a child process: exe
// (the running msimircd, os.Executable) started with Arg, opening the
// store p says (the same as st). The child is started at once; one that
// does not start is logged, and started again at a later batch. Close
// stops the child, then closes st. With reg, the child's failures are
// counted (msimircd_history_writer_failures_total).
func New(ctx context.Context, st store.Store, p Params, exe string, reg prometheus.Registerer, log *logrus.Entry) *Store {
	p.Key = append([]byte(nil), p.Key...)
	s := &Store{Store: st, p: p, exe: exe, log: log.WithField("part", "history-writer")}
	if reg != nil {
		s.failures = metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msimircd_history_writer_failures_total",
			Help: "Times the history writer process failed: it did not start, exited or did not answer in time (its batch was appended again, by another or by the gateway).",
		}))
	}
	ch, err := startChild(ctx, exe, s.p, s.log)
	if err != nil {
		s.failed()
		s.log.WithError(err).Warn("history: the writer process did not start; appending in the gateway's process until it does")
		s.retryAt = time.Now().Add(restartWait)
		return s
	}
	s.ch = ch
	return s
}

// AppendHistory appends one entry, through AppendHistoryBatch.
func (s *Store) AppendHistory(ctx context.Context, user string, e store.HistoryEntry) (store.HistoryEntry, error) {
	r := s.AppendHistoryBatch(ctx, []store.HistoryAppend{{User: user, Entry: e}})[0]
	return r.Entry, r.Err
}

// AppendHistoryBatch has the child append batch, as the store's
// AppendHistoryBatch would.
func (s *Store) AppendHistoryBatch(ctx context.Context, batch []store.HistoryAppend) []store.HistoryResult {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.viaChild(ctx, batch)
	if err == nil {
		return res
	}
	if ctx.Err() != nil {
		return failAll(batch, fmt.Errorf("store: append history: %w", err))
	}
	// The child failed: it may have stored some of batch before it did.
	s.log.WithError(err).Warn("history: the writer process failed; its batch is appended again")
	if res, err = s.viaChild(ctx, batch); err != nil {
		s.log.WithError(err).Warn("history: appending in the gateway's process until the writer process runs again")
		res = s.Store.AppendHistoryBatch(ctx, batch)
	}
	return s.storedAlready(ctx, batch, res)
}

// storedAlready turns the duplicates of a batch appended again into the
// entries stored the first time.
func (s *Store) storedAlready(ctx context.Context, batch []store.HistoryAppend, res []store.HistoryResult) []store.HistoryResult {
	for i, r := range res {
		if !errors.Is(r.Err, store.ErrExists) {
			continue
		}
		if e, err := s.Store.HistoryByMsgID(ctx, batch[i].User, batch[i].Entry.MsgID); err == nil {
			res[i] = store.HistoryResult{Entry: e}
		}
	}
	return res
}

// failed counts a failure of the child.
func (s *Store) failed() {
	if s.failures != nil {
		s.failures.Inc()
	}
}

func failAll(batch []store.HistoryAppend, err error) []store.HistoryResult {
	res := make([]store.HistoryResult, len(batch))
	for i := range res {
		res[i].Err = err
	}
	return res
}

// viaChild has the running child (or a new one) append batch. A child
// that fails the first batch it is given, or does not start, is not
// replaced for restartWait: the batch may be what it fails at. Caller
// holds s.mu.
func (s *Store) viaChild(ctx context.Context, batch []store.HistoryAppend) ([]store.HistoryResult, error) {
	fresh := s.ch == nil
	if fresh {
		if time.Now().Before(s.retryAt) {
			return nil, &errChild{errors.New("not running (it failed a moment ago)")}
		}
		ch, err := startChild(ctx, s.exe, s.p, s.log)
		if err != nil {
			s.failed()
			s.retryAt = time.Now().Add(restartWait)
			return nil, &errChild{err}
		}
		s.ch = ch
	}
	rep, err := s.ch.call(ctx, batch)
	if err != nil {
		s.failed()
		s.ch.kill()
		s.ch = nil
		if fresh {
			s.retryAt = time.Now().Add(restartWait)
		}
		return nil, &errChild{err}
	}
	res := make([]store.HistoryResult, len(batch))
	for i, r := range rep.Results {
		if err := r.err(); err != nil {
			res[i].Err = err
			continue
		}
		e := batch[i].Entry
		e.ID, e.Time = r.ID, r.Time
		res[i].Entry = e
	}
	return res, nil
}

// Close stops the child (it finishes the batch it has) and closes the
// embedded store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.ch != nil {
		s.ch.stop()
		s.ch = nil
	}
	s.retryAt = time.Now().Add(time.Duration(1<<62 - 1)) // no child after Close
	clear(s.p.Key)
	s.mu.Unlock()
	return s.Store.Close()
}

// child is one running history writer process.
type child struct {
	cmd    *exec.Cmd
	in     *os.File // its stdin
	out    *os.File // its stdout
	bw     *bufio.Writer
	br     *bufio.Reader
	wbuf   []byte // the frame being sent
	rbuf   []byte // the frame last read
	seq    uint64
	exited chan struct{} // closed once it has exited and its stderr ended
	log    *logrus.Entry

	lastErr string // its last line on stderr (set before exited is closed)
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
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("starting %s %s: %w", exe, Arg, err)
	}
	c := &child{cmd: cmd, in: inW, out: outR, exited: make(chan struct{}), log: log.WithField("pid", cmd.Process.Pid)}
	c.bw, c.br = bufio.NewWriter(inW), bufio.NewReader(outR)
	go c.wait(errR)
	if err := c.open(ctx, p); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

// wait logs the child's stderr, then reaps it.
func (c *child) wait(errR *os.File) {
	sc := bufio.NewScanner(errR)
	for sc.Scan() {
		c.lastErr = sc.Text()
		c.log.Warn(c.lastErr)
	}
	errR.Close()
	c.status = c.cmd.Wait()
	c.in.Close()
	c.out.Close()
	close(c.exited)
}

// open sends the store's parameters and waits for the store to open.
func (c *child) open(ctx context.Context, p Params) error {
	c.wbuf = appendParams(c.wbuf[:0], &p)
	rep, err := c.exchange(ctx)
	clear(c.wbuf)
	if err != nil {
		return err
	}
	if rep.Err != "" {
		return errors.New(rep.Err)
	}
	return nil
}

// call sends one batch and reads its answer.
func (c *child) call(ctx context.Context, batch []store.HistoryAppend) (*reply, error) {
	c.seq++
	req := request{Seq: c.seq, Batch: batch}
	if d, ok := ctx.Deadline(); ok {
		req.Wait = max(time.Until(d), time.Millisecond)
	}
	c.wbuf = appendRequest(c.wbuf[:0], &req)
	rep, err := c.exchange(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case rep.Seq != req.Seq:
		return nil, fmt.Errorf("answered request %d, want %d", rep.Seq, req.Seq)
	case rep.Err != "":
		return nil, errors.New(rep.Err)
	case len(rep.Results) != len(batch):
		return nil, fmt.Errorf("answered %d entries of %d", len(rep.Results), len(batch))
	}
	return rep, nil
}

// exchange sends c.wbuf and reads the answer. When ctx ends first the
// child is killed (what it was doing is lost with it, and it is not left
// to answer later).
func (c *child) exchange(ctx context.Context) (*reply, error) {
	stop := context.AfterFunc(ctx, c.kill)
	defer stop()
	err := writeFrame(c.bw, c.wbuf)
	if err == nil {
		c.rbuf, err = readFrame(c.br, c.rbuf)
	}
	var rep reply
	if err == nil {
		rep, err = decodeReply(c.rbuf)
		if err != nil {
			return nil, fmt.Errorf("its answer: %w", err) // it is killed
		}
		return &rep, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("no answer in time: %w", ctx.Err())
	}
	return nil, c.failure(err)
}

// failure describes the child's end after a pipe error err.
func (c *child) failure(err error) error {
	select {
	case <-c.exited:
	case <-time.After(exitWait):
		return fmt.Errorf("%w (it has not exited)", err)
	}
	if c.lastErr != "" {
		return fmt.Errorf("%v: %s", c.status, c.lastErr)
	}
	return fmt.Errorf("%w (%v)", err, c.status)
}

// kill ends the child at once.
func (c *child) kill() {
	c.cmd.Process.Kill()
}

// stop closes the child's stdin, so it finishes and exits, and waits for
// that (or kills it after exitWait).
func (c *child) stop() {
	c.in.Close()
	select {
	case <-c.exited:
	case <-time.After(exitWait):
		c.kill()
		<-c.exited
	}
}
