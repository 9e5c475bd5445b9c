package cluster

import (
	"time"
)

// liveness is the table of who is alive: the other nodes by their last
// heartbeat, and this node by its last heartbeat that reached NATS. It is a
// plain state machine; its owner passes the time in and holds the lock.
type liveness struct {
	deadAfter  time.Duration // a peer silent this long is dead
	fenceAfter time.Duration // this node, without a flushed heartbeat this long, fences itself
	peers      map[string]time.Time
	dead       map[string]time.Time // declared dead at; forgotten after forgetAfter
	lastOK     time.Time
}

// forgetAfter is how many DeadAfter periods a dead node's name is kept, to
// tell it to fence should it be heard from again.
const forgetAfter = 60

func newLiveness(deadAfter, fenceAfter time.Duration, now time.Time) *liveness {
	return &liveness{
		deadAfter:  deadAfter,
		fenceAfter: fenceAfter,
		peers:      map[string]time.Time{},
		dead:       map[string]time.Time{},
		lastOK:     now,
	}
}

// heard records a peer's heartbeat. It reports false for a node declared
// dead: that one must fence, and stays dead.
func (l *liveness) heard(node string, now time.Time) bool {
	if _, ok := l.dead[node]; ok {
		return false
	}
	l.peers[node] = now
	return true
}

// bye removes a peer that left cleanly, and reports whether it was known.
func (l *liveness) bye(node string, now time.Time) bool {
	_, ok := l.peers[node]
	delete(l.peers, node)
	l.dead[node] = now
	return ok
}

// sweep declares dead the peers silent for deadAfter and returns them.
func (l *liveness) sweep(now time.Time) []string {
	var down []string
	for n, t := range l.peers {
		if now.Sub(t) >= l.deadAfter {
			delete(l.peers, n)
			l.dead[n] = now
			down = append(down, n)
		}
	}
	for n, t := range l.dead {
		if now.Sub(t) >= forgetAfter*l.deadAfter {
			delete(l.dead, n)
		}
	}
	return down
}

// refresh counts every peer as heard now: after this node was cut off, the
// others' silence says nothing about them.
func (l *liveness) refresh(now time.Time) {
	for n := range l.peers {
		l.peers[n] = now
	}
}

// reset forgets every peer, alive or dead: for a node back under a new
// name, whose view of the others is void.
func (l *liveness) reset(now time.Time) {
	clear(l.peers)
	clear(l.dead)
	l.lastOK = now
}

// ok records a heartbeat of this node that reached NATS.
func (l *liveness) ok(now time.Time) { l.lastOK = now }

// lost reports whether this node has gone fenceAfter without one.
func (l *liveness) lost(now time.Time) bool { return now.Sub(l.lastOK) >= l.fenceAfter }

// count returns the number of live peers.
func (l *liveness) count() int { return len(l.peers) }
