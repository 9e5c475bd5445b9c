package cluster

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// drain is a shard's goroutine: it hands the per-user messages to the
// server, in order. At the close it takes what is left, then returns.
func (n *Node) drain(ch chan *nats.Msg) {
	defer n.shardWG.Done()
	for {
		select {
		case m := <-ch:
			n.onUserMsg(m)
		case <-n.done:
			for {
				select {
				case m := <-ch:
					n.onUserMsg(m)
				default:
					return
				}
			}
		}
	}
}

func (n *Node) onUserMsg(m *nats.Msg) {
	defer n.recoverAndLog()
	uid, err := uidOf(m.Subject)
	presence := strings.HasPrefix(m.Subject, string(n.subj)+".p.")
	if err == nil && m.Sub == nil { // a mark of makeUp's, not from NATS
		n.madeUp(uid, presence)
		return
	}
	if err != nil || len(m.Data) == 0 {
		n.bad(m, err)
		return
	}
	n.at("message", uid)
	if presence {
		n.metrics.received(kindPresence)
		st, err := decodeState(m.Data, uid)
		if err != nil {
			n.bad(m, err)
			return
		}
		n.peer.PeerState(st)
		return
	}
	switch m.Data[0] {
	case opDeliver:
		n.metrics.received(kindDeliver)
		deadline, from, wire, err := decodeDeliver(m.Data[1:])
		if err != nil {
			n.bad(m, err)
			return
		}
		switch {
		// An IM is not delivered past lateMargin before its sender's
		// deadline: the sender may have stored it by then, and an answer
		// would come too late to stop it. One refused so is answered as
		// one that found no session here, and stored by its sender.
		case n.peer.Deliver(uid, from, wire, deadline.Add(-lateMargin(n.cfg.RequestTimeout))):
			n.respond(m, replyTaken)
		case n.answersFor(uid):
			n.respond(m, replyNotTaken)
		case n.endedHere(uid):
			// Sent while uid's subject still led here, for a session
			// that has ended since (a logout, or the shutdown): the
			// sender stores the IM now, not once its request has
			// timed out, if no other node holds uid.
			n.answerIfHeldNowhere(m, uid)
		}
		// A node whose session of uid was taken over (kicked), or
		// whose logins of uid a later login elsewhere superseded,
		// stays silent: the node of the later login answers.
	case opKick:
		n.metrics.received(kindKick)
		v, err := decodeVersion(m.Data[1:])
		if err != nil {
			n.bad(m, err)
			return
		}
		n.kickedBy(uid, v)
		if st := n.peer.Kick(uid, v); st != nil {
			n.noteKicked(uid)
			n.respond(m, encodeState(st))
		} else if newer, ok := n.claimedAfter(uid, v); ok {
			n.respond(m, encodeJSON(opKick, newer)) // the asker's session is the older
			n.kickAgain(uid, newer)
		} else {
			n.respond(m, noState)
		}
	case opHandOn:
		n.metrics.received(kindHandOn)
		to, st, err := decodeHandOn(m.Data[1:], uid)
		if err != nil {
			n.bad(m, err)
			return
		}
		n.peer.HandOn(uid, to, st)
		n.respond(m, noState)
	case opState:
		n.metrics.received(kindState)
		if st := n.peer.State(uid); st != nil {
			n.respond(m, encodeState(st))
		} else if n.holds(uid) {
			n.respond(m, noState)
		}
	case opMailbox:
		n.metrics.received(kindMailbox)
		n.peer.Mailbox(uid)
	default:
		n.bad(m, errBadMessage)
	}
}

// madeUp makes up for the messages NATS dropped on uid's presence subject
// (presence) or user subject, once the shard has taken every message of
// uid that NATS did not drop before them (see makeUp): what the dropped
// messages would have brought is asked for again (see makeUpFor). The
// make-up is left to a worker, not holding up the shard: it joins the
// pending set, once at most (queueMakeUp).
func (n *Node) madeUp(uid msim.UID, presence bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.table(presence)[uid]; c != nil && c.sub != nil {
		n.queueMakeUp(makeUpKey{uid, presence}, makeUpJob{})
	}
}

// makeUpKey names a make-up: of uid's presence subject, or user subject.
type makeUpKey struct {
	uid      msim.UID
	presence bool
}

// makeUpJob is a pending make-up. For a presence subject, again is the
// state fetch made once DeadAfter is over (due) after one found uid
// connected nowhere (the first of them sent at asked): uid still found
// nowhere is gone. tries counts the fetches made again (at due) after one
// was left unanswered (fetchAgain).
type makeUpJob struct {
	again      bool
	asked, due time.Time
	tries      int
}

// makeUpPool is a set of make-ups waiting for a worker, and how many of
// its workers run: at most fetchers, each taking the next make-up once
// done. Its fields are guarded by n.mu.
type makeUpPool struct {
	jobs    map[makeUpKey]makeUpJob
	workers int
}

func newMakeUpPool() *makeUpPool { return &makeUpPool{jobs: map[makeUpKey]makeUpJob{}} }

// queued returns the make-up k waiting for a worker, if any. The caller
// holds n.mu.
func (n *Node) queued(k makeUpKey) (makeUpJob, bool) {
	if job, ok := n.pending.jobs[k]; ok {
		return job, true
	}
	job, ok := n.retries.jobs[k]
	return job, ok
}

// queueMakeUp adds the make-up k to its set, pending or, for a fetch
// made again after one was left unanswered, retries, and starts a worker
// of that set if fewer than fetchers run. The caller holds n.mu.
func (n *Node) queueMakeUp(k makeUpKey, job makeUpJob) {
	if n.closed {
		return
	}
	if cur, ok := n.queued(k); ok && (cur.again || !job.again) {
		return // the one queued does as much
	}
	to, other := n.pending, n.retries
	if job.tries > 0 {
		to, other = other, to
	}
	delete(other.jobs, k)
	to.jobs[k] = job
	if to.workers < fetchers {
		to.workers++
		n.wg.Add(1)
		go n.makeUps(to)
	}
}

// makeUps is a worker of pool: it makes the make-ups of pool, one after
// the other, until none is left or the node closes.
func (n *Node) makeUps(pool *makeUpPool) {
	defer n.wg.Done()
	for {
		n.mu.Lock()
		var k makeUpKey
		var job makeUpJob
		ok := false
		if !n.closed {
			for k, job = range pool.jobs {
				delete(pool.jobs, k)
				ok = true
				break
			}
		}
		if !ok {
			pool.workers--
		}
		n.mu.Unlock()
		if !ok {
			return
		}
		n.makeUpFor(k, job)
	}
}

// makeUpFor asks again for what the messages NATS dropped on a subject of
// k.uid would have brought. For a presence subject, uid's state is fetched
// again; a user found connected nowhere may only be on a node that is
// losing its NATS link, so, as refetch does, they are asked for again
// once DeadAfter is over (at a heartbeat, no worker waiting meanwhile),
// and are gone if still found nowhere. For a user subject, older sessions
// elsewhere are kicked again (a newer login's answer closes this node's
// instead); then, unless a newer login elsewhere supersedes this node's,
// the mailbox is looked at (the notice of an IM stored meanwhile) and the
// state published again (for a node whose state fetch was dropped). A
// dropped IM needs nothing more: its sender stores it once its request
// times out, and tells of it.
func (n *Node) makeUpFor(k makeUpKey, job makeUpJob) {
	defer n.recoverAndLog()
	uid := k.uid
	if k.presence {
		if !job.again {
			job.asked = time.Now()
		}
		if !n.fetchOne(uid, job) {
			return
		}
		if job.again {
			n.peer.Gone(uid, job.asked)
			return
		}
		n.at("found nowhere", uid)
		n.mu.Lock()
		defer n.mu.Unlock()
		if _, waiting := n.recheck[k]; !waiting && n.watches[uid] != nil && n.watches[uid].sub != nil {
			job.again, job.due = true, time.Now().Add(n.cfg.DeadAfter)
			n.recheck[k] = job
		}
		return
	}
	ver, ok := n.answering(uid)
	if !ok {
		return
	}
	n.kickFor(uid, ver)
	if _, ok := n.answering(uid); !ok {
		return // superseded: its sessions here are closed
	}
	n.peer.Mailbox(uid)
	if st := n.peer.State(uid); st != nil {
		n.Publish(st)
	}
}

// recheckDue has the presence make-ups whose wait is over made. The caller
// holds n.mu.
func (n *Node) recheckDue(now time.Time) {
	for k, job := range n.recheck {
		if !now.Before(job.due) {
			delete(n.recheck, k)
			n.queueMakeUp(k, job)
		}
	}
}

func encodeState(st *server.PeerState) []byte {
	b, _ := json.Marshal(st) // a plain struct: it always encodes
	return b
}

// bad counts and logs a message that does not read.
func (n *Node) bad(m *nats.Msg, err error) {
	n.metrics.drop()
	n.log.WithError(err).WithField("subject", m.Subject).Warn("malformed cluster message dropped")
}

func (n *Node) onHeartbeat(m *nats.Msg) {
	defer n.recoverAndLog()
	n.metrics.received(kindHeartbeat)
	op, b, err := decodeBeat(m.Data)
	if err != nil {
		n.bad(m, err)
		return
	}
	now := time.Now()
	switch op {
	case opHeartbeat:
		n.mu.Lock()
		alive := n.live.heard(b.Node, now)
		n.mu.Unlock()
		if !alive {
			// Declared dead, yet it talks: its users are offline for
			// everyone, so its sessions must go.
			n.publish(kindFence, n.subj.fence(), encodeJSON(opHeartbeat, beat{Node: b.Node}))
		}
	case opBye:
		n.mu.Lock()
		known := n.live.bye(b.Node, now)
		n.mu.Unlock()
		if known {
			n.metrics.nodeDown()
			n.log.WithField("peer", b.Node).Info("node left the cluster")
		}
		n.peer.NodeDown(b.Node)
	}
}

func (n *Node) onFence(m *nats.Msg) {
	defer n.recoverAndLog()
	n.metrics.received(kindFence)
	_, b, err := decodeBeat(m.Data)
	if err != nil {
		n.bad(m, err)
		return
	}
	n.mu.Lock()
	fence := b.Node == n.inc && !n.fenced && !n.closed
	n.fenced = n.fenced || fence
	n.mu.Unlock()
	if fence {
		n.fence("the other nodes declared this one dead")
	}
}

func (n *Node) onAlert(m *nats.Msg) {
	defer n.recoverAndLog()
	op, a, err := decodeAlert(m.Data)
	if err != nil {
		n.bad(m, err)
		return
	}
	if op == opAlert {
		n.peer.Alert(a.UID, a.Key)
	} else {
		n.peer.AlertsTaken(a.UID)
	}
	n.metrics.received(kindAlert) // once done: tests wait on it
}

// heartbeats sends this node's heartbeats and sweeps the liveness table.
func (n *Node) heartbeats() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		n.beat()
		select {
		case <-t.C:
		case <-n.done:
			return
		}
	}
}

func (n *Node) beat() {
	defer n.recoverAndLog()
	n.mu.Lock()
	inc, fenced := n.inc, n.fenced
	n.mu.Unlock()
	if !fenced { // a fenced node's old name is dead: it only checks the link
		n.publish(kindHeartbeat, n.subj.heartbeat(), encodeJSON(opHeartbeat, beat{Node: inc}))
	}
	err := n.nc.FlushTimeout(n.cfg.Heartbeat)
	now := time.Now()
	var down []string
	var owed map[msim.UID]struct{}
	rejoined := false
	n.mu.Lock()
	if err == nil && n.nc.IsConnected() {
		if len(n.owed) > 0 {
			// Owed after resync took the others (a notice that failed
			// as the link came back).
			owed = n.takeOwed()
		}
		if n.cutOff {
			// The others could not be heard while the link was down.
			n.live.refresh(now)
			n.cutOff = false
		}
		n.live.ok(now)
		if n.fenced && !n.closed {
			// Back, under a new name: the old one is dead for everyone,
			// and what this node thought of the others is void.
			n.fenced, rejoined = false, true
			n.inc = incarnation(n.cfg.Name)
			n.live.reset(now)
		}
		down = n.live.sweep(now) // only a node in touch judges the others
	} else {
		n.cutOff = true
	}
	n.ended.expire(now) // not left for the next ending to do
	n.recheckDue(now)
	fence := !n.fenced && !n.closed && n.live.lost(now)
	n.fenced = n.fenced || fence
	newInc := n.inc
	n.mu.Unlock()
	n.countSlow()
	n.sendOwed(owed)
	for _, d := range down {
		n.metrics.nodeDown()
		n.log.WithField("peer", d).Warn("node silent too long: its users are offline")
		n.peer.NodeDown(d)
	}
	if fence {
		n.fence("no heartbeat reached NATS")
	}
	if rejoined {
		n.log.WithField("incarnation", newInc).Info("back in the cluster under a new name")
	}
}
