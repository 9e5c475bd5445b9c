// The replay: what a client without chathistory missed since it last
// left, read from the store as it attaches and given to it conversation by
// conversation.

package channel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

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
	for msgid := range s.replayWritten[at.name] { // replayed to it before, and written
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
	// unread: the store's error of history rows it could not read, left
	// out of convs (store.ErrUnreadable), or nil.
	unread error
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
		if errors.Is(rd.err, store.ErrUnreadable) {
			rd.unread, rd.err = rd.err, nil
		}
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
	if s.mem.unreadHistory(rd.unread) {
		defer s.tellNotes() // after the replay
	}
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
// begin. more: there is more before what was read. An error of rows it
// could not read (store.ErrUnreadable) comes with the conversations of the others.
func missedConversations(ctx context.Context, st store.Store, user string, pos int64, per int, skip map[string]bool) (convs []*replayConv, more bool, err error) {
	type key struct {
		email string
		uid   msim.UID
	}
	byConv := map[key]*replayConv{}
	before := int64(0)
	var unread error
	for p := 0; ; p++ {
		page, err := st.HistoryLatestSince(ctx, user, pos, before, store.MaxHistoryLimit)
		if errors.Is(err, store.ErrUnreadable) {
			unread, err = err, nil
		}
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
			if errors.Is(err, store.ErrUnreadable) {
				unread, err = err, nil
			}
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
	return convs, more, unread
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
		written := make([]atomic.Bool, len(c.es))
		user := s.user.Name
		for i, e := range c.es {
			ds[i] = historyLine(e, nick)
			ds[i].Sent = func(ok bool) {
				if !ok { // queued, but the connection ended first
					at.missReplayed(user, e.ID)
					return
				}
				written[i].Store(true)
			}
		}
		if !at.c.DeliverHistory(nick, ds) {
			// Closing: this and the conversations after it are not
			// shown; its position stays before the first of them.
			at.missReplayed(user, c.es[0].ID)
			return
		}
		at.replayed = append(at.replayed, replayedConv{es: c.es, written: written})
	}
}

// replayedConv is a conversation replayed to a client: its entries, and
// which of them ircd reported written (set on ircd's writer).
type replayedConv struct {
	es      []store.HistoryEntry
	written []atomic.Bool
}

// keepWritten keeps, for at's client name, the msgids of the replayed
// entries at wrote, so that its next replay leaves them out while its
// position is before them. Bounded: maxWrittenKept per name, and as many
// names as the store keeps positions for (client names are the client's
// to choose, and a name may never come back); what is not kept may be
// replayed again (a duplicate, never a loss).
func (s *session) keepWritten(at *attachment) {
	kept := s.replayWritten[at.name] // made at the first entry written
	for _, c := range at.replayed {
		for i, e := range c.es {
			if !c.written[i].Load() || e.MsgID == "" {
				continue
			}
			if kept == nil {
				kept = s.keptFor(at.name)
			}
			if len(kept) >= maxWrittenKept {
				return
			}
			kept[e.MsgID] = e.ID
		}
	}
}

// keptFor makes the set of written entries kept for the client name,
// letting another name's go if as many as the store keeps positions for
// have theirs.
func (s *session) keptFor(name string) map[string]int64 {
	if len(s.replayWritten) >= store.MaxClientPositions {
		for other := range s.replayWritten { // any
			delete(s.replayWritten, other)
			break
		}
	}
	kept := map[string]int64{}
	put(&s.replayWritten, name, kept)
	return kept
}

// maxWrittenKept bounds the written entries kept per client name
// (keepWritten): those written above where its position stops, past the
// first conversation the connection did not finish.
const maxWrittenKept = 1024

// forgetWritten forgets the entries kept for user's client name that
// its position, saved at pos, has passed.
func (s *session) forgetWritten(user, client string, pos int64) {
	kept := s.replayWritten[client]
	if user != s.user.Name || kept == nil {
		return
	}
	maps.DeleteFunc(kept, func(_ string, id int64) bool { return id <= pos })
	if len(kept) == 0 {
		delete(s.replayWritten, client)
	}
}
