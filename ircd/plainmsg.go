// The reader's way for the commonest line by far: a PRIVMSG or NOTICE of
// the plain form "PRIVMSG target :text", without tags or a prefix.

package ircd

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"
)

// plainMessage runs seg (a line without CR, LF or NUL) as handleLine would
// (parseLine, then dispatch) when it is a PRIVMSG or NOTICE of the plain
// form "PRIVMSG target :text": the command in upper case, one space, a
// target word not starting with ':', " :", a text that is not empty, the
// whole valid UTF-8 and within maxBodyLen, from a welcomed client. It
// reports whether it ran it; if not, nothing was done and the line takes
// the general way.
//
// Such a line costs one allocation, where the general way takes three: a
// string holding its target and text, with the msgid its message gets
// (msgID) after them, so the text a backend keeps and its id are one
// object.
func (c *Client) plainMessage(seg []byte) bool {
	var cmd string
	switch {
	case bytes.HasPrefix(seg, []byte("PRIVMSG ")):
		cmd = "PRIVMSG"
	case bytes.HasPrefix(seg, []byte("NOTICE ")):
		cmd = "NOTICE"
	default:
		return false
	}
	rest := seg[len(cmd)+1:]
	i := bytes.IndexByte(rest, ' ') // the target is rest[:i]
	if i <= 0 || rest[0] == ':' || len(rest) <= i+2 || rest[i+1] != ':' ||
		len(seg) > maxBodyLen || !utf8.Valid(rest) {
		return false
	}
	now := c.readTime()
	at := inputTime(now)
	var b strings.Builder
	b.Grow(len(rest) + MsgIDLen)
	_, _ = b.Write(rest)
	var id [MsgIDLen]byte
	_, _ = b.Write(appendMsgID(id[:0], at))
	s := b.String()
	target, text := s[:i], s[i+2:len(rest)]

	held := len(c.inputs)
	calls, ok := c.runPlain(cmd, target, text, s[len(rest):], now, at)
	if !ok {
		return false
	}
	switch {
	case len(calls) > 0: // the held Inputs, then this line's calls and Inputs
		c.handInputs(held)
		c.afterRun(calls)
	case !c.linesAhead || len(c.inputs) >= maxHeldInputs:
		c.handInputs(len(c.inputs))
	}
	// Otherwise they are held: the next line is in hand (see
	// MessagesHandler for when they are handed over).
	return true
}

// runPlain runs a plain message under c.mu as run does cmdMessage for a
// line without tags (no batch, no label): ok is false before the welcome
// (run's refusal, on the general way). The lock and the line's id and time
// are given back by defers, so a panic below leaves them as run's would.
func (c *Client) runPlain(cmd, target, text, id string, now, at time.Time) (calls []func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.welcomed {
		return nil, false
	}
	lineAt := c.lineAt
	defer func() { c.lineAt, c.lineID = lineAt, "" }()
	if lineAt.IsZero() {
		c.lineAt = now // message's time is the id's
	}
	c.lineID, c.lineIDAt = id, at
	if err := c.messageTo(cmd, target, text, nil, false); err != nil && cmd != "NOTICE" {
		c.numeric(err.Code, err.Params...)
	}
	calls = c.calls
	c.calls = nil
	return calls, true
}
