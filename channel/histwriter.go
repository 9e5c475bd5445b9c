// The history writer: the bridge's goroutines that append to the store's
// history, so that a session never waits for a history write (history is a
// record of what was delivered; the delivery itself never waits for it).
// Bursts wait in bounded queues; when the store cannot keep up for long and
// a queue is full, the entry is left out of the history, counted
// (msimircd_history_dropped_total), logged and told to the user, and the
// IM itself goes on as usual.

package channel

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/store"
)

const (
	// histWriters is how many goroutines append at once (the store commits
	// concurrent appends together); a user's entries always go through the
	// same one, so they are appended in order.
	histWriters = 128
	// histQueue bounds the entries waiting per writer.
	histQueue = 1024
)

// histJob is an append, or with done set a barrier: done is closed once
// the user's earlier jobs are done.
type histJob struct {
	user   string
	e      store.HistoryEntry
	failed func(error) // called, from the writer, if the append failed
	done   chan struct{}
}

// historyWriter owns the writer goroutines and their queues.
type historyWriter struct {
	st   store.Store
	log  *logrus.Entry
	seed maphash.Seed
	qs   []chan histJob
	wg   sync.WaitGroup
}

func newHistoryWriter(st store.Store, log *logrus.Entry) *historyWriter {
	w := &historyWriter{st: st, log: log, seed: maphash.MakeSeed()}
	for range histWriters {
		q := make(chan histJob, histQueue)
		w.qs = append(w.qs, q)
		w.wg.Add(1)
		go w.run(q)
	}
	return w
}

func (w *historyWriter) run(q chan histJob) {
	defer w.wg.Done()
	for j := range q {
		if j.done != nil {
			close(j.done)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeWait)
		_, err := w.st.AppendHistory(ctx, j.user, j.e)
		cancel()
		if err != nil && j.failed != nil {
			j.failed(err)
		}
	}
}

// append queues e for user's history; it waits only while the queue is
// full, or returns false once ctx has ended.
// ErrHistoryFull is an append left out because its writer's queue is full.
var ErrHistoryFull = errors.New("the history's writer is behind: entry left out")

// append queues e for user's history without waiting; a full queue refuses
// it (failed gets ErrHistoryFull).
func (w *historyWriter) append(user string, e store.HistoryEntry, failed func(error)) {
	select {
	case w.queue(user) <- histJob{user: user, e: e, failed: failed}:
	default:
		failed(ErrHistoryFull)
	}
}

func (w *historyWriter) queue(user string) chan histJob {
	return w.qs[maphash.String(w.seed, user)%uint64(len(w.qs))]
}

// sync waits until what was queued for user before is appended; false if
// ctx ended first.
func (w *historyWriter) sync(ctx context.Context, user string) bool {
	done := make(chan struct{})
	if !w.put(ctx, histJob{user: user, done: done}) {
		return false
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *historyWriter) put(ctx context.Context, j histJob) bool {
	q := w.queue(j.user)
	select {
	case q <- j:
		return true
	default:
	}
	select {
	case q <- j:
		return true
	case <-ctx.Done():
		return false
	}
}

// close appends what is queued and stops the writers.
func (w *historyWriter) close() {
	for _, q := range w.qs {
		close(q)
	}
	w.wg.Wait()
}
