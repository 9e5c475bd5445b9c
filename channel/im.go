// The IM paths: incoming (buddies, strangers, held for a later
// connection), outgoing (sent, or queued while the link is down) and typing.

package channel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
	"github.com/msimircd/msimircd/store"
)

type queuedIM struct {
	id   int64 // as kept by the user's memory (the store's, or negative)
	uid  msim.UID
	nick string
	text string // as MSIM gets it: a /me is an action
	// record: kept in the history once sent, with its msgid (a new one if
	// empty) and time; not for an IM the MSIM client took and did not
	// write, kept when it was taken.
	record bool
	msgid  string
	at     time.Time
	// seenBy: the names of the clients attached when it was typed (each
	// typed it or was shown it); kept by this session only.
	seenBy []string
}

// holdIM keeps an IM or zap that arrived after the session ended for the
// user's next connection. For a user who keeps nothing, the sender's nick
// is kept with it, to name them when it is told lost (takeLost).
func (s *session) holdIM(a *account, ev msim.Event) {
	se := seqEvent{ev: ev, seq: s.mem.nextSeq(), msgid: msgidOf(ev)}
	s.recordIn(a, msim.SenderOf(ev), se)
	if s.user.Ephemeral {
		if bd := a.buddy(msim.SenderOf(ev)); bd != nil {
			s.mem.nameHeld(buddyKey{a.cfg.Email, bd.UID()}, bd.nick)
		}
	}
	if _, ok := s.mem.holdEvent(a.cfg.Email, se); !ok {
		s.log.WithField("account", a.cfg.Email).WithField("from", msim.SenderOf(ev)).
			Errorf("an IM arrived after the IRC client left and %d are already held; it is lost (the user is told)", maxHeld)
	}
}

// keepOwned keeps an IM or zap that came for a once the session had
// ended, for o, whose account it is: in their history, and held for
// their next connection; the MSIM client's report of an IM it could not
// read is kept as a note for that connection (noteUnreadable). A user
// without a password, or whose registration was dropped, keeps nothing:
// once their memory is forgotten (the session became another user's), the
// IM is lost, and logged, with no session left to tell them. While o's
// drop is under way, what is held or noted is kept in memory until it
// ends (holdIn, addNote): for o if it fails. It reads nothing of the
// session's state.
func (s *session) keepOwned(o owner, a *account, ev msim.Event) {
	if e, ok := ev.(msim.ErrorEvent); ok && e.Unreadable {
		s.noteUnreadable(o, a, e)
		return
	}
	if !historyEvent(ev) { // an IM or a zap: what is kept
		return
	}
	uid := msim.SenderOf(ev)
	log := o.log.WithField("account", a.cfg.Email).WithField("from", uid)
	if o.mem.isForgotten() {
		s.b.met.imDropped()
		log.Warn("an IM came for an account of a user who keeps nothing (a nick without a password, or a dropped registration) after the session had left it; it is dropped")
		return
	}
	se := seqEvent{ev: ev, seq: o.mem.nextSeq(), msgid: msgidOf(ev)}
	s.recordOwned(o, a, uid, se)
	if _, ok := o.mem.holdEvent(a.cfg.Email, se); !ok {
		log.Errorf("an IM arrived after the IRC client left and %d are already held; it is lost (the user is told)", maxHeld)
	}
}

// noteUnreadable keeps for o, whose account a is, a note for their next
// connection of an IM a's MSIM client could not read (its report, e), as
// the control channel tells it on a link that is up (unreadableText). A
// user who keeps nothing is told nothing: it is logged, without its text.
// It reads nothing of the session's state.
func (s *session) noteUnreadable(o owner, a *account, e msim.ErrorEvent) {
	if o.mem.isForgotten() {
		s.b.met.imDropped()
		o.log.WithField("account", a.cfg.Email).Warn("an IM the MSIM client could not read came for an account of a user who keeps nothing (a nick without a password, or a dropped registration) after the session had left it; it is dropped")
		return
	}
	o.mem.note(accountNote(a, unreadableText(e)))
}

// unreadableText tells the user of an IM the MSIM client could not read,
// by its report e.
func unreadableText(e msim.ErrorEvent) string {
	return "MSIM: " + fromMSIMLine(e.Message)
}

// memOf is the memory of the user a belongs to: the session's, or, for an
// account the session let go, its owner's (it may be another user's now).
func (s *session) memOf(a *account) *userMemory {
	if a.released() {
		return a.owner.mem
	}
	return s.mem
}

// fromUser delivers an event from uid that has just arrived.
func (s *session) fromUser(a *account, uid msim.UID, ev msim.Event) {
	if z, ok := ev.(msim.ZapEvent); ok && z.Time.IsZero() {
		z.Time = time.Now() // one time for its history entry and every copy
		ev = z
	}
	se := seqEvent{ev: ev, seq: s.memOf(a).nextSeq(), msgid: s.batchMsgID(ev)}
	se.render() // once, for its history entry and the IRC client
	s.recordIn(a, uid, se)
	s.fromUserSeq(a, uid, se)
}

// msgidOf is the msgid of an event from a buddy: a live IM's or zap's
// starts with the time it arrived (its Time, which its history entry
// keeps), read once for both; an offline IM's time is when it was sent,
// long ago, so its msgid starts with now.
func msgidOf(ev msim.Event) string { return ircd.NewMsgIDAt(msgidTime(ev)) }

// msgidTime is the time msgidOf's id for ev starts with.
func msgidTime(ev msim.Event) time.Time {
	switch ev := ev.(type) {
	case msim.IMEvent:
		if !ev.Offline && !ev.Time.IsZero() {
			return ev.Time
		}
	case msim.ZapEvent:
		if !ev.Time.IsZero() {
			return ev.Time
		}
	}
	return time.Now()
}

// batchMsgID is msgidOf(ev), written into the batch's ids (s.ids) while
// they have room for it; else a string of its own. On the session's
// goroutine.
func (s *session) batchMsgID(ev msim.Event) string {
	if s.ids.Cap()-s.ids.Len() < ircd.MsgIDLen {
		return msgidOf(ev)
	}
	var b [ircd.MsgIDLen]byte
	start := s.ids.Len()
	s.ids.Write(ircd.AppendMsgIDAt(b[:0], msgidTime(ev)))
	return s.ids.String()[start:]
}

// startIDs makes room in s.ids for the msgids of the IMs and zaps among
// evs, a batch the session is about to handle (see batchMsgID): one
// allocation for them all, not one each.
func (s *session) startIDs(evs []msim.Event) {
	n := 0
	for _, ev := range evs {
		switch ev.(type) {
		case msim.IMEvent, msim.ZapEvent:
			n++
		}
	}
	if n > 0 { // s.ids is empty: takeMSIM lets each batch's go
		s.ids.Grow(n * ircd.MsgIDLen)
	}
}

// fromUserSeq puts an IM or zap from uid in the outbox, first learning who
// a stranger is.
func (s *session) fromUserSeq(a *account, uid msim.UID, se seqEvent) {
	if a.released() {
		// Taken out of the session while its login was under way: the
		// login's IMs are kept for the account, as release kept what
		// waited for a profile, by the user it belongs to, though the
		// session may be another's now (identify, register). A user
		// without a password, whose memory went as the session left
		// them, or whose registration was dropped, keeps nothing: each
		// is told lost.
		o := a.owner
		if o.mem.isForgotten() {
			s.b.met.imDropped()
			s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick,
				Text: fmt.Sprintf("%s from %s to %s is lost: it came with a login that ended after your accounts changed, and what it was for keeps nothing (a nick without a password, or a dropped registration).", lostWhat(se.ev), s.nickOf(a, uid), a.cfg.Email)})
			return
		}
		if _, ok := o.mem.holdEvent(a.cfg.Email, se); !ok {
			o.log.WithField("account", a.cfg.Email).WithField("from", uid).
				Errorf("an IM arrived for an account taken out of the session and %d are already held; it is lost (the user is told)", maxHeld)
		}
		return
	}
	bd := a.buddy(uid)
	if bd == nil {
		_, busy := a.pending[uid]
		a.pending[uid] = append(a.pending[uid], se)
		if !busy {
			s.lookUpStranger(a, uid)
		}
		return
	}
	s.enqueue(bd, se)
}

// lookUpStranger learns who uid, not on a's list, is: a.pending[uid] (set,
// if empty) holds the IMs and zaps from them that wait for it, and the
// clients' replayLater the replays of conversations with them; one lookup
// serves both, so that a replay comes before what they write meanwhile.
func (s *session) lookUpStranger(a *account, uid msim.UID) {
	if _, busy := a.pending[uid]; !busy {
		a.pending[uid] = nil
	}
	cl := a.client
	if cl == nil {
		s.strangerKnown(a, uid, msim.Profile{})
		return
	}
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
		p, err := cl.Profile(ctx, uid)
		cancel()
		if err != nil {
			p = msim.Profile{} // named by uid
		}
		s.post(call(func() { s.strangerKnown(a, uid, p) }))
	}()
}

// strangerKnown names uid as p says, then gives out the replays and the
// IMs and zaps that waited for it, in that order.
func (s *session) strangerKnown(a *account, uid msim.UID, p msim.Profile) {
	if a.released() {
		return // taken out of the session meanwhile: release kept what waited
	}
	evs := a.pending[uid]
	delete(a.pending, uid)
	if a.buddy(uid) == nil {
		s.newBuddy(a, uid, p.UserName, p.DisplayName)
	}
	s.replayStrangerKnown(a, uid)
	for _, se := range evs {
		s.fromUserSeq(a, uid, se)
	}
}

// own shows what the user typed to bd in one client to their other
// clients, as the user's own message with the same msgid and time (the
// client it came from has its echo-message echo, if it asked for one). A
// client that is not given it (closing) misses it, as it would an IM: its
// position stops before it.
func (s *session) own(bd *buddy, in ircd.Input, cmd, text string) {
	for _, at := range s.cl.ats {
		if at != s.sender {
			showOwn(at, s.user.Name, ircd.Delivery{Command: cmd, Self: true, Target: bd.nick, Text: text, Lines: in.Lines, MsgID: in.MsgID, Time: in.Time})
		}
	}
}

// showOwn gives the client at d, the own message of user; one it is not
// given, it misses (its position stops before it).
func showOwn(at *attachment, user string, d ircd.Delivery) {
	if d.MsgID != "" {
		msgid := d.MsgID
		d.Sent = func(ok bool) {
			if !ok {
				at.miss(user, msgid)
			}
		}
	}
	if !at.c.Deliver(d) {
		at.miss(user, d.MsgID) // now: Sent may come after the session let the client go
	}
}

// ownQueued shows m, an IM typed to a while its link was down and sent
// now from the queue as msgid, to the attached clients that did not see
// it typed: those attached since, by their names (seenBy). Their
// positions, saved as they leave, pass it; it comes late, with the time
// it was typed. One typed in an earlier session (who saw it is not known)
// is shown to every attached client: to one that saw it then, again
// (a duplicate, never a loss).
func (s *session) ownQueued(a *account, m queuedIM, msgid string) {
	nick := cmp.Or(s.nickFor(a.cfg.Email, m.uid), m.nick)
	for _, at := range s.cl.ats {
		if !slices.Contains(m.seenBy, at.name) {
			showOwn(at, s.user.Name, stampFor(ircd.Delivery{Command: "PRIVMSG", Self: true, Target: nick, Text: ownShown(m.text), MsgID: msgid, Time: m.at}, true, at.c))
		}
	}
}

// sendOwn sends what the user typed to bd (IRC text; out is the text as
// MSIM gets it, but for IRC's formatting codes: sendIRCText): shown in the
// user's other clients, then sent, or queued while the link is down. It is
// kept in the history once sent: not if it was refused, now or from the
// queue (the refusal's notice says so).
func (s *session) sendOwn(bd *buddy, in ircd.Input, cmd, text, out string) {
	// Formatting codes alone (maybe with spaces), typed or in an action,
	// would reach MSIM empty; blank text holds no code to blame and is
	// sent as typed.
	// The text is scanned for IRC's formatting codes once, here and for
	// the send ("/me " holds none).
	formatted := ircd.HasFormatting(out)
	body, _ := strings.CutPrefix(out, "/me ")
	if formatted && strings.TrimSpace(body) != "" && strings.TrimSpace(msimText(body)) == "" {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: bd.nick,
			Text: "Message NOT sent: it held only IRC formatting codes, which MSIM does not show."})
		return
	}
	s.own(bd, in, cmd, text)
	a := bd.a
	q := queuedIM{uid: bd.UID(), nick: bd.nick, text: out, record: true, msgid: in.MsgID, at: in.Time}
	if a.client == nil || s.queueUnread[a] {
		// The link is down, or IMs typed earlier wait unread in the
		// store (queueUnread): sent now, it would go out before them.
		q.seenBy = s.attachedNames()
		s.queueIM(a, q)
		return
	}
	// No timer of its own: a send waits only while the client's queue is
	// full, and the client's writer ends the link when a write stalls.
	err := sendIRCTextAs(s.ctx, a.client, bd.UID(), out, formatted)
	switch {
	case err == nil:
		s.b.met.imToMSIM()
		s.recordOut(a.cfg.Email, q)
	case errors.Is(err, msim.ErrDisconnected):
		// The link just died; its DisconnectedEvent follows and the
		// reconnect sends the queue.
		q.seenBy = s.attachedNames()
		s.queueIM(a, q)
	case s.ctx.Err() != nil && errors.Is(err, s.ctx.Err()) && !s.keepsNothing():
		// The session ended (the gateway shuts down, say) while the send
		// waited for room in the client's full queue: the client never
		// took it. (A user who keeps nothing is told it was not sent:
		// their memory goes with the session, and no login sends it.)
		s.queueAtEnd(a, q)
	default:
		s.b.met.imRefused()
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: bd.nick,
			Text: fmt.Sprintf("Message NOT sent (%v): %s", err, out)})
	}
}

func (s *session) queueIM(a *account, q queuedIM) { s.queueIMAs(a, q, false) }

// attachedNames are the names of the clients attached now: those shown an
// IM typed now (the user's own, own), which is queued (seenBy), so that
// the clients attached since are shown it as it is sent from the queue
// (ownQueued). Made only for an IM queued: a sent one allocates nothing.
func (s *session) attachedNames() []string {
	names := make([]string, 0, len(s.cl.ats))
	for _, at := range s.cl.ats {
		names = append(names, at.name)
	}
	return names
}

// keepsNothing reports whether the session's user keeps nothing past the
// session: a nick without a password (whose memory the bridge forgets as
// the session ends), or a memory forgotten already (a dropped
// registration, Bridge.forget).
func (s *session) keepsNothing() bool { return s.user.Ephemeral || s.mem.isForgotten() }

// queueAtEnd queues q, typed for a, which the session's end kept from
// a's MSIM client (it never took it, so it is not among what the client
// leaves unsent): the user's memory keeps it, with those the session's
// end leaves queued, and the account's next login sends it (openAccount
// says it waits). The notice may not reach a connection that is closing;
// past QueueLimit, a note for the next connection says it was not sent.
// Not for a user who keeps nothing (keepsNothing): sendOwn refuses it.
func (s *session) queueAtEnd(a *account, q queuedIM) {
	if limit := s.b.cfg.QueueLimit; len(a.queue) >= limit {
		s.b.met.imRefused()
		s.mem.note(fmt.Sprintf("Not sent to %s (your session ended before the MSIM link took it, and %d messages were already waiting for the link): %s", q.nick, limit, q.text))
		return
	}
	a.queue = append(a.queue, s.mem.queue(a.cfg.Email, q))
	s.b.met.imQueued()
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: q.nick,
		Text: "Your session ended before the MSIM link took this message; it is queued and will be sent when the account next logs in: " + q.text})
}

// queueIMAs queues q for the reconnect and tells the user; unsent marks an
// IM the MSIM client had taken but never written when the link died, which
// the notice names by its text.
func (s *session) queueIMAs(a *account, q queuedIM, unsent bool) {
	limit := s.b.cfg.QueueLimit
	notSent := "Message NOT sent"
	if unsent {
		notSent = "The MSIM link was lost before this message went out; it was NOT sent"
	}
	if a.state == linkStopped || a.state == linkDown {
		s.b.met.imNotTaken(unsent)
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: q.nick,
			Text: fmt.Sprintf("%s: account %s is %s. Type connect in %s. The message: %s", notSent, a.cfg.Email, a.state, a.channel, q.text)})
		return
	}
	if len(a.queue) >= limit {
		s.b.met.imNotTaken(unsent)
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: q.nick,
			Text: fmt.Sprintf("%s: %d messages are already waiting for the MSIM link to come back. The message: %s", notSent, limit, q.text)})
		return
	}
	a.queue = append(a.queue, s.mem.queue(a.cfg.Email, q))
	s.b.met.imQueued()
	text := fmt.Sprintf("The MSIM link is down; your message is queued (%d waiting) and will be sent when it is back.", len(a.queue))
	switch {
	case unsent:
		text = fmt.Sprintf("The MSIM link was lost before this message went out; it is queued (%d waiting) and will be sent when the link is back: %s", len(a.queue), q.text)
	case a.state == linkUp: // the IMs queued before are unread (queueUnread)
		text = fmt.Sprintf("The messages you typed earlier while the MSIM link was down are still unread in the gateway's database; so as not to go out before them, your message is queued to wait behind them (%d waiting), and sent after them when the account next logs in.", len(a.queue))
	}
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: q.nick, Text: text})
}

// flushQueue sends the IMs queued for a, as its link is up; not while
// those queued in the store are unread (queueUnread): what was typed
// since waits behind them, for the login whose read succeeds.
func (s *session) flushQueue(a *account) {
	if len(a.queue) == 0 || !s.leaseValid() || s.queueUnread[a] {
		return // no lease: the instance that took the user over sends them
	}
	q := a.queue
	a.queue = nil
	sent := 0
	for i, m := range q {
		err := sendIRCText(s.ctx, a.client, m.uid, m.text)
		if errors.Is(err, msim.ErrInvalidUID) {
			// Never sendable (kept by an older version, say): it must not
			// hold up the IMs queued after it.
			s.refuseQueued(a, m, err.Error())
			continue
		}
		if err != nil {
			a.queue = append(a.queue, q[i:]...)
			s.say(a, "Sent %d queued messages; %d still waiting (%v).", sent, len(a.queue), err)
			return
		}
		s.mem.unqueue(a.cfg.Email, m.id)
		s.b.met.imToMSIM()
		if m.record {
			msgid := s.recordOut(a.cfg.Email, m)
			s.seenQueued(m.seenBy, msgid)
			s.ownQueued(a, m, msgid)
		}
		sent++
	}
	s.say(a, "The MSIM link is back: sent %d queued message(s).", sent)
}

// seenQueued notes that the clients of names, which were shown a queued
// IM when it was typed, have seen its history entry of msgid, sent now:
// those that left meanwhile are not replayed it (replay). Bounded:
// maxSawQueued per name, and as many names as the store keeps positions
// for, as keepWritten is; what is not kept may be replayed (a duplicate,
// never a loss).
func (s *session) seenQueued(names []string, msgid string) {
	for _, name := range names {
		if slices.ContainsFunc(s.cl.ats, func(at *attachment) bool { return at.name == name }) {
			continue // its position, as it leaves, is past it
		}
		if _, kept := s.sawQueued[name]; !kept && len(s.sawQueued) >= store.MaxClientPositions {
			for other := range s.sawQueued { // any
				delete(s.sawQueued, other)
				break
			}
		}
		seen := append(s.sawQueued[name], msgid)
		if len(seen) > maxSawQueued {
			seen = seen[len(seen)-maxSawQueued:]
		}
		put(&s.sawQueued, name, seen)
	}
}

// maxSawQueued bounds the msgids kept per client by seenQueued.
const maxSawQueued = 256

func (s *session) failQueue(a *account, why string) {
	if len(a.queue) == 0 {
		return
	}
	for _, m := range a.queue {
		s.refuseQueued(a, m, why)
	}
	a.queue = nil
}

// refuseQueued tells the user a queued IM was not sent, and why, and
// forgets it.
func (s *session) refuseQueued(a *account, m queuedIM, why string) {
	s.b.met.imDropped()
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: m.nick, Text: "Message NOT sent (" + why + "): " + m.text})
	s.mem.unqueue(a.cfg.Email, m.id)
}

func (s *session) sendTyping(bd *buddy, on bool) {
	a := bd.a
	if a.client == nil || s.setting("typing") != "true" {
		return
	}
	if a.client.SendTyping(s.ctx, bd.UID(), on) == nil { // best effort: typing is not a message
		s.b.met.typed(toMSIM)
	}
}

// ctcpAction returns the text of a CTCP ACTION.
func ctcpAction(s string) (string, bool) {
	if !strings.HasPrefix(s, "\x01ACTION") {
		return "", false
	}
	s = strings.TrimPrefix(s, "\x01ACTION")
	s = strings.TrimSuffix(s, "\x01")
	return strings.TrimPrefix(s, " "), true
}

func action(text string) string { return "\x01ACTION " + text + "\x01" }

// imLine renders an incoming IM from bd, se, for the IRC client: an action
// for "/me", with the time it arrived (or was sent, when it comes late),
// which its history entry keeps too, so every copy has one time; late: it
// comes late (stampLate shows its time to a client without server-time).
func (s *session) imLine(bd *buddy, se *seqEvent, ev msim.IMEvent) (d ircd.Delivery, late bool) {
	text, act := se.imText(ev)
	if act {
		text = action(text)
	}
	return ircd.Delivery{Command: "PRIVMSG", From: bd.nick, Text: text, Time: ev.Time}, ev.Offline && !ev.Time.IsZero()
}

// imText is the text of an IM from MSIM as IRC shows it, live and in the
// history: its bold, italic and underline as IRC's codes (ircStyled), any
// control character in it as its symbol (fromMSIM); act: it is an action
// (it starts with "/me" and a space or tab, which text is without).
func imText(ev msim.IMEvent) (text string, act bool) {
	if markup.Styled(ev.Markup) {
		spans := markup.ToSpans(ev.Markup)
		act = strings.HasPrefix(ev.Text, "/me ") || strings.HasPrefix(ev.Text, "/me\t")
		if act {
			spans = dropPrefix(spans, len("/me "))
		}
		if text, ok := ircStyled(spans); ok {
			return text, act
		}
	}
	return strings.CutPrefix(fromMSIM(ev.Text), "/me ")
}

// stampLate puts the time a late message was sent before its text, for a
// client that does not take it as a server-time tag.
func stampLate(d ircd.Delivery, late, serverTime bool) ircd.Delivery {
	if !late || d.Time.IsZero() || serverTime || d.Command == "TAGMSG" {
		return d
	}
	stamp := "[" + d.Time.UTC().Format("2006-01-02 15:04:05") + " UTC] "
	if a, ok := ctcpAction(d.Text); ok {
		d.Text = action(stamp + a)
	} else {
		d.Text = prefixLines(stamp, d.Text)
	}
	return d
}

// prefixLines puts p before every line of text.
func prefixLines(p, text string) string {
	lines := strings.Split(text, "\n")
	for i := range lines {
		lines[i] = p + lines[i]
	}
	return strings.Join(lines, "\n")
}

func typingTags(on bool) irc.Tags {
	v := "done"
	if on {
		v = "active"
	}
	return irc.Tags{"+typing": v}
}
