// History: every IM in and out, /me and zaps included, kept in the store
// per user, MSIM account and buddy with its msgid and time. Clients read it
// with CHATHISTORY and keep read markers with MARKREAD (ircd's
// HistoryHandler, implemented by the attachment); a client without
// chathistory is given, when it attaches, what it missed since it last
// left (by its name: soju's rule, per-client positions); the history
// command shows a buddy's recent messages in any client.

package channel

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

const (
	// DefaultReplayPerBuddy caps the messages replayed per conversation to
	// a client without chathistory when Config.ReplayPerBuddy is not set.
	DefaultReplayPerBuddy = 50
	// replayPages bounds the pages of the store (store.MaxHistoryLimit
	// entries each) one replay reads, from the newest back: the session
	// waits for them.
	replayPages = 10
	// Kinds of history entries.
	kindIM, kindAction, kindZap = "im", "action", "zap"
)

// historyOn reports whether the user's history is kept: the bridge has a
// store and history on, the user is one the store keeps, and no drop of
// theirs is under way.
func (s *session) historyOn() bool {
	return s.b.hist != nil && !s.user.Ephemeral && s.user.identify == "" && !s.dropping
}

// maxDropHist bounds the entries kept while a drop is under way
// (dropHist), to be recorded if it fails.
const maxDropHist = 4096

// record has e appended to the user's history by the bridge's history
// writer. History is a record: a failure is logged and told to the user
// once (historyFailure), and delivery goes on.
func (s *session) record(e store.HistoryEntry) {
	if !s.historyOn() {
		if s.dropping { // kept until the drop's end: it may fail
			if len(s.dropHist) < maxDropHist {
				s.dropHist = append(s.dropHist, e)
			} else {
				s.dropHistLost++
			}
		}
		return
	}
	if s.b.hist.behind() { // refused unless a batch goes meanwhile: not queued
		s.leftOut(s.log)
		return
	}
	e.Text = storable(e.Text)
	s.b.hist.append(s.user.Name, e, s.historyFailure())
}

// historyFailure is the session's callback for an entry its history left
// out: counted, logged and told to the user whose entry it was, once
// (historyFullOnce, historyFailedOnce). A report the session handles
// once it is another user's (identify, register, drop), or refuses as
// it ended (identify handed its connection to another session, say), is
// not told there: it is kept as a note for that user's next connection,
// unless they were told (keepHistoryNote).
func (s *session) historyFailure() func(error) {
	if s.histFailed == nil {
		// Made once per user the session serves, not per entry (the
		// history's garbage is the IMs' latency); with the log and
		// memory of now, which the writer may use.
		log, met, mem := s.log, s.b.met, s.mem
		var failedTold atomic.Bool // told, or kept as a note
		untold := func() { keepHistoryNote(mem, &failedTold, historyFailedText) }
		s.histFailed = func(err error) {
			if errors.Is(err, ErrHistoryFull) {
				// Refused at once, on the session goroutine, to the
				// callback record took from the session's user of now.
				s.leftOut(log)
				return
			}
			met.historyDropped()
			log.WithError(err).Error("store: an IM was not added to the history")
			s.postAnswer(func() {
				if s.mem != mem {
					untold()
					return
				}
				failedTold.Store(true)
				s.historyFailedOnce()
			}, untold)
		}
	}
	return s.histFailed
}

// What the user is told of entries left out of their history: the
// store was behind (historyFullText), or failed (historyFailedText).
const (
	historyFullText   = "The gateway is too busy to keep your history just now: some IMs are missing from it (they were delivered as usual)."
	historyFailedText = "Your history could not be saved (the gateway's database failed); IMs are still delivered, but CHATHISTORY and the history command may miss some."
)

// keepHistoryNote keeps text, the notice that the history left entries
// out (historyFailedText, historyFullText), as a note for the next
// connection of the user whose memory mem is, unless they were told
// already (told) or keep nothing (their memory is forgotten: a dropped
// registration; the failure is logged). The caller may be the history's
// writer, every user's: it does not wait for the note's write
// (laterReport), only, at most, for the memory's lock (isForgotten), and
// keeps one note at most.
func keepHistoryNote(mem *userMemory, told *atomic.Bool, text string) {
	if mem.isForgotten() || told.Swap(true) {
		return
	}
	mem.laterReport(func() { mem.addNote(text) })
}

// leftOut counts an entry left out of the history as its writer was
// full, and tells the user once (historyFullOnce). It is counted with
// the others of the loop's turn (countLeftOut): at full load every IM
// may be, and the counter is every session's.
func (s *session) leftOut(log *logrus.Entry) {
	s.histLeftOut++
	s.historyFullOnce(log)
}

// countLeftOut adds the entries left out of the history since it last
// did (leftOut) to the metric; the loop does at the end of each turn,
// and as it ends.
func (s *session) countLeftOut() {
	if s.histLeftOut > 0 {
		s.b.met.historyDroppedN(s.histLeftOut)
		s.histLeftOut = 0
	}
}

// historyFullOnce logs, and tells the user, once while the session is
// theirs, that the history left entries out because the store was
// behind.
func (s *session) historyFullOnce(log *logrus.Entry) {
	if s.historyFull {
		return
	}
	s.historyFull = true
	log.Warn("history: the store is behind; entries are left out of this user's history (IMs are delivered as usual)")
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Text: historyFullText})
}

// historyFailedOnce tells the user, once while the session is theirs,
// that history failed.
func (s *session) historyFailedOnce() {
	if s.historyFailed {
		return
	}
	s.historyFailed = true
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Text: historyFailedText})
}

// recordIn keeps an IM or zap from a buddy as it arrives, in the history
// of the user whose account it came for (recordOwned, for an account the
// session let go before it became another user's).
func (s *session) recordIn(a *account, uid msim.UID, se seqEvent) {
	if a.released() && a.owner.mem != s.mem {
		s.recordOwned(a.owner, a, uid, se)
		return
	}
	if !s.historyOn() && !s.dropping { // nothing is kept: render nothing
		return
	}
	if s.historyOn() && s.b.hist.behind() && historyEvent(se.ev) {
		// The writer's queue is full (a gateway busier than its store):
		// the entry would be refused, so it is left out unbuilt, as
		// record leaves it out.
		s.leftOut(s.log)
		return
	}
	if e, ok := entryIn(a, uid, se); ok {
		s.record(e)
	}
}

// historyEvent reports whether ev is an IM or a zap: what the history
// keeps (entryIn) and what a user's memory holds.
func historyEvent(ev msim.Event) bool {
	switch ev.(type) {
	case msim.IMEvent, msim.ZapEvent:
		return true
	}
	return false
}

// recordOwned keeps an IM or zap from a buddy in o's history, if it is
// kept: o's account came loose from the session (the session ended, or
// is another user's now), and o's drop is not under way (o may have
// been taken before it began: a login's). An entry left out is logged
// and kept as a note for o's next connection, once per o
// (keepHistoryNote): o is not the session's user, who must not be told.
// It reads nothing of the session's state.
func (s *session) recordOwned(o owner, a *account, uid msim.UID, se seqEvent) {
	if !o.hist || o.mem.isForgotten() { // not kept, or the user is gone (dropped)
		return
	}
	e, ok := entryIn(a, uid, se)
	if !ok {
		return
	}
	e.Text = storable(e.Text)
	met, log, mem, told := s.b.met, o.log, o.mem, o.histTold
	appended := mem.unlessDropping(func() {
		s.b.hist.append(o.user.Name, e, func(err error) {
			met.historyDropped()
			text := historyFailedText
			if errors.Is(err, ErrHistoryFull) {
				text = historyFullText
			}
			log.WithError(err).Error("store: an IM was not added to the history")
			keepHistoryNote(mem, told, text)
		})
	})
	if !appended {
		// Appended now, it could outlive the user's delete, or land in
		// the history of whoever takes the name next. Counted by the
		// memory (unlessDropping): a failed drop counts and tells it.
		log.WithField("account", a.cfg.Email).Info("history: an IM that came while the user's drop was under way is left out of their history")
	}
}

// entryIn is the history entry of an IM or zap from a buddy; false for
// another event.
func entryIn(a *account, uid msim.UID, se seqEvent) (store.HistoryEntry, bool) {
	e := store.HistoryEntry{MsgID: se.msgid, Account: a.cfg.Email, Buddy: uid}
	switch ev := se.ev.(type) {
	case msim.IMEvent:
		e.Time = ev.Time // when it arrived
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		text, act := se.imText(ev)
		e.Kind, e.Text = kindIM, text
		if act {
			e.Kind = kindAction
		}
	case msim.ZapEvent:
		e.Time, e.Kind, e.Text = ev.Time, kindZap, ev.Zap.Name() // when it arrived
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
	default:
		return e, false
	}
	return e, true
}

// recordOut keeps what the user sent to q.uid of account email (a /me is
// an action, however it was typed: /me in a query or "nick: /me" in a
// control channel both reach MSIM as one), with q's msgid and time (new
// ones if none), and returns its msgid.
func (s *session) recordOut(email string, q queuedIM) (msgid string) {
	e := store.HistoryEntry{MsgID: q.msgid, Time: q.at, Account: email, Buddy: q.uid, Outgoing: true, Kind: kindIM, Text: q.text}
	if act, ok := strings.CutPrefix(q.text, "/me "); ok {
		e.Kind, e.Text = kindAction, act
	}
	if e.MsgID == "" {
		e.MsgID = ircd.NewMsgID()
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.record(e)
	for _, at := range s.cl.ats {
		if rd := at.replaying; rd != nil { // shown to it now, or never (sent from the queue)
			put(&rd.recorded, e.MsgID, true)
		}
	}
	return e.MsgID
}

// historyLine renders an entry of the conversation with nick for IRC.
func historyLine(e store.HistoryEntry, nick string) ircd.Delivery {
	d := ircd.Delivery{Command: "PRIVMSG", Time: e.Time, MsgID: e.MsgID, Text: e.Text}
	switch e.Kind {
	case kindAction:
		d.Text = action(e.Text)
	case kindZap:
		if e.Outgoing {
			d.Text = action("zaps " + nick + ": " + e.Text + "!")
		} else {
			d.Text = action(zapText(e.Text))
		}
	}
	if e.Outgoing {
		d.Self, d.Target = true, nick
	} else {
		d.From = nick
	}
	return d
}

// nickFor is the current nick of a conversation's buddy, "" if the bridge
// no longer knows it.
func (s *session) nickFor(email string, uid msim.UID) string {
	if a := s.accountOf(email); a != nil {
		if bd := a.buddy(uid); bd != nil {
			return bd.nick
		}
	}
	return ""
}

// goWork runs f on a tracked goroutine, bounded by the store's wait; f is
// given only what it is handed, never the session.
func (s *session) goWork(f func(ctx context.Context)) { s.goIn(s.ctx, f) }

// goWrite runs f on a tracked goroutine, as goWork does, for a store write
// the user asked for: bounded by the store's wait, but not cut short by
// the session's end (shutdown waits for it).
func (s *session) goWrite(f func(ctx context.Context)) { s.goIn(context.Background(), f) }

// goIn runs f on a goroutine the session's end waits for, with a context
// of parent bounded by the store's wait.
func (s *session) goIn(parent context.Context, f func(ctx context.Context)) {
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		ctx, cancel := context.WithTimeout(parent, storeWait)
		defer cancel()
		f(ctx)
	}()
}

// accountOf returns the session's account of that e-mail, or nil.
func (s *session) accountOf(email string) *account {
	for _, a := range s.accounts {
		if strings.EqualFold(a.cfg.Email, email) {
			return a
		}
	}
	return nil
}
