// Chat history (IRCv3 draft/chathistory): the CHATHISTORY command, its
// argument parser and its replies. The backend keeps the history; ircd
// checks the request, asks the backend without blocking the reader, and
// renders the answer.

package ircd

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
)

// HistoryHandler is an optional interface of a Handler, for
// draft/chathistory and draft/read-marker; Config.History offers them.
//
// Its methods are called from the connection's reader goroutine without
// ircd's locks, and must return at once: the client's next lines are read
// meanwhile. The backend calls each answer exactly once, from any
// goroutine, before or after the method returns; answer takes the client's
// lock briefly and never blocks on I/O. Replies go out in the order the
// client asked (a quick answer waits for a slower one asked before it); an
// answer that does not come within Config.HistoryTimeout gives FAIL …
// MESSAGE_ERROR (CHATHISTORY), FAIL MARKREAD INTERNAL_ERROR, or "*" (the
// marker sent with a JOIN), and is ignored if it comes later.
//
// Targets are given as the world knows them: a channel's name, a virtual
// user's nick, or for a nick not in the world (a buddy removed since, the
// client's own nick) the nick as the client wrote it.
type HistoryHandler interface {
	// History answers CHATHISTORY LATEST, BEFORE, AFTER, AROUND and
	// BETWEEN with at most q.Limit messages, oldest first. An error
	// wrapping ErrInvalidTarget gives FAIL CHATHISTORY INVALID_TARGET, any
	// other FAIL CHATHISTORY MESSAGE_ERROR.
	History(q HistoryQuery, answer func(msgs []HistoryMessage, err error))
	// HistoryTargets answers CHATHISTORY TARGETS: the conversations whose
	// latest message lies between q.From and q.To, at most q.Limit.
	HistoryTargets(q TargetsQuery, answer func(targets []HistoryTarget, err error))
	// MarkRead is MARKREAD <target> timestamp=…: the client read target up
	// to t (never in the future; ircd clamps it to now). The backend keeps
	// the later of t and the marker it has, and when that changed tells
	// the user's other clients with Client.SendReadMarker. ircd then asks
	// ReadMarker for the value to reply with, so MarkRead must be seen by a
	// ReadMarker that follows it.
	MarkRead(target string, t time.Time)
	// ReadMarker is the read marker of target, for MARKREAD <target> and
	// for a channel the client JOINs; the zero time when there is none
	// ("*").
	ReadMarker(target string, answer func(t time.Time))
}

// ErrInvalidTarget, wrapped in a HistoryHandler's error, says the client may
// not see the history of that target (FAIL CHATHISTORY INVALID_TARGET).
var ErrInvalidTarget = errors.New("ircd: no history for this target")

// HistoryRef is a message reference of a CHATHISTORY request: one of Time
// (timestamp=) and MsgID (msgid=, as the client sent it: a line's id, see
// MsgIDBase) is set; neither for LATEST's "*".
type HistoryRef struct {
	Time  time.Time
	MsgID string
}

// IsZero reports whether r is "*": no reference.
func (r HistoryRef) IsZero() bool { return r.Time.IsZero() && r.MsgID == "" }

// HistoryQuery is a CHATHISTORY request for messages. Subcommand is LATEST
// (the newest Limit messages after From and excluding it; all of the
// newest when From is zero), BEFORE (the Limit messages just before From),
// AFTER (just after From), AROUND (about Limit messages around From) or
// BETWEEN (Limit messages between From and To, both excluded, counted from
// From: To may come before From). Limit is 1 to Config.HistoryLimit.
type HistoryQuery struct {
	Subcommand string
	Target     string
	From, To   HistoryRef
	Limit      int
}

// HistoryMessage is one message of a conversation's history. Its Delivery
// says who sent it and to whom, as for Deliver: From (a nick, "" for the
// server) with Target "" is a private message to the user; with Self, the
// user's own message, to Target, or when Target is "" to the queried
// nick; a channel's messages have the channel as Target. Time should be
// set (the server-time tag) and MsgID too (the msgid tag, with the "-N"
// suffixes of Deliver on a long text's later lines). Command is PRIVMSG or
// NOTICE: a TAGMSG is left out (no draft/event-playback). Tags are the
// client-only tags; Sent is not called.
type HistoryMessage struct {
	Delivery
}

// TargetsQuery is CHATHISTORY TARGETS: the conversations whose latest
// message lies between From and To (either may be the later), at most
// Limit of them (1 to Config.HistoryLimit), counted from From.
type TargetsQuery struct {
	From, To time.Time
	Limit    int
}

// HistoryTarget is a conversation in a TARGETS answer: a nick or channel
// and the time of its latest message.
type HistoryTarget struct {
	Name   string
	Latest time.Time
}

// historyCaps are offered when Config.History is set.
var historyCaps = []string{"draft/chathistory", "draft/read-marker"}

// historyTokens are the ISUPPORT tokens of chat history, nil without it.
func historyTokens(cfg *Config) []string {
	if !cfg.History {
		return nil
	}
	return []string{"CHATHISTORY=" + strconv.Itoa(cfg.HistoryLimit), "MSGREFTYPES=timestamp,msgid"}
}

// capOffered reports whether CAP LS offers the named capability.
func capOffered(cfg *Config, name string) bool {
	if _, ok := capsSupported[name]; ok {
		return true
	}
	for _, n := range historyCaps {
		if n == name {
			return cfg.History
		}
	}
	return false
}

// historyHandler returns the client's HistoryHandler, if history is on and
// its Handler is one. Caller holds c.mu.
func (c *Client) historyHandler() (HistoryHandler, bool) {
	if !c.srv.cfg.History {
		return nil, false
	}
	hh, ok := c.handler.(HistoryHandler)
	return hh, ok
}

// historyTarget returns the name of a conversation as the world knows it,
// or false for a channel not in the world or an invalid name. Caller holds
// c.mu.
func (c *Client) historyTarget(t string) (string, bool) {
	if isChannel(t) {
		if ch := c.channel(t); ch != nil {
			return ch.name, true
		}
		return "", false
	}
	if u := c.findUser(t); u != nil {
		return u.Nick, true
	}
	return t, Nick(t).Valid()
}

// stdFail is a standard reply (FAIL) to a command: the parameters after
// the command and code, the description last.
type stdFail struct {
	code   string
	params []string
}

// historyCmd is a parsed CHATHISTORY command, its target not yet checked.
type historyCmd struct {
	sub      string // upper-cased
	target   string // "" for TARGETS
	from, to HistoryRef
	limit    int
}

// parseChathistory parses CHATHISTORY's parameters (subcommand first)
// with max as the highest limit (a higher one is refused, but TARGETS's
// is lowered to it; a limit of 0 is max). Errors are INVALID_PARAMS
// failures, as the spec words them.
func parseChathistory(params []string, max int) (historyCmd, *stdFail) {
	invalid := func(ps ...string) *stdFail { return &stdFail{"INVALID_PARAMS", ps} }
	if len(params) == 0 {
		return historyCmd{}, invalid("*", "Insufficient parameters")
	}
	hc := historyCmd{sub: strings.ToUpper(params[0])}
	sub := safeParam(params[0])
	var n int // parameters after the subcommand
	switch hc.sub {
	case "LATEST", "BEFORE", "AFTER", "AROUND", "TARGETS":
		n = 3
	case "BETWEEN":
		n = 4
	default:
		return historyCmd{}, invalid(sub, "Unknown command")
	}
	sub = hc.sub
	args := params[1:]
	switch {
	case len(args) < n:
		return historyCmd{}, invalid(sub, "Insufficient parameters")
	case len(args) > n:
		return historyCmd{}, invalid(sub, "Too many parameters")
	}
	limit, err := strconv.Atoi(args[n-1])
	if err == nil && limit == 0 {
		// No number in particular: as many as may be asked for, as ergo
		// gives them (soju takes 0 too), for TARGETS and messages alike.
		limit = max
	}
	if hc.sub == "TARGETS" && (err == nil || errors.Is(err, strconv.ErrRange)) && limit > max {
		// CHATHISTORY bounds the messages a command asks for; TARGETS
		// asks for conversations, and a client may ask for more of them
		// than the token says (gamja asks for a fixed number): as many
		// as it allows are given, as ergo gives them. A number too large
		// for an int is such a request too (Atoi gives the largest int
		// with ErrRange; the smallest, for a negative one, stays
		// refused).
		limit, err = max, nil
	}
	if err != nil || limit <= 0 || limit > max {
		return historyCmd{}, invalid(sub, safeParam(args[n-1]), "Invalid limit")
	}
	hc.limit = limit
	refs := args[:n-1]
	if hc.sub == "TARGETS" {
		for i, a := range refs {
			t, ok := parseTimestamp(a)
			if !ok {
				return historyCmd{}, invalid(sub, safeParam(a), "Invalid timestamp")
			}
			if i == 0 {
				hc.from.Time = t
			} else {
				hc.to.Time = t
			}
		}
		return hc, nil
	}
	hc.target, refs = refs[0], refs[1:]
	if hc.target == "" {
		return historyCmd{}, invalid(sub, "Insufficient parameters")
	}
	for i, a := range refs {
		var ref HistoryRef
		if a != "*" || hc.sub != "LATEST" {
			var f *stdFail
			if ref, f = parseRef(sub, a); f != nil {
				return historyCmd{}, f
			}
		}
		if i == 0 {
			hc.from = ref
		} else {
			hc.to = ref
		}
	}
	return hc, nil
}

// parseRef parses a message reference: timestamp=… or msgid=….
func parseRef(sub, a string) (HistoryRef, *stdFail) {
	kind, v, _ := strings.Cut(a, "=")
	switch kind {
	case "timestamp":
		if t, ok := parseTimestamp(a); ok {
			return HistoryRef{Time: t}, nil
		}
		return HistoryRef{}, &stdFail{"INVALID_PARAMS", []string{sub, safeParam(a), "Invalid timestamp"}}
	case "msgid":
		if validMsgID(v) {
			return HistoryRef{MsgID: v}, nil
		}
		return HistoryRef{}, &stdFail{"INVALID_PARAMS", []string{sub, safeParam(a), "Invalid msgid"}}
	}
	return HistoryRef{}, &stdFail{"INVALID_PARAMS", []string{sub, safeParam(a), "Invalid message reference"}}
}

// parseTimestamp parses timestamp=YYYY-MM-DDThh:mm:ss.sssZ (any fraction
// of a second, or none, and any UTC offset are taken too).
func parseTimestamp(a string) (time.Time, bool) {
	v, ok := strings.CutPrefix(a, "timestamp=")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if t = t.UTC(); err != nil || t.Year() < 1 || t.IsZero() {
		return time.Time{}, false
	}
	return t, true
}

// validMsgID reports whether id may be a message id: 1 to 100 bytes, not
// starting with ':', without spaces or control characters.
func validMsgID(id string) bool {
	if id == "" || len(id) > 100 || id[0] == ':' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] == 0x7f {
			return false
		}
	}
	return true
}

// formatTime is a time as server-time and CHATHISTORY write it.
func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func cmdChathistory(c *Client, m *irc.Message) *ircError {
	hh, ok := c.historyHandler()
	if !ok {
		return newErr(irc.ERR_UNKNOWNCOMMAND, m.Command, "Unknown command")
	}
	hc, f := parseChathistory(m.Params, c.srv.cfg.HistoryLimit)
	if f != nil {
		c.fail("CHATHISTORY", f.code, f.params...)
		return nil
	}
	if hc.sub == "TARGETS" {
		c.historyTargets(hh, TargetsQuery{From: hc.from.Time, To: hc.to.Time, Limit: hc.limit})
		return nil
	}
	name, ok := c.historyTarget(hc.target)
	if !ok {
		c.fail("CHATHISTORY", "INVALID_TARGET", hc.sub, safeParam(hc.target), "Messages could not be retrieved")
		return nil
	}
	q := HistoryQuery{Subcommand: hc.sub, Target: name, From: hc.from, To: hc.to, Limit: hc.limit}
	var msgs []HistoryMessage
	var herr error
	r := c.await(1, func(timedOut bool) {
		switch {
		case timedOut:
			c.fail("CHATHISTORY", "MESSAGE_ERROR", q.Subcommand, q.Target, "Messages could not be retrieved")
		case errors.Is(herr, ErrInvalidTarget):
			c.fail("CHATHISTORY", "INVALID_TARGET", q.Subcommand, q.Target, "Messages could not be retrieved")
		case herr != nil:
			c.logger().WithError(herr).WithField("target", q.Target).Info("CHATHISTORY: the backend failed")
			c.fail("CHATHISTORY", "MESSAGE_ERROR", q.Subcommand, q.Target, "Messages could not be retrieved")
		default:
			c.historyReply(q, msgs)
		}
	})
	if r == nil {
		c.tryAgain("CHATHISTORY")
		return nil
	}
	c.later(func() {
		hh.History(q, func(ms []HistoryMessage, err error) {
			c.answered(r, once(func() { msgs, herr = ms, err }))
		})
	})
	return nil
}

// historyReply sends msgs as the answer to q: oldest first, within q's
// limit and what the send queue has room for, in a chathistory batch when
// the client has batch. Caller holds c.mu.
func (c *Client) historyReply(q HistoryQuery, msgs []HistoryMessage) {
	kept := make([]HistoryMessage, 0, len(msgs))
	for _, hm := range msgs {
		if !strings.EqualFold(hm.Command, "TAGMSG") {
			kept = append(kept, hm)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Time.Before(kept[j].Time) })
	end := countedFrom(q)
	if extra := len(kept) - q.Limit; extra > 0 {
		switch end {
		case fromNewest:
			kept = kept[extra:]
		case fromMiddle:
			lo, hi := aroundFit(len(kept), aroundIndex(kept, q.From), func(lo, hi int) bool { return hi-lo <= q.Limit })
			kept = kept[lo:hi]
		default:
			kept = kept[:q.Limit]
		}
	}
	ref := ""
	if c.caps["batch"] {
		ref = newBatchRef()
	}
	per := make([][]*irc.Message, len(kept))
	for i, hm := range kept {
		per[i], _ = c.lines(hm.Delivery, compose{ref: ref, conv: q.Target, past: true, raw: true})
	}
	// The batch's start and end take two lines; a quarter of the queue is
	// left to what else the client is sent meanwhile. A reply cut to fit
	// leaves room for its note too, and, labeled, for the labeled-response
	// batch the note puts it in.
	at := 0
	if end == fromMiddle {
		at = aroundIndex(kept, q.From)
	}
	room := c.srv.cfg.SendQ - c.srv.cfg.SendQ/4 - c.queued() - 2
	lo, hi := fitLines(per, room, end, at)
	if hi-lo < len(kept) {
		note := 1
		if c.capture != nil {
			note += 2
		}
		// Where the note's room would leave no message, the messages
		// that fit go with the note in the quarter held back.
		if l, h := fitLines(per, room-note, end, at); l < h {
			lo, hi = l, h
		}
	}
	if lo == hi && len(kept) > 0 {
		c.logger().WithField("messages", len(kept)).Warn("CHATHISTORY: the reply does not fit in the send queue")
		c.fail("CHATHISTORY", "MESSAGE_ERROR", q.Subcommand, q.Target, "Messages could not be retrieved")
		return
	}
	var lines []*irc.Message
	for _, ls := range per[lo:hi] {
		lines = append(lines, ls...)
	}
	c.batch(ref, "chathistory", q.Target, lines)
	if n := hi - lo; n < len(kept) {
		c.logger().WithField("messages", len(kept)).Infof("CHATHISTORY: %d messages of the reply fit in the send queue", n)
		c.historyCut(q, n, len(kept))
	}
}

// historyCut tells the client that its reply to q holds only n of the
// total messages the backend gave, the rest left out for the send queue's
// sake, so that it does not take a short reply for the end of the history:
// a WARN CHATHISTORY TRUNCATED with standard-replies (the chathistory spec
// has no code for it), else a NOTICE. Caller holds c.mu.
func (c *Client) historyCut(q HistoryQuery, n, total int) {
	text := fmt.Sprintf("Only %d of %d messages were sent, the rest did not fit; ask again for more", n, total)
	if c.caps["standard-replies"] {
		c.send(msg(c.serverPrefix(), "WARN", "CHATHISTORY", "TRUNCATED", q.Subcommand, q.Target, text))
		return
	}
	c.send(msg(c.serverPrefix(), "NOTICE", c.nick, fmt.Sprintf("CHATHISTORY %s %s: %s", q.Subcommand, q.Target, text)))
}

// replyEnd is where a CHATHISTORY reply's messages are counted from: the
// ones a limit, or the room in the send queue, keeps.
type replyEnd int

const (
	fromOldest  replyEnd = iota // AFTER, BETWEEN forwards
	fromNewest                  // LATEST, BEFORE, BETWEEN backwards
	fromMiddle                  // AROUND
	fromUnknown                 // BETWEEN with a msgid: ircd cannot tell its direction
)

// countedFrom is where q's messages are counted from.
func countedFrom(q HistoryQuery) replyEnd {
	switch q.Subcommand {
	case "LATEST", "BEFORE":
		return fromNewest
	case "AROUND":
		return fromMiddle
	case "BETWEEN":
		switch {
		case q.From.Time.IsZero() || q.To.Time.IsZero():
			return fromUnknown
		case q.From.Time.After(q.To.Time):
			return fromNewest
		}
	}
	return fromOldest
}

// aroundIndex is where AROUND's reference ref stands in msgs (oldest
// first): the referenced message (a msgid of any of its lines), or the
// first message not before its time (len(msgs) if none).
func aroundIndex(msgs []HistoryMessage, ref HistoryRef) int {
	t := ref.Time
	if ref.MsgID != "" {
		id := MsgIDBase(ref.MsgID) // a long text's later line names its message too
		for i, m := range msgs {
			if MsgIDBase(m.MsgID) == id {
				return i
			}
		}
		if t.IsZero() {
			t, _ = MsgIDTime(id)
		}
	}
	return sort.Search(len(msgs), func(i int) bool { return !msgs[i].Time.Before(t) })
}

// aroundFit returns the messages msgs[lo:hi] of n, around the one at ref,
// that fits accepts: messages are left out from the side with more of
// them, the older side on a tie, so that half of those kept, rounded down,
// are before ref, as the backend gives them (the bridge's historyQuery).
func aroundFit(n, ref int, fits func(lo, hi int) bool) (lo, hi int) {
	lo, hi = 0, n
	for lo < hi && !fits(lo, hi) {
		if ref-lo >= hi-ref {
			lo++
		} else {
			hi--
		}
	}
	return lo, hi
}

// fitLines returns the messages of per (each message's lines, oldest
// first), per[lo:hi], that fit in room lines, counted from end: those
// nearest it (for fromMiddle, around the message at ref), all or none
// when end is fromUnknown.
func fitLines(per [][]*irc.Message, room int, end replyEnd, ref int) (lo, hi int) {
	total := 0
	for _, ls := range per {
		total += len(ls)
	}
	lo, hi = 0, len(per)
	switch {
	case total <= room:
	case end == fromOldest:
		hi, total = 0, 0
		for hi < len(per) && total+len(per[hi]) <= room {
			total += len(per[hi])
			hi++
		}
	case end == fromNewest:
		lo, total = len(per), 0
		for lo > 0 && total+len(per[lo-1]) <= room {
			lo--
			total += len(per[lo])
		}
	case end == fromMiddle:
		lines := make([]int, len(per)+1) // lines[i]: per[:i]'s
		for i, ls := range per {
			lines[i+1] = lines[i] + len(ls)
		}
		lo, hi = aroundFit(len(per), ref, func(lo, hi int) bool { return lines[hi]-lines[lo] <= room })
	default:
		hi = 0
	}
	return lo, hi
}

// batch sends lines (tagged with ref already) between BATCH +ref typ arg
// and BATCH -ref, or alone when ref is "". Caller holds c.mu.
func (c *Client) batch(ref, typ, arg string, lines []*irc.Message) {
	if ref != "" {
		start := msg(c.serverPrefix(), "BATCH", "+"+ref, typ)
		if arg != "" {
			start.Params = append(start.Params, arg)
		}
		c.send(start)
	}
	for _, m := range lines {
		c.send(m)
	}
	if ref != "" {
		c.send(msg(c.serverPrefix(), "BATCH", "-"+ref))
	}
}

// historyTargets asks the backend for TARGETS and sends its answer.
// Caller holds c.mu.
func (c *Client) historyTargets(hh HistoryHandler, q TargetsQuery) {
	var ts []HistoryTarget
	var herr error
	r := c.await(1, func(timedOut bool) {
		switch {
		case timedOut:
			c.fail("CHATHISTORY", "MESSAGE_ERROR", "TARGETS", "*", "Messages could not be retrieved")
		case herr != nil:
			c.logger().WithError(herr).Info("CHATHISTORY TARGETS: the backend failed")
			c.fail("CHATHISTORY", "MESSAGE_ERROR", "TARGETS", "*", "Messages could not be retrieved")
		default:
			c.targetsReply(q, ts)
		}
	})
	if r == nil {
		c.tryAgain("CHATHISTORY")
		return
	}
	c.later(func() {
		hh.HistoryTargets(q, func(got []HistoryTarget, err error) {
			c.answered(r, once(func() { ts, herr = got, err }))
		})
	})
}

// targetsReply sends a TARGETS answer: oldest first, within q's limit, in
// a draft/chathistory-targets batch when the client has batch. Caller
// holds c.mu.
func (c *Client) targetsReply(q TargetsQuery, ts []HistoryTarget) {
	kept := make([]HistoryTarget, 0, len(ts))
	for _, t := range ts {
		if (isChannel(t.Name) && validChannel(t.Name)) || (!isChannel(t.Name) && Nick(t.Name).Valid()) {
			kept = append(kept, t)
		} else {
			c.logger().WithField("target", t.Name).Warn("CHATHISTORY TARGETS: invalid name from the backend")
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Latest.Before(kept[j].Latest) })
	if extra := len(kept) - q.Limit; extra > 0 {
		if q.From.After(q.To) {
			kept = kept[extra:]
		} else {
			kept = kept[:q.Limit]
		}
	}
	ref := ""
	if c.caps["batch"] {
		ref = newBatchRef()
	}
	lines := make([]*irc.Message, len(kept))
	for i, t := range kept {
		m := msg(c.serverPrefix(), "CHATHISTORY", "TARGETS", t.Name, formatTime(t.Latest))
		if ref != "" {
			m.Tags = irc.Tags{"batch": ref}
		}
		lines[i] = m
	}
	c.batch(ref, "draft/chathistory-targets", "", lines)
}
