// Lines queued already encoded.
//
// The lines a buddy's arrival and presence send (JOIN, MODE +v, AWAY, PART,
// QUIT, NICK) are the commonest by far at a login: one or two for every
// online contact. They are encoded straight into a chunk of bytes the
// queue holds while its writer runs, instead of being built as a message
// and a prefix each. A login's burst then leaves no small objects behind
// for the collector, only a chunk or two, and the small objects an account
// keeps are not scattered among its burst's garbage.

package ircd

import (
	"sync"

	"gopkg.in/irc.v4"
)

// lineChunkSize is the size of a chunk of encoded lines; a longer line gets
// a chunk of its own size.
const lineChunkSize = 8 << 10

// lineChunk is the encoded lines of some queued entries, each an entry's
// raw slice of b. Entries written, the writer empties the chunk (when no
// queued entry refers to it). A full chunk is set aside (Client.full) and
// a new one takes its place; once the writer has taken every entry that
// refers to it and written them, it goes back to lineChunks, so a burst
// reuses a few chunks rather than leaving one behind for every 8 KiB.
type lineChunk struct{ b []byte }

// lineChunks holds the chunks no entry refers to any more: of writers that
// stopped, and full ones whose lines are written.
var lineChunks = sync.Pool{New: func() any { return &lineChunk{b: make([]byte, 0, lineChunkSize)} }}

// emitLine queues the line ":name!user@host cmd params..." (user and host
// left out when empty, the prefix when name is) as emit would queue
// msg(prefix, cmd, params...): it sends the same bytes. Caller holds c.mu.
func (c *Client) emitLine(name, user, host, cmd string, params ...string) {
	if c.holdWorld() {
		// Held until the welcome or a labeled JOIN's reply: rare, and
		// held entries are not the queue's, so they stay messages.
		var p *irc.Prefix
		if name != "" {
			p = &irc.Prefix{Name: name, User: user, Host: host}
		}
		c.emit(msg(p, cmd, params...))
		return
	}
	c.queueLine(name, user, host, cmd, params)
}

// queueLine queues the line emitLine would, encoded into the queue's
// chunk, without holding it before the welcome. A full queue drops the
// client. Caller holds c.mu.
func (c *Client) queueLine(name, user, host, cmd string, params []string) {
	c.queueTagged(&lineTags{}, name, user, host, cmd, params, nil)
}

// queueTagged queues the line queueLine would, with tags before it and
// sent called once it is written (or with false if it never is); false
// when the queue refused it: the connection is closing, or its SendQ
// overflowed (which drops the client). Caller holds c.mu.
func (c *Client) queueTagged(t *lineTags, name, user, host, cmd string, params []string, sent func(bool)) bool {
	if !c.admit() {
		return false
	}
	n := rawLineLen(name, user, host, cmd, params)
	if n > maxLineBody {
		params = cutParams(n, params)
		n = rawLineLen(name, user, host, cmd, params)
	}
	c.chunkRoom(t.len() + n)
	start := len(c.qc.b)
	c.qc.b = appendRawLine(t.appendTo(c.qc.b), name, user, host, cmd, params)
	end := len(c.qc.b)
	c.push(entry{raw: c.qc.b[start:end:end], sent: sent})
	c.startWriter()
	c.qmu.Unlock()
	return true
}

// chunkRoom makes sure the queue's chunk has n bytes free. c.qmu held.
func (c *Client) chunkRoom(n int) {
	if c.qc == nil {
		c.qc = lineChunks.Get().(*lineChunk)
	}
	if cap(c.qc.b)-len(c.qc.b) < n {
		// Entries queued, or the batch being written, refer to it.
		c.full = append(c.full, c.qc)
		if n <= lineChunkSize {
			c.qc = lineChunks.Get().(*lineChunk)
		} else {
			c.qc = &lineChunk{b: make([]byte, 0, n)}
		}
	}
}

// emitUserLine is emitLine with u as the prefix. Caller holds c.mu.
func (c *Client) emitUserLine(u *vuser, cmd string, params ...string) {
	ident, host := u.userHost()
	c.emitLine(u.Nick, ident, host, cmd, params...)
}

// emitServerLine is emitLine with the server as the prefix. Caller holds
// c.mu.
func (c *Client) emitServerLine(cmd string, params ...string) {
	p := c.serverPrefix()
	c.emitLine(p.Name, p.User, p.Host, cmd, params...)
}

// linesWritten empties the chunk once no queued entry refers to it (the
// writer has written every line taken). c.qmu held.
func (c *Client) linesWritten() {
	if len(c.q) == 0 && c.qc != nil {
		c.qc.b = c.qc.b[:0]
	}
}

// chunksWritten gives the chunks of the batch the writer has written
// back to lineChunks. c.qmu held.
func (c *Client) chunksWritten() {
	putChunks(c.taken...)
	c.taken = c.taken[:0]
}

// putChunks gives chs back to lineChunks, those of the usual size (a
// longer line's own chunk is let go), and forgets them.
func putChunks(chs ...*lineChunk) {
	for i, ch := range chs {
		if ch != nil && cap(ch.b) == lineChunkSize {
			ch.b = ch.b[:0]
			lineChunks.Put(ch)
		}
		chs[i] = nil
	}
}

// dropChunk lets the queue's chunks go when the writer stops with nothing
// queued: those of the usual size go back to the pool, and an idle
// connection holds none. c.qmu held.
func (c *Client) dropChunk() {
	if len(c.q) == 0 { // every line written
		putChunks(c.qc)
		putChunks(c.full...)
		putChunks(c.taken...)
	}
	c.qc, c.full, c.taken = nil, nil, nil
}

// appendRawLine appends the line writeLine would write for msg(prefix,
// cmd, params...) with that prefix, without the CRLF.
func appendRawLine(b []byte, name, user, host, cmd string, params []string) []byte {
	if name != "" {
		b = append(b, ':')
		b = append(b, name...)
		if user != "" {
			b = append(b, '!')
			b = append(b, user...)
		}
		if host != "" {
			b = append(b, '@')
			b = append(b, host...)
		}
		b = append(b, ' ')
	}
	b = append(b, cmd...)
	if len(params) == 0 {
		return b
	}
	for _, a := range params[:len(params)-1] {
		b = append(b, ' ')
		b = append(b, a...)
	}
	last := params[len(params)-1]
	if needsColon(last) {
		b = append(b, " :"...)
	} else {
		b = append(b, ' ')
	}
	return append(b, last...)
}

// rawLineLen is the length of appendRawLine's output.
func rawLineLen(name, user, host, cmd string, params []string) int {
	n := len(cmd)
	if name != "" {
		n += 2 + len(name)
		if user != "" {
			n += 1 + len(user)
		}
		if host != "" {
			n += 1 + len(host)
		}
	}
	for _, a := range params {
		n += 1 + len(a)
	}
	if len(params) > 0 && needsColon(params[len(params)-1]) {
		n++
	}
	return n
}
