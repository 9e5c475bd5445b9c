// What the bridge remembers of a user between connections.

package channel

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// userMemory is what the bridge remembers of a user between connections:
// buddy nicks (so they are stable and renames stick), settings and channel
// names. It is leaf state behind its own mutex.
type userMemory struct {
	mu       sync.Mutex
	nicks    map[buddyKey]string
	byNick   map[string]buddyKey // nickKey(nick) → its buddy, so a nick stays its owner's
	settings map[string]string
	channels map[string]string // account e-mail → channel name
	// IMs (and zaps) that did not reach the IRC client, by account e-mail,
	// in arrival order: shown, with their time, when the account next logs
	// in. seq numbers arrivals across the user's sessions.
	held  map[string][]seqEvent
	seq   uint64
	notes []string // told to the user when they next connect
}

// seqEvent is an event from MSIM with its arrival number.
type seqEvent struct {
	ev  msim.Event
	seq uint64
}

// nextSeq numbers an arriving event.
func (m *userMemory) nextSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	return m.seq
}

func (m *userMemory) note(text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.notes) < maxHeld {
		m.notes = append(m.notes, text)
	}
}

func (m *userMemory) takeNotes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.notes
	m.notes = nil
	return n
}

// maxHeld bounds the IMs held per account for a detached user.
const maxHeld = 1000

// hold keeps an IM for the user's next connection, after those held so far.
func (m *userMemory) hold(email string, ev msim.IMEvent) bool {
	return m.holdEvent(email, ev, m.nextSeq())
}

// holdEvent keeps an IM or zap (others are ignored) for the user's next
// connection, in arrival order; false if maxHeld are held already, in which
// case a note tells the user at their next connection.
func (m *userMemory) holdEvent(email string, ev msim.Event, seq uint64) bool {
	switch e := ev.(type) {
	case msim.IMEvent:
		e.Offline = true // show its time: it is late
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		ev = e
	case msim.ZapEvent:
	default:
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.held[email]) >= maxHeld {
		if len(m.notes) < maxHeld {
			m.notes = append(m.notes, fmt.Sprintf("An IM for %s was lost: %d were already waiting for you.", email, maxHeld))
		}
		return false
	}
	m.held[email] = append(m.held[email], seqEvent{ev, seq})
	return true
}

// takeHeld returns and forgets the IMs held for an account, in arrival order.
func (m *userMemory) takeHeld(email string) []seqEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.held[email]
	delete(m.held, email)
	slices.SortStableFunc(evs, func(a, b seqEvent) int { return cmp.Compare(a.seq, b.seq) })
	return evs
}

func newUserMemory() *userMemory {
	return &userMemory{nicks: map[buddyKey]string{}, byNick: map[string]buddyKey{}, settings: map[string]string{}, channels: map[string]string{}, held: map[string][]seqEvent{}}
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

func (m *userMemory) setNick(k buddyKey, nick string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.nicks[k]; ok {
		delete(m.byNick, nickKey(old))
	}
	m.nicks[k] = nick
	m.byNick[nickKey(nick)] = k
}

// ownedByOther reports whether the nick key is remembered for a buddy other
// than k (who may be offline or on an account that logs in later).
func (m *userMemory) ownedByOther(key string, k buddyKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	owner, ok := m.byNick[key]
	return ok && owner != k
}

func (m *userMemory) get(tbl map[string]string, k string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := tbl[k]
	return v, ok
}

func (m *userMemory) set(tbl map[string]string, k, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tbl[k] = v
}
