// The history writer: the bridge's goroutine that appends to the store's
// history, so that a session never waits for a history write (history is a
// record of what was delivered; the delivery itself never waits for it).
// Entries wait in one bounded queue and are appended in batches, one
// transaction each: a batch gathers for a moment (histLinger) unless a
// reader waits for it, so the store commits a few times a second however
// many IMs pass, rather than once per IM. When the store cannot keep up
// for long and the queue is full, the entry is left out of the history,
// counted (msimircd_history_dropped_total), logged and told to the user,
// and the IM itself goes on as usual.

package channel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/store"
)

const (
	// histQueue bounds the entries waiting to be appended, all users'.
	histQueue = 64 * 1024
	// histBatch bounds the entries appended in one transaction.
	histBatch = 4096
	// histLinger is how long a batch gathers entries before it is
	// appended, unless a reader waits for it or it is full. A
	// transaction writes every index page its users' entries touch, so a
	// busy gateway's entries cost the store less each the more of them
	// one holds (see TestHistoryWriterBatchHoldsALinger).
	histLinger = 250 * time.Millisecond
	// histHurryEvery is how often a caller waiting for the history
	// (sync) hurries a store whose appends may run at a low priority
	// (store.HistoryHurrier): on a machine whose cores are all busy, a
	// history writer at idle priority would otherwise keep it waiting.
	histHurryEvery = 50 * time.Millisecond
)

// ErrHistoryFull is an append left out because the writer's queue is full.
var ErrHistoryFull = errors.New("the history's writer is behind: entry left out")

// errHistoryStopped is an append after the writer has stopped.
var errHistoryStopped = errors.New("the history's writer has stopped: entry left out")

// histJob is an append, or with done set a barrier: done is closed once
// every job queued before it is done.
type histJob struct {
	user   string
	e      store.HistoryEntry
	failed func(error) // called, from the writer, if the append failed
	done   chan struct{}
	mark   *histMark // a barrier that reads the user's last ID (mark)
}

// histMark is a barrier (mark) that holds, once what was queued before it
// is appended, the user's LastHistoryID as it was then.
type histMark struct {
	done chan struct{}
	last int64
	err  error
}

// historyWriter owns the writer goroutine and its queue. Entries are
// appended in the order queued, so each user's are in order.
type historyWriter struct {
	st     store.Store
	log    *logrus.Entry
	met    *bridgeMetrics // nil: no metrics
	linger time.Duration
	// inProc: the store appends in this process, so the writer's thread
	// does the work, at the lowest priority, each batch bounded by
	// storeWait. Otherwise another process does (Config.HistoryElsewhere)
	// and the writer waits for it as long as it takes: the queue's bound
	// is what stops history from falling further behind.
	inProc bool
	wake   chan struct{} // capacity 1: the queue was empty, or hurry was set
	done   chan struct{} // closed when run has returned

	mu      sync.Mutex
	q       []histChunk              // the queue, oldest first; only the last has room
	free    []*[histChunkLen]histJob // emptied chunks' jobs for the queue to reuse, at most spareChunks
	appends int                      // jobs in q that are appends (barriers are not bounded)
	hurry   bool                     // a barrier or a full batch is queued, or close was called
	closed  bool
	// full is appends >= histQueue as an append last found it, cleared
	// when the writer takes a batch: read without the lock, it lets a
	// session leave out an entry without building it (behind).
	full atomic.Bool

	// The writer goroutine's own, kept from one batch to the next: the
	// history's garbage would otherwise grow with the IMs and bring the
	// collector round, and its pauses into the IMs' latency, more often.
	taken  []histChunk
	batch  []store.HistoryAppend
	failed []func(error)
	res    []store.HistoryResult
}

// histChunkLen is how many jobs a chunk of the queue holds; a whole
// number of chunks makes a batch.
const histChunkLen = histBatch / 32

// histChunk is a run of queued jobs. The queue is a list of chunks: an
// append writes into the last one, the writer takes whole chunks from the
// front, so neither moves what is queued. A queue kept in one array was
// copied whole when it grew: with a backlog of tens of thousands of
// entries, every session's append waited behind the copy.
type histChunk struct {
	jobs    *[histChunkLen]histJob
	n       int // jobs[:n] are queued
	appends int // of which appends (the others are barriers)
}

// spareChunks bounds the emptied chunks kept for reuse, so a backlog's
// go once the backlog is written.
const spareChunks = 2 * histBatch / histChunkLen

// newHistoryWriter starts the writer; inProc: the store appends in this
// process (see historyWriter.inProc).
func newHistoryWriter(st store.Store, inProc bool, log *logrus.Entry, met *bridgeMetrics) *historyWriter {
	return startHistoryWriter(st, inProc, log, met, histLinger)
}

func startHistoryWriter(st store.Store, inProc bool, log *logrus.Entry, met *bridgeMetrics, linger time.Duration) *historyWriter {
	w := &historyWriter{st: st, inProc: inProc, log: log, met: met, linger: linger, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// append queues e for user's history without waiting; a full queue
// refuses it (failed gets ErrHistoryFull, at once, on the caller's
// goroutine).
func (w *historyWriter) append(user string, e store.HistoryEntry, failed func(error)) {
	w.mu.Lock()
	if w.closed || w.appends >= histQueue {
		err := ErrHistoryFull
		if w.closed {
			err = errHistoryStopped
		} else {
			w.full.Store(true)
		}
		w.mu.Unlock()
		failed(err)
		return
	}
	w.appends++
	w.queueLocked(histJob{user: user, e: e, failed: failed}, w.appends >= histBatch)
	w.mu.Unlock()
	w.met.historyQueued(1)
}

// behind reports whether the queue was full when an append last found
// it so and the writer has taken no batch since: an append now would most
// likely be refused with ErrHistoryFull, so a caller may leave the entry
// out without building it. A stale answer either way costs only that: an
// entry built and refused, or one left out as the writer takes a batch.
func (w *historyWriter) behind() bool { return w.full.Load() }

// queueLocked adds j and wakes the writer if it may be waiting for it.
// Caller holds w.mu.
func (w *historyWriter) queueLocked(j histJob, hurry bool) {
	wake := len(w.q) == 0
	if k := len(w.q); k == 0 || w.q[k-1].n == histChunkLen {
		var jobs *[histChunkLen]histJob
		if k := len(w.free); k > 0 {
			jobs, w.free = w.free[k-1], w.free[:k-1]
		} else {
			jobs = new([histChunkLen]histJob)
		}
		w.q = append(w.q, histChunk{jobs: jobs})
	}
	c := &w.q[len(w.q)-1]
	c.jobs[c.n] = j
	c.n++
	if j.done == nil {
		c.appends++
	}
	if hurry && !w.hurry {
		w.hurry, wake = true, true
	}
	if wake {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// sync waits until what was queued before (user's entries among them) is
// appended; false if ctx ended first or the writer has stopped. While it
// waits, it hurries the store every histHurryEvery, if the store can be.
func (w *historyWriter) sync(ctx context.Context, user string) bool {
	done := make(chan struct{})
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.queueLocked(histJob{user: user, done: done}, true)
	w.mu.Unlock()
	return w.wait(ctx, done)
}

// mark queues, without waiting, a barrier that reads user's LastHistoryID
// once what was queued before it is appended, before anything queued
// after it is: the position of a client shown everything recorded so far.
// Wait for it with wait(ctx, m.done). nil if the writer has stopped.
func (w *historyWriter) mark(user string) *histMark {
	m := &histMark{done: make(chan struct{})}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.queueLocked(histJob{user: user, done: m.done, mark: m}, true)
	return m
}

// wait waits until the barrier done is closed; false if ctx ended first.
// While it waits, it hurries the store every histHurryEvery, if the store
// can be.
func (w *historyWriter) wait(ctx context.Context, done chan struct{}) bool {
	var tick <-chan time.Time
	h, _ := w.st.(store.HistoryHurrier)
	if h != nil {
		t := time.NewTicker(histHurryEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-done:
			return true
		case <-ctx.Done():
			return false
		case <-tick:
			h.HurryHistory()
		}
	}
}

// close appends what is queued and stops the writer.
func (w *historyWriter) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		w.queueLocked(histJob{done: make(chan struct{})}, true)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *historyWriter) run() {
	defer close(w.done)
	// History is a record, never in the IM's way: the appends take the
	// CPU only when the IM path leaves it (in the store's own process, or
	// on this thread at the lowest priority).
	if w.inProc {
		if err := lowPriority(); err != nil {
			w.log.WithError(err).Warn("history: the writer runs at normal CPU priority")
		}
	}
	for {
		<-w.wake
		if !w.hurried() && w.linger > 0 {
			t := time.NewTimer(w.linger)
			select {
			case <-t.C:
			case <-w.wake: // hurry was set
			}
			t.Stop()
		}
		for {
			chunks, more, closed := w.take()
			w.write(chunks)
			w.recycle(chunks)
			if closed && !more {
				return
			}
			if !more {
				break
			}
		}
	}
}

func (w *historyWriter) hurried() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hurry
}

// take removes from the queue the chunks of the next batch: whole chunks
// from the front, as many as hold at most histBatch appends (at least one);
// more: some are left. The chunks are the writer's until recycled.
func (w *historyWriter) take() (chunks []histChunk, more, closed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k, appends := 0, 0
	for k < len(w.q) && (k == 0 || appends+w.q[k].appends <= histBatch) {
		appends += w.q[k].appends
		k++
	}
	w.taken = append(w.taken[:0], w.q[:k]...)
	n := copy(w.q, w.q[k:])
	clear(w.q[n:])
	w.q = w.q[:n]
	w.appends -= appends
	if appends > 0 {
		w.full.Store(false)
	}
	w.hurry = len(w.q) > 0 && w.hurry
	return w.taken, len(w.q) > 0, w.closed
}

// write appends the entries of the chunks' jobs, one batch between
// barriers, and releases each barrier once what was before it is appended.
func (w *historyWriter) write(chunks []histChunk) {
	batch, failed := w.batch[:0], w.failed[:0]
	appended := 0 // entries through the store, stored or refused
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if w.inProc {
			ctx, cancel = context.WithTimeout(ctx, storeWait)
		}
		res := w.st.AppendHistoryBatch(ctx, batch, w.res)
		cancel()
		appended += len(batch)
		for i, r := range res {
			if r.Err != nil && failed[i] != nil {
				failed[i](r.Err)
			}
		}
		clear(batch) // the entries' texts go now, not at the next batch
		clear(failed)
		clear(res)
		w.res = res[:0]
		batch, failed = batch[:0], failed[:0]
	}
	defer func() { w.met.historyQueued(-appended) }()
	for _, c := range chunks {
		for _, j := range c.jobs[:c.n] {
			if j.done != nil {
				flush()
				if m := j.mark; m != nil {
					ctx, cancel := context.WithTimeout(context.Background(), storeWait)
					m.last, m.err = w.st.LastHistoryID(ctx, j.user)
					cancel()
				}
				close(j.done)
				continue
			}
			batch = append(batch, store.HistoryAppend{User: j.user, Entry: j.e})
			failed = append(failed, j.failed)
		}
	}
	flush()
	w.batch, w.failed = batch, failed
}

// recycle empties the written chunks (what their jobs held goes now) and
// keeps up to spareChunks of them for the queue to reuse.
func (w *historyWriter) recycle(chunks []histChunk) {
	for _, c := range chunks {
		clear(c.jobs[:c.n])
	}
	w.mu.Lock()
	for _, c := range chunks {
		if len(w.free) >= spareChunks {
			break
		}
		w.free = append(w.free, c.jobs)
	}
	w.mu.Unlock()
	clear(chunks)
}
