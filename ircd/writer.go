// The writer goroutine: it runs while a connection has lines queued and
// writes them to the socket in batches.

package ircd

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"time"

	"gopkg.in/irc.v4"
)

// startWriter starts the writer goroutine unless it is running. c.qmu held.
func (c *Client) startWriter() {
	if c.writing || c.qclosed || c.noWriter {
		return
	}
	c.writing = true
	go c.writeLoop()
}

// writeBufs holds the write buffers. A connection takes one only
// while it writes a batch, so an idle connection holds none.
var writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// countingWriter counts the bytes the socket accepted.
type countingWriter struct {
	w net.Conn
	n int64
}

func (cw *countingWriter) Write(b []byte) (int, error) {
	n, err := cw.w.Write(b)
	cw.n += int64(n)
	return n, err
}

// writeBatch writes msgs to the socket in as few writes as the buffer
// allows, then flushes. It returns how many leading entries the socket took
// whole: all of them unless it fails, and after a failure (a write deadline
// cutting a stalled write short) those written before it, which the client
// may well receive.
func (c *Client) writeBatch(msgs []entry) (int, error) {
	cw := &c.cw
	cw.w, cw.n = c.nc, 0
	bw := writeBufs.Get().(*bufio.Writer)
	bw.Reset(cw)
	defer func() {
		bw.Reset(nil) // forget the socket and any error
		writeBufs.Put(bw)
		cw.w = nil
	}()
	if c.tracing() {
		c.traceWritten(msgs)
	}
	var err error
	for _, e := range msgs {
		switch {
		case e.raw != nil:
			_, _ = bw.Write(e.raw)
		case e.m != nil:
			writeLine(bw, e.m) // m.String() would build the line in a buffer of its own
		default:
			continue
		}
		if _, err = bw.WriteString("\r\n"); err != nil {
			break
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		return len(msgs), nil
	}
	var end int64
	for i, e := range msgs {
		if e.m != nil || e.raw != nil {
			end += int64(e.lineLen() + 2)
		}
		if end > cw.n {
			return i, err
		}
	}
	return len(msgs), err
}

// writeLine writes m as irc.Message.String renders it, without the CRLF.
func writeLine(bw *bufio.Writer, m *irc.Message) {
	if len(m.Tags) > 0 {
		_ = bw.WriteByte('@')
		_, _ = bw.WriteString(m.Tags.String())
		_ = bw.WriteByte(' ')
	}
	if p := m.Prefix; p != nil && p.Name != "" {
		_ = bw.WriteByte(':')
		_, _ = bw.WriteString(p.Name)
		if p.User != "" {
			_ = bw.WriteByte('!')
			_, _ = bw.WriteString(p.User)
		}
		if p.Host != "" {
			_ = bw.WriteByte('@')
			_, _ = bw.WriteString(p.Host)
		}
		_ = bw.WriteByte(' ')
	}
	_, _ = bw.WriteString(m.Command)
	if len(m.Params) == 0 {
		return
	}
	for _, a := range m.Params[:len(m.Params)-1] {
		_ = bw.WriteByte(' ')
		_, _ = bw.WriteString(a)
	}
	last := m.Params[len(m.Params)-1]
	if needsColon(last) {
		_, _ = bw.WriteString(" :")
	} else {
		_ = bw.WriteByte(' ')
	}
	_, _ = bw.WriteString(last)
}

// needsColon reports whether a last parameter must be written as a
// trailing one (" :"), as irc.Message.String decides.
func needsColon(last string) bool {
	return last == "" || last[0] == ':' || strings.IndexByte(last, ' ') >= 0
}

// lineLen is the length of writeLine's output for m.
func lineLen(m *irc.Message) int {
	n := bodyLen(m)
	if len(m.Tags) > 0 {
		n += 2 + len(m.Tags.String())
	}
	return n
}

// bodyLen is lineLen without the tags: what counts against a line's 512
// bytes.
func bodyLen(m *irc.Message) int {
	n := len(m.Command)
	if p := m.Prefix; p != nil && p.Name != "" {
		n += 2 + prefixLen(p)
	}
	for _, a := range m.Params {
		n += 1 + len(a)
	}
	if len(m.Params) > 0 && needsColon(m.Params[len(m.Params)-1]) {
		n++
	}
	return n
}

// prefixLen is the length of p.String().
func prefixLen(p *irc.Prefix) int {
	n := len(p.Name)
	if p.User != "" {
		n += 1 + len(p.User)
	}
	if p.Host != "" {
		n += 1 + len(p.Host)
	}
	return n
}

// reportWritten reports the first n entries of batch sent, the rest not.
func reportWritten(batch []entry, n int) {
	report(batch[:n], true)
	report(batch[n:], false)
}

// writeLoop writes the queue until it is empty, then ends; once the
// connection is closing it finishes it (the final ERROR, the close) and
// counts the connection's writer done in the server's WaitGroup. Only one
// runs at a time (c.writing).
func (c *Client) writeLoop() {
	final := true // until it ends with the queue empty and the connection open
	defer func() {
		if final {
			c.closeConn()
			c.srv.wg.Done()
		}
	}()
	qlocked := false // whether this goroutine holds c.qmu
	defer func() {
		if r := recover(); r != nil {
			if qlocked {
				c.qmu.Unlock()
			}
			c.logger().WithField("panic", r).Error("connection goroutine panicked")
			c.shutdown("Internal error", false)
			c.qmu.Lock()
			c.qclosed = true // no writer starts again; this one closes
			c.qmu.Unlock()
		}
	}()
	// The queue's lock is taken once a batch: to give the batch written
	// back, see whether there is more and take it.
	c.qmu.Lock()
	qlocked = true
	for {
		if len(c.q) == 0 {
			select {
			case <-c.done:
			default:
				c.writing = false
				c.letGo()
				qlocked = false
				c.qmu.Unlock()
				final = false
				return
			}
		}
		select {
		case <-c.done:
			qlocked = false
			c.qmu.Unlock()
			c.finish()
			return
		default:
		}
		batch := c.takeQueued()
		qlocked = false
		c.qmu.Unlock()
		c.wdl.Arm(c.nc, time.Now(), c.srv.cfg.WriteTimeout)
		n, err := c.writeBatch(batch)
		reportWritten(batch, n)
		clear(batch)
		c.qmu.Lock()
		qlocked = true
		c.giveBackQueued(batch)
		if err != nil {
			qlocked = false
			c.qmu.Unlock()
			c.shutdown("Write error: "+err.Error(), false)
			c.finish()
			return
		}
	}
}
