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
	q       []histJob
	spare   []histJob // empty; q's next array once q is taken whole
	shifted bool      // q does not start at its array's front (a backlog's rest)
	appends int       // jobs in q that are appends (barriers are not bounded)
	hurry   bool      // a barrier or a full batch is queued, or close was called
	closed  bool

	// The writer goroutine's own, kept from one batch to the next: the
	// history's garbage would otherwise grow with the IMs and bring the
	// collector round, and its pauses into the IMs' latency, more often.
	batch  []store.HistoryAppend
	failed []func(error)
	res    []store.HistoryResult
}

// spareMax bounds the queue array kept for reuse, so a backlog's array
// goes once the backlog is written.
const spareMax = 2 * histBatch

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

// queueLocked adds j and wakes the writer if it may be waiting for it.
// Caller holds w.mu.
func (w *historyWriter) queueLocked(j histJob, hurry bool) {
	w.q = append(w.q, j)
	wake := len(w.q) == 1
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
// appended; false if ctx ended first or the writer has stopped.
func (w *historyWriter) sync(ctx context.Context, user string) bool {
	done := make(chan struct{})
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.queueLocked(histJob{user: user, done: done}, true)
	w.mu.Unlock()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
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
			jobs, own, more, closed := w.take()
			w.write(jobs)
			if own {
				w.recycle(jobs)
			} else {
				clear(jobs) // what is written goes, though the array stays for now
			}
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

// take removes up to histBatch appends (and the barriers among them) from
// the queue; own: the array of jobs is theirs alone (see recycle); more:
// some are left.
func (w *historyWriter) take() (jobs []histJob, own, more, closed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, appends := 0, 0
	for n < len(w.q) && appends < histBatch {
		if w.q[n].done == nil {
			appends++
		}
		n++
	}
	if len(w.q)-n <= histBatch {
		// jobs keep the array, which comes back through recycle unless
		// it is the rest of a backlog's, and q goes on in the spare one,
		// with what is left.
		jobs, own = w.q[:n], !w.shifted
		w.q, w.spare, w.shifted = append(w.spare[:0], w.q[n:]...), nil, false
	} else {
		// A backlog: q goes on in the rest of the array, not copied.
		jobs = w.q[:n:n]
		w.q, w.shifted = w.q[n:], true
	}
	w.appends -= appends
	w.hurry = len(w.q) > 0 && w.hurry
	return jobs, own, len(w.q) > 0, w.closed
}

// write appends jobs' entries, one batch between barriers, and releases
// each barrier once what was before it is appended.
func (w *historyWriter) write(jobs []histJob) {
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
	for _, j := range jobs {
		if j.done != nil {
			flush()
			close(j.done)
			continue
		}
		batch = append(batch, store.HistoryAppend{User: j.user, Entry: j.e})
		failed = append(failed, j.failed)
	}
	flush()
	w.batch, w.failed = batch, failed
}

// recycle keeps the array of jobs, taken with their own and written, as
// the queue's next one, unless the queue has one or it is a backlog's.
func (w *historyWriter) recycle(jobs []histJob) {
	if cap(jobs) > spareMax {
		return
	}
	clear(jobs[:cap(jobs)])
	w.mu.Lock()
	if w.spare == nil {
		w.spare = jobs[:0]
	}
	w.mu.Unlock()
}
