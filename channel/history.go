// History: every IM in and out, /me and zaps included, kept in the store
// per user, MSIM account and buddy with its msgid and time. Clients read it
// with CHATHISTORY and keep read markers with MARKREAD (ircd's
// HistoryHandler, implemented by the attachment); a client without
// chathistory is given, when it attaches, what it missed since it last
// left (by its name: soju's rule, per-client positions); the history
// command shows a buddy's recent messages in any client.

package channel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
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
// once per session, and delivery goes on.
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
	e.Text = storable(e.Text)
	if s.histFailed == nil {
		// Made once, not per entry (the history's garbage is the IMs'
		// latency); with the log of now, which the writer may use.
		log, met := s.log, s.b.met
		s.histFailed = func(err error) {
			met.historyDropped()
			if errors.Is(err, ErrHistoryFull) {
				s.historyFullOnce(log) // on the session goroutine: no post
				return
			}
			log.WithError(err).Error("store: an IM was not added to the history")
			s.post(call(s.historyFailedOnce))
		}
	}
	s.b.hist.append(s.user.Name, e, s.histFailed)
}

// historyFullOnce logs, and tells the user, once per session, that the
// history left entries out because the store was behind.
func (s *session) historyFullOnce(log *logrus.Entry) {
	if s.historyFull {
		return
	}
	s.historyFull = true
	log.Warn("history: the store is behind; entries are left out of this user's history (IMs are delivered as usual)")
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick,
		Text: "The gateway is too busy to keep your history just now: some IMs are missing from it (they were delivered as usual)."})
}

// historyFailedOnce tells the user, once per session, that history failed.
func (s *session) historyFailedOnce() {
	if s.historyFailed {
		return
	}
	s.historyFailed = true
	s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick,
		Text: "Your history could not be saved (the gateway's database failed); IMs are still delivered, but CHATHISTORY and the history command may miss some."})
}

// recordIn keeps an IM or zap from a buddy as it arrives.
func (s *session) recordIn(a *account, uid msim.UID, se seqEvent) {
	e := store.HistoryEntry{MsgID: se.msgid, Account: a.cfg.Email, Buddy: uid}
	switch ev := se.ev.(type) {
	case msim.IMEvent:
		e.Time = ev.Time // when it arrived
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		text, act := imText(ev)
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
		return
	}
	s.record(e)
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
			if es, herr := st.History(ctx, user, store.HistoryQuery{Account: l.email, Buddy: p.UID, Limit: 1}); herr == nil && len(es) > 0 {
				done(ctx, c, nil)
				return
			}
		}
		done(ctx, conversation{}, err)
	})
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
	st, user, hist := s.b.cfg.Store, s.user.Name, s.b.hist
	s.lookupConversation(q.Target, func(ctx context.Context, c conversation, err error) {
		if err != nil {
			answer(nil, err)
			return
		}
		hist.sync(ctx, user) // what was recorded so far is there to read
		entries, err := historyQuery(ctx, st, user, c, q)
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

// goWork runs f on a tracked goroutine, bounded by the store's wait; f is
// given only what it is handed, never the session.
func (s *session) goWork(f func(ctx context.Context)) {
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		ctx, cancel := context.WithTimeout(s.ctx, storeWait)
		defer cancel()
		f(ctx)
	}()
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
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("message %s: %w", r.MsgID, err)
	}
	return e.Time, e.ID, nil
}

// historyQuery runs a CHATHISTORY request on the store; entries come
// oldest first.
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
		before := base
		before.Before, before.BeforeID, before.Latest, before.Limit = from, fromID, true, max(1, q.Limit/2)
		older, err := st.History(ctx, user, before)
		if err != nil {
			return nil, err
		}
		after := base
		after.Limit = q.Limit - len(older)
		if fromID != 0 { // from the message itself
			after.After, after.AfterID = from, cmp.Or(fromID-1, -1)
		} else { // from the time itself
			after.After = from.Add(-time.Nanosecond)
		}
		if after.Limit <= 0 {
			return older, nil
		}
		newer, err := st.History(ctx, user, after)
		return append(older, newer...), err
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

// replay gives a client without chathistory what it missed since it last
// left, by its name: the history entries after its position, except the
// IMs held for the user (they come as such), the latest ReplayPerBuddy of
// each conversation (among the latest replayPages pages read), each
// conversation in a chathistory batch with the original times. A client
// never seen before gets only the held IMs. The conversations of an
// account still logging in wait for its login (their buddies are not
// known before); until then the client's position stays before them.
//
// The store is read on a worker goroutine (replayRead), so that the
// session goes on serving its other clients and MSIM meanwhile; the IMs
// for the clients wait in the outbox until the replay is given (pumpOut),
// so that it comes before them, as it is older.
func (s *session) replay(at *attachment) {
	at.replaying = nil // one read by another session (a connection handed over) is not this one's
	saw := s.sawQueued[at.name]
	delete(s.sawQueued, at.name)
	if !s.historyOn() || at.c.HasCap("draft/chathistory") {
		return
	}
	rd := &replayRead{st: s.b.cfg.Store, hist: s.b.hist, user: s.user.Name, client: at.name,
		per: s.b.cfg.ReplayPerBuddy, skip: s.notReplayed()}
	for _, msgid := range saw { // typed while the link was down, seen then
		rd.skip[msgid] = true
	}
	if ps := s.saving[at.name]; ps != nil { // its position is being saved: read after
		rd.after = ps.done
	}
	at.replaying = rd
	s.b.met.historyQuery("replay")
	s.goWork(func(ctx context.Context) {
		rd.read(ctx)
		s.post(call(func() { s.replayReady(at, rd) }))
	})
}

// notReplayed is the msgids a replay leaves out: the IMs held for the
// user come as such, and those on their way come live.
func (s *session) notReplayed() map[string]bool {
	skip := map[string]bool{}
	for _, a := range s.accounts {
		for _, se := range s.mem.heldFor(a.cfg.Email) {
			if se.msgid != "" {
				skip[se.msgid] = true
			}
		}
	}
	s.eachOnItsWay(func(se *seqEvent) { skip[se.msgid] = true })
	return skip
}

// replayRead is a replay's read of the store, on a worker goroutine: what
// it is given, and then what it found.
type replayRead struct {
	// Given, and only read by the worker.
	st     store.Store
	hist   *historyWriter
	user   string
	client string
	per    int
	skip   map[string]bool
	// after is closed once the client's position, saved as it last left,
	// is (nil: no save was under way).
	after <-chan struct{}
	// Found, read on the session goroutine once the worker posts.
	found bool  // the client has a position
	pos   int64 // the client's position
	convs []*replayConv
	more  bool
	err   error // reading the position failed (then !found) or the history did
	// recorded: the msgids of what the user sent while the read was under
	// way (recordOut), which the read may find: the client was shown it
	// live, or, sent from the queue, it is past its position as it
	// leaves. Owned by the session goroutine.
	recorded map[string]bool
}

// read reads the client's position and what it missed since.
func (rd *replayRead) read(ctx context.Context) {
	if rd.after != nil {
		select {
		case <-rd.after:
		case <-ctx.Done():
			rd.err, rd.found = ctx.Err(), false
			return
		}
	}
	rd.hist.sync(ctx, rd.user) // what was recorded so far is there to read
	rd.pos, rd.found, rd.err = rd.st.ClientPosition(ctx, rd.user, rd.client)
	if rd.err != nil {
		rd.found = false
		return
	}
	if rd.found {
		rd.convs, rd.more, rd.err = missedConversations(ctx, rd.st, rd.user, rd.pos, rd.per, rd.skip)
	}
}

// replayPending reports whether an attached client waits for its replay's
// read: the IMs for the clients wait until it is given.
func (s *session) replayPending() bool {
	for _, at := range s.cl.ats {
		if at.replaying != nil {
			return true
		}
	}
	return false
}

// replayReady gives at what rd read, if at still waits for it, and then
// the IMs that waited meanwhile. A client that left meanwhile was given
// nothing, and its position was kept where it was (savePosition).
func (s *session) replayReady(at *attachment, rd *replayRead) {
	if at.replaying != rd {
		return
	}
	at.replaying = nil
	defer s.pumpOut()
	if !s.cl.attached(at) {
		return
	}
	switch {
	case !rd.found:
		if rd.err != nil {
			s.log.WithError(rd.err).Error("store: a client's position could not be read; nothing is replayed to it")
		}
		return
	case rd.err != nil:
		s.log.WithError(rd.err).Error("store: the history to replay could not be read; the client's position stays where it was")
		pos := rd.pos
		at.keepPos = &pos
		return
	}
	// What was held or came meanwhile, and was read too, comes as such;
	// what the user sent meanwhile is not replayed.
	skip := s.notReplayed()
	convs := slices.DeleteFunc(rd.convs, func(c *replayConv) bool {
		c.es = slices.DeleteFunc(c.es, func(e store.HistoryEntry) bool { return skip[e.MsgID] || rd.recorded[e.MsgID] })
		return len(c.es) == 0
	})
	if rd.more {
		at.c.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Text: fmt.Sprintf(
			"More was missed than one replay reads (%d messages); the latest of each conversation follow, and the history command shows the rest.", replayPages*store.MaxHistoryLimit)})
	}
	var now []*replayConv
	for _, c := range convs {
		if a := s.accountOf(c.email); a != nil && s.nickFor(c.email, c.uid) == "" &&
			(a.state == linkConnecting || a.state == linkWaiting) {
			at.replayLater = append(at.replayLater, c) // its buddies come with its login
			continue
		}
		now = append(now, c)
	}
	s.deliverReplay(at, now)
}

// replayConv is a conversation's part of a replay: its latest entries
// missed, and how many earlier ones are left out.
type replayConv struct {
	email string // lower case
	uid   msim.UID
	es    []store.HistoryEntry
	left  int
	// fetching: waiting for the profile of someone not on the list
	// (replayStranger), not for a login.
	fetching bool
}

// missedConversations reads user's history after pos from the newest
// back, a page at a time, at most replayPages pages, and keeps each
// conversation's latest per entries (not those of skip's msgids),
// counting the earlier ones, in the order the conversations' kept entries
// begin. more: there is more before what was read.
func missedConversations(ctx context.Context, st store.Store, user string, pos int64, per int, skip map[string]bool) (convs []*replayConv, more bool, err error) {
	type key struct {
		email string
		uid   msim.UID
	}
	byConv := map[key]*replayConv{}
	before := int64(0)
	for p := 0; ; p++ {
		page, err := st.HistoryLatestSince(ctx, user, pos, before, store.MaxHistoryLimit)
		if err != nil {
			return nil, false, err
		}
		for i := len(page) - 1; i >= 0; i-- { // newest first
			e := page[i]
			if skip[e.MsgID] {
				continue
			}
			k := key{strings.ToLower(e.Account), e.Buddy}
			c := byConv[k]
			if c == nil {
				c = &replayConv{email: k.email, uid: k.uid}
				byConv[k] = c
				convs = append(convs, c)
			}
			if len(c.es) < per {
				c.es = append(c.es, e)
			} else {
				c.left++
			}
		}
		if len(page) < store.MaxHistoryLimit {
			break // read to the position
		}
		before = page[0].ID
		if p == replayPages-1 { // the last page read: is there more?
			rest, err := st.HistoryLatestSince(ctx, user, pos, before, 1)
			if err != nil {
				return nil, false, err
			}
			more = len(rest) > 0
			break
		}
	}
	for _, c := range convs {
		slices.Reverse(c.es) // oldest first
	}
	slices.SortFunc(convs, func(a, b *replayConv) int { return cmp.Compare(a.es[0].ID, b.es[0].ID) })
	return convs, more, nil
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

// replayWaiting replays to each attached client the conversations of a
// that waited for its login.
func (s *session) replayWaiting(a *account) {
	for _, at := range s.cl.ats {
		var now []*replayConv
		at.replayLater = slices.DeleteFunc(at.replayLater, func(c *replayConv) bool {
			if !c.fetching && strings.EqualFold(c.email, a.cfg.Email) {
				now = append(now, c)
				return true
			}
			return false
		})
		s.deliverReplay(at, now)
	}
}

// replayStranger replays c, a conversation of account a with someone not
// on its list, once their profile names them (the nick they get, as when
// they write: lookUpStranger); meanwhile it waits in at.replayLater, so
// that the client's position stays before it.
func (s *session) replayStranger(at *attachment, a *account, c *replayConv) {
	c.fetching = true
	at.replayLater = append(at.replayLater, c)
	if _, busy := a.pending[c.uid]; !busy {
		s.lookUpStranger(a, c.uid)
	}
}

// replayStrangerKnown replays to each attached client its conversations
// of a with uid that waited for uid's profile (replayStranger).
func (s *session) replayStrangerKnown(a *account, uid msim.UID) {
	for _, at := range s.cl.ats {
		var now []*replayConv
		at.replayLater = slices.DeleteFunc(at.replayLater, func(c *replayConv) bool {
			if c.fetching && c.uid == uid && strings.EqualFold(c.email, a.cfg.Email) {
				now = append(now, c)
				return true
			}
			return false
		})
		if len(now) > 0 && s.nickFor(a.cfg.Email, uid) != "" {
			s.deliverReplay(at, now)
		}
	}
}

// deliverReplay gives at each conversation of convs (in the order their
// entries begin) in a chathistory batch, after a notice naming what was
// left out of it.
func (s *session) deliverReplay(at *attachment, convs []*replayConv) {
	per := s.b.cfg.ReplayPerBuddy
	for _, c := range convs {
		nick := s.nickFor(c.email, c.uid)
		if nick == "" {
			switch a := s.accountOf(c.email); {
			case a != nil && a.client != nil:
				s.replayStranger(at, a, c) // not on the list: named as they would be writing now
			case a != nil:
				// Not logged in (disconnected, or given up): no one can
				// name them before its next login, which replays it;
				// until then the client's position stays before it.
				at.replayLater = append(at.replayLater, c)
			}
			continue
		}
		if c.left > 0 {
			at.c.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Text: fmt.Sprintf(
				"%s with %s left out of the replay; type history %s %d in a control channel to see them.", plural(c.left, "earlier message", "earlier messages"), nick, nick, min(c.left+per, historyShowMax))})
		}
		ds := make([]ircd.Delivery, len(c.es))
		for i, e := range c.es {
			ds[i] = historyLine(e, nick)
		}
		if !at.c.DeliverHistory(nick, ds) {
			// Closing: this and the conversations after it are not
			// shown; its position stays before the first of them.
			at.miss(c.es[0].MsgID)
			return
		}
	}
}

// savePosition keeps how far the client at has seen the history, as it
// leaves (a client seen before whose replay was still being read keeps
// its position): all of it (what it did not receive was held, or shown to another
// client), except from the first message it was not given while attached
// (it was closing, or closed with the message queued; another client saw
// it) or that is still on its way to the clients (it is recorded as it
// arrives): its next connection is replayed that.
//
// The store is written on a worker goroutine (posSave), given what the
// session knows now; "all of it" is what was recorded so far (a mark of
// the history writer), not what comes meanwhile. A replay of the same
// client name, and its next save, wait for it (s.saving).
func (s *session) savePosition(at *attachment) {
	if !s.historyOn() {
		return
	}
	ps := &posSave{st: s.b.cfg.Store, hist: s.b.hist, log: s.log, user: s.user.Name, client: at.name,
		keepFound: at.replaying != nil, limit: math.MaxInt64, done: make(chan struct{})}
	if msgid := s.onItsWay(); msgid != "" {
		ps.notGiven = append(ps.notGiven, msgid)
	}
	if missed := at.missed.Load(); missed != nil && *missed != "" {
		ps.notGiven = append(ps.notGiven, *missed)
	}
	for _, c := range at.replayLater { // waiting for their account's login
		ps.limit = min(ps.limit, c.es[0].ID-1)
	}
	if at.keepPos != nil { // its replay could not be read
		ps.limit = min(ps.limit, *at.keepPos)
	}
	ps.mark = s.b.hist.mark(ps.user) // what it was shown is recorded before
	if prev := s.saving[at.name]; prev != nil {
		ps.after = prev.done
	}
	put(&s.saving, at.name, ps)
	s.goWrite(func(ctx context.Context) {
		ps.save(ctx)
		close(ps.done)
		s.post(call(func() {
			if s.saving[ps.client] == ps {
				delete(s.saving, ps.client)
			}
		}))
	})
}

// posSave is a client's position to save as it leaves (savePosition),
// on a worker goroutine: what it is given.
type posSave struct {
	st     store.Store
	hist   *historyWriter
	mark   *histMark // the history writer's, as the client left (nil: it has stopped)
	log    *logrus.Entry
	user   string
	client string
	// keepFound: its replay was still being read; a client seen before
	// keeps its position.
	keepFound bool
	// notGiven: msgids of what it was not given; its position stays
	// before the first of them.
	notGiven []string
	limit    int64 // the position goes no further
	// after is closed once the save of the same client name before this
	// one is through (nil: none was under way).
	after <-chan struct{}
	// done is closed once this save is through.
	done chan struct{}
}

// save computes and saves the position, and logs a failure.
func (ps *posSave) save(ctx context.Context) {
	err := ps.saveErr(ctx)
	if err != nil {
		ps.log.WithError(err).Error("store: a client's position could not be saved; it may be replayed again")
	}
}

func (ps *posSave) saveErr(ctx context.Context) error {
	if ps.after != nil {
		select {
		case <-ps.after:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	st, user := ps.st, ps.user
	if ps.keepFound {
		// Leaving before its replay was read, it was given nothing of what
		// it missed: a client seen before keeps its position.
		if _, found, err := st.ClientPosition(ctx, user, ps.client); found || err != nil {
			return err
		}
	}
	var pos int64
	var err error
	switch {
	case ps.mark == nil: // the writer has stopped: nothing is appended since
		pos, err = st.LastHistoryID(ctx, user)
	case ps.hist.wait(ctx, ps.mark.done):
		pos, err = ps.mark.last, ps.mark.err
	default:
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	pos = min(pos, ps.limit)
	for _, msgid := range ps.notGiven {
		switch e, err := st.HistoryByMsgID(ctx, user, msgid); {
		case err == nil:
			pos = min(pos, e.ID-1)
		case !errors.Is(err, store.ErrNotFound): // not recorded, or trimmed since
			return err
		}
	}
	return st.SetClientPosition(ctx, user, ps.client, pos)
}

// onItsWay returns the msgid of the earliest IM or zap that is in the
// history but not yet handed to the clients (see eachOnItsWay), or "".
func (s *session) onItsWay() string {
	var first *seqEvent
	s.eachOnItsWay(func(se *seqEvent) {
		if first == nil || se.seq < first.seq {
			first = se
		}
	})
	if first == nil {
		return ""
	}
	return first.msgid
}

// eachOnItsWay calls f with each IM or zap that is in the history but not
// yet handed to the clients: waiting in the outbox for room, or for a
// stranger's profile. Held IMs in the outbox are left out: they are given
// as such, never replayed.
func (s *session) eachOnItsWay(f func(*seqEvent)) {
	for i, q := 0, s.out.waiting(); i < len(q); i++ {
		if se := &q[i].seqEvent; se.msgid != "" && se.held == 0 {
			f(se)
		}
	}
	for _, a := range s.accounts {
		for _, q := range a.pending {
			for i := range q {
				if q[i].msgid != "" {
					f(&q[i])
				}
			}
		}
	}
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
	st, user, self, hist, met := s.b.cfg.Store, s.user.Name, s.irc.Nick(), s.b.hist, s.b.met
	s.lookupConversation(args[0], func(ctx context.Context, c conversation, err error) {
		if err != nil {
			s.post(call(func() { s.reply(r, "No messages with %s are kept.", args[0]) }))
			return
		}
		hist.sync(ctx, user)
		met.historyQuery("command")
		es, err := st.History(ctx, user, store.HistoryQuery{Account: c.email, Buddy: c.uid, Limit: n, Latest: true})
		s.post(call(func() {
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
