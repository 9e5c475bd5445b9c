package channel

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// The outbox carries every IM and zap from MSIM to the IRC client, live or
// replayed, in arrival order, paced by what the client drains: an IM is
// handed to ircd only while the bytes handed over and not yet written stay
// under outWindow and the SendQ has room for its lines, so a large backlog
// never overflows the SendQ. ircd reports each IM's fate (Delivery.Sent):
// an IM that did not reach the socket (the client left, its SendQ
// overflowed) is held for the user's next connection, so nothing the
// gateway accepted is lost. The session goroutine owns the queue; Sent
// callbacks, which run on ircd's goroutines, touch only the atomic counter,
// the user's memory (behind its mutex) and the wake channel.

const (
	// outWindow bounds the text handed to ircd and not yet written.
	outWindow = 256 << 10
	// outReserve is SendQ room kept free for everything else the client
	// is sent (presence, replies) while IMs stream out.
	outReserve = 64
	// lineBudget estimates the text bytes one IRC line carries.
	lineBudget = 400
)

// outIM is an IM or zap waiting for the IRC client.
type outIM struct {
	bd *buddy
	seqEvent
}

type outbox struct {
	q        []outIM
	inflight atomic.Int64  // bytes handed to ircd and not yet reported Sent
	drained  chan struct{} // a Sent report came: the window may have room
}

func newOutbox() outbox { return outbox{drained: make(chan struct{}, 1)} }

// enqueue puts an event from bd in the outbox and sends what fits. An IM
// beyond maxHeld waiting for a stalled client is refused with a log line and
// a notice, never dropped silently.
func (s *session) enqueue(bd *buddy, se seqEvent) {
	if len(s.out.q) >= maxHeld*max(1, len(s.accounts)) {
		s.log.WithField("account", bd.a.cfg.Email).Errorf("%d IMs are waiting for a client that does not read; one from %s is lost", len(s.out.q), bd.nick)
		s.b.met.imDropped()
		s.notice(bd.a, "An IM from "+bd.nick+" was lost: too many IMs are waiting for your IRC client to read them.")
		return
	}
	s.out.q = append(s.out.q, outIM{bd, se})
	s.pumpOut()
}

// pumpOut hands queued IMs to ircd while the window and the SendQ allow.
func (s *session) pumpOut() {
	for len(s.out.q) > 0 {
		it := s.out.q[0]
		d, ok := s.imDelivery(it)
		if !ok {
			s.out.q = s.out.q[1:]
			continue
		}
		size := int64(len(d.Text)) + 1
		lines := len(d.Text)/lineBudget + strings.Count(d.Text, "\n") + 1
		busy := s.out.inflight.Load()
		if busy > 0 && (busy+size > outWindow || s.irc.Room() < lines+outReserve) {
			return // a Sent report wakes the session to go on
		}
		s.out.q[0] = outIM{}
		s.out.q = s.out.q[1:]
		s.out.inflight.Add(size)
		mem, email, log := s.mem, it.bd.a.cfg.Email, s.log
		met := s.b.met
		d.Sent = func(ok bool) {
			if ok {
				met.delivered(it.ev)
			}
			switch {
			case ok && it.held != 0: // shown: no longer held
				mem.dropHeld(email, it.held)
			case !ok && it.held == 0:
				if _, kept := mem.holdEvent(email, it.seqEvent); !kept {
					log.WithField("account", email).Errorf("an IM the IRC client did not receive cannot be held: %d are held already (the user is told)", maxHeld)
				}
			}
			s.out.inflight.Add(-size)
			select {
			case s.out.drained <- struct{}{}:
			default:
			}
			s.kick()
		}
		s.irc.Deliver(d) // false: Sent(false) has held the IM
	}
	if cap(s.out.q) > 64 && len(s.out.q) == 0 {
		s.out.q = nil // let a burst's array go
	}
}

// imDelivery renders an IM or zap for the IRC client.
func (s *session) imDelivery(it outIM) (ircd.Delivery, bool) {
	bd := it.bd
	switch ev := it.ev.(type) {
	case msim.IMEvent:
		bd.setTyping(false) // a message ends typing, for IRC clients too
		d := s.imLine(bd, ev)
		d.MsgID = it.msgid
		return d, true
	case msim.ZapEvent:
		return ircd.Delivery{Command: "PRIVMSG", From: bd.nick, Text: action(zapText(ev.Zap.Name())), MsgID: it.msgid}, true
	}
	return ircd.Delivery{}, false
}

func zapText(name string) string { return "sends you a zap: " + name + "!" }

// sentWait bounds how long a session that ends waits for ircd to report
// the IMs it was handed.
const sentWait = 5 * time.Second

// holdOutbox keeps what is still in the outbox for the user's next
// connection, and waits (bounded) until ircd has reported every IM it was
// handed, so that each is either shown or held before the next session of
// the user takes the held IMs.
func (s *session) holdOutbox() {
	for _, it := range s.out.q {
		if it.held != 0 {
			continue // held already, until it is shown
		}
		if _, ok := s.mem.holdEvent(it.bd.a.cfg.Email, it.seqEvent); !ok {
			s.log.WithField("account", it.bd.a.cfg.Email).Errorf("an IM the IRC client did not receive cannot be held: %d are held already (the user is told)", maxHeld)
		}
	}
	s.out.q = nil
	s.waitSent()
}
