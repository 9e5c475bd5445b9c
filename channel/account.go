// An MSIM account's state, and the dispatch of its client's events.

package channel

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/maproom"
	"github.com/msimircd/msimircd/internal/sortidx"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// account is one MSIM account's state, owned by the session goroutine.
type account struct {
	cfg     Account
	channel string
	joined  bool     // the IRC client has been joined to the channel
	backlog []string // status lines said before the client joined

	state  linkState
	gen    int // bumped on every connect/disconnect; stale events are ignored
	client MSIMClient
	self   msim.Profile
	timer  func() bool   // stops the reconnect timer
	alerts func() bool   // stops the next alert poll
	delay  time.Duration // the back-off's last step; 0: start over
	// guessRefused: a login was refused for the user's wrong MSIM
	// passwords and the user told; retries refused after it say nothing.
	guessRefused bool
	upAt         time.Time // when the link last came up (see linkStable)

	buddies sortidx.Index[*buddy, msim.UID] // by uid
	room    maproom.Room[buddy]             // made by reserveBuddies for the next buddies
	strs    strPack                         // the masks (ident@host) of the buddies' virtual users
	pending map[msim.UID][]seqEvent         // events from strangers awaiting their profile; nil once let go (released)
	typing  []msim.UID                      // buddies the IRC client was last told are typing (few at a time)
	queue   []queuedIM

	status     msim.Status // what the user asked for; restored on reconnect
	statusText string

	// owner: whose the account was when the session let it go (release).
	owner owner
}

// owner is the user an account belongs to, with their memory: what still
// comes for an account the session let go (a login's result) is theirs,
// though the session may be another user's since (identify, register).
type owner struct {
	user User
	mem  *userMemory
	hist bool // their history is kept (historyOn)
	log  *logrus.Entry
	// histTold: they were told, by a note, that an entry was left out of
	// their history (recordOwned).
	histTold *atomic.Bool
}

// ownerNow is the session's user as the owner of its accounts.
func (s *session) ownerNow() owner {
	return owner{user: s.user, mem: s.mem, hist: s.historyOn(), log: s.log, histTold: new(atomic.Bool)}
}

// released reports whether the session has let a go (release): taken out
// of it, or the session ended. What still comes for it (a login's result)
// is kept for it, as release keeps what waited.
func (a *account) released() bool { return a.pending == nil }

func (a *account) stopTimer() {
	if a.timer != nil {
		a.timer()
		a.timer = nil
	}
	if a.alerts != nil {
		a.alerts()
		a.alerts = nil
	}
}

// plural is "1 buddy", "2 buddies".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func nameOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// onStaleMSIM handles an event of a link that was closed on purpose: an IM
// still counts, and so do one the client could not read, ours written
// just before the link was lost (which may not have arrived) and ours
// that never left.
func (s *session) onStaleMSIM(a *account, ev msim.Event) {
	switch ev := ev.(type) {
	case msim.IMEvent, msim.ZapEvent:
		s.fromUser(a, msim.SenderOf(ev), ev)
	case msim.ErrorEvent:
		if ev.Unreadable {
			s.tellOf(a, unreadableText(ev))
		}
	case msim.DisconnectedEvent:
		s.reportUnconfirmed(a, ev, true) // sent before those below were taken
		for _, im := range ev.Unsent {
			s.b.met.imDropped()
			s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.nickOf(a, im.To),
				Text: "Message NOT sent (the MSIM link was closed first): " + im.Text})
		}
		s.reportDropped(a, ev.DroppedFrom, ev.Reason == msim.DisconnectOverflow, ev.DroppedIMs)
	}
}

func (s *session) onMSIM(a *account, gen int, event msim.Event) {
	if gen != a.gen {
		s.onStaleMSIM(a, event)
		return
	}
	switch ev := event.(type) {
	case msim.IMEvent:
		s.fromUser(a, ev.From, event) // the event as it came: no copy of the IM
	case msim.PresenceEvent:
		if bd := a.buddy(ev.UID); bd != nil {
			// The client's table holds the presence (this one, or a
			// newer one whose event follows).
			s.b.met.presenceUpdate(toIRC)
			s.applyPresence(bd)
		}
	case msim.TypingEvent:
		// Clients repeat "stopped typing" (libpurple sends it twice): only
		// a change reaches IRC.
		if bd := a.buddy(ev.From); bd != nil && s.setting("typing") == "true" && bd.typing() != ev.Typing {
			bd.setTyping(ev.Typing)
			if s.irc.Deliver(ircd.Delivery{Command: "TAGMSG", From: bd.nick, Tags: typingTags(ev.Typing)}) && s.irc.HasCap("message-tags") {
				s.b.met.typed(toIRC)
			}
		}
	case msim.ZapEvent:
		s.fromUser(a, ev.From, event)
	case msim.ContactEvent:
		switch ev.Change {
		case msim.ContactRemoved:
			if bd := a.buddy(ev.Contact.UID); bd != nil {
				bd.contact = false
				s.applyPresence(bd)
			}
		default:
			s.upsertContact(a, ev.Contact)
		}
	case msim.AlertEvent:
		for _, al := range ev.Alerts {
			s.notice(a, alertText(al))
		}
	case msim.ErrorEvent:
		if ev.Unreadable { // the client's own (an IM it could not read)
			s.status(a, "%s", unreadableText(ev))
			break
		}
		s.status(a, "MSIM server error %d: %s", ev.Code, fromMSIMLine(ev.Message))
	case msim.DisconnectedEvent:
		s.onLinkLost(a, ev)
	}
}

func (s *session) setStatus(a *account, st msim.Status, text string, r replyCtx) {
	a.status, a.statusText = st, text
	if a.client == nil {
		if r.a != nil {
			s.reply(r, "Status saved; it is sent when %s connects.", a.cfg.Email)
		}
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
	defer cancel()
	if err := a.client.SetStatus(ctx, st, text); err != nil {
		s.say(a, "Setting the status failed: %v", err)
		return
	}
	s.b.met.presenceUpdate(toMSIM)
	if r.a != nil {
		s.reply(r, "Status of %s is now %s%s.", a.cfg.Email, st, suffix(": ", text))
	}
}

func suffix(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}
