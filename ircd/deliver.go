package ircd

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// Delivery is a message from a virtual user (or the server) to the client.
type Delivery struct {
	Command string    // PRIVMSG, NOTICE or TAGMSG; "" = PRIVMSG
	From    string    // virtual nick, or "" for the server
	Target  string    // channel name, or "" = the real client
	Text    string    // may hold several lines and be of any length
	Time    time.Time // zero = now; sent as the server-time tag when negotiated
	Tags    irc.Tags  // client-only tags such as +typing; dropped without message-tags

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
// batch, and one by one otherwise. Each Delivery's Time should be set. It
// reports whether all of ds were queued, like Deliver; each Delivery's Sent
// is called as Deliver calls it. Nothing calls it yet: the bouncer's replay
// of missed messages to a client without chathistory will (issue 14).
func (c *Client) DeliverHistory(target string, ds []Delivery) bool {
	if len(ds) == 0 {
		return !c.isClosed()
	}
	c.mu.Lock()
	ok := true
	ref := ""
	if c.caps["batch"] {
		ref = "h" + strconv.FormatUint(batchSeq.Add(1), 36)
		ok = c.emitEntry(entry{m: msg(c.serverPrefix(), "BATCH", "+"+ref, "chathistory", target)})
	}
	var unsent []func(bool)
	for _, d := range ds {
		if ok {
			ok = c.deliver(d, ref)
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

// deliver does Deliver's work; ref is a batch reference or "". It reports
// whether d was queued whole; if not, the caller reports d.Sent. Caller
// holds c.mu.
func (c *Client) deliver(d Delivery, ref string) bool {
	cmd := strings.ToUpper(d.Command)
	switch cmd {
	case "":
		cmd = "PRIVMSG"
	case "PRIVMSG", "NOTICE", "TAGMSG":
	default:
		c.logger().WithField("command", d.Command).Warn("Deliver: unsupported command")
		return false
	}
	if cmd == "TAGMSG" && !c.caps["message-tags"] {
		return c.nothingToSend(d)
	}
	var prefix *irc.Prefix
	if d.From != "" {
		if u := c.findUser(d.From); u != nil {
			prefix = u.prefix()
			u.lastSpoke = c.stamp()
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
	if d.Target != "" {
		ch := c.channel(d.Target)
		if ch == nil || !ch.joined {
			c.logger().WithField("channel", d.Target).Warn("Deliver: client not in channel; sending as notice")
			if cmd == "TAGMSG" {
				return c.nothingToSend(d)
			}
			d.Text = "[" + d.Target + "] <" + prefix.Name + "> " + d.Text
			prefix, cmd = c.serverPrefix(), "NOTICE"
		} else {
			target = ch.name
		}
	}
	var tags irc.Tags // nil while there is none to send
	set := func(k, v string) {
		if tags == nil {
			tags = irc.Tags{}
		}
		tags[k] = v
	}
	if c.caps["message-tags"] {
		for k, v := range d.Tags {
			if strings.HasPrefix(k, "+") && k != "+" {
				set(k, v)
			}
		}
	}
	if c.caps["server-time"] {
		t := d.Time
		if t.IsZero() {
			t = time.Now()
		}
		set("time", t.UTC().Format(timeFormat))
	}
	if ref != "" {
		set("batch", ref)
	}
	if cmd == "TAGMSG" {
		m := msg(prefix, cmd, target)
		m.Tags = tags
		return c.emitEntry(entry{m: m, sent: d.Sent})
	}
	budget := 510 - (len(":") + prefixLen(prefix) + len(" ") + len(cmd) + len(" ") + len(target) + len(" :"))
	pieces := splitText(d.Text, budget)
	if len(pieces) == 0 {
		return c.nothingToSend(d)
	}
	for i, p := range pieces {
		m := msg(prefix, cmd, target, p)
		m.Tags = tags
		e := entry{m: m}
		if i == len(pieces)-1 {
			e.sent = d.Sent
		}
		if !c.emitEntry(e) {
			return false
		}
	}
	return true
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
		for line != "" {
			piece := line
			if len(piece) > max {
				cut := len(truncUTF8(line, max))
				// Between words when that leaves a piece of at least half
				// the budget; else on the budget, so that a long word after
				// a short one never leaves a tiny first piece.
				if sp := strings.LastIndexByte(line[:cut], ' '); sp > 0 && sp+1 >= max/2 {
					cut = sp + 1
				}
				piece = line[:cut]
			}
			line = line[len(piece):]
			out = append(out, open+piece+close)
		}
	}
	return out
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
