// The reader goroutine: read deadlines and PING timeouts, the hand-over of
// an idle reader's wait (ReaderRest), a line's checks, and flood control.

package ircd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/msimircd/msimircd/internal/rest"
	"gopkg.in/irc.v4"
)

// readLoop runs the connection's reader (st nil: a new connection) until
// the connection ends, or until it has rested (see ReaderRest) and hands
// its state to a fresh goroutine.
func (c *Client) readLoop(st *readState) {
	defer c.srv.wg.Done()
	if st == nil {
		st = c.newReadState()
		if reason, ok := c.handshake(st.regDeadline); !ok {
			c.endRead(reason)
			return
		}
	}
	reason, rested := c.read(st)
	if rested {
		st.br.idle()
		c.srv.wg.Add(1) // before this one's Done: the count never passes 0
		go c.readLoop(st)
		return
	}
	c.endRead(reason)
}

// Rest asks the reader to hand its wait to a fresh goroutine now (see
// package rest): the read in progress times out, and the reader hands
// over instead of re-arming. A line cut by it is kept, as by any early
// timeout. A TLS handshake in progress is left be (see handshake).
func (c *Client) Rest() {
	if c.handshaking.Load() {
		return
	}
	c.poked.Store(true)
	_ = c.nc.SetReadDeadline(time.Now())
}

// readState is the reader's, kept from line to line.
type readState struct {
	br          *lineReader
	regDeadline time.Time
	lastRead    time.Time
	pingSent    time.Time
	// The deadline moves with every line; the socket's is moved only when
	// it must come sooner or has gone stale by a 64th of the ping interval
	// (moving it costs more than reading a short line). A timeout before
	// the deadline due is not one: it re-arms.
	armed      time.Time
	deadline   time.Time // of the read in progress
	registered bool      // welcomed when a read began (once true, it stays)
	partial    []byte    // a line cut by the deadline
	// rest is the socket's deadline when it is set ReaderRest after a
	// line rather than to the deadline due (zero otherwise); worn: a line
	// was handled since the goroutine began or the rest was armed.
	rest time.Time
	worn bool
}

// ReaderRest is how long a connection's reader, once it has handled a
// line, waits for the next before it hands the wait to a fresh goroutine
// (see package rest for why).
const ReaderRest = rest.Idle

// read runs the reader until the connection ends and returns why. Most
// connections are idle most of the time, their readers waiting in the
// loop below: everything else is done in calls that have returned by
// then (arm, line), so that the waiting stack is small enough for the Go
// runtime to shrink.
//
// It returns rested instead once the reader has rested: its caller hands
// st to a fresh goroutine.
func (c *Client) read(st *readState) (reason string, rested bool) {
	defer c.handLeft() // after the recovery below
	defer func() {
		if r := recover(); r != nil {
			c.logger().WithField("panic", r).Error("reader panicked")
			reason, rested = "Internal error", false
		}
	}()
	for {
		if reason, done := c.arm(st); done {
			return reason, false
		}
		line, err := st.br.ReadSlice()
		if reason, done := c.line(st, line, err); done {
			return reason, reason == ""
		}
	}
}

// handshake runs a TLS connection's handshake before its first read,
// bounded by deadline (the registration's), which bounds its writes too: a
// client that reads nothing would stall them. Rest leaves it be while it
// runs: a read cut short would end the handshake with an error the
// connection keeps, so that every later read would fail at once. The
// writer sets its own write deadline before it writes. false, with the
// reason, if it failed; true at once for a connection that is not TLS.
//
//go:noinline
func (c *Client) handshake(deadline time.Time) (reason string, ok bool) {
	tc, isTLS := c.nc.(*tls.Conn)
	if !isTLS {
		return "", true
	}
	defer c.handshaking.Store(false)
	_ = tc.SetDeadline(deadline)
	switch err := tc.HandshakeContext(c.ctx); {
	case err == nil:
		return "", true
	case isTimeout(err):
		return "Registration timed out", false
	default:
		return "TLS handshake failed", false
	}
}

//go:noinline
func (c *Client) newReadState() *readState {
	st := &readState{br: newLineReader(c.nc, 512+maxTagsLen)}
	st.regDeadline = time.Now().Add(c.srv.cfg.RegistrationTimeout)
	st.lastRead = time.Now()
	return st
}

// arm sets the deadline of the next read; done: the connection is ending.
//
//go:noinline
func (c *Client) arm(st *readState) (reason string, done bool) {
	select {
	case <-c.done:
		return c.reason, true
	default:
	}
	cfg := &c.srv.cfg
	if !st.registered { // once welcomed, always: no lock for every line
		c.mu.Lock()
		st.registered = c.welcomed
		c.mu.Unlock()
	}
	switch {
	case !st.registered:
		st.deadline = st.regDeadline
	case st.pingSent.IsZero():
		st.deadline = st.lastRead.Add(cfg.PingInterval)
	default:
		st.deadline = st.pingSent.Add(cfg.PingTimeout)
	}
	if !st.rest.IsZero() && st.rest.Before(st.deadline) {
		return "", false // a timeout at the rest decides (see line)
	}
	st.rest = time.Time{}
	if st.worn {
		if at := time.Now().Add(ReaderRest); at.Before(st.deadline) {
			_ = c.nc.SetReadDeadline(at)
			st.rest, st.armed, st.worn = at, time.Time{}, false
			return "", false
		}
	}
	if st.deadline.Before(st.armed) || st.deadline.Sub(st.armed) > cfg.PingInterval/64 {
		_ = c.nc.SetReadDeadline(st.deadline)
		st.armed = st.deadline
	}
	return "", false
}

// line handles what a read gave; done: the connection is ending, for
// reason.
//
//go:noinline
func (c *Client) line(st *readState, line []byte, err error) (reason string, done bool) {
	cfg := &c.srv.cfg
	if len(st.partial) > 0 && (err == nil || len(line) > 0) {
		line = append(st.partial, line...)
		st.partial = nil
	}
	if len(line) > 512+maxTagsLen || errors.Is(err, bufio.ErrBufferFull) {
		if c.tracing() {
			c.traceRead(line)
		}
		c.mu.Lock()
		c.numeric(errInputTooLong, "Input line was too long")
		c.mu.Unlock()
		return "Input line was too long", true
	}
	if err != nil && isTimeout(err) {
		if len(line) > 0 { // (a timeout with nothing new keeps the part kept before)
			st.partial = append([]byte(nil), line...) // keep a line cut by the deadline
		}
		rested := !st.rest.IsZero()
		st.rest = time.Time{}
		switch {
		case c.poked.Swap(false) && time.Now().Before(st.deadline):
			st.armed = time.Time{} // the poke moved it: set the deadline due
			return "", true        // hand over (done, no reason)
		case rested && time.Now().Before(st.deadline):
			// No line since the rest was armed: hand over (done, no
			// reason). Otherwise the next arm sets another rest.
			return "", !st.worn
		case time.Now().Before(st.deadline):
			st.armed = time.Time{} // early: set the deadline due
			return "", false
		case !st.registered:
			return "Registration timed out", true
		case st.pingSent.IsZero():
			st.pingSent = time.Now()
			c.enqueue(entry{m: msg(nil, "PING", cfg.ServerName)})
			return "", false
		default:
			return fmt.Sprintf("Ping timeout: %d seconds", int(time.Since(st.lastRead).Seconds())), true
		}
	}
	if err != nil {
		if len(line) > 0 {
			c.handleLine(line) // (nothing read ahead: held Inputs go)
		}
		return "Connection closed", true
	}
	// One clock read for the line's handling: its time is the line's
	// everywhere (the ping timer, idle time, the message's server-time and
	// msgid). Flood control reads its own once the line is handled, the
	// clock a reload retunes it by.
	now := c.srv.now()
	st.lastRead, st.pingSent, st.worn = now, time.Time{}, true
	c.lineAt = now
	ahead := st.br.hasLine() // handleLine reads no further
	c.readAhead = ahead
	c.handleLine(line)
	c.lineAt, c.readAhead = time.Time{}, false
	if !ahead {
		// What was read ahead was no line with a message (a blank one):
		// the next read may wait, and no Input is held while it does.
		c.handInputs(len(c.inputs))
	}
	if !c.throttle() {
		return "Connection closed", true
	}
	return "", false
}

// throttle takes the flood-control token of the line just handled, waiting
// for one if there is none now; false if the connection ended meanwhile.
// A line a multiline batch took costs no token: a client sends a batch at
// once, and the batch is bounded (MultilineMaxLines). A line of no open
// batch, or of a refused one, costs one as any other line.
func (c *Client) throttle() bool {
	batched := c.lineBatched
	c.lineBatched = false
	if c.limiter == nil || batched || c.limiter.Allow() {
		return true
	}
	c.srv.met.floodDelayed()
	c.handInputs(len(c.inputs)) // not held while the reader waits
	if err := c.limiter.Wait(c.ctx); err != nil {
		return false
	}
	if !c.lineAt.IsZero() { // the lines after the wait were read no sooner
		c.lineAt = c.srv.now()
	}
	return true
}

// isTimeout reports whether err is a network timeout. (Its net.Error
// lives here rather than in the read loop, where it would be allocated for
// every line read.)
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handleLine checks one raw line from the client and dispatches it. A bare
// CR ends a line too, as in RFC 1459.
func (c *Client) handleLine(raw []byte) {
	for len(raw) > 0 && (raw[len(raw)-1] == '\n' || raw[len(raw)-1] == '\r') {
		raw = raw[:len(raw)-1] // bytes.TrimRight(raw, "\r\n"), without its set
	}
	first := true
	for len(raw) > 0 {
		seg := raw
		if i := indexLineEnd(raw); i >= 0 {
			seg, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(seg) == 0 {
			continue
		}
		// Each line a bare CR ends costs a token as a read's line does:
		// the one before this one's, here (the read's last is the
		// reader's), so that one read never carries a read's worth of
		// commands past flood control.
		if !first && !c.throttle() {
			return
		}
		first = false
		if c.tracing() {
			c.traceRead(seg)
		}
		if bytes.IndexByte(seg, 0) >= 0 {
			c.handInputs(len(c.inputs))
			c.shutdown("Malformed line (NUL byte)", true)
			return
		}
		c.linesAhead = len(raw) > 0 || c.readAhead // raw ends with a line's text
		plain := c.plainMessage(seg)
		c.linesAhead = false
		if plain {
			select {
			case <-c.done:
				c.handInputs(len(c.inputs))
				return
			default:
			}
			continue
		}
		c.handInputs(len(c.inputs)) // before any other line's effects
		body := seg
		var tags []byte // the line's tags, when it has some
		if seg[0] == '@' {
			if i := bytes.IndexByte(seg, ' '); i >= 0 {
				if i+1 > maxClientTagsLen {
					// Read for its label and batch only: the reply is
					// labeled, and a multiline batch it is part of dropped.
					c.refuseLine(irc.ParseTags(string(seg[1:i])), tooLong)
					continue
				}
				body, tags = seg[i+1:], seg[1:i]
			}
		}
		if len(body) > maxBodyLen {
			c.refuseLine(irc.ParseTags(string(tags)), tooLong)
			continue
		}
		m, err := parseLine(string(seg))
		if err != nil {
			continue // empty command, missing data: ignored like a blank line
		}
		if !utf8.Valid(seg) {
			c.refuseLine(m.Tags, func(c *Client) {
				c.send(msg(c.serverPrefix(), "FAIL", m.Command, "INVALID_UTF8", "Message rejected, your IRC software MUST use UTF-8 encoding on this network"))
			})
			continue
		}
		if len(m.Params) > maxParams {
			// RFC 2812's grammar makes the rest of the line after the
			// 14th middle parameter the 15th: its words, not dropped
			// (ISON's nicks).
			m.Params = append(m.Params[:maxParams-1], strings.Join(m.Params[maxParams-1:], " "))
		}
		c.dispatch(m)
		select {
		case <-c.done:
			return
		default:
		}
	}
}

// indexLineEnd is bytes.IndexAny(b, "\r\n"), the first CR or LF in b
// (-1: none), by two scans for one byte, which are much quicker than
// IndexAny's byte by byte.
func indexLineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	before := b // a CR before the first LF, if any
	if lf >= 0 {
		before = b[:lf]
	}
	if cr := bytes.IndexByte(before, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// refuseLine answers a line refused before it is run (too long, not
// UTF-8) with reply, labeled as a reply to the command it holds when its
// tags (nil: not known) have a label. A line of the multiline batch open
// drops the batch: its message is sent whole or not at all. Callers hold
// no lock.
func (c *Client) refuseLine(tags irc.Tags, reply func(c *Client)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref, batched := tags["batch"]
	b := c.mline
	if !batched || !c.welcomed || b == nil || b.ref != ref {
		// Not a line of the batch open (none, or a batch that is not
		// open): answered, and labeled, as a command of its own.
		rb := c.startReply(&irc.Message{Tags: tags})
		reply(c)
		c.endReply(rb)
		return
	}
	reply(c) // the batch's label is its opening line's
	if !b.failed {
		b.failed, b.text = true, nil
		c.batchFail(b, "MULTILINE_INVALID", "Multiline batch dropped: one of its lines was refused")
	}
}

// tooLong is the reply to a line too long. Caller holds c.mu.
func tooLong(c *Client) { c.numeric(errInputTooLong, "Input line was too long") }
