package server

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
)

// lastLogins records accounts' login times (Account.LastLogin) in the store
// off the login's path, many logins in one write: a login's reader used to
// write the time itself, a transaction synced to disk for every login
// (for SQLite, in turn with every other write), before it read the client's
// next request. The times not yet written are shown meanwhile (account),
// and Shutdown writes what is left. A crash of the process loses those
// (the last moment's logins show the login before).
//
// Ownership: sessions call record and of; the Server starts run with its
// first record and ends it in Shutdown (close).
type lastLogins struct {
	st  Store
	log *logrus.Entry

	mu      sync.Mutex
	pending map[msim.UID]time.Time // recorded, not yet written
	started bool
	closed  bool
	wake    chan struct{} // one token: there is something to write
	done    chan struct{} // closed when run has ended
}

func newLastLogins(st Store, log *logrus.Entry) *lastLogins {
	return &lastLogins{st: st, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// loginRecorder is a Store that writes several login times at once (the SQL
// store: one transaction). Others get an UpdateAccount each.
type loginRecorder interface {
	recordLogins(times map[msim.UID]time.Time) error
}

// record notes uid's login at t, written soon. After close it is written at
// once.
func (l *lastLogins) record(uid msim.UID, t time.Time) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.write(map[msim.UID]time.Time{uid: t})
		return
	}
	if l.pending == nil {
		l.pending = map[msim.UID]time.Time{}
	}
	l.pending[uid] = t
	if !l.started {
		l.started = true
		go l.run()
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// of returns uid's login time not yet written, if any.
func (l *lastLogins) of(uid msim.UID) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.pending[uid]
	return t, ok
}

// run writes what is pending whenever there is some, until close. The
// times stay pending (shown by of) until written; a login recorded again
// during a write stays for the next.
func (l *lastLogins) run() {
	defer close(l.done)
	for range l.wake {
		l.mu.Lock()
		batch := maps.Clone(l.pending)
		closed := l.closed
		l.mu.Unlock()
		if len(batch) > 0 {
			l.write(batch)
			l.mu.Lock()
			for uid, t := range batch {
				if l.pending[uid].Equal(t) {
					delete(l.pending, uid)
				}
			}
			if len(l.pending) == 0 {
				l.pending = nil // a map keeps the room of a burst
			}
			l.mu.Unlock()
		}
		if closed {
			return
		}
	}
}

// write stores the login times of batch, each only if later than the one
// stored (another node may have stored a later login meanwhile). If the
// batch fails for something else than the database's time running out
// (an account's data the update refuses), the accounts are tried one by
// one, so that one of them does not keep the others' times out; a
// database that does not answer is not asked once per account.
func (l *lastLogins) write(batch map[msim.UID]time.Time) {
	if r, ok := l.st.(loginRecorder); ok {
		err := r.recordLogins(batch)
		if err == nil {
			return
		}
		if timedOut(err) {
			l.log.WithError(err).WithField("logins", len(batch)).Warn("login: last logins not recorded")
			return
		}
		l.log.WithError(err).WithField("logins", len(batch)).Warn("login: recording last logins together failed; recording them one by one")
	}
	uids := slices.Sorted(maps.Keys(batch))
	for i, uid := range uids {
		err := l.st.UpdateAccount(uid, laterLogin(batch[uid]))
		if err != nil && !errors.Is(err, ErrNoSuchAccount) {
			l.log.WithError(err).WithField("uid", uid).Warn("login: record last login")
		}
		if timedOut(err) {
			l.log.WithField("logins", len(uids)-i-1).Warn("login: last logins not recorded")
			return
		}
	}
}

// timedOut reports whether err is a store operation's time running out
// (or its context ending).
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// laterLogin sets an account's LastLogin to t unless it is later already.
func laterLogin(t time.Time) func(*Account) error {
	return func(a *Account) error {
		if t.After(a.LastLogin) {
			a.LastLogin = t
		}
		return nil
	}
}

// close writes what is pending and ends run, waiting for it as long as
// ctx lasts (Shutdown's); it says what it leaves unwritten when ctx ends
// first.
func (l *lastLogins) close(ctx context.Context) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	started := l.started
	l.mu.Unlock()
	if !started {
		return
	}
	select {
	case l.wake <- struct{}{}:
	default: // run is woken already; it sees closed when it takes the token
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		l.mu.Lock()
		n := len(l.pending)
		l.mu.Unlock()
		l.log.WithField("logins", n).Warn("shutdown: last logins still being recorded are left")
	}
}
