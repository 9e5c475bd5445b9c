// How a connection ends: Close, the final ERROR, the half-close that lets
// the last lines reach the client, and the close once the reader stops.

package ircd

import (
	"fmt"
	"io"
	"time"

	"github.com/msimircd/msimircd/internal/rest"
)

// Close queues ERROR with reason after everything already queued and closes
// the connection. It is idempotent. Lines held behind a labeled JOIN's
// reply were accepted too: they are queued first (the reply itself is
// never sent).
func (c *Client) Close(reason string) {
	c.mu.Lock()
	if c.welcomed && c.joinsWaiting > 0 && !c.isClosed() {
		c.dropPending()
		c.releaseHeld()
	}
	c.mu.Unlock()
	c.shutdown(reason, true)
}

func (c *Client) shutdown(reason string, flush bool) {
	c.closeOnce.Do(func() {
		c.reason = reason
		c.flush = flush
		c.closing.Store(true)
		close(c.done)
		c.cancel()
		if !flush {
			_ = c.nc.SetWriteDeadline(time.Now()) // unblock a stuck write
		}
		// The writer finishes the connection: start it unless it runs.
		// A running one sees done before it stops (it checks under qmu).
		c.qmu.Lock()
		c.startWriter()
		c.qmu.Unlock()
	})
}

// isClosed reports whether the connection has ended (or is ending): nothing
// delivered from now on reaches the client.
func (c *Client) isClosed() bool { return c.closing.Load() }

// lingerWindow bounds how long a closing connection reads the client's
// input after the last line went out.
const lingerWindow = time.Second

// closeConn ends the connection without losing what was written to it. A
// socket closed with unread input makes the kernel reset the connection,
// and the reset drops the lines still on their way to the client (a client
// that flooded its way past its SendQ would never see them, though ircd
// reported them sent). So it half-closes first (the client reads up to the
// final ERROR, then end of stream) and discards the client's input until
// the client closes too, at most lingerWindow.
func (c *Client) closeConn() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(lingerWindow))
		_, _ = io.Copy(io.Discard, c.nc)
	}
	_ = c.nc.Close()
}

// finish writes what is queued (for a graceful close) and the final ERROR,
// bounded by finalWriteWindow; lines it does not write are reported unsent.
// Nothing can be queued after it.
func (c *Client) finish() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(finalWriteWindow))
	c.qmu.Lock()
	batch := c.q
	c.q, c.spare, c.qclosed = nil, nil, true
	c.qc, c.full, c.taken = nil, nil, nil // the batch's lines may be in them
	c.qmu.Unlock()
	if !c.flush {
		report(batch, false)
		batch = batch[:0]
	}
	c.mu.Lock()
	host := c.host
	c.mu.Unlock()
	// The reason may be the backend's text (Close, a refusal): one line.
	batch = append(batch, entry{m: msg(nil, "ERROR", fmt.Sprintf("Closing link: %s (%s)", host, clean(c.reason, TopicLen)))})
	n, _ := c.writeBatch(batch)
	reportWritten(batch, n)
}

// endRead ends the connection once its reader has stopped for reason.
//
//go:noinline
func (c *Client) endRead(reason string) {
	defer c.recoverAndLog()
	defer c.srv.remove(c)
	rest.Remove(c)
	c.closeRead(reason)
}

// closeRead ends the connection once its reader has stopped for reason.
// Apart from readLoop so that its frame is not on the reader's stack
// while the reader waits (see read).
//
//go:noinline
func (c *Client) closeRead(reason string) {
	c.shutdown(reason, true)
	<-c.done
	if c.release != nil {
		c.release()
	}
	c.mu.Lock()
	h := c.handler
	c.handler = nil
	held := c.dropHeld() // nothing can be held after this: c.done is closed
	c.dropWhois()
	c.dropStamp()
	c.dropPending()
	c.mu.Unlock()
	report(held, false)
	if h != nil {
		h.Closed(c.reason)
	}
}
