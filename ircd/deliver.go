package ircd

import (
	"iter"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// Delivery is a message from a virtual user (or the server) to the client,
// or, with Self, one the user sent from another client.
type Delivery struct {
	Command string    // PRIVMSG, NOTICE or TAGMSG; "" = PRIVMSG
	From    string    // virtual nick, or "" for the server; ignored with Self
	Target  string    // channel name, or "" = the real client; with Self, the nick or channel it was sent to
	Text    string    // may hold several lines and be of any length
	Time    time.Time // zero = now; sent as the server-time tag when negotiated
	Tags    irc.Tags  // client-only tags such as +typing; dropped without message-tags

	// MsgID, when set, is sent as the msgid tag to a client with
	// message-tags: on the start of a multiline batch, or, for a text
	// sent as several lines, on the first line only (the multiline
	// fallback), as the echo of the user's own message carries it.
	MsgID string
	// Lines, when set, are the lines of the multiline batch Text came as
	// (Input.Lines of the user's own message): a client with multiline
	// gets them as its batch, whether or not Text fits a line, a line too
	// long for its line cut further. They are left aside, and Text split
	// as without them, unless they join to Text as the lines of a
	// multiline batch (a line break before each but concat ones).
	Lines []BatchLine

	// Self marks the user's own message, typed in another client: the
	// line comes from the client's own nick!user@host and goes to Target,
	// the virtual user's nick or the channel
	// (":me!u@h PRIVMSG tom :text").
	Self bool

	// Sent, when set, is called exactly once, from an ircd goroutine with
	// no ircd lock held, and must not block: with true once every line of
	// the delivery has been written to the socket (a TAGMSG dropped for
	// lack of message-tags counts as written once the lines before it
	// are), with false if the connection ended first (the lines were
	// discarded on a SendQ overflow, were still queued or held when it
	// closed, or failed to write) or Deliver refused the delivery.
	Sent func(ok bool)
}

const timeFormat = "2006-01-02T15:04:05.000Z"

var batchSeq atomic.Uint64

// Deliver sends d to the client. CR, LF and NUL never reach the wire: text is
// split at line breaks into separate messages, and long lines into several
// messages of at most 512 bytes, at UTF-8 boundaries and preferably between
// words, keeping CTCP framing (\x01ACTION ...\x01) on every piece. Text is
// never dropped: a message for a channel the client is not in arrives as a
// server NOTICE naming the channel and the sender. TAGMSG is sent only to
// clients with message-tags.
//
// Deliver reports whether d was queued whole: false when the connection is
// closed or closing, when the command is not one of the three, or when the
// SendQ overflowed while queuing it (which disconnects the client). Queued
// is not written: d.Sent tells when it was.
func (c *Client) Deliver(d Delivery) bool {
	c.mu.Lock()
	ok := c.deliver(d, "")
	c.mu.Unlock()
	if !ok && d.Sent != nil {
		reportLater(d.Sent)
	}
	return ok
}

// DeliverHistory sends past messages of one conversation (target: a channel
// or a virtual nick) inside a chathistory batch when the client negotiated
// batch, and one by one otherwise. Each Delivery's Time should be set: it is
// the server-time tag, or, for a client without server-time, a "[2006-01-02
// 15:04:05 UTC] " prefix on the text (after "\x01ACTION "). MsgID and Self
// count as in Deliver; a Self delivery with no Target goes to target. It
// reports whether all of ds were queued, like Deliver; each Delivery's Sent
// is called as Deliver calls it. The bouncer's replay of missed messages to
// a client without chathistory uses it (issue 14). A target that is
// neither a valid nick nor a valid channel name (a space, CR, LF or NUL in
// it would split or corrupt the batch's line) is refused, and logged: false,
// and each Delivery's Sent is called with false.
func (c *Client) DeliverHistory(target string, ds []Delivery) bool {
	if len(ds) == 0 {
		return !c.isClosed()
	}
	if !Nick(target).Valid() && !validChannel(target) {
		c.logger().WithField("target", target).Warn("DeliverHistory: invalid target; the history is not sent")
		var unsent []func(bool)
		for _, d := range ds {
			if d.Sent != nil {
				unsent = append(unsent, d.Sent)
			}
		}
		reportLater(unsent...)
		return false
	}
	c.mu.Lock()
	ok := true
	ref := ""
	if c.caps["batch"] {
		ref = newBatchRef()
		ok = c.emitEntry(entry{m: msg(c.serverPrefix(), "BATCH", "+"+ref, "chathistory", target)})
	}
	var unsent []func(bool)
	for _, d := range ds {
		if ok {
			ok = c.deliverAs(d, compose{ref: ref, conv: target, past: true})
		}
		if !ok && d.Sent != nil {
			unsent = append(unsent, d.Sent)
		}
	}
	if ok && ref != "" {
		ok = c.emitEntry(entry{m: msg(c.serverPrefix(), "BATCH", "-"+ref)})
	}
	c.mu.Unlock()
	reportLater(unsent...)
	return ok
}

// newBatchRef returns a batch reference unique in the process.
func newBatchRef() string { return "h" + strconv.FormatUint(batchSeq.Add(1), 36) }

// compose says how a Delivery becomes lines.
type compose struct {
	ref  string // batch reference, or ""
	conv string // the conversation's nick or channel, for a Self delivery without Target
	past bool   // a past message: a date prefix without server-time; the sender's idle time is left alone
	raw  bool   // CHATHISTORY: to a channel of the world whether joined or not, never as a notice
}

// deliver does Deliver's work; ref is a batch reference or "". It reports
// whether d was queued whole; if not, the caller reports d.Sent. Caller
// holds c.mu.
func (c *Client) deliver(d Delivery, ref string) bool {
	return c.deliverAs(d, compose{ref: ref})
}

// deliverAs queues the lines of d, as deliver does. Caller holds c.mu.
func (c *Client) deliverAs(d Delivery, o compose) bool {
	if !c.holdWorld() {
		if ok, done := c.deliverRaw(d, o); done {
			return ok
		}
	}
	lines, ok := c.lines(d, o)
	if !ok {
		return false
	}
	if len(lines) == 0 {
		return c.nothingToSend(d)
	}
	for i, m := range lines {
		e := entry{m: m}
		if i == len(lines)-1 {
			e.sent = d.Sent
		}
		if !c.emitEntry(e) {
			return false
		}
	}
	return true
}

// lines builds the lines of d; false (and a log line) when d cannot be
// sent at all. No lines and true: nothing to send (a TAGMSG to a client
// without message-tags, an empty text). Caller holds c.mu.
func (c *Client) lines(d Delivery, o compose) ([]*irc.Message, bool) {
	cmd := strings.ToUpper(d.Command)
	switch cmd {
	case "":
		cmd = "PRIVMSG"
	case "PRIVMSG", "NOTICE", "TAGMSG":
	default:
		c.logger().WithField("command", d.Command).Warn("Deliver: unsupported command")
		return nil, false
	}
	if cmd == "TAGMSG" && !c.caps["message-tags"] {
		return nil, true
	}
	var prefix *irc.Prefix
	switch {
	case d.Self:
		prefix = c.selfPrefix()
	case d.From != "":
		if u := c.findUser(d.From); u != nil {
			prefix = u.prefix()
			if !o.past {
				u.lastSpoke = c.stamp()
			}
		} else if Nick(d.From).Valid() {
			prefix = &irc.Prefix{Name: d.From, User: "user", Host: c.srv.cfg.ServerName}
		} else {
			c.logger().WithField("from", d.From).Warn("Deliver: invalid sender")
		}
	}
	if prefix == nil {
		prefix = c.serverPrefix()
	}
	target := c.nick
	to := d.Target
	if d.Self && to == "" {
		to = o.conv
	}
	switch {
	case to != "" && isChannel(to):
		ch := c.channel(to)
		switch {
		case ch != nil && (ch.joined || o.raw):
			target = ch.name
		case o.raw && validChannel(to):
			target = to
		default:
			c.logger().WithField("channel", to).Warn("Deliver: client not in channel; sending as notice")
			if cmd == "TAGMSG" {
				return nil, true
			}
			d.Text = relayText(to, prefix.Name, d.Text)
			prefix, cmd = c.serverPrefix(), "NOTICE"
		}
	case d.Self:
		if u := c.findUser(to); u != nil {
			target = u.Nick
		} else if Nick(to).Valid() {
			target = to
		} else {
			c.logger().WithField("target", to).Warn("Deliver: own message without a valid target")
			return nil, false
		}
	case to != "":
		c.logger().WithField("channel", to).Warn("Deliver: client not in channel; sending as notice")
		if cmd == "TAGMSG" {
			return nil, true
		}
		d.Text = relayText(to, prefix.Name, d.Text)
		prefix, cmd = c.serverPrefix(), "NOTICE"
	}
	tags := irc.Tags{}
	if c.caps["message-tags"] {
		for k, v := range d.Tags {
			if clientTag(k) {
				tags[k] = v
			}
		}
	}
	if c.caps["server-time"] {
		t := d.Time
		if t.IsZero() {
			t = time.Now()
		}
		tags["time"] = t.UTC().Format(timeFormat)
	} else if o.past && !d.Time.IsZero() && cmd != "TAGMSG" {
		d.Text = datePrefix(d.Text, d.Time)
	}
	if o.ref != "" {
		tags["batch"] = o.ref
	}
	msgid := ""
	if c.caps["message-tags"] {
		msgid = d.MsgID
	}
	if cmd == "TAGMSG" {
		m := msg(prefix, cmd, target)
		m.Tags = ownMsgID(tags, msgid)
		return []*irc.Message{m}, true
	}
	budget := lineBudget(prefix, cmd, target)
	if c.multilineOn() {
		mp, ok := fitBatch(d.Lines, d.Text, budget)
		if !ok && needsMultiline(d.Text, budget) {
			mp, ok = multilinePieces(d.Text, budget)
		}
		if ok {
			if msgid != "" {
				tags["msgid"] = msgid
			}
			return c.multilineBatch(prefix, cmd, target, mp, tags), true
		}
	}
	pieces := splitText(d.Text, budget)
	out := make([]*irc.Message, len(pieces))
	for i, p := range pieces {
		m := msg(prefix, cmd, target, p)
		if len(pieces) == 1 {
			m.Tags = ownMsgID(tags, msgid)
		} else {
			m.Tags = withMsgID(tags, msgid, i)
		}
		out[i] = m
	}
	return out, true
}

// lineBudget is how many bytes of text fit a line from prefix with cmd
// to target.
func lineBudget(prefix *irc.Prefix, cmd, target string) int {
	return 510 - (len(":") + prefixLen(prefix) + len(" ") + len(cmd) + len(" ") + len(target) + len(" :"))
}

// withMsgID returns tags (nil when empty) for piece i of a message whose
// id is id ("" = none): the id goes on the first piece only, as the
// multiline spec asks of a message sent as separate lines (its fallback),
// so that the one id names the whole message.
func withMsgID(tags irc.Tags, id string, i int) irc.Tags {
	if id == "" || i > 0 {
		if len(tags) == 0 {
			return nil
		}
		return tags
	}
	out := make(irc.Tags, len(tags)+1)
	maps.Copy(out, tags)
	out["msgid"] = id
	return out
}

// ownMsgID is withMsgID for the only line of a message: tags are that
// line's alone, so the id goes in them rather than in a copy.
func ownMsgID(tags irc.Tags, id string) irc.Tags {
	if id != "" {
		tags["msgid"] = id
	}
	if len(tags) == 0 {
		return nil
	}
	return tags
}

// relayText is the text of a server NOTICE that carries a message from
// sender in conversation to, which the client is not in: "[#c] <tom> hi",
// or for an action "[#c] * tom waves", and for another CTCP message
// "[#c] <tom> CTCP VERSION". CTCP framing is left out: inside the notice's
// text it frames nothing, and a client would show its \x01 bytes.
func relayText(to, sender, text string) string {
	head := "[" + to + "] "
	if len(text) < 2 || text[0] != '\x01' {
		return head + "<" + sender + "> " + text
	}
	inner := strings.TrimSuffix(text[1:], "\x01")
	if verb, rest, _ := strings.Cut(inner, " "); strings.EqualFold(verb, "ACTION") {
		return head + "* " + sender + " " + rest
	}
	return head + "<" + sender + "> CTCP " + inner
}

// datePrefix puts "[date UTC] " before text, inside CTCP framing.
func datePrefix(text string, t time.Time) string {
	p := "[" + t.UTC().Format("2006-01-02 15:04:05") + " UTC] "
	if len(text) > 1 && text[0] == '\x01' {
		if verb, rest, ok := strings.Cut(text[1:], " "); ok && !strings.Contains(verb, "\x01") {
			return "\x01" + verb + " " + p + rest
		}
	}
	return p + text
}

// nothingToSend queues only d's callback, which the writer calls once the
// lines queued before it are written; it reports whether the connection
// is open. Caller holds c.mu.
func (c *Client) nothingToSend(d Delivery) bool {
	if d.Sent == nil {
		return !c.isClosed()
	}
	return c.emitEntry(entry{sent: d.Sent})
}

// splitText turns text into pieces of at most max bytes that contain no CR,
// LF or NUL and are valid UTF-8. Lines are split at '\n' (CRLF and lone CR
// count as line breaks) and blank lines are dropped; long lines are cut at
// the last space that fits if it is at least half way, else at a character
// boundary on the budget, the space staying
// with the first piece so that the pieces concatenate back to the line. CTCP
// framing around the whole text is repeated on every piece.
func splitText(text string, max int) []string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.ReplaceAll(text, "\x00", "\uFFFD")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	open, close := "", ""
	if len(text) >= 2 && text[0] == '\x01' {
		inner := strings.TrimSuffix(text[1:], "\x01")
		verb, rest, found := strings.Cut(inner, " ")
		if !strings.ContainsAny(verb, "\n\x01") && verb != "" {
			open, close, text = "\x01"+verb+" ", "\x01", rest
			if !found {
				return []string{"\x01" + verb + "\x01"}
			}
		}
	}
	max -= len(open) + len(close)
	if max < utf8.UTFMax {
		max = utf8.UTFMax
	}
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		for piece := range cutFormatted(line, max) {
			out = append(out, open+piece+close)
		}
	}
	return out
}

// cutLine yields the pieces of one line (no line break in it) of at most
// max bytes, each cut where cutPoint says. An empty line yields nothing.
func cutLine(line string, max int) iter.Seq[string] {
	return func(yield func(string) bool) {
		for line != "" {
			piece := line[:cutPoint(line, max)]
			line = line[len(piece):]
			if !yield(piece) {
				return
			}
		}
	}
}

// cutPoint is where the first piece of line (not empty) ends, for pieces
// of at most max bytes: the whole line when it fits; else at the last space
// that fits if it is at least half way, else at a character boundary on
// the budget, the space staying with the first piece so that the pieces
// concatenate back to the line. It is never inside a colour code (\x03 or
// \x04 with its numbers) that does not start the line, so that each piece
// has the whole code.
func cutPoint(line string, max int) int {
	if len(line) <= max {
		return len(line)
	}
	cut := len(truncUTF8(line, max))
	// Between words when that leaves a piece of at least half the budget;
	// else on the budget, so that a long word after a short one never
	// leaves a tiny first piece.
	if sp := strings.LastIndexByte(line[:cut], ' '); sp > 0 && sp+1 >= max/2 {
		cut = sp + 1
	}
	// A colour code is at most 14 bytes ("\x04RRGGBB,RRGGBB").
	for p := cut - 1; p > 0 && p >= cut-14; p-- {
		c := line[p]
		if c != 0x03 && c != 0x04 {
			continue
		}
		if p+1+colourLen(line[p:]) > cut {
			cut = p
		}
		break
	}
	if cut == 0 { // a character wider than max
		_, cut = utf8.DecodeRuneInString(line)
	}
	return cut
}

// truncUTF8 cuts s to at most max bytes without splitting a character.
func truncUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
