// Several gateway instances on one PostgreSQL store: each user is served by
// one instance at a time, the one holding the user's lease in the store
// (store.LeaseStore).
//
// With Config.Instance set, a session starts for a user (a connection, an
// always-on session at boot, identify or register) only once this instance
// holds the user's lease. If another instance holds it, this one asks the
// holder to hand the user over (a note through the database) and waits,
// bounded by Config.HandOverWait, for the release, or for the lease to
// expire when the holder does not answer; past the bound the connection is
// refused with a message saying when to come back. The holder, asked, ends
// the user's session as a shutdown does (held and queued IMs are in the
// store already as they happen; what ircd had not written is held; the
// MSIM accounts log out), forgets its cached copy of the user's state and
// releases the lease, which wakes the waiting instance; that one loads the
// user's state from the store and logs in.
//
// The leases of running sessions are renewed together, one statement
// every third of Config.LeaseTTL. A lease not renewed in time is lost: the
// session ends at the local deadline, which falls before the database's
// expiry, so by the time another instance may take the user over this one
// has stopped acting for them. A session also checks its lease before each
// MSIM login (by epoch, in the database) and before sending queued IMs, so
// a stalled instance that wakes up never logs in over the new holder nor
// sends a queued IM twice. IMs an old holder still writes to the store
// late (held IMs ircd reported unsent) are kept, not fenced: they are new
// rows, shown once at the user's next login, where refusing them would
// lose them.
//
// Without Config.Instance (one instance, SQLite or PostgreSQL) none of this
// runs: no lease is taken and nothing is renewed.

package channel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/store"
)

// Defaults of the cluster settings.
const (
	DefaultLeaseTTL     = 30 * time.Second
	DefaultHandOverWait = 10 * time.Second
)

// leases are this instance's leases and the notes about them. mu is a leaf
// lock: nothing else is taken while it is held.
type leases struct {
	b        *Bridge
	st       store.Store
	instance string
	ttl      time.Duration
	wait     time.Duration // Config.HandOverWait
	log      *logrus.Entry
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	held    map[string]heldLease       // by user name
	waiters map[string][]chan struct{} // woken when the user's lease is released anywhere
	// listening is closed once the notes come (the first time).
	listening chan struct{}
	listened  bool
}

// heldLease is a lease and the local time until which it is surely held
// (before its expiry by the database's clock).
type heldLease struct {
	store.Lease
	until time.Time
}

func newLeases(b *Bridge) *leases {
	ctx, cancel := context.WithCancel(context.Background())
	l := &leases{
		b: b, st: b.cfg.Store, instance: b.cfg.Instance, ttl: b.cfg.LeaseTTL, wait: b.cfg.HandOverWait,
		log: b.log.WithField("instance", b.cfg.Instance), ctx: ctx, cancel: cancel,
		held: map[string]heldLease{}, waiters: map[string][]chan struct{}{}, listening: make(chan struct{}),
	}
	l.wg.Add(2)
	go l.renewLoop()
	go l.listenLoop()
	return l
}

// stop ends the renewals and the listening; the leases still held are
// left to expire (the sessions have released theirs as they ended).
func (l *leases) stop() {
	l.cancel()
	l.wg.Wait()
}

// margin is how long before the database's expiry a lease is given up
// locally.
func (l *leases) margin() time.Duration { return l.ttl / 6 }

// needs reports whether a session of u needs u's lease: not when leases
// are off, nor for a session that holds no MSIM account of a user
// (waiting for identify, or dropped).
func (l *leases) needs(u User) bool {
	return l != nil && u.identify == "" && (!u.Ephemeral || len(u.Accounts) > 0)
}

// holds reports whether this instance holds the user's lease now.
func (l *leases) holds(user string) bool {
	if l == nil {
		return true
	}
	_, held := l.epoch(user)
	return held
}

// epoch returns the epoch of the user's lease this instance holds now,
// and whether it holds one.
func (l *leases) epoch(user string) (int64, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[user]
	if !ok || !time.Now().Before(h.until) {
		return 0, false
	}
	return h.Epoch, true
}

// drop forgets the user's lease and returns it for release; nil if none is
// held.
func (l *leases) drop(user string) *store.Lease {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[user]
	if !ok {
		return nil
	}
	delete(l.held, user)
	return &h.Lease
}

// release gives a dropped lease up in the store, which wakes an instance
// waiting for it.
func (l *leases) release(le *store.Lease) {
	if l == nil || le == nil {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	l.releaseIn(ctx, le)
}

// releaseIn is release within ctx.
func (l *leases) releaseIn(ctx context.Context, le *store.Lease) {
	if _, err := l.st.ReleaseLease(ctx, *le); err != nil {
		l.log.WithError(err).WithField("user", le.User).Warn("store: releasing a lease failed; it expires unrenewed")
	}
}

// releaseLater gives up in the store a lease the session dropped from the
// table (drop), off the session goroutine: a slow store stalls neither
// the user's clients nor their MSIM accounts. The session's end waits for
// it. A late release never frees a lease taken again since: the store
// releases only the epoch it is given.
func (s *session) releaseLater(le *store.Lease) {
	l := s.b.lease
	if l == nil || le == nil {
		return
	}
	s.goWrite(func(ctx context.Context) { l.releaseIn(ctx, le) })
}

// errLeaseLost ends a login the session may no longer make.
var errLeaseLost = errors.New("channel: the user's lease is another instance's")

// errLeaseStore refuses a session whose lease cannot be taken.
var errLeaseStore = errors.New("the gateway's database is not available; try again later")

// heldElsewhereError refuses a connection whose user another instance
// still holds after the wait.
type heldElsewhereError struct {
	holder string
	left   time.Duration
}

func (e *heldElsewhereError) Error() string {
	return fmt.Sprintf("your session is still on gateway instance %s, which has not handed it over; it is free within %s: reconnect then",
		e.holder, e.left.Round(time.Second)+time.Second)
}

// acquire takes the user's lease for a session of u, waiting (bounded by
// HandOverWait) while another instance holds it: with ask, that instance
// is asked to hand the user over; otherwise (a nick without a password,
// which another connection is using there) the wait is for that session to
// end on its own. say, if not nil, tells the user why they wait.
func (l *leases) acquire(u User, ask bool, say func(string)) error {
	end := time.Now().Add(l.wait)
	asked := false
	for {
		woken := l.await(u.Name) // before trying: a release in between wakes it
		start := time.Now()
		ctx, cancel := context.WithTimeout(l.ctx, storeWait)
		le, err := l.st.AcquireLease(ctx, u.Name, l.instance, l.ttl)
		cancel()
		if err == nil {
			l.unwait(u.Name, woken)
			l.mu.Lock()
			l.held[u.Name] = heldLease{le, start.Add(l.ttl - l.margin())}
			l.mu.Unlock()
			if asked {
				l.log.WithField("user", u.Name).Info("the user's session moved here")
			}
			return nil
		}
		var he *store.LeaseHeldError
		if !errors.As(err, &he) {
			l.unwait(u.Name, woken)
			if l.ctx.Err() != nil {
				return errors.New("server shutting down")
			}
			l.log.WithError(err).WithField("user", u.Name).Error("store: the user's lease cannot be taken")
			return errLeaseStore
		}
		if ask && !asked {
			asked = true
			l.log.WithField("user", u.Name).WithField("holder", he.Holder).Info("asking the instance serving the user to hand the session over")
			if say != nil {
				say(fmt.Sprintf("Your session is on gateway instance %s; moving it here…", he.Holder))
			}
			ctx, cancel := storeCtx()
			if err := l.st.AskLease(ctx, u.Name, he.Holder, l.instance); err != nil {
				l.log.WithError(err).WithField("user", u.Name).Warn("store: asking for the user's session failed; waiting for the lease to expire")
			}
			cancel()
		}
		left := time.Until(end)
		if left <= 0 {
			l.unwait(u.Name, woken)
			return &heldElsewhereError{holder: he.Holder, left: he.Left}
		}
		// Woken by the release; else try again when it would expire,
		// and now and then in case a note was missed.
		t := time.NewTimer(min(left, he.Left+time.Millisecond, max(l.ttl/10, 100*time.Millisecond)))
		select {
		case <-woken:
		case <-t.C:
		case <-l.ctx.Done():
		}
		t.Stop()
		l.unwait(u.Name, woken)
	}
}

// tryAcquire takes the user's lease if no other instance holds it, without
// asking or waiting (a session started at boot or by a reload); false if
// another instance serves the user.
func (l *leases) tryAcquire(user string) (bool, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(l.ctx, storeWait)
	le, err := l.st.AcquireLease(ctx, user, l.instance, l.ttl)
	cancel()
	if errors.Is(err, store.ErrLeaseHeld) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l.mu.Lock()
	l.held[user] = heldLease{le, start.Add(l.ttl - l.margin())}
	l.mu.Unlock()
	return true, nil
}

// await returns a channel closed when a release of the user's lease is
// announced.
func (l *leases) await(user string) chan struct{} {
	ch := make(chan struct{})
	l.mu.Lock()
	l.waiters[user] = append(l.waiters[user], ch)
	l.mu.Unlock()
	return ch
}

func (l *leases) unwait(user string, ch chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	list := l.waiters[user]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(l.waiters, user)
	} else {
		l.waiters[user] = list
	}
}

// check reports, from the store, whether the user's lease is still this
// instance's at the epoch it took; when the store cannot tell, the local
// deadline decides.
func (l *leases) check(ctx context.Context, user string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	h, ok := l.held[user]
	l.mu.Unlock()
	if !ok {
		return false
	}
	cur, err := l.st.Lease(ctx, user)
	if err != nil {
		return time.Now().Before(h.until)
	}
	return cur.Instance == l.instance && cur.Epoch == h.Epoch
}

// renewLoop renews the held leases every third of the TTL.
func (l *leases) renewLoop() {
	defer l.wg.Done()
	defer recoverAndLog(l.log)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			l.renew()
		}
	}
}

// renew renews every held lease in one call; the sessions of those lost
// (taken over, or not renewed by their local deadline) end.
func (l *leases) renew() {
	start := time.Now()
	l.mu.Lock()
	list := make([]store.Lease, 0, len(l.held))
	for _, h := range l.held {
		list = append(list, h.Lease)
	}
	l.mu.Unlock()
	if len(list) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.ttl/3)
	got, err := l.st.RenewLeases(ctx, l.instance, l.ttl, list)
	cancel()
	renewed := map[string]int64{}
	for _, le := range got {
		renewed[le.User] = le.Epoch
	}
	var lost []string
	l.mu.Lock()
	for _, le := range list {
		h, ok := l.held[le.User]
		if !ok || h.Epoch != le.Epoch {
			continue // released, or taken again, meanwhile
		}
		switch {
		case err == nil && renewed[le.User] == le.Epoch:
			h.until = start.Add(l.ttl - l.margin())
			l.held[le.User] = h
		case err == nil || !time.Now().Before(h.until):
			delete(l.held, le.User)
			lost = append(lost, le.User)
		}
	}
	l.mu.Unlock()
	if err != nil && l.ctx.Err() == nil {
		l.log.WithError(err).Warn("store: renewing the leases failed; the sessions end if it goes on failing until they expire")
	}
	for _, user := range lost {
		l.log.WithField("user", user).Warn("the user's lease is lost (taken over, or not renewed in time); ending the session here")
		go l.b.endSession(user, "Your session moved to another gateway instance")
	}
}

// listenLoop listens for the notes addressed to this instance, listening
// again after a failure.
func (l *leases) listenLoop() {
	defer l.wg.Done()
	defer recoverAndLog(l.log)
	delay := time.Second
	for {
		err := l.st.ListenLeases(l.ctx, l.instance, l.onNote)
		if l.ctx.Err() != nil {
			return
		}
		if errors.Is(err, store.ErrNoNotify) {
			l.log.WithError(err).Warn("no notes between instances: a user moving here waits for the other instance's lease to expire")
			return
		}
		l.log.WithError(err).Warnf("store: listening for lease notes failed; again in %s", delay)
		t := time.NewTimer(delay)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// onNote handles a note; it runs on the listening goroutine.
func (l *leases) onNote(n store.LeaseNote) {
	switch n.Kind {
	case store.LeaseListening:
		l.mu.Lock()
		if !l.listened {
			l.listened = true
			close(l.listening)
		}
		l.mu.Unlock()
	case store.LeaseReleased:
		l.mu.Lock()
		for _, ch := range l.waiters[n.User] {
			close(ch)
		}
		delete(l.waiters, n.User)
		l.mu.Unlock()
	case store.LeaseAsked:
		l.log.WithField("user", n.User).WithField("to", n.From).Info("another instance asks for the user's session; handing it over")
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer recoverAndLog(l.log)
			l.b.endSession(n.User, "Your session moved to another gateway instance")
		}()
	}
}

// endSession ends the user's session here (its release follows in run),
// or, with none running, releases the user's lease at once.
func (b *Bridge) endSession(user, why string) {
	b.mu.Lock()
	s := b.sessions[user]
	var rel *store.Lease
	var mem *userMemory
	if s == nil {
		rel = b.lease.drop(user)
		// The state read for a session about to start (loadMemory):
		// another instance may change it before the user is back here.
		mem = b.forgetMemory(user)
	}
	b.mu.Unlock()
	if s == nil {
		b.keepLeftovers(user, mem) // before the release: the next holder reads it
		b.lease.release(rel)
		return
	}
	s.endFor(why, "as your session moved to another gateway instance")
}

// claim takes u's lease for a session about to start here, if it needs
// one and this instance does not hold it already.
func (b *Bridge) claim(u User, say func(string)) error {
	if !b.lease.needs(u) || b.lease.holds(u.Name) {
		return nil
	}
	return b.lease.acquire(u, !u.Ephemeral, say)
}

// leaseValid reports whether the session may act for its user: it holds
// the user's lease, or needs none.
func (s *session) leaseValid() bool {
	return !s.b.lease.needs(s.user) || s.b.lease.holds(s.user.Name)
}

// claimThen runs next on the session goroutine once this instance holds
// u's lease, taking it off the session goroutine first if needed (identify
// and register); if it cannot be taken the user is told why.
func (s *session) claimThen(r replyCtx, u User, next func()) {
	if !s.b.lease.needs(u) || s.b.lease.holds(u.Name) {
		next()
		return
	}
	s.busy = true
	s.spawn(func() func() {
		err := s.b.lease.acquire(u, !u.Ephemeral, nil)
		return func() {
			s.busy = false
			if err != nil {
				s.reply(r, "Your accounts cannot be loaded here: %v.", err)
				return
			}
			next()
		}
	})
}

// recoverAndLog, deferred by a lease goroutine, logs a panic rather than
// ending the process.
func recoverAndLog(log *logrus.Entry) {
	if r := recover(); r != nil {
		log.WithField("panic", r).Errorf("lease goroutine crashed: %s", debug.Stack())
	}
}

// forgetMemory drops the cached state of a user whose lease this instance
// gives up: another instance may change it before the user comes back. It
// returns the memory dropped (nil if none), for keepLeftovers once b.mu is
// let go: what only memory kept (the store failed) is written to the store
// once more. Caller holds b.mu.
func (b *Bridge) forgetMemory(name string) *userMemory {
	m := b.memory[name]
	if m == nil {
		return nil
	}
	delete(b.memory, name)
	return m
}

// keepLeftovers writes to the store, once more, what m, the memory of
// the user name that forgetMemory dropped, kept in memory only because
// the store failed as it was written (storeLeftovers): the user's next
// connection, here or on another instance, reads it there. What still is
// not written is lost, and logged so (without the IMs' text). The caller
// gives the user's lease up only after it, so that the instance that
// takes the user next finds it; it does not hold b.mu (a slow store would
// stall every user of the bridge).
func (b *Bridge) keepLeftovers(name string, m *userMemory) {
	if m == nil {
		return
	}
	log := b.log.WithField("user", name)
	if m.st == nil { // a user who keeps nothing (ephemeral), told as such
		if held, notes := m.leftovers(); held > 0 || notes > 0 {
			log.Warnf("the user's session left this instance with %d IMs held or queued and %d notes kept in memory only: they are lost", held, notes)
		}
		return
	}
	w := m.storeLeftovers()
	if w.held > 0 || w.queued > 0 || w.notes > 0 || w.unqueued > 0 {
		log.Infof("the user's session left this instance: %d IMs held, %d IMs queued and %d notes that the store had failed to take are written to it now, and %d sent IMs whose delete had failed are deleted", w.held, w.queued, w.notes, w.unqueued)
	}
	if w.stillQueued > 0 {
		log.WithError(w.unqueuedErr).Errorf("the user's session left this instance with %d sent IMs still marked queued in the store (their delete failed again): the instance that serves the user next may send them again (the user was told)", w.stillQueued)
	}
	if held, notes := m.leftovers(); held > 0 || notes > 0 {
		log.WithError(w.err).Errorf("the user's session left this instance with %d IMs held or queued and %d notes kept in memory only: the store failed to take them again; they are lost", held, notes)
	}
}

// leftoversWritten counts what storeLeftovers wrote; err is the last
// failure, if one was left in memory. unqueued counts the sent IMs whose
// delete went through at last, stillQueued those whose delete failed
// again (with unqueuedErr).
type leftoversWritten struct {
	held, queued, notes   int
	err                   error
	unqueued, stillQueued int
	unqueuedErr           error
}

// storeLeftovers writes to the store, once more, what m keeps in memory
// only (the store failed when it was written): the deletes of the queued
// IMs sent (unqueued), the IMs held, the IMs queued, then the notes, all
// within one storeWait. What the store takes is forgotten here; what it
// refuses again stays (leftovers counts it). A queued IM whose delete
// fails again stays in the store, and the instance that serves the user
// next may send it again: keepUnqueued's note told the user so.
// A held IM the store refuses as full (maxHeld are held for the account)
// is lost, and a note, written with the others, says so; a note refused
// as full is dropped (the user has store.MaxNotes to read). For a memory
// the bridge has dropped (forgetMemory), once what its writer had queued
// is through: nothing but a late report of ircd uses it then.
func (m *userMemory) storeLeftovers() (w leftoversWritten) {
	m.settle()
	m.mu.Lock()
	held, queued, notes := m.held, m.queued, m.notes
	m.held, m.queued, m.notes = nil, nil, nil
	unqueued := slices.Collect(maps.Keys(m.unqueued))
	m.mu.Unlock()
	if len(held) == 0 && len(queued) == 0 && len(notes) == 0 && len(unqueued) == 0 {
		return w
	}
	ctx, cancel := m.ctx()
	defer cancel()
	for _, email := range unqueued {
		switch n, err := m.deleteUnqueued(ctx, email); {
		case err != nil:
			w.stillQueued += n
			w.unqueuedErr = err
		default:
			w.unqueued += n
		}
	}
	var keptHeld map[string][]seqEvent
	var keptQueued map[string][]queuedIM
	var keptNotes, more []string // more: notes of what this write did
	for email, ses := range held {
		for _, se := range ses {
			_, err := m.st.HoldIM(ctx, m.user, email, toStoreHeld(se.ev, se.seq, se.msgid))
			switch {
			case err == nil:
				w.held++
			case errors.Is(err, store.ErrFull):
				m.mu.Lock()
				if note := m.lost(email); note != "" {
					more = append(more, note)
				}
				m.mu.Unlock()
			default:
				w.err = err
				put(&keptHeld, email, append(keptHeld[email], se))
			}
		}
	}
	for email, qs := range queued {
		for _, q := range qs {
			if _, err := m.st.QueueIM(ctx, m.user, email, toStoreQueued(q)); err != nil {
				w.err = err
				put(&keptQueued, email, append(keptQueued[email], q))
				continue
			}
			w.queued++
		}
	}
	if w.held+w.queued > 0 { // the notes of the failures said "kept in memory"
		more = append(more, fmt.Sprintf("When your session ended, the gateway's database saved %s that it had failed to save before; those are kept for you as usual.", plural(w.held+w.queued, "IM", "IMs")))
	}
	for _, n := range append(notes, more...) {
		err := m.st.AddNote(ctx, m.user, n)
		switch {
		case err == nil:
			w.notes++
		case errors.Is(err, store.ErrFull):
			m.log.WithField("user", m.user).Warnf("a note for the user was dropped: %d wait already", store.MaxNotes)
		default:
			w.err = err
			keptNotes = append(keptNotes, n)
		}
	}
	// What stays goes before what came meanwhile (a late report's hold).
	m.mu.Lock()
	defer m.mu.Unlock()
	for email, ses := range keptHeld {
		put(&m.held, email, append(ses, m.held[email]...))
	}
	for email, qs := range keptQueued {
		put(&m.queued, email, append(qs, m.queued[email]...))
	}
	m.notes = append(keptNotes, m.notes...)
	return w
}
