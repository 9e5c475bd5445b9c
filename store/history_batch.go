package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// errClosed: the store was closed.
var errClosed = errors.New("store: closed")

// maxAppendBatch bounds the appends committed together.
const maxAppendBatch = 256

// appender commits concurrent AppendHistory calls together (group commit)
// on SQLite, whose one connection would otherwise sync each on its own:
// one goroutine takes every append waiting, runs each in a savepoint of
// one transaction (so one that fails, a duplicate msgid say, leaves the
// others), commits once, and answers each caller. A caller's append is
// committed when it returns without error, as with any other write.
type appender struct {
	s     *sqlStore
	reqs  chan *appendReq // unbuffered: waiting callers are the queue
	quit  chan struct{}
	done  chan struct{} // closed when run has returned
	close sync.Once
}

type appendReq struct {
	ctx  context.Context
	user string
	e    HistoryEntry
	res  chan appendRes // buffered: run never waits on a caller
}

type appendRes struct {
	e   HistoryEntry
	err error
}

func newAppender(s *sqlStore) *appender {
	a := &appender{s: s, reqs: make(chan *appendReq), quit: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// stop ends run, after the batch it is committing; appends then fail.
func (a *appender) stop() {
	a.close.Do(func() { close(a.quit) })
	<-a.done
}

// append queues a checked entry and waits for its commit. If ctx ends
// while the entry is being committed, it returns ctx's error, and the
// entry may have been stored.
func (a *appender) append(ctx context.Context, user string, e HistoryEntry) (HistoryEntry, error) {
	r := &appendReq{ctx: ctx, user: user, e: e, res: make(chan appendRes, 1)}
	select {
	case a.reqs <- r:
	case <-ctx.Done():
		return HistoryEntry{}, ctx.Err()
	case <-a.quit:
		return HistoryEntry{}, errClosed
	}
	select {
	case res := <-r.res:
		return res.e, res.err
	case <-ctx.Done():
		return HistoryEntry{}, ctx.Err()
	}
}

func (a *appender) run() {
	defer close(a.done)
	for {
		var batch []*appendReq
		select {
		case r := <-a.reqs:
			batch = append(batch, r)
		case <-a.quit:
			return
		}
	more: // and every other caller waiting now
		for len(batch) < maxAppendBatch {
			select {
			case r := <-a.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		a.commit(batch)
	}
}

// commit runs a batch in one transaction and answers its callers. An
// append refused as such (ErrExists, ErrNotFound) writes nothing and
// leaves the others be; any other failure undoes the transaction, and the
// batch's appends are then made one transaction each, so one bad append
// never fails the others.
func (a *appender) commit(batch []*appendReq) {
	// Not a caller's context: one caller giving up must not undo the
	// others' appends.
	ctx := context.Background()
	results := make([]appendRes, len(batch))
	err := a.s.inTx(ctx, func(tx *sql.Tx) error {
		for i, r := range batch {
			if err := r.ctx.Err(); err != nil {
				results[i].err = err
				continue
			}
			e, err := a.s.appendTx(ctx, tx, r.user, r.e)
			if err != nil && !refused(err) {
				return err
			}
			results[i] = appendRes{e: e, err: err}
		}
		return nil
	})
	if err != nil {
		for i, r := range batch {
			results[i] = a.alone(ctx, r)
		}
	}
	for i, r := range batch {
		r.res <- results[i]
	}
}

// refused reports whether an append failed without writing anything.
func refused(err error) bool { return errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) }

// alone makes one append in a transaction of its own.
func (a *appender) alone(ctx context.Context, r *appendReq) appendRes {
	if err := r.ctx.Err(); err != nil {
		return appendRes{err: err}
	}
	var res appendRes
	err := a.s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res.e, err = a.s.appendTx(ctx, tx, r.user, r.e)
		return err
	})
	res.err = err
	return res
}
