// Labeled responses (IRCv3 labeled-response) and the replies that wait for
// the backend.
//
// A command that carries a label tag, from a registered client that
// negotiated labeled-response and batch, has every line queued while it
// runs (through send: numerics, echoes, JOIN bursts, FAILs…) collected
// instead of queued. When it ends they go out labeled: no line gives a
// labeled ACK, one line carries the label, several go in a labeled-response
// batch (or, when the reply is one batch already, such as a chathistory
// one, its BATCH start carries the label). A command whose reply waits for
// the backend (WHOIS with an AsyncWhoisHandler, CHATHISTORY, MARKREAD, a
// JOIN that waits for the read marker) takes the collected lines with it,
// and its whole reply goes out, labeled, when the answer comes; while a
// JOIN's waits, the lines the backend sends wait behind it (holdWorld), so
// that none reaches the client before the channel's JOIN. Labels on
// commands before registration are ignored.
//
// Replies that wait for a HistoryHandler are sent in the order they were
// asked, a quick answer waiting for a slower one asked before it, each
// bounded by Config.HistoryTimeout.

package ircd

import (
	"strings"

	"gopkg.in/irc.v4"
)

// maxLabelLen is the longest label honoured (the spec's limit).
const maxLabelLen = 64

// maxAsyncInFlight bounds the replies one client may have waiting for a
// HistoryHandler; a command beyond it gets 263 RPL_TRYAGAIN.
const maxAsyncInFlight = 16

// replyBuf collects the reply to a labeled command. Guarded by Client.mu.
type replyBuf struct {
	label string
	lines []*irc.Message
	taken bool           // a reply waiting for the backend sends it
	after []*irc.Message // sent unlabeled after the reply (sideEffect)
}

// startReply starts collecting the reply to m if it is labeled. Caller
// holds c.mu.
func (c *Client) startReply(m *irc.Message) *replyBuf {
	if !c.welcomed || !c.caps["labeled-response"] || !c.caps["batch"] {
		return nil
	}
	label := m.Tags["label"]
	if label == "" || len(label) > maxLabelLen {
		return nil
	}
	rb := &replyBuf{label: label}
	c.capture = rb
	return rb
}

// endReply sends the reply collected by startReply, unless a reply waiting
// for the backend took it. Caller holds c.mu.
func (c *Client) endReply(rb *replyBuf) {
	if rb == nil {
		return
	}
	c.capture = nil
	if !rb.taken {
		c.sendLabeled(rb.label, rb.lines)
	}
	for _, m := range rb.after {
		c.enqueue(entry{m: m})
	}
}

// sideEffect queues m unlabeled: after the labeled reply being collected,
// if any (a message to oneself is delivered after its echo, and is no
// reply: labeled-response), else at once. Caller holds c.mu.
func (c *Client) sideEffect(m *irc.Message) {
	if rb := c.capture; rb != nil && !rb.taken {
		rb.after = append(rb.after, m)
		return
	}
	c.enqueue(entry{m: m})
}

// takeReply hands the labeled reply being collected (nil if none) to a
// reply that waits for the backend: it is sent with it. Caller holds c.mu.
func (c *Client) takeReply() *replyBuf {
	rb := c.capture
	if rb != nil {
		rb.taken = true
	}
	return rb
}

// sendReply runs f, which queues the rest of rb's reply, and sends the
// whole reply labeled; with rb nil it only runs f. Caller holds c.mu.
func (c *Client) sendReply(rb *replyBuf, f func()) {
	if rb == nil {
		f()
		return
	}
	prev := c.capture
	c.capture = rb
	f()
	c.capture = prev
	c.sendLabeled(rb.label, rb.lines)
}

// sendLabeled queues lines as the reply labeled label ("" = not labeled).
// Caller holds c.mu.
func (c *Client) sendLabeled(label string, lines []*irc.Message) {
	tag := func(m *irc.Message, k, v string) {
		m.Tags = m.Tags.Copy() // tags may be shared between lines
		m.Tags[k] = v
	}
	switch {
	case label == "":
	case len(lines) == 0:
		lines = []*irc.Message{msg(c.serverPrefix(), "ACK")}
		tag(lines[0], "label", label)
	case len(lines) == 1 || oneBatch(lines):
		tag(lines[0], "label", label)
	default:
		ref := newBatchRef()
		for _, m := range lines {
			if _, inner := m.Tags["batch"]; !inner {
				tag(m, "batch", ref)
			}
		}
		start := msg(c.serverPrefix(), "BATCH", "+"+ref, "labeled-response")
		tag(start, "label", label)
		lines = append(append([]*irc.Message{start}, lines...), msg(c.serverPrefix(), "BATCH", "-"+ref))
	}
	for _, m := range lines {
		if !c.enqueue(entry{m: m}) {
			return
		}
	}
}

// oneBatch reports whether lines are exactly one batch: a BATCH start, its
// lines and its end. Its lines may hold batches nested in it (a multiline
// batch in a chathistory one): their lines belong to it too.
func oneBatch(lines []*irc.Message) bool {
	first, last := lines[0], lines[len(lines)-1]
	if first.Command != "BATCH" || last.Command != "BATCH" || len(first.Params) < 2 || len(last.Params) < 1 {
		return false
	}
	ref := first.Params[0][1:]
	if first.Params[0][0] != '+' || last.Params[0] != "-"+ref {
		return false
	}
	var nested map[string]bool // the batches started inside it
	for _, m := range lines[1 : len(lines)-1] {
		in := m.Tags["batch"]
		if in != ref && !nested[in] {
			return false
		}
		if m.Command == "BATCH" && len(m.Params) > 0 && strings.HasPrefix(m.Params[0], "+") {
			if nested == nil {
				nested = map[string]bool{}
			}
			nested[m.Params[0][1:]] = true
		}
	}
	return true
}

// asyncReq is a reply waiting for a HistoryHandler's answers. Guarded by
// Client.mu.
type asyncReq struct {
	rb       *replyBuf // the labeled reply it completes; nil if unlabeled
	join     bool      // a labeled JOIN's: counted in Client.joinsWaiting
	waiting  int       // answers still to come
	done     bool      // answered, timed out or dropped
	timedOut bool
	stop     func() bool         // stops the timeout
	reply    func(timedOut bool) // queues the reply when its turn comes; c.mu held
}

// await queues a reply that waits for n answers, behind those asked
// before it, and starts its timeout; reply queues its lines when its turn
// comes. It returns nil, having queued nothing, when too many replies wait
// already. Caller holds c.mu.
func (c *Client) await(n int, reply func(timedOut bool)) *asyncReq {
	if len(c.pending) >= maxAsyncInFlight {
		return nil
	}
	r := &asyncReq{rb: c.takeReply(), waiting: n, reply: reply}
	c.pending = append(c.pending, r)
	r.stop = c.srv.afterFunc(c.srv.cfg.HistoryTimeout, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.done {
			return
		}
		r.done, r.timedOut = true, true
		c.logger().Debug("no answer from the backend in time")
		c.sendDue()
	})
	return r
}

// answered records one of r's answers, with record run under c.mu
// reporting whether it counts (false for a second answer to the same
// question), and sends the replies now due. An answer after r timed out
// or the connection ended is ignored. Callers hold no lock.
func (c *Client) answered(r *asyncReq, record func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.done || !record() {
		return
	}
	if r.waiting--; r.waiting > 0 {
		return
	}
	r.done = true
	r.stop()
	c.sendDue()
}

// sendDue sends the waiting replies at the head of the queue that are
// done. Caller holds c.mu.
func (c *Client) sendDue() {
	for len(c.pending) > 0 && c.pending[0].done {
		r := c.pending[0]
		c.pending[0] = nil
		c.pending = c.pending[1:]
		c.sendReply(r.rb, func() { r.reply(r.timedOut) })
		if r.join {
			c.joinsWaiting--
		}
	}
	if len(c.pending) == 0 {
		c.pending = nil
	}
	c.releaseHeld()
}

// dropPending forgets the replies still waiting and stops their timeouts,
// for a connection that ended. Caller holds c.mu.
func (c *Client) dropPending() {
	for _, r := range c.pending {
		r.done = true
		r.stop()
	}
	c.pending, c.joinsWaiting = nil, 0
}

// once returns a record function for answered that counts only its first
// call, which runs f.
func once(f func()) func() bool {
	called := false
	return func() bool {
		if called {
			return false
		}
		called = true
		f()
		return true
	}
}

// tryAgain answers a command refused because too many replies wait.
// Caller holds c.mu.
func (c *Client) tryAgain(cmd string) {
	c.numeric(rplTryAgain, cmd, "Please wait a while and try again.")
}

// fail queues a standard reply FAIL cmd code params…. Caller holds c.mu.
func (c *Client) fail(cmd, code string, params ...string) {
	c.send(msg(c.serverPrefix(), "FAIL", append([]string{cmd, code}, params...)...))
}

// safeParam makes a client's parameter safe to repeat as a middle
// parameter: "*" for one that is empty, starts with ':' or holds a space
// or a control character, and a long one cut.
func safeParam(s string) string {
	if s == "" || s[0] == ':' || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return "*"
	}
	if s = truncUTF8(s, 100); s == "" {
		return "*"
	}
	return s
}
