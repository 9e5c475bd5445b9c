// The reader's way for the commonest line by far: a PRIVMSG or NOTICE of
// the plain form "PRIVMSG target :text", without tags or a prefix.

package ircd

import (
	"bytes"
	"strings"
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
	b.Grow(len(rest) + msgIDLen)
	_, _ = b.Write(rest)
	var id [msgIDLen]byte
	_, _ = b.Write(appendMsgID(id[:0], at))
	s := b.String()
	target, text := s[:i], s[i+2:len(rest)]

	c.mu.Lock()
	if !c.welcomed { // run's refusal, on the general way
		c.mu.Unlock()
		return false
	}
	// As run for a line without tags (no batch, no label) runs
	// cmdMessage, whose parameters are all optional, with them.
	lineAt := c.lineAt
	if lineAt.IsZero() {
		c.lineAt = now // message's time is the id's
	}
	c.lineID, c.lineIDAt = s[len(rest):], at
	if err := c.messageTo(cmd, target, text, nil, false); err != nil && cmd != "NOTICE" {
		c.numeric(err.Code, err.Params...)
	}
	c.lineAt, c.lineID = lineAt, ""
	calls := c.calls
	c.calls = nil
	c.mu.Unlock()
	c.afterRun(calls)
	return true
}
