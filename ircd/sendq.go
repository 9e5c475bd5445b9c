// A connection's outgoing queue: lines wait in it, bounded by SendQ, for
// the writer goroutine (writer.go); the driving API's lines wait for the
// welcome burst (held).

package ircd

import (
	"sync"

	"gopkg.in/irc.v4"
)

// entry is one queued line, a message or a line already encoded (raw, in
// the queue's chunk: see emitLine), and, on the last line of a Delivery,
// its Sent callback. An entry without a line (m and raw nil) only carries
// a callback: a delivery with nothing to write, reported once the lines
// before it are.
type entry struct {
	m    *irc.Message
	raw  []byte
	sent func(ok bool)
}

// lineLen is the length of the entry's line as written, without the CRLF;
// 0 without a line.
func (e *entry) lineLen() int {
	switch {
	case e.raw != nil:
		return len(e.raw)
	case e.m != nil:
		return lineLen(e.m)
	}
	return 0
}

// send queues m without blocking, or adds it to the labeled reply being
// collected. A full queue drops the client. Caller holds c.mu.
func (c *Client) send(m *irc.Message) {
	if c.capture != nil {
		c.capture.lines = append(c.capture.lines, m)
		return
	}
	c.enqueue(entry{m: m})
}

// enqueue queues e without blocking; false if the connection is closing or
// the queue is full, which drops the client. On false the caller still owns
// e.sent.
func (c *Client) enqueue(e entry) bool {
	if !c.admit() {
		return false
	}
	c.push(e)
	c.startWriter()
	c.qmu.Unlock()
	return true
}

// push appends e to the queue, giving it room first when it is full
// (grow). c.qmu held.
func (c *Client) push(e entry) {
	if e.m != nil {
		e.m = fitMessage(e.m)
	}
	if len(c.q) == cap(c.q) {
		c.grow()
	}
	c.q = append(c.q, e)
}

// grow gives a full queue room: an array of keptQueue entries when it has
// none, then one of largeQueue, from their pools when they hold one; past
// that, append grows it. The connection's writer stops whenever the queue
// is empty and lets its arrays go (letGo), so without the pools a burst of
// lines (a login's) would grow a new array from nothing every time the
// writer starts again. c.qmu held.
func (c *Client) grow() {
	switch {
	case cap(c.q) == 0:
		c.q = getSmallQueue()
	case cap(c.q) < largeQueue:
		large := append(getLargeQueue(), c.q...)
		putQueue(c.q)
		c.q = large
	}
}

// letGo lets go of the queue's arrays and chunks when the writer stops
// with nothing queued: an idle connection keeps none; the pools keep them
// for the next burst. c.qmu held.
func (c *Client) letGo() {
	putQueue(c.q)
	putQueue(c.spare)
	c.q, c.spare = nil, nil
	c.dropChunk()
}

// smallQueues and largeQueues hold the queue arrays writers let go, of
// keptQueue and of largeQueue entries. They hold the arrays themselves
// (pointers to them), so that giving one back allocates nothing.
var smallQueues, largeQueues sync.Pool // of *[keptQueue]entry, *[largeQueue]entry

// largeQueue is the size of the queue arrays a burst takes once it
// outgrows keptQueue.
const largeQueue = 256

// getSmallQueue returns an empty queue array of keptQueue entries, from
// smallQueues if it holds one.
func getSmallQueue() []entry {
	if p, _ := smallQueues.Get().(*[keptQueue]entry); p != nil {
		return p[:0]
	}
	return make([]entry, 0, keptQueue)
}

// getLargeQueue is getSmallQueue for largeQueue entries.
func getLargeQueue() []entry {
	if p, _ := largeQueues.Get().(*[largeQueue]entry); p != nil {
		return p[:0]
	}
	return make([]entry, 0, largeQueue)
}

// putQueue gives q's array to its pool, emptied, if it has one of the two
// sizes. Only q's first len(q) entries can hold anything: an array's
// entries are cleared up to its length whenever it is given back
// (giveBack, putQueue), and append writes only past that.
func putQueue(q []entry) {
	clear(q)
	switch cap(q) {
	case keptQueue:
		smallQueues.Put((*[keptQueue]entry)(q[:keptQueue]))
	case largeQueue:
		largeQueues.Put((*[largeQueue]entry)(q[:largeQueue]))
	}
}

// admit takes c.qmu for one more entry in the queue. It returns false,
// without the lock, if the connection is closing or the queue is full,
// which drops the client.
func (c *Client) admit() bool {
	if c.isClosed() {
		return false
	}
	c.qmu.Lock()
	if c.qclosed {
		c.qmu.Unlock()
		return false
	}
	if len(c.q) >= c.srv.cfg.SendQ {
		c.qmu.Unlock()
		c.logger().Warn("sendq exceeded")
		c.srv.met.sendQExceeded()
		c.shutdown("SendQ exceeded", false)
		return false
	}
	return true
}

// report calls the Sent callbacks of es with ok. Callers hold no lock.
func report(es []entry, ok bool) {
	for _, e := range es {
		if e.sent != nil {
			e.sent(ok)
		}
	}
}

// reportLater calls fns with false from a new goroutine, for callbacks
// refused on the caller's goroutine (which may hold its own locks).
func reportLater(fns ...func(bool)) {
	if len(fns) == 0 {
		return
	}
	go func() {
		for _, f := range fns {
			f(false)
		}
	}()
}

// Room is how many more lines the client's SendQ takes now: SendQ minus the
// lines queued, and before the welcome burst minus the lines held for after
// it and the burst itself. It is 0 once the connection is closing. A
// backend pacing a large replay delivers at most Room lines, then waits for
// a Delivery.Sent callback before asking again.
//
// It takes only the queue's lock: what it counts besides the queue is read
// from heldLines and burstQueued, so that a backend asking before each
// delivery does not wait for the client's lock.
func (c *Client) Room() int {
	held := int(c.heldLines.Load())
	if !c.burstQueued.Load() {
		held += c.srv.welcomeBurst()
	}
	c.qmu.Lock()
	n, closed := len(c.q), c.qclosed
	c.qmu.Unlock()
	if closed || c.isClosed() {
		return 0
	}
	return max(0, c.srv.cfg.SendQ-n-held)
}

// take returns the queued messages; the writer hands the slice back with
// giveBack once written.
func (c *Client) take() []entry {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.takeQueued()
}

// takeQueued is take with c.qmu held.
func (c *Client) takeQueued() []entry {
	batch := c.q
	c.q, c.spare = c.spare[:0], nil
	c.full, c.taken = c.taken[:0], c.full // taken was given back with its batch
	return batch
}

// queued is the number of messages waiting for the writer.
func (c *Client) queued() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.q)
}

// keptQueue is the largest queue array kept for reuse once written while
// the writer runs; a burst's larger array is let go, and the writer lets
// go of both when it stops, so an idle connection holds none.
const keptQueue = 64

// giveBack hands back a batch take returned, once written.
func (c *Client) giveBack(batch []entry) {
	clear(batch)
	c.qmu.Lock()
	c.giveBackQueued(batch)
	c.qmu.Unlock()
}

// giveBackQueued is giveBack with c.qmu held, for a batch already
// cleared.
func (c *Client) giveBackQueued(batch []entry) {
	c.linesWritten()
	c.chunksWritten()
	if cap(batch) <= keptQueue {
		c.spare = batch[:0]
	} else {
		putQueue(batch)
	}
}

// emit queues a line produced by the driving API; before the welcome burst
// it is held. Caller holds c.mu.
func (c *Client) emit(m *irc.Message) { c.emitEntry(entry{m: m}) }

// emitEntry is emit for an entry; false if it was refused (the caller still
// owns e.sent). Caller holds c.mu.
func (c *Client) emitEntry(e entry) bool {
	if !c.holdWorld() {
		return c.enqueue(e)
	}
	if c.isClosed() {
		return false
	}
	if len(c.held) >= c.srv.cfg.SendQ {
		c.logger().WithField("welcomed", c.welcomed).Warn("sendq exceeded while lines were held")
		c.srv.met.sendQExceeded()
		c.shutdown("SendQ exceeded", false)
		return false
	}
	c.held = append(c.held, e)
	c.heldLines.Store(int32(len(c.held)))
	return true
}

// holdWorld reports whether the driving API's lines are held (c.held)
// rather than queued: before the welcome, and while a labeled JOIN's reply
// waits for its read markers, so that the client sees the channel's JOIN
// before what the backend sends to it meanwhile. Caller holds c.mu.
func (c *Client) holdWorld() bool { return !c.welcomed || c.joinsWaiting > 0 }

// releaseHeld queues the lines held while a labeled JOIN's reply waited,
// once none waits. Caller holds c.mu.
func (c *Client) releaseHeld() {
	if c.holdWorld() || len(c.held) == 0 {
		return
	}
	if unsent := c.queueHeld(); unsent != nil {
		go report(unsent, false) // c.mu held: not on this goroutine
	}
}

// queueHeld queues the lines held and returns those the queue refused
// (the connection is closing), for their callbacks to be told. Caller
// holds c.mu.
func (c *Client) queueHeld() []entry {
	held := c.held
	c.held = nil
	defer c.heldLines.Store(0) // once queued: see heldLines
	for i, e := range held {
		if !c.enqueue(e) {
			return held[i:]
		}
	}
	return nil
}

// dropHeld empties the lines held (holdWorld) and returns them, for their
// callbacks to be told. Caller holds c.mu.
func (c *Client) dropHeld() []entry {
	held := c.held
	c.held = nil
	c.heldLines.Store(0)
	return held
}
