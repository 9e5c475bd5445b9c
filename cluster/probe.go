package cluster

import (
	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
)

// Bounds of the probes (see answerIfHeldNowhere): the probes running, and
// the IMs waiting for them.
const (
	maxProbes   = 1024
	maxProbeIMs = shardQueue
)

// probe is a look at whether another node holds a user whose session here
// ended, and the IMs for that user waiting for its answer.
type probe struct {
	waiting []*nats.Msg
}

// answerIfHeldNowhere answers m, an IM for uid whose session here ended,
// "not taken" if no other node holds uid (a login elsewhere meanwhile
// answers it itself). The look is a probe, a goroutine of its own: with
// other nodes up, each of which stays silent for a user it does not hold,
// its state fetch may wait out its timeout. The IMs for uid taken while it
// is under way wait for it together, not one after the other nor each in
// a goroutine of its own: every one of them was sent before uid's claim
// here ended, so before the probe began (see Claim). Close waits for the
// probes before the connection closes.
func (n *Node) answerIfHeldNowhere(m *nats.Msg, uid msim.UID) {
	n.mu.Lock()
	p := n.probing[uid]
	switch {
	case n.probeIMs >= n.maxProbeIMs || p == nil && n.probeRuns >= n.maxProbes:
		n.unprobed(uid)
		n.mu.Unlock()
		return
	case p != nil:
		p.waiting = append(p.waiting, m)
		n.probeIMs++
		n.mu.Unlock()
		n.at("probe joined", uid)
		return
	}
	p = &probe{waiting: []*nats.Msg{m}}
	n.probing[uid] = p
	n.probeRuns++
	n.probeIMs++
	n.probes.Add(1)
	n.mu.Unlock()
	go n.runProbe(uid, p)
}

// runProbe answers the IMs waiting for p, uid's probe, "not taken" if no
// other node holds uid.
func (n *Node) runProbe(uid msim.UID, p *probe) {
	defer n.probes.Done()
	defer n.recoverAndLog()
	nowhere := false
	defer func() { // even after a panic: uid's next IMs get a probe of their own
		waiting := n.probeDone(uid, p)
		if !nowhere {
			return
		}
		for _, m := range waiting {
			n.respond(m, replyNotTaken)
		}
	}()
	n.at("probe", uid)
	nowhere = n.heldNowhere(uid)
}

// probeDone ends p, uid's probe, and returns the IMs that waited for it:
// an IM for uid taken from now on waits for a new probe.
func (n *Node) probeDone(uid msim.UID, p *probe) []*nats.Msg {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.probing[uid] == p {
		delete(n.probing, uid)
	}
	waiting := p.waiting
	p.waiting = nil
	n.probeRuns--
	n.probeIMs -= len(waiting)
	if n.probeRuns == 0 {
		n.unprobedWarned = false // the burst is over: the next one is told
	}
	return waiting
}

// unprobed counts an IM for uid, whose session here ended, that is left
// unanswered, as too many probes run or too many IMs wait for them: its
// sender stores it once its request times out, as it would any IM this
// node did not answer, and the recipient gets it from the mailbox. Logged
// as a warning once a burst. The caller holds n.mu.
func (n *Node) unprobed(uid msim.UID) {
	n.metrics.unprobed()
	log := n.log.WithField("uid", uid)
	if !n.unprobedWarned {
		n.unprobedWarned = true
		log.Warn("an IM for a user whose session here just ended is left unanswered (too many wait for a look at whether another node holds their user): its sender stores it once its request times out; the next ones are counted until the looks under way are over")
		return
	}
	log.Debug("an IM for a user whose session here just ended is left unanswered")
}
