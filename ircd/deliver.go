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
func (c *Client) Deliver(d Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deliver(d, "")
}

// DeliverHistory sends past messages of one conversation (target: a channel
// or a virtual nick) inside a chathistory batch when the client negotiated
// batch, and one by one otherwise. Each Delivery's Time should be set.
func (c *Client) DeliverHistory(target string, ds []Delivery) {
	if len(ds) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := ""
	if c.caps["batch"] {
		ref = "h" + strconv.FormatUint(batchSeq.Add(1), 36)
		c.emit(msg(c.serverPrefix(), "BATCH", "+"+ref, "chathistory", target))
	}
	for _, d := range ds {
		c.deliver(d, ref)
	}
	if ref != "" {
		c.emit(msg(c.serverPrefix(), "BATCH", "-"+ref))
	}
}

// deliver does Deliver's work; ref is a batch reference or "". Caller holds c.mu.
func (c *Client) deliver(d Delivery, ref string) {
	cmd := strings.ToUpper(d.Command)
	switch cmd {
	case "":
		cmd = "PRIVMSG"
	case "PRIVMSG", "NOTICE", "TAGMSG":
	default:
		c.logger().WithField("command", d.Command).Warn("Deliver: unsupported command")
		return
	}
	if cmd == "TAGMSG" && !c.caps["message-tags"] {
		return
	}
	prefix := c.serverPrefix()
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
	target := c.nick
	if d.Target != "" {
		ch := c.channel(d.Target)
		if ch == nil || !ch.joined {
			c.logger().WithField("channel", d.Target).Warn("Deliver: client not in channel; sending as notice")
			if cmd == "TAGMSG" {
				return
			}
			d.Text = "[" + d.Target + "] <" + prefix.Name + "> " + d.Text
			prefix, cmd = c.serverPrefix(), "NOTICE"
		} else {
			target = ch.name
		}
	}
	tags := irc.Tags{}
	if c.caps["message-tags"] {
		for k, v := range d.Tags {
			if strings.HasPrefix(k, "+") && k != "+" {
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
	}
	if ref != "" {
		tags["batch"] = ref
	}
	if cmd == "TAGMSG" {
		m := msg(prefix, cmd, target)
		m.Tags = tags
		c.emit(m)
		return
	}
	budget := 510 - len(":"+prefix.String()+" "+cmd+" "+target+" :")
	for _, p := range splitText(d.Text, budget) {
		m := msg(prefix, cmd, target, p)
		m.Tags = tags
		c.emit(m)
	}
}

// splitText turns text into pieces of at most max bytes that contain no CR,
// LF or NUL and are valid UTF-8. Lines are split at '\n' (CRLF and lone CR
// count as line breaks) and blank lines are dropped; long lines are cut at
// the last space that fits, else at a character boundary, the space staying
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
				if sp := strings.LastIndexByte(line[:cut], ' '); sp > 0 {
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
