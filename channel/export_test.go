package channel

import (
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// Hold stores an IM for a user's account as if it had arrived after their
// IRC client left (tests only).
func (b *Bridge) Hold(user, email string, ev msim.IMEvent) {
	b.mu.Lock()
	mem := b.memory[user]
	if mem == nil {
		mem = newUserMemory()
		b.memory[user] = mem
	}
	b.mu.Unlock()
	mem.hold(email, ev)
}

// StoredMemory is a user's memory as the bridge loads it from a store.
type StoredMemory struct{ m *userMemory }

// MemoryOf loads user's memory from st (tests only).
func MemoryOf(t interface{ Fatal(...any) }, st store.Store, user string) StoredMemory {
	m, err := loadUserMemory(st, User{Name: user}, newUserMemory().log, false)
	if err != nil {
		t.Fatal(err)
	}
	return StoredMemory{m}
}

// Hold holds an IM in the memory, as for a detached user.
func (s StoredMemory) Hold(email string, ev msim.IMEvent) { s.m.hold(email, ev) }

// Listening is closed once the bridge receives the notes between instances
// (tests only).
func (b *Bridge) Listening() <-chan struct{} { return b.lease.listening }

// StopLeases stops renewing the bridge's leases and listening for notes,
// releasing nothing, as an instance that died would (tests only).
func (b *Bridge) StopLeases() { b.lease.stop() }

// liveSession is user's live session, or nil.
func (b *Bridge) liveSession(user string) *session {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions[user]
}

// SessionLoops is how many goroutines user's live session has started for
// its work (tests only); -1 without a live session.
func (b *Bridge) SessionLoops(user string) int {
	s := b.liveSession(user)
	if s == nil {
		return -1
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.loops
}

// Attached is how many IRC connections user's live session has attached
// (tests only); -1 without a live session.
func (b *Bridge) Attached(user string) int {
	if s := b.liveSession(user); s != nil {
		return int(s.nattached.Load())
	}
	return -1
}

// LoadWaiters is how many logins of user wait for a read of their state
// under way (tests only).
func (b *Bridge) LoadWaiters(user string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.loading[user]; l != nil {
		return l.waiters
	}
	return 0
}

// SetEndWait sets how long ReloadUsers waits for a session it ends
// (tests only).
func (b *Bridge) SetEndWait(d time.Duration) { b.endWait = d }

// WaitDeletion waits until a deletion of name's entry under way
// (deleteRemoved), if any, is over (tests only).
func (b *Bridge) WaitDeletion(name string) {
	b.mu.Lock()
	over := b.deleting[name]
	b.mu.Unlock()
	if over != nil {
		<-over
	}
}
