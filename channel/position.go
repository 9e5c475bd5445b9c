// Client positions: how far each client, by its name, has seen the
// history, saved as it leaves; its next replay starts there.

package channel

import (
	"context"
	"errors"
	"math"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/store"
)

// savePosition keeps how far the client at has seen the history, as it
// leaves (a client seen before whose replay was still being read keeps
// its position): all of it (what it did not receive was held, or shown to another
// client), except from the first message it was not given while attached
// (it was closing, or closed with the message queued; another client saw
// it, or it was held for whichever connection comes next), from the
// earliest entry of its replay it was not given (the same),
// or from what is still on its way to the clients (it is recorded as it
// arrives): its next connection is replayed that.
//
// The store is written on a worker goroutine (posSave), given what the
// session knows now; "all of it" is what was recorded so far (a mark of
// the history writer), not what comes meanwhile. A replay of the same
// client name, and its next save, wait for it (s.saving).
func (s *session) savePosition(at *attachment) {
	if !s.historyOn() {
		return
	}
	ps := &posSave{st: s.b.cfg.Store, hist: s.b.hist, log: s.log, user: s.user.Name, client: at.name,
		keepFound: at.replaying != nil, limit: math.MaxInt64, done: make(chan struct{})}
	if msgid := s.onItsWay(); msgid != "" {
		ps.notGiven = append(ps.notGiven, msgid)
	}
	if missed := at.missedOf(s.user.Name); missed != "" {
		ps.notGiven = append(ps.notGiven, missed)
	}
	if id := at.replayMissedOf(s.user.Name); id > 0 { // replayed to it, not written
		ps.limit = min(ps.limit, id-1)
	}
	// Replayed to it and written: its next replay leaves them out while
	// the position stays before them.
	s.keepWritten(at)
	for _, c := range at.replayLater { // waiting for their account's login
		ps.limit = min(ps.limit, c.es[0].ID-1)
	}
	if at.keepPos != nil { // its replay could not be read
		ps.limit = min(ps.limit, *at.keepPos)
	}
	ps.mark = s.b.hist.mark(ps.user) // what it was shown is recorded before
	if prev := s.saving[at.name]; prev != nil {
		ps.after = prev.done
	}
	put(&s.saving, at.name, ps)
	s.goWrite(func(ctx context.Context) {
		ps.save(ctx)
		close(ps.done)
		s.post(call(func() {
			if s.saving[ps.client] == ps {
				delete(s.saving, ps.client)
			}
			s.forgetWritten(ps.user, ps.client, ps.saved)
		}))
	})
}

// posSave is a client's position to save as it leaves (savePosition),
// on a worker goroutine: what it is given.
type posSave struct {
	st     store.Store
	hist   *historyWriter
	mark   *histMark // the history writer's, as the client left (nil: it has stopped)
	log    *logrus.Entry
	user   string
	client string
	// keepFound: its replay was still being read; a client seen before
	// keeps its position.
	keepFound bool
	// notGiven: msgids of what it was not given; its position stays
	// before the first of them.
	notGiven []string
	limit    int64 // the position goes no further
	// after is closed once the save of the same client name before this
	// one is through (nil: none was under way).
	after <-chan struct{}
	// done is closed once this save is through.
	done chan struct{}
	// saved is the position saved (0: none, or before all the history).
	saved int64
}

// save computes and saves the position, and logs a failure.
func (ps *posSave) save(ctx context.Context) {
	err := ps.saveErr(ctx)
	if err != nil {
		ps.log.WithError(err).Error("store: a client's position could not be saved; it may be replayed again")
	}
}

func (ps *posSave) saveErr(ctx context.Context) error {
	if ps.after != nil {
		select {
		case <-ps.after:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	st, user := ps.st, ps.user
	if ps.keepFound {
		// Leaving before its replay was read, it was given nothing of what
		// it missed: a client seen before keeps its position.
		if _, found, err := st.ClientPosition(ctx, user, ps.client); found || err != nil {
			return err
		}
	}
	var pos int64
	var err error
	switch {
	case ps.mark == nil: // the writer has stopped: nothing is appended since
		pos, err = st.LastHistoryID(ctx, user)
	case ps.hist.wait(ctx, ps.mark.done):
		pos, err = ps.mark.last, ps.mark.err
	default:
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	pos = min(pos, ps.limit)
	for _, msgid := range ps.notGiven {
		switch e, err := st.HistoryByMsgID(ctx, user, msgid); {
		case err == nil:
			pos = min(pos, e.ID-1)
		case !errors.Is(err, store.ErrNotFound): // not recorded, or trimmed since
			return err
		}
	}
	if err := st.SetClientPosition(ctx, user, ps.client, pos); err != nil {
		return err
	}
	ps.saved = pos
	return nil
}

// onItsWay returns the msgid of the earliest IM or zap that is in the
// history but not yet handed to the clients (see eachOnItsWay), or "".
func (s *session) onItsWay() string {
	var first *seqEvent
	s.eachOnItsWay(func(se *seqEvent) {
		if first == nil || se.seq < first.seq {
			first = se
		}
	})
	if first == nil {
		return ""
	}
	return first.msgid
}

// eachOnItsWay calls f with each IM or zap that is in the history but not
// yet handed to the clients: waiting in the outbox for room, or for a
// stranger's profile. Held IMs in the outbox are left out: they are given
// as such, never replayed.
func (s *session) eachOnItsWay(f func(*seqEvent)) {
	for i, q := 0, s.out.waiting(); i < len(q); i++ {
		if se := &q[i].seqEvent; se.msgid != "" && se.held == 0 {
			f(se)
		}
	}
	for _, a := range s.accounts {
		for _, q := range a.pending {
			for i := range q {
				if q[i].msgid != "" {
					f(&q[i])
				}
			}
		}
	}
}
