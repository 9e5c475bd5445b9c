package cluster

import (
	"time"

	"github.com/msimircd/msimircd/msim"
)

// endedKept bounds how many ended claims a node remembers at once: past
// it the oldest are forgotten, and an IM that comes for one of those
// after its session ended is left to its sender's request timeout.
const endedKept = 1 << 14

// endings remembers, for a while, the users whose claim here ended, and
// whether their session was taken over by another node (kicked) or ended
// here (a logout). An IM sent while such a user's subject still led here
// may come after the claim ended: if the session was logged out here, the
// node finds out whether another node holds the user and, if none does,
// answers it (see Node.answerIfHeldNowhere) instead of leaving its sender
// to time out. It is guarded by Node.mu.
type endings struct {
	keep  time.Duration // how long an ending is remembered
	limit int
	seq   uint64
	last  map[msim.UID]ending // the latest ending of each user
	queue []endedAt           // oldest first; an entry superseded in last is stale
}

type ending struct {
	at     time.Time
	seq    uint64
	kicked bool
}

type endedAt struct {
	uid msim.UID
	at  time.Time
	seq uint64
}

func newEndings(keep time.Duration, limit int) *endings {
	return &endings{keep: keep, limit: limit, last: map[msim.UID]ending{}}
}

// note records that uid's claim here ended at now, kicked or not. An
// ending not kicked does not replace a recent kicked one: a session taken
// over is released after its kick is noted.
func (e *endings) note(uid msim.UID, now time.Time, kicked bool) {
	e.expire(now)
	if prev, ok := e.last[uid]; ok && prev.kicked && !kicked && now.Sub(prev.at) < e.keep {
		return
	}
	for len(e.queue) >= e.limit {
		e.pop()
	}
	e.seq++
	e.last[uid] = ending{at: now, seq: e.seq, kicked: kicked}
	e.queue = append(e.queue, endedAt{uid: uid, at: now, seq: e.seq})
}

// forget drops what is remembered of uid (a new claim of it here).
func (e *endings) forget(uid msim.UID) { delete(e.last, uid) }

// loggedOut reports whether uid's session here ended, not taken over by
// another node, less than keep before now.
func (e *endings) loggedOut(uid msim.UID, now time.Time) bool {
	l, ok := e.last[uid]
	return ok && !l.kicked && now.Sub(l.at) < e.keep
}

// expire forgets the endings older than keep.
func (e *endings) expire(now time.Time) {
	for len(e.queue) > 0 && now.Sub(e.queue[0].at) >= e.keep {
		e.pop()
	}
}

func (e *endings) pop() {
	old := e.queue[0]
	e.queue = e.queue[1:]
	if l, ok := e.last[old.uid]; ok && l.seq == old.seq {
		delete(e.last, old.uid)
	}
	if len(e.queue) == 0 {
		e.queue = nil // let go of the array
	}
}
