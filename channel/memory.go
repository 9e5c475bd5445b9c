// What the bridge remembers of a user between connections, and, with a
// store, across restarts.

package channel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
	"github.com/msimircd/msimircd/store"
)

// userMemory is what the bridge remembers of a user: buddy nicks (so they
// are stable and renames stick), settings, channel names, IMs held for the
// user's next connection, IMs queued while a link is down, and notes. It is
// leaf state behind its own mutex, used by the user's session, by ircd's
// Sent callbacks and by its own writer (later), which holds the mutex only
// around what it changes in memory, never across a store call.
//
// With a store, every change is written through and committed before the
// method returns (an IM queued is then safe from a crash), but for those
// made as the session goes on: the IMs held and notes kept, the held IMs
// shown, the queued IMs sent, settings and nicks (holdLater, note,
// dropHeld, unqueue, setSetting, setNick). Those are written by the
// memory's own writer, in the order given, so that the session does not
// wait for the store; whatever reads them, and the session's end, waits
// for them first (settle). The maps are the loaded copy. A write that
// fails is logged, told to the user, and kept in memory instead, so
// nothing is dropped silently.
type userMemory struct {
	st   store.Store // nil: memory only
	user string
	log  *logrus.Entry
	met  *bridgeMetrics // nil: no metrics

	mu       sync.Mutex
	nicks    map[buddyKey]string
	byNick   map[string]buddyKey // nickKey(nick) → its buddy, so a nick stays its owner's
	stored   map[buddyKey]bool   // nicks the store keeps (not derived again)
	settings map[string]string
	channels map[string]string // account e-mail → channel name
	// IMs (and zaps) that did not reach the IRC client, by account e-mail:
	// shown, with their time, when the account next logs in, and forgotten
	// once written to the client. With a store they are kept there; here
	// only those the store failed to take. seq numbers arrivals across the
	// user's sessions (and restarts), id names a held IM.
	held   map[string][]seqEvent
	queued map[string][]queuedIM // IMs typed while the link was down (memory only)
	seq    uint64
	lastID int64
	notes  []string // told to the user when they next connect (memory only)
	// What the store may keep for the user: held and queued IMs by
	// account e-mail, and notes. Loaded with the user, set when one is
	// written (or its write tried), and cleared by a read that finds
	// none: a login reads only what may be there. They count only when
	// soleWriter: with one instance the bridge keeps one memory per user
	// for good, and every hold, queue and note goes through it. With
	// several, another instance that held the user's lease (or this one's
	// memory from before the lease went and came back) may still hold an
	// IM it could not deliver after this memory was loaded, so every login
	// reads.
	mayHeld, mayQueued map[string]bool
	mayNotes           bool
	soleWriter         bool
	// heldWrites, queuedWrites and noteWrites count the holds, queued IMs
	// and notes written to the store (mayHeld, mayQueued, mayNotes set): a
	// read made without m.mu clears may* only if none was written while
	// it ran, as it may have missed it.
	heldWrites, queuedWrites, noteWrites uint64
	// unqueued: by account e-mail, the store's ids of queued IMs sent (or
	// refused for good) whose delete failed (keepUnqueued): left out of
	// what queuedFor reads, which deletes them again first, so that none
	// is sent twice. At most maxHeld per account.
	unqueued map[string][]int64
	// lostNoted: accounts whose IMs were lost for want of room, with the
	// user told once; cleared when held IMs are delivered.
	lostNoted map[string]bool
	// unreadNoted: the stores' tables and accounts (unreadNote) whose
	// rows the store could not read, with the user told once.
	unreadNoted map[string]bool
	// forgotten: the bridge forgot the memory of a user without a
	// password (Bridge.forget), or of a dropped registration; what is
	// held here now is lost.
	forgotten bool
	// heldFrom names the senders of the IMs held for a user who keeps
	// nothing, as the session knew them when it held them (holdIM), to
	// tell them lost once the memory is forgotten (takeLost).
	heldFrom map[buddyKey]string

	// dropping: the user's drop is under way (or done): nothing more is
	// appended to their history off their session (recordOwned), as the
	// session appends nothing then (historyOn), and nothing more is held
	// or noted in the store, where it could outlive the user's delete, or
	// go to whoever takes the name next: it is kept in memory instead
	// (dropKept) until the drop ends (endDrop). hmu orders such an
	// append, and a hold made off the memory's writer (holdEvent), with
	// the drop's start (its write lock), so that the drop's wait for the
	// history's and the memory's writes covers every one made before it;
	// the writer's own look at dropping needs no lock (the drop waits for
	// the writes queued so far: settle), and takes none, as a hold waits
	// for the writer under hmu.
	hmu      sync.RWMutex
	dropping atomic.Bool
	dropKept dropKept // guarded by mu

	// The writes queued for the memory's writer (later), oldest first,
	// made by one goroutine at a time (writeAll); a write leaves the queue
	// once it is through. wmu guards them.
	wmu    sync.Mutex
	writes []memWrite
}

// memWrite is a write of the memory's writer; done is closed once it is
// through.
type memWrite struct {
	f    func()
	done chan struct{}
}

// memWrites bounds the writes waiting for the memory's writer: past it,
// whoever queues one waits for room, as it waited for the store before,
// so that a flood of IMs for a user whose store is slow is held back (in
// the MSIM client's bounded backlog), not gathered here without end.
const memWrites = maxHeld

// later queues f for the memory's writer, after what is queued before,
// and starts the writer if none runs. With memWrites queued, it waits
// for the first to be through.
func (m *userMemory) later(f func()) { m.queueLater(f, true) }

// laterReport is later for a report of ircd (Delivery.Sent), which never
// waits: past memWrites it queues f all the same. Each report frees room
// in the outbox's window for more IMs, so the window alone does not bound
// what reports add while the writer is behind; the session does: it waits
// in later for room before it holds or reads held IMs itself (with no
// client, every IM is held that way), so the reports' excess is about one
// window per connection. With no store, every write is made in memory at
// once: f runs now.
func (m *userMemory) laterReport(f func()) {
	if m.st == nil {
		f()
		return
	}
	m.queueLater(f, false)
}

// queueLater is later; wait: wait for room past memWrites.
func (m *userMemory) queueLater(f func(), wait bool) {
	m.wmu.Lock()
	for wait && len(m.writes) >= memWrites {
		first := m.writes[0].done
		m.wmu.Unlock()
		<-first
		m.wmu.Lock()
	}
	w := memWrite{f: f, done: make(chan struct{})}
	m.writes = append(m.writes, w)
	start := len(m.writes) == 1 // else the running writer takes it
	m.wmu.Unlock()
	if start {
		go m.writeAll()
	}
}

// writeAll makes the queued writes, one after the other, until none is
// left; the queue's first is the one being made.
func (m *userMemory) writeAll() {
	for {
		m.wmu.Lock()
		w := m.writes[0]
		m.wmu.Unlock()
		w.f()
		m.wmu.Lock()
		m.writes[0] = memWrite{}
		m.writes = m.writes[1:]
		more := len(m.writes) > 0
		if !more {
			m.writes = nil // let a burst's array go
		}
		m.wmu.Unlock()
		close(w.done) // out of the queue: room for one waiting (later)
		if !more {
			return
		}
	}
}

// writeLater has the memory's writer make the store write f (later); a
// failure is noted as what could not be saved.
func (m *userMemory) writeLater(what string, f func(ctx context.Context) error) {
	m.later(func() {
		ctx, cancel := m.ctx()
		err := f(ctx)
		cancel()
		if err != nil {
			m.mu.Lock()
			m.failed(what, err)
			m.mu.Unlock()
		}
	})
}

// settle waits until the writes queued so far (later) are through.
func (m *userMemory) settle() {
	var last chan struct{}
	m.wmu.Lock()
	if n := len(m.writes); n > 0 {
		last = m.writes[n-1].done
	}
	m.wmu.Unlock()
	if last != nil {
		<-last
	}
}

// seqEvent is an event from MSIM with its arrival number, and the id it is
// held under (the store's, or negative for one held in memory; 0 when it
// is not held).
type seqEvent struct {
	ev    msim.Event
	seq   uint64
	held  int64
	msgid string // the IRCv3 msgid it has in the history and on IRC
	// shown and act: an IM's text as IRC shows it (imText), once rendered
	// (rendered), for its history entry and the IRC client alike.
	shown         string
	act, rendered bool
}

// render renders se's IM for IRC (imText), for every use of it after.
func (se *seqEvent) render() {
	if ev, ok := se.ev.(msim.IMEvent); ok && !se.rendered {
		se.shown, se.act = imText(ev)
		se.rendered = true
	}
}

// imText is the text of se's IM, ev, as IRC shows it (imText): as
// rendered already, if it is.
func (se *seqEvent) imText(ev msim.IMEvent) (text string, act bool) {
	if se.rendered {
		return se.shown, se.act
	}
	return imText(ev)
}

// storeWait bounds one store operation.
const storeWait = 10 * time.Second

func (m *userMemory) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeWait)
}

// failed logs a store error and keeps a note for the user. Caller holds m.mu.
func (m *userMemory) failed(what string, err error) {
	m.log.WithError(err).WithField("user", m.user).Errorf("store: %s failed; kept in memory until the gateway stops", what)
	if len(m.notes) < maxHeld {
		m.notes = append(m.notes, fmt.Sprintf("The gateway's database could not save %s (%v); it is kept in memory, and lost if msimircd stops.", what, err))
	}
}

// nextSeq numbers an arriving event.
func (m *userMemory) nextSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	return m.seq
}

// note keeps a line to tell the user when they next connect. With a store,
// the memory's writer writes it (later): the caller does not wait.
func (m *userMemory) note(text string) {
	if m.st == nil {
		m.addNote(text)
		return
	}
	m.later(func() { m.addNote(text) })
}

// addNote is note, written now. Past store.MaxNotes a note is dropped
// (logged): the user has that many to read already. While the user's
// drop is under way, it is kept in memory for the drop's end instead
// (noteForDrop), and once the drop has gone through, dropped. The store is written
// without m.mu; mayNotes is set once it is written, not before: a
// takeNotes that ran meanwhile and found none must not leave it clear.
func (m *userMemory) addNote(text string) {
	m.mu.Lock()
	if m.forgotten && m.dropping.Load() || m.noteForDrop(text) { // kept until the drop ends (endDrop)
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	var err error
	if m.st != nil {
		ctx, cancel := m.ctx()
		err = m.st.AddNote(ctx, m.user, text)
		cancel()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st != nil {
		m.mayNotes = true
		m.noteWrites++
		if err == nil {
			return
		}
		if errors.Is(err, store.ErrFull) {
			m.log.WithField("user", m.user).Warnf("a note for the user was dropped: %d wait already", store.MaxNotes)
			return
		}
		m.failed("a note for your next connection", err)
	}
	if len(m.notes) < maxHeld {
		m.notes = append(m.notes, text)
	}
}

// lost counts an IM or zap for email that was not held: maxHeld wait
// already. The user is told once, until held IMs are delivered: it
// returns the note to keep for them (addNote), "" if they are told
// already. Caller holds m.mu.
func (m *userMemory) lost(email string) (note string) {
	m.met.imDropped()
	if m.lostNoted[email] {
		return ""
	}
	put(&m.lostNoted, email, true)
	return fmt.Sprintf("IMs for %s were lost: %d were already waiting for you, and those that came after them were not kept.", email, maxHeld)
}

// takeNotes returns and forgets the notes for the user, once those being
// written are (settle). Whoever tells them has the delivery of each
// report to noteSent, which keeps again a note no connection wrote. The
// store is taken from without m.mu (its take is a write, which may wait
// on the database's lock); mayNotes is cleared only if no note was
// written meanwhile (noteWrites).
func (m *userMemory) takeNotes() []string {
	m.settle()
	m.mu.Lock()
	read := m.st != nil && (m.mayNotes || !m.soleWriter)
	writes := m.noteWrites
	m.mu.Unlock()
	var n []string
	var err error
	if read {
		ctx, cancel := m.ctx()
		n, err = m.st.TakeNotes(ctx, m.user)
		cancel()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if read && m.tookNotes(err) && m.noteWrites == writes {
		m.mayNotes = false
	}
	n = append(n, m.notes...)
	m.notes = nil
	return n
}

// tookNotes reports whether the store's take of the notes, which returned
// err, left none there. Notes it could not read (store.UnreadableRows)
// are taken with the others, which are used: they are logged, by id (the
// error quotes the values that did not convert, which may be a message's),
// and the user is told how many were removed (with the notes the take
// returns). Caller holds m.mu.
func (m *userMemory) tookNotes(err error) bool {
	var ur *store.UnreadableRows
	switch {
	case err == nil:
		return true
	case !errors.As(err, &ur):
		m.log.WithError(err).WithField("user", m.user).Error("store: notes not read; they are kept for the next connection")
		return false
	case !ur.Removed: // left there: read, and told, again
		if m.unreadOnce(ur.Table) {
			m.logUnread(ur, "", "notes cannot be read; the others are used, these stay in the database, and the user is told")
			m.addUnreadNote(fmt.Sprintf("%s for you could not be read from the gateway's database (the rows are damaged); they stay there, and the gateway's administrator can look at them.", plural(len(ur.Rows), "note", "notes")))
		}
		return false
	}
	m.logUnread(ur, "", "notes cannot be read; the others are used, these are removed, and the user is told")
	was := "was"
	if len(ur.Rows) != 1 {
		was = "were"
	}
	m.addUnreadNote(fmt.Sprintf("%s for you could not be read from the gateway's database (the rows are damaged) and %s removed.", plural(len(ur.Rows), "note", "notes"), was))
	return true
}

// noteSent is the Sent report of a NOTICE telling the user note, taken
// with takeNotes: takeNotes forgot it, so if no connection wrote it (it
// dropped first: the delivery was refused, or its lines were discarded
// with the SendQ) it is kept again (addNote) for the next one. The
// memory's writer keeps it (laterReport): the report never waits for the
// store, and whatever reads the notes next waits for it (settle).
func (m *userMemory) noteSent(note string) func(bool) {
	return func(ok bool) {
		if !ok {
			m.laterReport(func() { m.addNote(note) })
		}
	}
}

// keepNotes keeps again notes taken with takeNotes and not told (the
// connection they waited for went), before those kept since where it
// can: in memory, first; with a store, by the memory's writer (later), as
// note does, after those added meanwhile (the store adds at the end).
func (m *userMemory) keepNotes(texts []string) {
	if m.st == nil {
		m.mu.Lock()
		m.notes = append(texts, m.notes...)
		m.mu.Unlock()
		return
	}
	m.later(func() {
		for _, n := range texts {
			m.addNote(n)
		}
	})
}

// hasNotes reports whether notes are kept in memory for the user (the
// store's are not looked at).
func (m *userMemory) hasNotes() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.notes) > 0
}

// leftovers counts the IMs held or queued and the notes kept in memory
// only (no store, or it failed).
func (m *userMemory) leftovers() (held, notes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, evs := range m.held {
		held += len(evs)
	}
	for _, qs := range m.queued {
		held += len(qs)
	}
	return held, len(m.notes)
}

// maxHeld bounds the IMs held per account for a detached user, in the
// store (which enforces it) or in memory.
const maxHeld = store.MaxHeld

// hold keeps an IM for the user's next connection, after those held so far.
func (m *userMemory) hold(email string, ev msim.IMEvent) bool {
	_, ok := m.holdEvent(email, seqEvent{ev: ev, seq: m.nextSeq()})
	return ok
}

// holdEvent keeps an IM or zap (others are ignored) for the user's next
// connection, in arrival order, committed to the store when there is one.
// It returns the held IM's id; false if maxHeld are held already, in which
// case a note tells the user at their next connection. It holds after the
// writes queued before (settle): a shown IM's removal queued before makes
// room for it.
func (m *userMemory) holdEvent(email string, se seqEvent) (int64, bool) {
	m.hmu.RLock() // a drop that starts waits for the hold (see dropping)
	defer m.hmu.RUnlock()
	m.settle()
	return m.holdNow(email, se)
}

// holdNow is holdEvent, after whatever the memory's writer has yet to
// write: the writer's own (holdLater).
func (m *userMemory) holdNow(email string, se seqEvent) (int64, bool) {
	id, ok, _ := m.holdIn(email, se, false)
	return id, ok
}

// holdIn is holdNow; live: not in a memory the bridge has forgotten (its
// user keeps nothing), where nothing held is ever read: then nothing is
// held, and gone is true. The look is made with the hold, under m.mu, so
// that a forget (takeLost) comes either before it or after the IM is held.
//
// While the user's drop is under way (dropping), nothing is written to
// the store: the IM is kept in memory for the drop's end (keepForDrop);
// once the drop has gone through, nothing is held, and gone is true.
//
// The store is written without m.mu, so that the session's other uses of
// the memory do not wait for it; mayHeld is set once it is written, not
// before: a heldFor that ran meanwhile and found none must not leave it
// clear.
func (m *userMemory) holdIn(email string, se seqEvent, live bool) (id int64, ok, gone bool) {
	if live && m.isForgotten() {
		return 0, false, true
	}
	ev := se.ev
	switch e := ev.(type) {
	case msim.IMEvent:
		e.Offline = true // show its time: it is late
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		ev = e
	case msim.ZapEvent:
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		ev = e
	default:
		return 0, true, false
	}
	// Kept until the drop ends (endDrop), not in the store; m.mu is for
	// dropKept only (dropping is ordered by hmu: see its comment), so an
	// IM held with no drop under way takes it only after the write.
	if m.dropping.Load() {
		m.mu.Lock()
		gone = m.forgotten
		ok = !gone && m.keepForDrop(email, seqEvent{ev: ev, seq: se.seq, msgid: se.msgid})
		m.mu.Unlock()
		return 0, ok, gone
	}
	var h store.HeldIM
	var err error
	if m.st != nil {
		ctx, cancel := m.ctx()
		h, err = m.st.HoldIM(ctx, m.user, email, toStoreHeld(ev, se.seq, se.msgid))
		cancel()
	}
	m.mu.Lock()
	if live && m.forgotten && (m.st == nil || err != nil) { // else the store took it
		m.mu.Unlock()
		return 0, false, true
	}
	id, ok, lostNote := m.keepHeld(email, seqEvent{ev: ev, seq: se.seq, msgid: se.msgid}, h.ID, err)
	m.mu.Unlock()
	if lostNote != "" {
		m.addNote(lostNote)
	}
	return id, ok, false
}

// keepHeld is what follows the store's HoldIM of se (which gave it id, or
// returned err), or a hold without a store: se kept in memory unless it
// is full, when lost's note is returned. Caller holds m.mu.
func (m *userMemory) keepHeld(email string, se seqEvent, id int64, err error) (int64, bool, string) {
	if m.st != nil {
		put(&m.mayHeld, email, true)
		m.heldWrites++
		if err == nil {
			m.met.imHeld()
			return id, true, ""
		}
		if errors.Is(err, store.ErrFull) {
			return 0, false, m.lost(email)
		}
		m.failed("an IM that arrived for you", err)
	}
	if len(m.held[email]) >= maxHeld {
		return 0, false, m.lost(email)
	}
	m.lastID--
	se.held = m.lastID
	put(&m.held, email, append(m.held[email], se))
	m.met.imHeld()
	return m.lastID, true, ""
}

// holdLater is holdEvent made by the memory's writer, for ircd's report
// that the IM was not shown (laterReport): the caller never waits, for
// the store or for room in the writer's queue. notKept is called, from
// the writer, if the event could not be held (maxHeld are held already);
// forgotten instead if the bridge has forgotten the memory by then
// (holdIn), where nothing held is ever read.
func (m *userMemory) holdLater(email string, se seqEvent, notKept, forgotten func()) {
	hold := func() {
		switch _, ok, gone := m.holdIn(email, se, true); {
		case gone:
			forgotten()
		case !ok:
			notKept()
		}
	}
	m.laterReport(hold)
}

// heldFor returns the IMs held for an account, in arrival order, once
// those being held are (settle); they stay held until dropHeld. The store
// is read without m.mu (the read removes the rows it cannot read, a
// write, which may wait on the database's lock); mayHeld is cleared only
// if nothing was held meanwhile (heldWrites).
func (m *userMemory) heldFor(email string) []seqEvent {
	m.settle()
	m.mu.Lock()
	read := m.st != nil && (m.mayHeld[email] || !m.soleWriter)
	writes := m.heldWrites
	m.mu.Unlock()
	var hs []store.HeldIM
	var err error
	if read {
		ctx, cancel := m.ctx()
		hs, err = m.st.HeldIMs(ctx, m.user, email)
		cancel()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []seqEvent
	if read {
		if m.unreadNote(err, email, [2]string{"IM held for you", "IMs held for you"}) {
			// The others are given.
		} else if err != nil {
			m.log.WithError(err).WithField("user", m.user).Error("store: held IMs not read; they stay held for the next login")
		} else if len(hs) == 0 && m.heldWrites == writes {
			delete(m.mayHeld, email)
		}
		for _, h := range hs {
			out = append(out, fromStoreHeld(h))
		}
	}
	out = append(out, m.held[email]...)
	slices.SortStableFunc(out, func(a, b seqEvent) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// unreadNote reports whether err is the store's of rows it could not read
// (store.UnreadableRows) and left out: it logs them, and keeps a note
// for the user of how many of what (the user's name for one of the
// table's rows, and for more) could not be read: once per memory for the
// account and the table while the rows stay in the store; for rows the
// read removed (held IMs), each time, as no read names them again.
// Caller holds m.mu.
func (m *userMemory) unreadNote(err error, email string, what [2]string) bool {
	var ur *store.UnreadableRows
	if !errors.As(err, &ur) {
		return false
	}
	fate, logFate := "they stay there, and the gateway's administrator can look at them", "these stay in the database"
	if ur.Removed {
		fate, logFate = "they could never be shown, and are removed", "these are removed"
	} else if !m.unreadOnce(ur.Table + " " + email) {
		return true
	}
	m.logUnread(ur, email, "rows of the account cannot be read; the others are used, "+logFate+", and the user is told")
	m.addUnreadNote(fmt.Sprintf("%s on your MSIM account %s could not be read from the gateway's database (the rows are damaged); %s.", plural(len(ur.Rows), what[0], what[1]), email, fate))
	return true
}

// unreadHistory reports whether err is the store's of history rows it
// could not read (store.UnreadableRows), left out of what it read, which
// the caller then uses. It logs them, by id (the error quotes the values
// that did not convert, which may be a message's), and keeps a note for
// the user, once per memory, for the caller to tell (tellNotes).
func (m *userMemory) unreadHistory(err error) bool {
	var ur *store.UnreadableRows
	if !errors.As(err, &ur) {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.unreadOnce(ur.Table) {
		return true
	}
	m.logUnread(ur, ur.Email, "history rows cannot be read; they are left out of what the user is shown, stay in the database, and the user is told")
	m.addUnreadNote("Some messages of your history could not be read from the gateway's database (the rows are damaged): they are left out of what the gateway shows you of it (replays, CHATHISTORY and the history command). They stay there, and the gateway's administrator can look at them.")
	return true
}

// logUnread logs the rows of ur, which the store could not read, with
// what becomes of them (why), by id: the error quotes the values that did
// not convert, which may be a message's. email is the account's ("" for
// rows of no account).
func (m *userMemory) logUnread(ur *store.UnreadableRows, email, why string) {
	f := logrus.Fields{"user": m.user, "table": ur.Table, "rows": unreadIDs(ur)}
	if email != "" {
		f["email"] = email
	}
	m.log.WithFields(f).Error("store: " + why)
}

// unreadIDs is the ids of the rows of ur: what is logged of them.
func unreadIDs(ur *store.UnreadableRows) []int64 {
	ids := make([]int64, len(ur.Rows))
	for i, r := range ur.Rows {
		ids[i] = r.ID
	}
	return ids
}

// unreadOnce reports whether the user is yet to be told of unreadable
// rows of k, and notes that they are. Caller holds m.mu.
func (m *userMemory) unreadOnce(k string) bool {
	if m.unreadNoted[k] {
		return false
	}
	put(&m.unreadNoted, k, true)
	return true
}

// addUnreadNote keeps note, of rows the store could not read, for the
// user (in memory: the store is what failed). Caller holds m.mu.
func (m *userMemory) addUnreadNote(note string) {
	if len(m.notes) < maxHeld {
		m.notes = append(m.notes, note)
	}
}

// dropHeld forgets held IMs that reached the client. With a store, the
// memory's writer does it (later), after the writes queued before: the
// caller (the session; ircd's report that an IM was shown uses
// dropShown) does not wait for the store, and a removal cannot overtake
// the hold it undoes. Whatever reads held IMs next (heldFor) waits for it, as do the
// session's end and the bridge's Shutdown: once shown, an IM is not shown
// again, after a restart either.
func (m *userMemory) dropHeld(email string, ids ...int64) {
	if m.st == nil {
		m.forgetHeld(email, ids)
		return
	}
	ids = slices.Clone(ids) // the caller's, which it may reuse
	m.later(func() { m.forgetHeld(email, ids) })
}

// dropShown is dropHeld of the IM held as id, for ircd's report that it
// was shown: the report never waits for room in the writer's queue
// (laterReport).
func (m *userMemory) dropShown(email string, id int64) {
	m.laterReport(func() { m.forgetHeld(email, []int64{id}) })
}

// forgetHeld is dropHeld, done now; the store is written without m.mu.
func (m *userMemory) forgetHeld(email string, ids []int64) {
	m.mu.Lock()
	stored := forgetIDs(m.held, email, ids, func(h seqEvent) int64 { return h.held })
	m.mu.Unlock()
	if m.st != nil { // (a method value of a nil Store would panic)
		m.deleteStored(stored, m.st.DeleteHeld, email, "IMs shown are still marked held; they will be shown again")
	}
	// Room again, now that the store has it: a later loss is told again.
	m.mu.Lock()
	delete(m.lostNoted, email)
	m.mu.Unlock()
}

// forgetIDs removes from list[email] the entries kept in memory (negative
// ids) among ids, and returns the others: the store's.
func forgetIDs[T any](list map[string][]T, email string, ids []int64, id func(T) int64) (stored []int64) {
	for _, x := range ids {
		if x > 0 {
			stored = append(stored, x)
			continue
		}
		if l := list[email]; len(l) > 0 { // list may be nil: a memory makes its maps on first use
			list[email] = slices.DeleteFunc(l, func(e T) bool { return id(e) == x })
		}
	}
	if len(list[email]) == 0 {
		delete(list, email)
	}
	return stored
}

// deleteStored deletes rows of the store by id with del, logging what
// failing means; it returns the store's error.
func (m *userMemory) deleteStored(ids []int64, del func(ctx context.Context, user, email string, ids ...int64) error, email, failure string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := m.ctx()
	defer cancel()
	err := del(ctx, m.user, email, ids...)
	if err != nil {
		m.log.WithError(err).WithField("user", m.user).Error("store: " + failure)
	}
	return err
}

// queue keeps an IM typed while the account's link is down, committed to
// the store when there is one, and returns it with its id. The store is
// written without m.mu (an insert, which may wait on the database's
// lock); mayQueued is set once it is written, not before: a readQueued
// that ran meanwhile and found none must not leave it clear. An IM the
// store failed to take is kept in memory; those after it still go to the
// store, as soon as it takes them, so that a failure puts one IM at risk
// of a restart, not the rest of the outage: the price is that the store's
// are sent first, before the one kept in memory.
func (m *userMemory) queue(email string, q queuedIM) queuedIM {
	var s store.QueuedIM
	var err error
	if m.st != nil {
		ctx, cancel := m.ctx()
		s, err = m.st.QueueIM(ctx, m.user, email, toStoreQueued(q))
		cancel()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st != nil {
		put(&m.mayQueued, email, true)
		m.queuedWrites++
		if err == nil {
			q.id = s.ID
			return q
		}
		m.failed("a message you typed while the link was down", err)
	}
	m.lastID--
	q.id = m.lastID
	put(&m.queued, email, append(m.queued[email], q))
	return q
}

// queuedFor returns the IMs queued for an account, in the order typed,
// once the deletes of those sent are through (settle).
func (m *userMemory) queuedFor(email string) []queuedIM {
	q, _ := m.readQueued(email)
	return q
}

// readQueued is queuedFor, with the store's error if it could not read
// the account's queue (not for rows it could not read, which unreadNote
// tells): only the IMs queued in memory are returned then, and those in
// the store stay there for a read that succeeds; an account the store
// has no row for has none queued. Those sent whose delete failed
// (unqueued) are deleted again first, by the memory's writer (the read
// waits for it, as for the writes before it), and left out. The store is
// read without m.mu: mayQueued is cleared only if nothing was queued
// meanwhile (queuedWrites), and an IM is left out if it was unqueued
// before the read or after it (deleteUnqueued may forget one, deleted,
// that the read found).
func (m *userMemory) readQueued(email string) ([]queuedIM, error) {
	m.retryUnqueued(email)
	m.settle()
	m.mu.Lock()
	read := m.st != nil && (m.mayQueued[email] || !m.soleWriter)
	writes := m.queuedWrites
	sentBefore := slices.Clone(m.unqueued[email])
	m.mu.Unlock()
	var qs []store.QueuedIM
	var err error
	if read {
		ctx, cancel := m.ctx()
		qs, err = m.st.QueuedIMs(ctx, m.user, email)
		cancel()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []queuedIM
	var readErr error
	if read {
		if m.unreadNote(err, email, [2]string{"IM you typed while the link was down", "IMs you typed while the link was down"}) {
			// The others are sent.
		} else if err != nil && !isNotFound(err) {
			m.log.WithError(err).WithField("user", m.user).Error("store: queued IMs not read; they stay queued, and are read again at the account's next login")
			readErr = err
		} else if len(qs) == 0 && m.queuedWrites == writes { // none, or no account row (none can be queued)
			delete(m.mayQueued, email)
		}
		sent := m.unqueued[email]
		for _, q := range qs {
			if slices.Contains(sent, q.ID) || slices.Contains(sentBefore, q.ID) {
				continue // sent already: its delete failed
			}
			// Kept in the history once sent unless it is already, as
			// typed, with the msgid it was typed with.
			out = append(out, queuedIM{id: q.ID, uid: q.To, nick: q.Nick, text: q.Text, record: !q.Recorded, msgid: q.MsgID, at: q.Time})
		}
	}
	return append(out, m.queued[email]...), readErr
}

// retryUnqueued has the memory's writer delete again the queued IMs of
// email that were sent but whose delete failed (unqueued); those deleted
// then (or gone with their account) are forgotten. The caller does not
// wait for the store (a read that follows waits for it: settle).
func (m *userMemory) retryUnqueued(email string) {
	if m.st == nil {
		return
	}
	m.mu.Lock()
	some := len(m.unqueued[email]) > 0
	m.mu.Unlock()
	if !some {
		return
	}
	m.later(func() {
		ctx, cancel := m.ctx()
		defer cancel()
		if _, err := m.deleteUnqueued(ctx, email); err != nil {
			m.log.WithError(err).WithField("user", m.user).Error("store: sent IMs are still marked queued; they are left out of the queue until their delete goes through")
		}
	})
}

// deleteUnqueued deletes again, within ctx, the queued IMs of email that
// were sent but whose delete failed (unqueued), and forgets those deleted
// (or gone with their account). It returns how many it tried, and the
// store's error if they are still marked queued. The store is called
// without m.mu.
func (m *userMemory) deleteUnqueued(ctx context.Context, email string) (int, error) {
	m.mu.Lock()
	ids := slices.Clone(m.unqueued[email])
	m.mu.Unlock()
	if len(ids) == 0 || m.st == nil {
		return 0, nil
	}
	if err := m.st.DeleteQueued(ctx, m.user, email, ids...); err != nil && !isNotFound(err) {
		return len(ids), err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rest := slices.DeleteFunc(m.unqueued[email], func(id int64) bool { return slices.Contains(ids, id) }); len(rest) > 0 {
		m.unqueued[email] = rest
	} else {
		delete(m.unqueued, email)
	}
	return len(ids), nil
}

// keepUnqueued remembers ids, the store's queued IMs of email that were
// sent (or refused for good) and whose delete failed with err: queuedFor
// leaves them out and deletes them again, so none is sent twice while
// the memory lasts. The user is told once while some wait that a restart,
// or a move of the session to another instance, meanwhile may send them
// again (the session's end tries their delete once more before the move:
// storeLeftovers); past maxHeld for the account the oldest are forgotten
// (logged, and told), and may be sent again.
func (m *userMemory) keepUnqueued(email string, ids []int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := append(m.unqueued[email], ids...)
	if len(m.unqueued[email]) == 0 && len(m.notes) < maxHeld {
		m.notes = append(m.notes, fmt.Sprintf("The gateway's database could not mark as sent messages you typed for your MSIM account %s while its link was down (%v): they are not sent again, unless msimircd restarts, or your session moves to another gateway instance, before the database is back.", email, err))
	}
	if over := len(kept) - maxHeld; over > 0 {
		m.log.WithError(err).WithFields(logrus.Fields{"user": m.user, "email": email, "ims": over}).
			Error("store: too many sent IMs are still marked queued; the oldest may be sent again")
		if len(m.notes) < maxHeld {
			m.notes = append(m.notes, fmt.Sprintf("%s you typed for your MSIM account %s while its link was down may be sent again: the gateway's database could not mark them as sent.", plural(over, "message", "messages"), email))
		}
		kept = slices.Delete(kept, 0, over)
	}
	put(&m.unqueued, email, kept)
}

// unqueue forgets queued IMs that were sent (or refused for good). The
// store's are deleted by the memory's writer (later): the caller (the
// session) does not wait for the store. An IM is queued (queue) before
// its id is known, so its delete always comes after it; whatever reads
// the queued IMs next (queuedFor), and the session's end, waits for the
// delete, so an IM sent is not sent again, after a restart either. A
// delete that fails is kept to be tried again (keepUnqueued): queuedFor
// leaves those IMs out meanwhile.
func (m *userMemory) unqueue(email string, ids ...int64) {
	m.mu.Lock()
	stored := forgetIDs(m.queued, email, ids, func(q queuedIM) int64 { return q.id })
	m.mu.Unlock()
	if m.st == nil || len(stored) == 0 {
		return
	}
	m.later(func() {
		if err := m.deleteStored(stored, m.st.DeleteQueued, email, "sent IMs are still marked queued; they are left out of the queue until their delete goes through"); err != nil && !isNotFound(err) {
			m.keepUnqueued(email, stored, err)
		}
	})
}

// toStoreQueued is q, an IM typed while the link was down, as the store
// keeps it (userMemory.queue, storeLeftovers).
func toStoreQueued(q queuedIM) store.QueuedIM {
	return store.QueuedIM{To: q.uid, Nick: q.nick, Text: storable(q.text), Time: cmp.Or(q.at, time.Now()), Recorded: !q.record, MsgID: storable(q.msgid)}
}

func toStoreHeld(ev msim.Event, seq uint64, msgid string) store.HeldIM {
	h := store.HeldIM{Seq: int64(seq), MsgID: msgid}
	switch e := ev.(type) {
	case msim.IMEvent:
		h.From, h.Text, h.Time, h.Offline = e.From, storable(e.Text), e.Time, e.Offline
		if markup.Styled(e.Markup) { // its styles, to show them when it is read back
			h.Markup = storable(e.Markup)
		}
	case msim.ZapEvent:
		h.From, h.IsZap, h.Zap, h.Time = e.From, true, e.Zap, e.Time
	}
	return h
}

func fromStoreHeld(h store.HeldIM) seqEvent {
	if h.IsZap {
		return seqEvent{ev: msim.ZapEvent{From: h.From, Zap: h.Zap, Time: h.Time}, seq: uint64(h.Seq), held: h.ID, msgid: h.MsgID}
	}
	return seqEvent{ev: msim.IMEvent{From: h.From, Text: h.Text, Markup: h.Markup, Time: h.Time, Offline: true}, seq: uint64(h.Seq), held: h.ID, msgid: h.MsgID}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
func isExists(err error) bool   { return errors.Is(err, store.ErrExists) }

func newUserMemory() *userMemory {
	return &userMemory{log: logrus.NewEntry(logrus.StandardLogger())} // its maps are made by put
}

// forget marks the memory forgotten: its user keeps nothing more (a
// user without a password the session left, or a dropped registration).
func (m *userMemory) forget() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgotten = true
}

// setDropping marks the user's drop under way, as it starts; endDrop
// ends it.
func (m *userMemory) setDropping() {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	m.dropping.Store(true)
}

// unlessDropping runs appendHist, an append to the user's history, unless
// their drop is under way; false if it did not, and the entry is counted
// left out (dropKept), for a failed drop to count and tell.
func (m *userMemory) unlessDropping(appendHist func()) bool {
	m.hmu.RLock()
	defer m.hmu.RUnlock()
	if m.dropping.Load() {
		m.mu.Lock()
		m.dropKept.histLost++
		m.mu.Unlock()
		return false
	}
	appendHist()
	return true
}

// dropKept is what came for a user while their drop was under way, kept
// in memory (dropping): the IMs to hold and the notes to keep if the drop
// fails, and the counts of what was not kept.
type dropKept struct {
	held  []heldIn
	notes []string
	// lost: IMs past maxHeld, not kept; histLost: entries left out of
	// the history (unlessDropping).
	lost, histLost int
}

// heldIn is an IM or zap to hold for the account of email.
type heldIn struct {
	email string
	se    seqEvent
}

// keepForDrop keeps se, for email, until the user's drop ends, if it is
// under way; false if it is not. Caller holds m.mu.
func (m *userMemory) keepForDrop(email string, se seqEvent) bool {
	if !m.dropping.Load() {
		return false
	}
	if len(m.dropKept.held) < maxHeld {
		m.dropKept.held = append(m.dropKept.held, heldIn{email, se})
	} else {
		m.dropKept.lost++
	}
	return true
}

// noteForDrop is keepForDrop of a note. Caller holds m.mu.
func (m *userMemory) noteForDrop(text string) bool {
	if !m.dropping.Load() {
		return false
	}
	if len(m.dropKept.notes) < maxHeld {
		m.dropKept.notes = append(m.dropKept.notes, text)
	}
	return true
}

// endDrop ends the user's drop (setDropping), and returns what was kept
// meanwhile (dropKept). If it failed, the memory is the user's again:
// the caller keeps it for them (keepDropKept). Else the memory is
// forgotten, with the look of the drop's under way, so that nothing more
// is kept in it: what was is lost with the user (dropKeptLost).
func (m *userMemory) endDrop(failed bool) dropKept {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.dropKept
	m.dropKept = dropKept{}
	if failed {
		m.dropping.Store(false)
	} else {
		m.forgotten = true
	}
	return k
}

// keepDropKept keeps for the user what came while their drop was under
// way, which failed (endDrop): the IMs are held, and the notes kept, as
// they would have been. It returns the history entries left out, for the
// caller to count and tell.
func (m *userMemory) keepDropKept(k dropKept, log *logrus.Entry) (histLost int) {
	for _, h := range k.held {
		if _, ok := m.holdEvent(h.email, h.se); !ok {
			log.WithField("account", h.email).Errorf("an IM that came while a drop failed could not be held: %d are already held; it is lost (the user is told)", maxHeld)
		}
	}
	for _, n := range k.notes {
		m.note(n)
	}
	if k.lost > 0 {
		m.met.imsDropped(k.lost)
		log.WithField("ims", k.lost).Error("IMs that came while a drop failed were not kept; the user is told")
		m.note(fmt.Sprintf("%s that came while your drop was under way (it failed) could not be kept, and are lost.", plural(k.lost, "IM", "IMs")))
	}
	return k.histLost
}

// dropKeptLost counts and logs what came for a user while their drop,
// which went through, was under way (endDrop): it was theirs, and went
// with them.
func (k dropKept) dropKeptLost(met *bridgeMetrics, log *logrus.Entry) {
	if n := len(k.held) + k.lost; n > 0 {
		met.imsDropped(n)
		log.WithField("ims", n).Warn("IMs came for the user while their drop was under way; the user is deleted, so they are dropped")
	}
	if len(k.notes) > 0 {
		log.WithField("notes", len(k.notes)).Warn("notes for the user were kept while their drop was under way; the user is deleted, so they are dropped")
	}
}

// isForgotten reports whether the bridge has forgotten the memory
// (Bridge.forget, a drop).
func (m *userMemory) isForgotten() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.forgotten
}

// put sets (*m)[k] = v, making the map on first use: most of a user's
// memory's maps stay empty.
func put[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}

// loadUserMemory is the memory of user u kept in st: the user and their
// accounts are saved there first (SaveUsers), then what was kept is loaded.
// soleWriter: the memory is the only writer of the user's held and queued
// IMs and notes (one instance; see userMemory.soleWriter).
func loadUserMemory(st store.Store, u User, log *logrus.Entry, soleWriter bool) (*userMemory, error) {
	m := newUserMemory()
	m.st, m.user, m.log, m.soleWriter = st, u.Name, log, soleWriter
	ctx, cancel := context.WithTimeout(context.Background(), storeWait)
	defer cancel()
	state, err := saveUser(ctx, st, u, false)
	if err != nil {
		return nil, err
	}
	m.mayNotes = state.Notes > 0
	for _, as := range state.Accounts {
		if as.Unreadable != nil && accountIndex(u.Accounts, as.Email) < 0 {
			// Left out of u (storeDirectory.load); a configuration's
			// account was sealed anew by saveUser.
			log.WithError(as.Unreadable).WithFields(logrus.Fields{"user": u.Name, "email": as.Email}).
				Error("store: an MSIM account of the user cannot be read; it is not logged in, and the user is told")
			m.notes = append(m.notes, fmt.Sprintf("Your MSIM account %s could not be read from the gateway's database (its stored password is damaged), so it is not connected. Add it again with: account add msim %s <password> (what was kept for it stays).", as.Email, as.Email))
		}
		if as.Channel != "" {
			put(&m.channels, as.Email, as.Channel)
		}
		if as.Held > 0 {
			put(&m.mayHeld, as.Email, true)
		}
		if as.Queued > 0 {
			put(&m.mayQueued, as.Email, true)
		}
		for _, err := range as.NicksUnreadable {
			// The buddy gets a nick anew.
			log.WithError(err).WithFields(logrus.Fields{"user": u.Name, "email": as.Email}).
				Warn("store: a buddy nick of the account cannot be read; it is left out")
		}
		for uid, nick := range as.Nicks {
			k := buddyKey{as.Email, uid}
			put(&m.nicks, k, nick)
			put(&m.byNick, nickKey(nick), k)
			put(&m.stored, k, true)
		}
	}
	for k, v := range state.Settings {
		put(&m.settings, k, v)
	}
	m.seq = uint64(state.HeldSeq)
	return m, nil
}

// SaveUsers puts users that another directory serves (the [[user]]s of the
// configuration, all of them) in st with their accounts, at start: the
// configuration wins for what it names (an account's password and
// autoconnect, and its channel when it sets one), and what st keeps for
// them (nicks, settings, IMs) stays. A user gets a password nobody knows,
// also one st kept before that looks usable (an earlier build's): the
// configuration checks theirs. A registration of the name is refused
// (ErrRegistered; callers refuse such a name first, see NameClashes), and
// an undecided entry (entryOf: a password of its own, and accounts the
// user does not list besides one it lists) keeps its password. What st
// keeps already is not written again: a start writes nothing for users it
// saved before.
//
// The saved state then matches the configuration: an account a user
// still named no longer lists is deleted, with its sealed MSIM password
// and what was kept for it (not from an undecided entry, which is kept
// as it is), and so is every user the configuration used to name and no
// longer does (leftConfiguration), with their accounts.
// Users of register and msimircd user add (a password of their own) and
// the demo network's nicks are not touched, nor, with several instances
// on the store (o.Instance), a user whose lease another instance holds:
// it serves them on a configuration that still names them. Each deletion,
// and each user kept so, is told to o.Log at Warn.
func SaveUsers(ctx context.Context, st store.Store, users []User, o SaveOptions) error {
	if err := saveUsers(ctx, st, users); err != nil {
		return err
	}
	log := o.log()
	named := make(map[string][]Account, len(users))
	for _, u := range users {
		named[u.Name] = u.Accounts
	}
	stored, err := st.Users(ctx)
	if err != nil {
		return fmt.Errorf("listing the stored users: %w", err)
	}
	for _, su := range stored {
		listed, ok := named[su.Name]
		if !ok {
			if !leftConfiguration(su, true) {
				continue // registered, or a demo nick
			}
			if _, err := deleteLeft(ctx, st, su.Name, o.Instance, o.LeaseTTL, log); err != nil {
				return err
			}
			continue
		}
		if err := deleteUnlisted(ctx, st, su.Name, listed, o, log); err != nil {
			return err
		}
	}
	return nil
}

// deleteUnlisted deletes the accounts of name, a user the configuration
// names, that it no longer lists, with their sealed MSIM passwords and
// what was kept for them, logged at Warn. Only from an entry the
// configuration's for sure (an unusable password, which saveUsers gave
// it): an undecided one is kept as it is (entryOf), logged at Warn. With
// several instances on the store, one that serves the user (on a
// configuration that still lists them) keeps them (leaseToDelete).
func deleteUnlisted(ctx context.Context, st store.Store, name string, listed []Account, o SaveOptions, log *logrus.Entry) error {
	state, err := st.LoadUser(ctx, name)
	if err != nil {
		return fmt.Errorf("loading %s's state: %w", name, err)
	}
	var gone []store.AccountState
	for _, as := range state.Accounts {
		if accountIndex(listed, as.Email) < 0 {
			gone = append(gone, as)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if !store.UnusablePassword(state.User.PasswordHash) {
		// Not the configuration's for sure: saveUsers kept it as it is
		// (entryUndecided), or a registration came since. Nothing of it
		// is deleted.
		emails := make([]string, len(gone))
		for i, as := range gone {
			emails[i] = as.Email
		}
		log.WithFields(logrus.Fields{"user": name, "emails": emails}).
			Warn("store: the user's stored entry has a password of its own and MSIM accounts the config does not list besides one it lists: it may be a registered user's (register, msimircd user add) or an earlier build's save of the [[user]]; it is kept as it is (its password, those accounts and what was kept for them), and the [[user]] logs in with the accounts the config lists")
		return nil
	}
	release, ok, err := leaseToDelete(ctx, st, name, o.Instance, o.LeaseTTL, log,
		"store: the config no longer lists some of the user's accounts, but another instance serves the user (its config may still list them): the accounts and their sealed MSIM passwords are kept until an instance that no longer lists them deletes them")
	if !ok {
		return err
	}
	defer release()
	for _, as := range gone {
		err := st.DeleteAccount(ctx, name, as.Email)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("deleting the account %s the config no longer lists: %w", as.Email, err)
		}
		log.WithFields(logrus.Fields{"user": name, "email": as.Email, "held_ims": as.Held, "queued_ims": as.Queued}).
			Warn("store: deleted an account the config no longer lists for the user, with its sealed MSIM password and what was kept for it")
	}
	return nil
}

// saveUsers is SaveUsers without the deletions: users may be some of the
// configuration's (those a reload adds or changes).
func saveUsers(ctx context.Context, st store.Store, users []User) error {
	for _, u := range users {
		state, err := saveUser(ctx, st, u, true)
		if err != nil {
			return err
		}
		if store.UnusablePassword(state.User.PasswordHash) || entryOf(state, u.Accounts) == entryUndecided {
			continue // the configuration's already, or kept as it is
		}
		if err := st.SetPassword(ctx, u.Name, store.UnusablePasswordHash()); err != nil {
			return fmt.Errorf("saving user %s: %w", u.Name, err)
		}
	}
	return nil
}

// saveUser is SaveUsers for one user; it returns what st keeps for u (the
// user it made, if it made one). configured: u is a configuration's user,
// refused if the name is a registration's (ErrRegistered).
func saveUser(ctx context.Context, st store.Store, u User, configured bool) (store.UserState, error) {
	state, err := st.LoadUser(ctx, u.Name)
	if isNotFound(err) {
		var made store.User
		made, err = st.CreateUser(ctx, u.Name, store.UnusablePasswordHash())
		switch {
		case err == nil:
			state.User = made
		case isExists(err): // made meanwhile: by whom is read again
			state, err = st.LoadUser(ctx, u.Name)
		default:
			return state, fmt.Errorf("saving user %s: %w", u.Name, err)
		}
	}
	if err != nil {
		return state, fmt.Errorf("loading %s's state: %w", u.Name, err)
	}
	// The configuration's users: the callers refused a registration of
	// the name (NameClashes), but one may have come since (a register of
	// a nick a reload adds, or msimircd user add from another process):
	// its entry is not taken over, whatever the order.
	if configured && registration(state, u.Accounts) {
		return state, fmt.Errorf("saving user %s: %w", u.Name, ErrRegistered)
	}
	kept := map[string]store.Account{}
	for _, as := range state.Accounts {
		kept[as.Email] = as.Account
	}
	for _, a := range u.Accounts {
		want := store.Account{Email: a.Email, Password: a.Password, Channel: a.Channel, Autoconnect: a.AutoConnect}
		old, ok := kept[a.Email]
		if !ok {
			if err := st.AddAccount(ctx, u.Name, want); err != nil && !isExists(err) {
				return state, fmt.Errorf("saving account %s: %w", a.Email, err)
			}
			continue
		}
		if want.Channel == "" {
			want.Channel = old.Channel // remembered from a login
		}
		if old.Password != want.Password || old.Channel != want.Channel || old.Autoconnect != want.Autoconnect {
			if err := st.UpdateAccount(ctx, u.Name, want); err != nil {
				return state, fmt.Errorf("saving account %s: %w", a.Email, err)
			}
		}
	}
	return state, nil
}

// buddyKey names a buddy of one of the user's accounts.
type buddyKey struct {
	email string
	uid   msim.UID
}

func (m *userMemory) nick(k buddyKey) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nicks[k]
	return n, ok
}

// setNick remembers a buddy's nick. A nick the bridge derives again from
// the buddy's names (derived) is not written to the store, which keeps only
// renames and collision suffixes: a first login with many buddies costs no
// write per buddy. The store is written by the memory's writer (later):
// the caller (the session) does not wait for it.
func (m *userMemory) setNick(k buddyKey, nick string, derived bool) {
	m.mu.Lock()
	if old, ok := m.nicks[k]; ok {
		if old == nick && !derived {
			m.mu.Unlock()
			return
		}
		delete(m.byNick, nickKey(old))
		delete(m.nicks, k)
	}
	if !derived {
		put(&m.nicks, k, nick)
		put(&m.byNick, nickKey(nick), k)
	}
	// A derived nick is not remembered: made again from the buddy's name
	// whenever needed, it costs nothing per buddy.
	if m.st == nil || (derived && !m.stored[k]) {
		m.mu.Unlock()
		return
	}
	if derived {
		delete(m.stored, k)
	} else {
		put(&m.stored, k, true)
	}
	m.mu.Unlock() // (later may wait for the writer, which takes m.mu)
	// Written by the memory's writer, in the order given: the last nick
	// given is the one stored.
	m.writeLater("the nick "+nick, func(ctx context.Context) error {
		if derived {
			return m.st.DeleteNick(ctx, m.user, k.email, k.uid)
		}
		return m.st.SetNick(ctx, m.user, k.email, k.uid, nick)
	})
}

// ownedByOther reports whether the nick key is remembered for a buddy other
// than k (who may be offline or on an account that logs in later).
// nickOwner is the buddy whose remembered nick has key.
func (m *userMemory) nickOwner(key string) (buddyKey, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.byNick[key]
	return k, ok
}

func (m *userMemory) ownedByOther(key string, k buddyKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	owner, ok := m.byNick[key]
	return ok && owner != k
}

func (m *userMemory) setting(k string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.settings[k]
	return v, ok
}

// allSettings returns a copy of the settings that were set.
func (m *userMemory) allSettings() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.settings)
}

// setSetting sets a setting, at once in memory. With a store, the
// memory's writer writes it (later), in the order set: the caller (the
// session) does not wait, and a setting set twice is stored as it was
// set last. The session's end waits for it (settle).
func (m *userMemory) setSetting(k, v string) {
	m.mu.Lock()
	put(&m.settings, k, v)
	m.mu.Unlock()
	if m.st == nil {
		return
	}
	m.writeLater("the setting "+k, func(ctx context.Context) error { return m.st.SetSetting(ctx, m.user, k, v) })
}

func (m *userMemory) channel(email string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.channels[email]
	return ch, ok
}

// setChannel remembers the control channel of an account, at once in
// memory. With a store, it is written before setChannel returns, not by
// the memory's writer: a change of the account's settings that follows
// (accountSet) writes the whole account too, and must not be overtaken.
// The store is written without m.mu (a write, which may wait on the
// database's lock), which ircd's reports and the memory's writer take.
func (m *userMemory) setChannel(a Account, ch string) {
	m.mu.Lock()
	if m.channels[a.Email] == ch {
		m.mu.Unlock()
		return
	}
	put(&m.channels, a.Email, ch)
	m.mu.Unlock()
	if m.st == nil {
		return
	}
	ctx, cancel := m.ctx()
	err := m.st.UpdateAccount(ctx, m.user, store.Account{Email: a.Email, Password: a.Password, Channel: ch, Autoconnect: a.AutoConnect})
	cancel()
	if err != nil {
		m.mu.Lock()
		m.failed("the channel of "+a.Email, err)
		m.mu.Unlock()
	}
}
