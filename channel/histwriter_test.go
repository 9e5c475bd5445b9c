package channel

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/store"
)

// stalledStore is a store whose history appends wait until released.
type stalledStore struct {
	store.Store
	release  chan struct{}
	appended atomic.Int32
}

func (s *stalledStore) AppendHistory(_ context.Context, _ string, e store.HistoryEntry) (store.HistoryEntry, error) {
	<-s.release
	s.appended.Add(1)
	return e, nil
}

// TestHistoryWriterNeverWaits: a user's entries queue while the store is
// behind; once the queue is full an entry is refused at once with
// ErrHistoryFull (the session never waits); what was queued is appended,
// in full, when the store catches up.
func TestHistoryWriterNeverWaits(t *testing.T) {
	st := &stalledStore{release: make(chan struct{})}
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := newHistoryWriter(st, logrus.NewEntry(l))
	var full atomic.Int32
	failed := func(err error) {
		if !errors.Is(err, ErrHistoryFull) {
			t.Errorf("append failed with %v, want ErrHistoryFull", err)
		}
		full.Add(1)
	}
	const extra = 5
	total := histQueue + 1 + extra // one taken by the stalled writer, histQueue queued
	for range total {
		w.append("ann", store.HistoryEntry{}, failed)
	}
	if got := full.Load(); got < extra {
		t.Errorf("entries refused with the queue full: got %d, want at least %d", got, extra)
	}
	close(st.release)
	w.close()
	if got, want := int(st.appended.Load())+int(full.Load()), total; got != want {
		t.Errorf("appended %d + refused %d = %d, want every entry accounted for (%d)", st.appended.Load(), full.Load(), got, want)
	}
}
