package channel

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

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
// callbacks, which run on ircd's goroutines, touch only the atomic counter
// and flag, the set of held IMs handed over and what they leave to the
// session (behind its mutex), the user's memory (behind its mutex) and the
// session's wake-up (kick).

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
	// q[head:] waits, oldest first; the slots before head are taken (and
	// cleared), so the array is used again once the queue runs empty.
	q        []outIM
	head     int
	inflight atomic.Int64 // bytes handed to ircd and not yet reported Sent
	drained  atomic.Bool  // a Sent report came: the window may have room
	// stalled: IMs wait for the window or the SendQ (pumpOut stopped), or
	// the session waits for every report (waitSent): a report of an IM
	// shown wakes the session (drained) only then. (One not shown always
	// does.)
	stalled atomic.Bool
	// heldOut: the held IMs handed to ircd and not yet reported Sent; a
	// login leaves them out of the held IMs it gives (heldOnItsWay). true:
	// a login or attach has left it out so, and it is given again if its
	// report says it was not shown (see imSentReport.sent).
	heldMu  sync.Mutex
	heldOut map[heldRef]bool
	// again: held IMs left out so whose reports said they were not shown,
	// for the session to give (giveHeldAgain) at its next turn; a report
	// never waits for the session.
	again []heldAgain
	// lost: IMs reported not shown whose user's memory the bridge has
	// forgotten (a user who keeps nothing), for the session to tell lost
	// at its next turn (afterReports); once the session has ended
	// (lostEnded), a report logs its own.
	lost      []lostOut
	lostEnded bool
	// fullTold: the accounts whose user was told that IMs past the
	// outbox's bound are held (holdPastBound), until the outbox empties.
	// heldPast: the accounts with IMs held so, given (giveHeldPast) once
	// the outbox empties; giving: held IMs are being given (giveHeld).
	// The session's own.
	fullTold, heldPast map[string]bool
	giving             bool
}

// lostOut is an IM for the account email that was handed to ircd, reported
// not shown, and lost: the memory it would be held in is forgotten.
type lostOut struct {
	it    outIM
	email string
}

// heldAgain is an IM held in mem for the account email as id, to give again.
type heldAgain struct {
	mem   *userMemory
	email string
	id    int64
}

// heldRef names a held IM: by its id in the memory it is held in. Ids of
// IMs held in memory only are numbered per memory, and the outbox may
// still wait for the reports of IMs held for a user the session has left
// (identify, register), whose ids another user's memory gives too.
type heldRef struct {
	mem *userMemory
	id  int64
}

// handOut notes that the IM held in mem as id is handed to ircd.
func (o *outbox) handOut(mem *userMemory, id int64) {
	o.heldMu.Lock()
	put(&o.heldOut, heldRef{mem, id}, false)
	o.heldMu.Unlock()
}

// reported notes that ircd reported the IM held in mem for email as id,
// shown or not; one a login or attach left out meanwhile as on its way
// (heldOnItsWay) and not shown is to be given again (takeReported). One
// not shown whose memory the bridge has forgotten meanwhile (forget left
// it out of what it told lost) is lost: true, for the caller to tell
// (notShownLost).
func (o *outbox) reported(mem *userMemory, email string, id int64, shown bool) (lost bool) {
	ref := heldRef{mem, id}
	o.heldMu.Lock()
	switch {
	case shown:
	case mem.isForgotten():
		lost = true
	case o.heldOut[ref]:
		o.again = append(o.again, heldAgain{mem, email, id})
	}
	delete(o.heldOut, ref)
	o.heldMu.Unlock()
	return lost
}

// takeReported returns what the reports left to the session, and forgets
// it: the held IMs to give again, and the IMs to tell lost.
func (o *outbox) takeReported() ([]heldAgain, []lostOut) {
	o.heldMu.Lock()
	defer o.heldMu.Unlock()
	again, lost := o.again, o.lost
	o.again, o.lost = nil, nil
	return again, lost
}

// notShownLost notes it, for the account email, reported not shown and not
// held: the bridge has forgotten the memory it would be held in. It counts
// as dropped; the session tells it lost at its next turn, or, once the
// session has ended, it is logged (log). It never waits for the session.
func (s *session) notShownLost(it outIM, email string, log *logrus.Entry, met *bridgeMetrics) {
	met.imDropped()
	s.out.heldMu.Lock()
	ended := s.out.lostEnded
	if !ended {
		s.out.lost = append(s.out.lost, lostOut{it, email})
	}
	s.out.heldMu.Unlock()
	if ended {
		logLostOut(log, email, it)
		return
	}
	s.out.drained.Store(true)
	s.kick()
}

// endLost, as the session ends, logs the IMs left to tell lost: no client
// is left to tell, but the connection identify handed over to another
// session (handedTo), which is told there, as tellLostOn tells it. A
// report that comes later logs its own (notShownLost).
func (s *session) endLost() {
	s.out.heldMu.Lock()
	lost := s.out.lost
	s.out.lost, s.out.lostEnded = nil, true
	s.out.heldMu.Unlock()
	if len(lost) == 0 {
		return
	}
	log := s.log
	untold := func() {
		for _, l := range lost {
			logLostOut(log, l.email, l.it)
		}
	}
	at := s.handedTo
	if at == nil {
		untold()
		return
	}
	told := make([]ircd.Delivery, len(lost)) // made here: nothing of s is read on the other session's goroutine
	for i, l := range lost {
		told[i] = s.notShownNotice(l)
	}
	at.do(func(to *session) {
		if !to.cl.attached(at) {
			untold()
			return
		}
		for i, l := range lost {
			logTellLostOut(log, l)
			at.c.Deliver(told[i])
		}
	}, untold)
}

// logLostOut logs it, for email, reported not shown and lost with no
// client left to tell.
func logLostOut(log *logrus.Entry, email string, it outIM) {
	log.WithField("account", email).WithField("from", msim.SenderOf(it.ev)).
		Warn("an IM the IRC client did not show was lost: the user it came for keeps nothing (a nick without a password, or a dropped registration), and no client is left to tell")
}

// tellNotShownLost tells the session's clients of l, reported not shown
// and lost (notShownLost), with its text.
func (s *session) tellNotShownLost(l lostOut) {
	logTellLostOut(s.log, l)
	s.irc.Deliver(s.notShownNotice(l))
}

// logTellLostOut logs l, told lost to the user.
func logTellLostOut(log *logrus.Entry, l lostOut) {
	log.WithField("account", l.email).WithField("from", msim.SenderOf(l.it.ev)).
		Warn("an IM the IRC client did not show was lost: the user it came for keeps nothing (a nick without a password, or a dropped registration); they are told")
}

// notShownNotice tells of l, reported not shown and lost, with its text.
func (s *session) notShownNotice(l lostOut) ircd.Delivery {
	return ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick,
		Text: fmt.Sprintf("%s from %s to %s is lost: your IRC client did not show it, and what it came for keeps nothing now (a nick without a password, or a dropped registration).", lostWhat(l.it.ev), l.it.bd.nick, l.email)}
}

// heldOnItsWay returns the ids of the IMs held for a that are on their
// way to the clients since an earlier login: waiting in the outbox or for
// a stranger's profile, or handed to ircd and not yet reported. The
// account's next login (or the next client's attach) does not give them
// again; one handed to ircd is marked, so that a report that it was not
// shown gives it then (giveHeldAgain).
func (s *session) heldOnItsWay(a *account) map[int64]bool { return s.heldOnWay(a, true) }

// heldOnWay is heldOnItsWay; mark: note those handed to ircd as left out.
func (s *session) heldOnWay(a *account, mark bool) map[int64]bool {
	var ids map[int64]bool // made for the first: a login with none allocates nothing
	add := func(id int64) {
		if ids == nil {
			ids = map[int64]bool{}
		}
		ids[id] = true
	}
	for _, it := range s.out.waiting() {
		if it.held != 0 {
			add(it.held)
		}
	}
	for _, q := range a.pending {
		for _, se := range q {
			if se.held != 0 {
				add(se.held)
			}
		}
	}
	s.out.heldMu.Lock()
	defer s.out.heldMu.Unlock()
	for h := range s.out.heldOut {
		if h.mem == s.mem { // else held for a user the session left
			add(h.id)
			if mark {
				s.out.heldOut[h] = true
			}
		}
	}
	return ids
}

// afterReports does what ircd's reports leave to the session: the held IMs
// to give again, the IMs to tell lost, then what the outbox's window now
// has room for, and the notes that wait (pumpNotes).
func (s *session) afterReports() {
	again, lost := s.out.takeReported()
	for _, h := range again {
		s.giveHeldAgain(h.mem, h.email, h.id)
	}
	for _, l := range lost {
		s.tellNotShownLost(l)
	}
	s.pumpOut()
	s.pumpNotes()
}

// giveHeldAgain gives the client the IM held in mem for the account email
// as id, reported not shown after a login or attach left it out as on its
// way: unless the session is another user's now (it stays held for its
// own), the account is not logged in (its next login gives it), the IM is
// no longer held (shown or dropped meanwhile), or it is on its way again.
func (s *session) giveHeldAgain(mem *userMemory, email string, id int64) {
	a := s.accountOf(email)
	if s.mem != mem || a == nil || a.state != linkUp || s.heldOnWay(a, false)[id] {
		return
	}
	for _, se := range mem.heldFor(email) {
		if se.held == id {
			s.fromUserSeq(a, msim.SenderOf(se.ev), se)
			return
		}
	}
}

func newOutbox() outbox { return outbox{} }

// enqueue puts an event from bd in the outbox and sends what fits. Past
// maxHeld IMs waiting for a stalled client, an IM is held rather than
// queued, and given once the outbox empties (giveHeldPast): a live one is
// held now (at the held IMs' bound the memory notes it lost, for the next
// connection), one held already (given by a login) stays held. The user
// is told once per
// account while the outbox stays full, not once per IM: a notice per IM
// would go to the SendQ that is overflowing, and take it, the IMs waiting
// there and the notices with it.
func (s *session) enqueue(bd *buddy, se seqEvent) {
	limit := maxHeld * max(1, len(s.accounts))
	if s.replayPending() {
		limit *= 2 // the held IMs wait for the replay, and what comes meanwhile with them
	}
	if n := len(s.out.waiting()); n >= limit {
		s.holdPastBound(bd, se, n)
		return
	}
	s.out.push(outIM{bd, se})
	s.pumpOut()
}

// holdPastBound holds se, from bd, which finds n IMs waiting in the
// outbox, its bound: given once the outbox empties (pumpOut), before what
// comes after that, or by the account's next login or the client's next
// connection if those come first. The user is told once, until the outbox
// empties (fullTold).
func (s *session) holdPastBound(bd *buddy, se seqEvent, n int) {
	email := bd.a.cfg.Email
	log := s.log.WithField("account", email)
	put(&s.out.heldPast, email, true)
	if se.held == 0 {
		if s.user.Ephemeral { // to name the sender if it is told lost (takeLost)
			s.mem.nameHeld(buddyKey{email, bd.UID()}, bd.nick)
		}
		if _, ok := s.mem.holdEvent(email, se); !ok {
			log.Errorf("%d IMs are waiting for a client that does not read, and %d are held already; one from %s is lost (the user is told at their next connection)", n, maxHeld, bd.nick)
			return
		}
	}
	if s.out.fullTold[email] {
		return
	}
	put(&s.out.fullTold, email, true)
	log.Warnf("%d IMs are waiting for a client that does not read; those that come meanwhile are held, and given once it has read what waits (the user is told)", n)
	s.notice(bd.a, "Too many IMs are waiting for your IRC client to read them: until it has read them, IMs that come for you (and those held for you) are held for you, and given, in the order they came, once it has.")
}

// waiting is the queue, oldest first.
func (o *outbox) waiting() []outIM { return o.q[o.head:] }

// push queues it. With the array full it moves what waits to the front
// rather than grow it for slots already taken.
func (o *outbox) push(it outIM) {
	if len(o.q) == cap(o.q) && o.head > 0 {
		n := copy(o.q, o.q[o.head:])
		clear(o.q[n:])
		o.q, o.head = o.q[:n], 0
	}
	o.q = append(o.q, it)
}

// pop takes the oldest IM.
func (o *outbox) pop() {
	o.q[o.head] = outIM{}
	o.head++
}

// pumpOut hands queued IMs to ircd while the window and the SendQ allow.
func (s *session) pumpOut() {
	if s.replayPending() {
		return // a client's replay comes first (replayReady pumps then)
	}
	if s.out.stalled.Load() {
		s.out.stalled.Store(false)
	}
	for s.out.head < len(s.out.q) {
		it := s.out.q[s.out.head]
		d, late, ok := s.imDelivery(it)
		if !ok {
			s.out.pop()
			continue
		}
		size := int64(len(d.Text)) + 1
		lines := len(d.Text)/lineBudget + strings.Count(d.Text, "\n") + 1
		if !s.outFits(size, lines) {
			// A Sent report wakes the session to go on: one that comes
			// from now on finds it stalled; one that came before, the
			// look again.
			s.out.stalled.Store(true)
			if !s.outFits(size, lines) {
				return
			}
		}
		s.out.pop()
		s.out.inflight.Add(size)
		if it.held != 0 {
			s.out.handOut(s.mem, it.held) // the memory its report reaches (imSent)
		}
		if cl, ok := s.irc.(*clients); ok {
			var sole *attachment // the only client: its report is the IM's
			if len(cl.ats) == 1 {
				sole = cl.ats[0]
			}
			d.Sent = s.imSentTo(it, size, sole)
			cl.deliver(d, late) // false: Sent(false) has held the IM
		} else {
			d.Sent = s.imSent(it, size)
			s.irc.Deliver(d)
		}
	}
	if cap(s.out.q) > 64 {
		s.out.q = nil // let a burst's array go
	} else {
		s.out.q = s.out.q[:0]
	}
	s.out.head = 0
	s.out.fullTold = nil // a flood from now on is told again
	s.giveHeldPast()
}

// giveHeldPast gives, once the outbox is empty, the IMs a flood held past
// its bound (heldPast), before what comes next: for the accounts logged
// in, with a client attached (else the account's login, or the next
// client's attach, gives them). Not while IMs held are being given
// (giving): the pumpOut their enqueue calls would give them again.
func (s *session) giveHeldPast() {
	if len(s.out.heldPast) == 0 || s.out.giving { // nearly always: nothing to give
		return
	}
	s.out.giving = true
	defer func() { s.out.giving = false }()
	for len(s.out.heldPast) > 0 && len(s.out.waiting()) == 0 && !s.replayPending() {
		past := s.out.heldPast
		s.out.heldPast = nil
		for _, a := range s.accounts {
			if past[a.cfg.Email] && a.state == linkUp && len(s.cl.ats) > 0 {
				s.giveHeldOf(a)
			}
		}
	}
}

// giveHeld gives the clients the IMs held for a, as its login and a
// client's attach do, then what a flood held meanwhile (giveHeldPast).
func (s *session) giveHeld(a *account) {
	s.out.giving = true
	s.giveHeldOf(a)
	s.out.giving = false
	s.giveHeldPast()
}

// giveHeldOf gives the clients the IMs held for a, in the order they
// came, but those on their way already (heldOnItsWay): what is on its way
// is read first, so that an IM reported shown in between is dropped from
// the held ones before heldFor reads them (its drop is queued ahead of
// that read), never missing from both.
func (s *session) giveHeldOf(a *account) {
	given := s.heldOnItsWay(a)
	for _, se := range s.mem.heldFor(a.cfg.Email) {
		if !given[se.held] { // else given already, not yet shown
			s.fromUserSeq(a, msim.SenderOf(se.ev), se)
		}
	}
}

// outFits reports whether an IM of size bytes of text and lines lines may
// be handed to ircd now: nothing is in flight, or it fits the window and
// the SendQ has room for it.
func (s *session) outFits(size int64, lines int) bool {
	busy := s.out.inflight.Load()
	return busy <= 0 || busy+size <= outWindow && s.irc.Room() >= lines+outReserve
}

// imSentReport is what an IM handed to ircd needs once its fate is
// reported (Delivery.Sent, on an ircd goroutine): what the session held
// when it was handed over, never the session's state since. Reports are
// pooled with their callback, so a delivery allocates none.
type imSentReport struct {
	s     *session
	it    outIM
	size  int64
	mem   *userMemory
	email string
	log   *logrus.Entry
	met   *bridgeMetrics
	// sole: the only client attached when it was handed over, whose
	// report this is (the clients' deliver passes it on as it is): one
	// not shown is missed by that client (attachment.miss), as each
	// client's miss is when several are attached.
	sole   *attachment
	user   string        // whose IM it is: sole misses it as theirs
	report func(ok bool) // r.sent, made once per report
}

var imSentReports sync.Pool // of *imSentReport

// imSent returns the Sent callback of it, size bytes of text in flight.
func (s *session) imSent(it outIM, size int64) func(ok bool) { return s.imSentTo(it, size, nil) }

// imSentTo is imSent for an IM handed to sole, the only client attached
// (nil: none, or several).
func (s *session) imSentTo(it outIM, size int64, sole *attachment) func(ok bool) {
	r, _ := imSentReports.Get().(*imSentReport)
	if r == nil {
		r = &imSentReport{}
		r.report = r.sent
	}
	r.s, r.it, r.size, r.sole, r.user = s, it, size, sole, s.user.Name
	r.mem, r.email, r.log, r.met = s.mem, it.bd.a.cfg.Email, s.log, s.b.met
	return r.report
}

// sent is the report; it runs once per delivery, then the report goes
// back to the pool.
func (r *imSentReport) sent(ok bool) {
	s, it, size, mem, email, log, met, sole, user := r.s, r.it, r.size, r.mem, r.email, r.log, r.met, r.sole, r.user
	*r = imSentReport{report: r.report}
	imSentReports.Put(r)
	if ok {
		met.delivered(it.ev)
	} else if sole != nil {
		// Held for whichever connection comes next: the client's own
		// position must stop before it, or another client given it first
		// leaves this one never shown it.
		sole.miss(user, it.msgid)
	}
	switch {
	case ok && it.held != 0: // shown: no longer held
		mem.dropShown(email, it.held)
	case !ok && it.held == 0:
		// Held by the memory's writer: neither the session (no client
		// attached: this report runs on it) nor ircd waits for the store.
		// The memory of a user who keeps nothing may be forgotten by then
		// (identify, register, a drop): the IM is told lost instead.
		mem.holdLater(email, it.seqEvent, func() {
			log.WithField("account", email).Errorf("an IM the IRC client did not receive cannot be held: %d are held already (the user is told)", maxHeld)
		}, func() { s.notShownLost(it, email, log, met) })
	}
	if it.held != 0 && s.out.reported(mem, email, it.held, ok) {
		s.notShownLost(it, email, log, met)
	}
	s.out.inflight.Add(-size)
	if !ok || s.out.stalled.Load() { // else the session has nothing to do for it
		s.out.drained.Store(true)
		s.kick()
	}
}

// imDelivery renders an IM or zap for the IRC client; late: it comes late
// (see imLine).
func (s *session) imDelivery(it outIM) (d ircd.Delivery, late, ok bool) {
	bd := it.bd
	switch ev := it.ev.(type) {
	case msim.IMEvent:
		bd.setTyping(false) // a message ends typing, for IRC clients too
		d, late = s.imLine(bd, &it.seqEvent, ev)
		d.MsgID = it.msgid
		return d, late, true
	case msim.ZapEvent:
		// With the time it arrived, as its history entry; late when it
		// was held for the user.
		return ircd.Delivery{Command: "PRIVMSG", From: bd.nick, Text: action(zapText(ev.Zap.Name())), MsgID: it.msgid, Time: ev.Time},
			it.held != 0 && !ev.Time.IsZero(), true
	}
	return ircd.Delivery{}, false, false
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
	for _, it := range s.out.waiting() {
		if it.held != 0 {
			continue // held already, until it is shown
		}
		if _, ok := s.mem.holdEvent(it.bd.a.cfg.Email, it.seqEvent); !ok {
			s.log.WithField("account", it.bd.a.cfg.Email).Errorf("an IM the IRC client did not receive cannot be held: %d are held already (the user is told)", maxHeld)
		}
	}
	s.out.reset()
	s.waitSent()
}

// leaveOutbox empties the outbox as the session leaves old, its user, for
// another (identify, register), before it takes the other's memory: what
// waits there is old's, and its report, once handed to ircd after the
// switch, would reach the other's memory (imSent), which would hold old's
// IM, or not drop one held for old that was shown. Each IM is held for
// old, as the session's end holds it (holdOutbox), one held already
// staying held. A user without a password keeps nothing: each is told
// lost, with its text, to the client it was on its way to. The IMs handed
// to ircd already are reported to old's memory, which their reports keep.
func (s *session) leaveOutbox(r replyCtx, old User) {
	for _, it := range s.out.waiting() {
		email := it.bd.a.cfg.Email
		switch {
		case old.Ephemeral:
			s.b.met.imDropped()
			s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Target: r.target,
				Text: fmt.Sprintf("%s from %s to %s is lost: your IRC client had not shown it when your accounts changed, and a nick without a password keeps nothing.", lostWhat(it.ev), it.bd.nick, email)})
			if it.held != 0 {
				s.mem.dropHeld(email, it.held) // told: no longer held
			}
		case it.held != 0: // held already, until it is shown
		default:
			if _, ok := s.mem.holdEvent(email, it.seqEvent); !ok {
				s.log.WithField("account", email).Errorf("an IM the IRC client did not receive cannot be held: %d are held already (the user is told)", maxHeld)
			}
		}
	}
	s.out.reset()
}

// dropOutbox empties the outbox as a drop leaves the deleted user: what
// waits there was theirs, and its report, once handed to ircd after the
// drop, would reach the memory the drop leaves the session, where one
// held for the deleted user is held nowhere. As identify treats those of
// a user who keeps nothing (leaveOutbox), and the drop the IMs its
// accounts leave held (tellHeldLost), each is lost: told, with its text,
// to the client the reply goes to, or logged with none attached (the
// session ends), and counted dropped. The held ones went with the user.
// The IMs handed to ircd already are reported to the deleted user's
// memory, forgotten: a report that one was not shown tells it lost
// (notShownLost).
func (s *session) dropOutbox(r replyCtx) {
	for _, it := range s.out.waiting() {
		email := it.bd.a.cfg.Email
		s.b.met.imDropped()
		if len(s.cl.ats) == 0 {
			logLostOut(s.log, email, it)
			continue
		}
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Target: r.target,
			Text: fmt.Sprintf("%s from %s to %s is lost: your IRC client had not shown it when your registration was dropped, and a dropped registration keeps nothing.", lostWhat(it.ev), it.bd.nick, email)})
	}
	s.out.reset()
}

// lostWhat names an IM or zap told lost, with its text.
func lostWhat(ev msim.Event) string {
	switch ev := ev.(type) {
	case msim.IMEvent:
		text, act := imText(ev)
		if act {
			text = "/me " + text
		}
		return "An IM (" + text + ")"
	case msim.ZapEvent:
		return "A zap (" + ev.Zap.Name() + ")"
	}
	return "A message"
}

// reset empties the outbox and forgets what a flood past its bound left to
// tell and to give.
func (o *outbox) reset() { o.q, o.head, o.fullTold, o.heldPast = nil, 0, nil, nil }
