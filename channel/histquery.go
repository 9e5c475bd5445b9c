// Reading the history: a conversation found by its nick, CHATHISTORY (its
// subcommands and TARGETS) and the history command.

package channel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// conversation is what a history request needs of a buddy, copied for a
// worker goroutine.
type conversation struct {
	email string
	uid   msim.UID
	nick  string
}

// findConversation resolves an IRC target to a buddy's conversation: a
// buddy the session knows, or one whose nick the user's memory keeps.
func (s *session) findConversation(target string) (conversation, error) {
	if !s.historyOn() {
		return conversation{}, fmt.Errorf("%s: %w", target, ircd.ErrInvalidTarget)
	}
	if bd := s.buddyByNick(target); bd != nil {
		return conversation{bd.a.cfg.Email, bd.UID(), bd.nick}, nil
	}
	if k, ok := s.mem.nickOwner(nickKey(target)); ok {
		return conversation{k.email, k.uid, target}, nil
	}
	return conversation{}, fmt.Errorf("%s: %w", target, ircd.ErrInvalidTarget)
}

// bridgeOwn reports whether target is a control channel or the service
// nick: the bridge's own, no MSIM user's, with no conversation to look up.
func (s *session) bridgeOwn(target string) bool {
	return isChannelName(target) || nickKey(target) == nickKey(s.b.cfg.ServiceNick)
}

// lookupConversation is findConversation, and for a nick it does not know
// (someone who wrote before a restart, say), the MSIM user of that name
// on the first logged-in account that has history with them (a channel's
// name or the service nick is no MSIM user's, and is not looked up); done
// runs on a worker goroutine.
func (s *session) lookupConversation(target string, done func(context.Context, conversation, error)) {
	c, err := s.findConversation(target)
	if err == nil || !s.historyOn() || s.bridgeOwn(target) {
		s.goWork(func(ctx context.Context) { done(ctx, c, err) })
		return
	}
	type link struct {
		email string
		cl    MSIMClient
	}
	var links []link
	for _, a := range s.accounts {
		if a.client != nil {
			links = append(links, link{a.cfg.Email, a.client})
		}
	}
	st, user := s.b.cfg.Store, s.user.Name
	s.goWork(func(ctx context.Context) {
		for _, l := range links {
			p, lerr := l.cl.LookupUser(ctx, target)
			if lerr != nil || p.UID == 0 {
				continue
			}
			c := conversation{l.email, p.UID, target}
			// Rows it cannot read are history with them too: the query
			// that follows gives the others, and tells the user.
			if es, herr := st.History(ctx, user, store.HistoryQuery{Account: l.email, Buddy: p.UID, Limit: 1}); herr == nil && len(es) > 0 || errors.Is(herr, store.ErrUnreadable) {
				done(ctx, c, nil)
				return
			}
		}
		done(ctx, conversation{}, err)
	})
}

// History implements ircd.HistoryHandler (CHATHISTORY).
func (at *attachment) History(q ircd.HistoryQuery, answer func([]ircd.HistoryMessage, error)) {
	at.do(func(s *session) { s.history(q, answer) }, func() { answer(nil, errSessionEnded) })
}

func (s *session) history(q ircd.HistoryQuery, answer func([]ircd.HistoryMessage, error)) {
	s.b.met.historyQuery("chathistory")
	if s.historyOn() && s.bridgeOwn(q.Target) {
		// A control channel (the only channels the client is in) and the
		// service nick keep no history: they have none to give, as any
		// target without.
		answer(nil, nil)
		return
	}
	st, user, hist, mem := s.b.cfg.Store, s.user.Name, s.b.hist, s.mem
	s.lookupConversation(q.Target, func(ctx context.Context, c conversation, err error) {
		if err != nil {
			answer(nil, err)
			return
		}
		hist.sync(ctx, user) // what was recorded so far is there to read
		entries, err := historyQuery(ctx, st, user, c, q)
		if mem.unreadHistory(err) {
			err = nil
			defer s.post(call(s.tellNotes)) // after the answer
		}
		if err != nil {
			answer(nil, err)
			return
		}
		msgs := make([]ircd.HistoryMessage, len(entries))
		for i, e := range entries {
			msgs[i] = ircd.HistoryMessage{Delivery: historyLine(e, c.nick)}
		}
		answer(msgs, nil)
	})
}

// refPlace is where a CHATHISTORY reference stands in the history's
// (Time, ID) order: a timestamp's time, or a msgid's entry's time and ID
// (0 for a timestamp), so that the entries of the same time as a msgid's
// are before or after it rather than left out.
func refPlace(ctx context.Context, st store.Store, user string, r ircd.HistoryRef) (time.Time, int64, error) {
	if r.MsgID == "" {
		return r.Time, 0, nil
	}
	e, err := st.HistoryByMsgID(ctx, user, ircd.MsgIDBase(r.MsgID))
	if errors.Is(err, store.ErrNotFound) {
		// Not in the history (left out while the store was behind, or
		// pruned): an id of ours holds its time, which places it, so a
		// client paging by it goes on rather than being refused.
		if t, ok := ircd.MsgIDTime(ircd.MsgIDBase(r.MsgID)); ok {
			return t, 0, nil
		}
	}
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("message %s: %w", r.MsgID, err)
	}
	return e.Time, e.ID, nil
}

// historyQuery runs a CHATHISTORY request on the store; entries come
// oldest first. An error of rows it could not read (store.ErrUnreadable) comes
// with the entries that read.
func historyQuery(ctx context.Context, st store.Store, user string, c conversation, q ircd.HistoryQuery) ([]store.HistoryEntry, error) {
	from, fromID, err := refPlace(ctx, st, user, q.From)
	if err != nil {
		return nil, err
	}
	base := store.HistoryQuery{Account: c.email, Buddy: c.uid, Limit: q.Limit}
	switch q.Subcommand {
	case "LATEST":
		base.After, base.AfterID, base.Latest = from, fromID, true
	case "BEFORE":
		base.Before, base.BeforeID, base.Latest = from, fromID, true
	case "AFTER":
		base.After, base.AfterID = from, fromID
	case "AROUND":
		// Half the limit before the reference, rounded down, and the rest
		// from it on: a limit of 1 gives the referenced message itself.
		var older []store.HistoryEntry
		if half := q.Limit / 2; half > 0 {
			before := base
			before.Before, before.BeforeID, before.Latest, before.Limit = from, fromID, true, half
			if older, err = st.History(ctx, user, before); err != nil && !errors.Is(err, store.ErrUnreadable) {
				return nil, err
			}
		}
		unread := err
		after := base
		after.Limit = q.Limit - len(older)
		if fromID != 0 { // from the message itself
			after.After, after.AfterID = from, cmp.Or(fromID-1, -1)
		} else { // from the time itself
			after.After = from.Add(-time.Nanosecond)
		}
		if after.Limit <= 0 {
			return older, unread
		}
		newer, err := st.History(ctx, user, after)
		return append(older, newer...), cmp.Or(err, unread)
	case "BETWEEN":
		to, toID, err := refPlace(ctx, st, user, q.To)
		if err != nil {
			return nil, err
		}
		if from.Before(to) || from.Equal(to) && fromID < toID {
			base.After, base.AfterID, base.Before, base.BeforeID = from, fromID, to, toID
		} else {
			base.After, base.AfterID, base.Before, base.BeforeID, base.Latest = to, toID, from, fromID, true
		}
	default:
		return nil, fmt.Errorf("unknown subcommand %s", q.Subcommand)
	}
	return st.History(ctx, user, base)
}

// HistoryTargets implements ircd.HistoryHandler (CHATHISTORY TARGETS).
func (at *attachment) HistoryTargets(q ircd.TargetsQuery, answer func([]ircd.HistoryTarget, error)) {
	at.do(func(s *session) { s.historyTargets(q, answer) }, func() { answer(nil, errSessionEnded) })
}

// historyTargets lists the conversations TARGETS asks for, each by its
// buddy's nick. Someone the session does not know (not on the list, and
// written to before a restart) is named as when they write: their
// profile is read and they become a buddy, whose nick CHATHISTORY then
// reads. Only those of an account that is not logged in cannot be named,
// and are left out before the limit counts. The store is read on a worker
// goroutine, so that the session goes on with its other work meanwhile,
// once the history writer has appended what was recorded before.
func (s *session) historyTargets(q ircd.TargetsQuery, answer func([]ircd.HistoryTarget, error)) {
	if !s.historyOn() {
		answer(nil, nil)
		return
	}
	s.b.met.historyQuery("targets")
	// Counted from From, as BETWEEN is: forwards in time, the oldest.
	after, before, oldest := q.From, q.To, true
	if before.Before(after) {
		after, before, oldest = before, after, false
	}
	// The store is read on a worker; what it found is named here.
	st, user, hist := s.b.cfg.Store, s.user.Name, s.b.hist
	s.goWork(func(ctx context.Context) {
		hist.sync(ctx, user) // what was recorded so far is there to read
		ts, err := st.HistoryTargets(ctx, user, after, before, store.MaxHistoryLimit, oldest)
		s.postAnswer(func() { s.targetsRead(q, oldest, ts, err, answer) }, func() { answer(nil, errSessionEnded) })
	})
}

// targetsRead answers TARGETS with the conversations ts the store found
// (historyTargets), by their nicks.
func (s *session) targetsRead(q ircd.TargetsQuery, oldest bool, ts []store.HistoryTarget, err error, answer func([]ircd.HistoryTarget, error)) {
	if err != nil {
		answer(nil, err)
		return
	}
	if oldest {
		slices.Reverse(ts) // the earliest first: those the limit keeps
	}
	type stranger struct {
		a   *account
		uid msim.UID
	}
	var kept []store.HistoryTarget
	var strangers []stranger
	for _, t := range ts {
		if len(kept) == q.Limit {
			break
		}
		if s.nickFor(t.Account, t.Buddy) == "" {
			a := s.accountOf(t.Account)
			if a == nil || a.client == nil {
				continue // cannot be named now
			}
			strangers = append(strangers, stranger{a, t.Buddy})
		}
		kept = append(kept, t)
	}
	reply := func() {
		var out []ircd.HistoryTarget
		for _, t := range kept {
			if nick := s.nickFor(t.Account, t.Buddy); nick != "" {
				out = append(out, ircd.HistoryTarget{Name: nick, Latest: t.Latest})
			}
		}
		answer(out, nil)
	}
	if len(strangers) == 0 {
		reply()
		return
	}
	profiles := make([]msim.Profile, len(strangers))
	clients := make([]MSIMClient, len(strangers))
	for i, st := range strangers {
		clients[i] = st.a.client
	}
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
		defer cancel()
		for i, st := range strangers {
			if p, err := clients[i].Profile(ctx, st.uid); err == nil {
				profiles[i] = p
			} // else named by uid, as when they write
		}
		// If the session ends before this runs, the client is told so
		// (the answer carries its refusal), as when the read ends.
		s.postAnswer(func() {
			for i, st := range strangers {
				if st.a.buddy(st.uid) == nil {
					// As their own lookup would: what waits for them
					// (lookUpStranger) is given out first, before
					// anything they write once they are named.
					s.strangerKnown(st.a, st.uid, profiles[i])
				}
			}
			reply()
		}, func() { answer(nil, errSessionEnded) })
	}()
}

// historyShowMax bounds what one history command shows.
const historyShowMax = 200

// cmdHistory shows the last messages with a buddy: history <nick> [n].
func (s *session) cmdHistory(r replyCtx, args []string) {
	if !s.historyOn() {
		s.reply(r, "History is kept only for registered users, on a gateway with a store and history on.")
		return
	}
	n := 10
	if len(args) > 1 {
		var err error
		if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
			s.reply(r, "%s is not a number of messages (1 or more). Usage: %s", args[1], commands["history"].usage)
			return
		}
		n = min(n, historyShowMax)
	}
	st, user, self, hist, met, mem := s.b.cfg.Store, s.user.Name, s.irc.Nick(), s.b.hist, s.b.met, s.mem
	s.lookupConversation(args[0], func(ctx context.Context, c conversation, err error) {
		if err != nil {
			s.post(call(func() { s.reply(r, "No messages with %s are kept.", args[0]) }))
			return
		}
		hist.sync(ctx, user)
		met.historyQuery("command")
		es, err := st.History(ctx, user, store.HistoryQuery{Account: c.email, Buddy: c.uid, Limit: n, Latest: true})
		s.post(call(func() {
			if mem.unreadHistory(err) {
				err = nil
				defer s.tellNotes() // after the reply
			}
			if err != nil {
				s.log.WithError(err).Error("store: history could not be read")
				s.reply(r, "%v", errStore)
				return
			}
			if len(es) == 0 {
				s.reply(r, "No messages with %s yet.", c.nick)
				return
			}
			lines := make([]string, 0, len(es)+1)
			lines = append(lines, fmt.Sprintf("The last %s with %s:", plural(len(es), "message", "messages"), c.nick))
			for _, e := range es {
				who := c.nick
				if e.Outgoing {
					who = self
				}
				text := e.Text
				switch e.Kind {
				case kindAction:
					text = "* " + who + " " + text
				case kindZap:
					text = "* " + who + " zaps: " + text
				default:
					text = "<" + who + "> " + text
				}
				lines = append(lines, "["+e.Time.UTC().Format("2006-01-02 15:04:05")+" UTC] "+text)
			}
			s.reply(r, "%s", strings.Join(lines, "\n"))
		}))
	})
}
