// Deliveries queued already encoded.
//
// The commonest delivery by far is a buddy's IM to the client: one line,
// from a virtual user, to the client's nick, with at most a batch, msgid
// and time tag. deliverRaw encodes it straight into the queue's chunk, as
// a buddy's JOIN or a numeric is (rawline.go), rather than building its
// tags map, message and line list for the writer to encode again. Anything
// else (several lines, CTCP, a channel, the user's own message, tags from a
// client, a date prefix, a batch's lines) takes lines' general way.

package ircd

import (
	"strings"
	"time"
	"unicode/utf8"
)

// deliverRaw queues d as deliverAs would, when it is one plain line from a
// virtual user; done is false when d is not such a line (nothing was
// queued). Caller holds c.mu, and the client is welcomed.
func (c *Client) deliverRaw(d Delivery, o compose) (ok, done bool) {
	cmd := d.Command
	switch cmd {
	case "", "PRIVMSG":
		cmd = "PRIVMSG"
	case "NOTICE":
	default:
		return false, false
	}
	if d.Self || d.Target != "" || d.From == "" || o.raw || d.Lines != nil {
		return false, false
	}
	u := c.findUser(d.From)
	if u == nil {
		return false, false
	}
	tagsOn, timeOn := c.caps["message-tags"], c.caps["server-time"]
	if tagsOn && len(d.Tags) > 0 {
		return false, false
	}
	if !timeOn && o.past && !d.Time.IsZero() {
		return false, false // a date prefix
	}
	var t lineTags
	if o.ref != "" {
		t.batch = o.ref
	}
	if tagsOn {
		t.msgid = d.MsgID
	}
	var tb [40]byte
	if timeOn {
		at := d.Time
		if at.IsZero() {
			at = time.Now()
		}
		t.time = at.UTC().AppendFormat(tb[:0], timeFormat)
	}
	if !plainTagValue(t.batch) || !plainTagValue(t.msgid) {
		return false, false
	}
	name := u.Nick
	user, host := u.userHost()
	params := [2]string{c.nick, d.Text}
	budget := 510 - (len(":") + len(name) + 1 + len(user) + 1 + len(host) + len(" ") + len(cmd) + len(" ") + len(c.nick) + len(" :"))
	if !plainLine(d.Text, budget) {
		return false, false
	}
	if !o.past {
		u.lastSpoke = c.stamp()
	}
	return c.queueTagged(&t, name, user, host, cmd, params[:], d.Sent), true
}

// plainLine reports whether text goes out as one line unchanged (what
// splitText would return whole): not empty, valid UTF-8 without NUL, CR
// or LF, no CTCP, and within budget bytes.
func plainLine(text string, budget int) bool {
	if text == "" || len(text) > budget || text[0] == '\x01' {
		return false
	}
	// Eight bytes at a time while they are ASCII: a word's bytes are
	// checked at once for NUL, CR and LF (each a zero byte once xored
	// with it). The first word with a byte of 0x80 or more, and the tail,
	// are left to the loop below.
	i := 0
	for ; i+8 <= len(text); i += 8 {
		w := uint64(text[i]) | uint64(text[i+1])<<8 | uint64(text[i+2])<<16 | uint64(text[i+3])<<24 |
			uint64(text[i+4])<<32 | uint64(text[i+5])<<40 | uint64(text[i+6])<<48 | uint64(text[i+7])<<56
		if w&highBits != 0 {
			break
		}
		if hasZeroByte(w) || hasZeroByte(w^('\r'*lowBits)) || hasZeroByte(w^('\n'*lowBits)) {
			return false
		}
	}
	for ; i < len(text); i++ {
		switch b := text[i]; {
		case b == 0 || b == '\r' || b == '\n':
			return false
		case b >= utf8.RuneSelf:
			return utf8.ValidString(text[i:]) && !strings.ContainsAny(text[i:], "\x00\r\n")
		}
	}
	return true
}

// lowBits and highBits are a word's bytes with their lowest and their
// highest bit set.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// hasZeroByte reports whether one of w's bytes is 0. (A zero byte's
// borrow may mark the bytes above it too, but nothing is marked without
// one.)
func hasZeroByte(w uint64) bool { return (w-lowBits)&^w&highBits != 0 }

// plainTagValue reports whether v is written as it is in a tag: no
// character a tag value escapes, and valid UTF-8.
func plainTagValue(v string) bool {
	return !strings.ContainsAny(v, "; \\\r\n") && utf8.ValidString(v)
}

// lineTags are the tags deliverRaw writes, each left out when empty.
type lineTags struct {
	batch, msgid string
	time         []byte // written in timeFormat
}

// len is the length of the tags as written, "@…" and the space after
// them; 0 without tags.
func (t *lineTags) len() int {
	n := 0
	if t.batch != "" {
		n += len(";batch=") + len(t.batch)
	}
	if t.msgid != "" {
		n += len(";msgid=") + len(t.msgid)
	}
	if len(t.time) > 0 {
		n += len(";time=") + len(t.time)
	}
	if n == 0 {
		return 0
	}
	return n + 1 // '@' for the first ';', and the space
}

// appendTo writes the tags as len counts them.
func (t *lineTags) appendTo(b []byte) []byte {
	sep := byte('@')
	if t.batch != "" {
		b = append(append(append(b, sep), "batch="...), t.batch...)
		sep = ';'
	}
	if t.msgid != "" {
		b = append(append(append(b, sep), "msgid="...), t.msgid...)
		sep = ';'
	}
	if len(t.time) > 0 {
		b = append(append(append(b, sep), "time="...), t.time...)
		sep = ';'
	}
	if sep == ';' {
		b = append(b, ' ')
	}
	return b
}
