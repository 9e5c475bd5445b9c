// Package histproc runs the store's history appends in a process of their
// own: msimircd starts itself again as "msimircd history-writer" (Arg),
// which opens the same store and appends the batches it is sent, at the
// kernel's idle CPU priority (SCHED_IDLE). History is a record of what was
// delivered; on a machine whose cores the IMs need, its writes wait rather
// than lengthen the IMs' way. A thread of the gateway's own at low
// priority could not give that: Go's scheduler and collector wait for
// every thread of the process, a starved one included.
//
// Ownership: Store (the gateway's side) owns the child process, its pipes
// and its restarts; the child (Serve) owns its own store handle. Nothing
// else in the gateway talks to the child. The parameters that open the
// store (the database's DSN and the sealing key) go over the child's
// stdin, never on its command line or in its environment.
package histproc

import (
	"errors"
	"time"

	"github.com/msimircd/msimircd/store"
)

// Arg is the argument msimircd is started with to run as the history
// writer (Serve).
const Arg = "history-writer"

// Params open the child's store: the gateway's own store parameters.
type Params struct {
	Driver string // "sqlite" or "postgres", as store.Open takes it
	DSN    string
	Key    []byte // the sealing key (store.LoadOrCreateKey)
	// MaxHistory is store.WithMaxHistoryPerUser's n; 0: the default.
	MaxHistory int
}

// The messages on the pipes, a frame each (codec.go): Params first, then
// requests; the child answers Params with a reply of Seq 0 (Err: the
// store did not open) and each request with a reply of the same Seq.
type request struct {
	Seq   uint64
	Batch []store.HistoryAppend
}

type reply struct {
	Seq     uint64
	Err     string // the request as a whole failed (Seq 0: the store did not open)
	Results []result
}

// result is one entry's store.HistoryResult.
type result struct {
	ID   int64
	Time time.Time
	Err  string
	Is   errKind // the store's sentinel Err wraps, if any
}

type errKind uint8

const (
	errOther errKind = iota
	errExists
	errNotFound
)

func kindOf(err error) errKind {
	switch {
	case errors.Is(err, store.ErrExists):
		return errExists
	case errors.Is(err, store.ErrNotFound):
		return errNotFound
	}
	return errOther
}

// remoteError is an entry's error as the child's store gave it: the same
// text, and errors.Is still finds the store's sentinel.
type remoteError struct {
	msg string
	is  error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.is }

func (r result) err() error {
	if r.Err == "" {
		return nil
	}
	e := &remoteError{msg: r.Err}
	switch r.Is {
	case errExists:
		e.is = store.ErrExists
	case errNotFound:
		e.is = store.ErrNotFound
	}
	return e
}
