package ircd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/msimircd/msimircd/internal/deadline"
	"github.com/msimircd/msimircd/internal/maproom"
	"github.com/msimircd/msimircd/internal/rest"
	"github.com/msimircd/msimircd/internal/sortidx"
	"github.com/sirupsen/logrus"
	"golang.org/x/time/rate"
	"gopkg.in/irc.v4"
)

// Numerics that gopkg.in/irc.v4 does not define.
const (
	rplWhoisSpecial  = "320"
	rplCreationTime  = "329"
	rplTopicWhoTime  = "333"
	rplWhoisAccount  = "330"
	rplLocalUsers    = "265"
	rplGlobalUsers   = "266"
	errInputTooLong  = "417"
	errUnknownError  = "400"
	rplEndOfExcepts  = "349"
	rplEndOfInvites  = "347"
	errNoPrivs       = "482"
	maxTagsLen       = 8191 // '@', tags and the space after them, the server's included
	maxClientTagsLen = 4096 // '@', a client's tag data (at most 4094 bytes) and the space
	maxBodyLen       = 510  // the rest of the line without CRLF
	maxParams        = 15
	finalWriteWindow = 2 * time.Second
)

// Client is one real IRC connection and the world of virtual users and
// channels it sees. Its exported methods are the backend's driving API; they
// are safe to call from any goroutine and never block on network I/O.
type Client struct {
	srv    *Server
	nc     net.Conn
	id     uint64          // the connection's number in logs
	ctx    context.Context // cancelled when the connection ends
	cancel context.CancelFunc
	remote net.Addr

	serving *serving    // the Serve that accepted it (nil: none), which closes it when its context ends
	release func()      // uncounts the connection in the server's caps; nil if not counted
	poked   atomic.Bool // Rest was called: the reader hands over at its next timeout

	// Outgoing queue: a slice grown on demand (an idle connection holds no
	// buffer), bounded by SendQ. The writer goroutine runs only while there
	// is something to write (writing): whoever queues onto an idle
	// connection starts it, and it ends once the queue is empty, so an idle
	// connection holds no writer. qclosed is set once the writer has taken
	// the queue for the last time.
	qmu       sync.Mutex
	q, spare  []entry
	qc        *lineChunk // the encoded lines of entries queued (rawline.go)
	qclosed   bool
	writing   bool
	noWriter  bool // tests that drain the queue themselves (take) start no writer
	done      chan struct{}
	closeOnce sync.Once
	reason    string // why the connection closed; written before done is closed
	flush     bool   // whether to flush the queue before the final ERROR

	// The chunks that filled up while entries queued (full) or the batch
	// the writer has taken (taken) refer to them: they go back to
	// lineChunks once that batch is written (rawline.go).
	full, taken []*lineChunk

	limiter *rate.Limiter // nil = no flood control; SetFlood may retune it
	// lineAt is when the reader read the line it is handling (zero
	// between lines): the reader goroutine's, which dispatches the line.
	lineAt time.Time
	// lineBatched says the line just handled went into a multiline batch
	// that took it (the reader goroutine's, as lineAt).
	lineBatched bool
	cw          countingWriter // the writer goroutine's byte count of a batch
	// wdl is the writer goroutine's write deadline. shutdown's cut of a
	// stuck write goes around it: a write after that fails at once, and
	// finish sets its own deadline.
	wdl deadline.Write

	mu         sync.Mutex // guards everything below
	nick       string
	user       string
	userClient string // what followed a '/' in USER's user name ("phone" of alice/phone)
	realName   string
	host       string
	pass       string
	account    string
	saslPass   string // the password SASL accepted for account, until registration
	capVersion int
	caps       map[string]bool
	capBlock   bool // CAP LS/REQ seen before registration: wait for CAP END
	sasl       saslState
	connecting bool // Backend.Connect in progress or done
	welcomed   bool // 001 sent; driving-API lines are held until then
	held       []entry
	handler    Handler
	away       string
	umodes     string
	signon     time.Time
	lastActive time.Time
	users      sortidx.Index[*vuser, string] // by nick, case folded (cmpUser)
	room       maproom.Room[vuser]           // made by Reserve for the next virtual users
	aways      awayTexts                     // the virtual users' away texts
	lastUserID uint32                        // the id of the last virtual user added
	chans      map[string]*vchan             // by foldCase(name)
	monitor    monitored                     // MONITOR's list; nil while empty
	mline      *mlBatch                      // the multiline batch being received, if any
	calls      []func()                      // backend calls to make after unlocking
	// inputs are the handler's Message calls the command being run
	// queued, made after unlocking (after calls) without a closure each;
	// inputsTo is the handler then. The reader goroutine's alone.
	inputs   []Input
	inputsTo Handler
	whois    []*whoisReq // WHOIS replies waiting, in the order asked
	pending  []*asyncReq // replies waiting for a HistoryHandler, in the order asked
	capture  *replyBuf   // the labeled reply being collected (labeled.go)
}

// ircError is a numeric error reply. The dispatcher prefixes the nick.
type ircError struct {
	Code   string
	Params []string
}

func (e *ircError) Error() string { return e.Code + " " + strings.Join(e.Params, " ") }

func newErr(code string, params ...string) *ircError { return &ircError{code, params} }

func newClient(ctx context.Context, s *Server, nc net.Conn) *Client {
	id := s.nextID.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	c := &Client{
		srv:    s,
		nc:     nc,
		ctx:    ctx,
		cancel: cancel,
		remote: nc.RemoteAddr(),
		id:     id,
		done:   make(chan struct{}),
		caps:   make(map[string]bool),
		users:  sortidx.New(cmpUser),
		chans:  make(map[string]*vchan),
		nick:   "*",
		host:   hostOf(nc.RemoteAddr()),
		signon: time.Now(),
	}
	c.lastActive = c.signon
	c.limiter = s.newLimiter()
	return c
}

// logger is the connection's log entry. It is built when something is
// logged (rarely) rather than kept in every connection.
func (c *Client) logger() *logrus.Entry {
	return c.srv.log.WithFields(logrus.Fields{"conn": c.id, "remote": c.remote.String()})
}

// recoverAndLog ends a panic of one of the connection's goroutines with a
// log line instead of the process; defer it directly.
func (c *Client) recoverAndLog() {
	if r := recover(); r != nil {
		c.logger().WithField("panic", r).Error("connection goroutine panicked")
	}
}

func hostOf(a net.Addr) string {
	h := a.String()
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "" || h[0] == ':' {
		h = "0" + h
	}
	return h
}

// Close queues ERROR with reason after everything already queued and closes
// the connection. It is idempotent.
func (c *Client) Close(reason string) { c.shutdown(reason, true) }

func (c *Client) shutdown(reason string, flush bool) {
	c.closeOnce.Do(func() {
		c.reason = reason
		c.flush = flush
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

// startWriter starts the writer goroutine unless it is running. c.qmu held.
func (c *Client) startWriter() {
	if c.writing || c.qclosed || c.noWriter {
		return
	}
	c.writing = true
	go c.writeLoop()
}

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
		c.q = getQueue(&smallQueues, keptQueue)
	case cap(c.q) < largeQueue:
		large := append(getQueue(&largeQueues, largeQueue), c.q...)
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
// keptQueue and of largeQueue entries.
var smallQueues, largeQueues sync.Pool // of *[]entry

// largeQueue is the size of the queue arrays a burst takes once it
// outgrows keptQueue.
const largeQueue = 256

// getQueue returns an empty queue array from pool, or a new one of size.
func getQueue(pool *sync.Pool, size int) []entry {
	if p, _ := pool.Get().(*[]entry); p != nil {
		return (*p)[:0]
	}
	return make([]entry, 0, size)
}

// putQueue gives q's array to its pool, emptied, if it has one of the two
// sizes. Only q's first len(q) entries can hold anything: an array's
// entries are cleared up to its length whenever it is given back
// (giveBack, putQueue), and append writes only past that.
func putQueue(q []entry) {
	clear(q)
	q = q[:0]
	switch cap(q) {
	case keptQueue:
		smallQueues.Put(&q)
	case largeQueue:
		largeQueues.Put(&q)
	}
}

// admit takes c.qmu for one more entry in the queue. It returns false,
// without the lock, if the connection is closing or the queue is full,
// which drops the client.
func (c *Client) admit() bool {
	select {
	case <-c.done:
		return false
	default:
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
func (c *Client) Room() int {
	c.mu.Lock()
	held := len(c.held)
	if !c.welcomed {
		held += c.srv.welcomeBurst()
	}
	c.mu.Unlock()
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

func (c *Client) giveBack(batch []entry) {
	clear(batch)
	c.qmu.Lock()
	c.linesWritten()
	c.chunksWritten()
	if cap(batch) <= keptQueue {
		c.spare = batch[:0]
	} else {
		putQueue(batch)
	}
	c.qmu.Unlock()
}

// isClosed reports whether the connection has ended (or is ending): nothing
// delivered from now on reaches the client.
func (c *Client) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// emit queues a line produced by the driving API; before the welcome burst
// it is held. Caller holds c.mu.
func (c *Client) emit(m *irc.Message) { c.emitEntry(entry{m: m}) }

// emitEntry is emit for an entry; false if it was refused (the caller still
// owns e.sent). Caller holds c.mu.
func (c *Client) emitEntry(e entry) bool {
	if c.welcomed {
		return c.enqueue(e)
	}
	if c.isClosed() {
		return false
	}
	if len(c.held) >= c.srv.cfg.SendQ {
		c.logger().Warn("sendq exceeded before registration completed")
		c.srv.met.sendQExceeded()
		c.shutdown("SendQ exceeded", false)
		return false
	}
	c.held = append(c.held, e)
	return true
}

// dropHeld empties the lines held for after the welcome and returns them,
// for their callbacks to be told. Caller holds c.mu.
func (c *Client) dropHeld() []entry {
	held := c.held
	c.held = nil
	return held
}

// A message and its parameters, allocated together, sized by their number
// (the lines ircd sends have one to four). Each slice is full, so an
// append to a message's parameters copies them elsewhere.
type (
	msgParams1 struct {
		m irc.Message
		p [1]string
	}
	msgParams2 struct {
		m irc.Message
		p [2]string
	}
	msgParams3 struct {
		m irc.Message
		p [3]string
	}
	msgParams4 struct {
		m irc.Message
		p [4]string
	}
)

// msg builds a message with prefix (shared, never changed once in a
// message) and a copy of params.
func msg(prefix *irc.Prefix, cmd string, params ...string) *irc.Message {
	var m *irc.Message
	var p []string
	switch n := len(params); {
	case n == 0:
		return &irc.Message{Prefix: prefix, Command: cmd}
	case n == 1:
		mp := &msgParams1{}
		m, p = &mp.m, mp.p[:]
	case n == 2:
		mp := &msgParams2{}
		m, p = &mp.m, mp.p[:]
	case n == 3:
		mp := &msgParams3{}
		m, p = &mp.m, mp.p[:]
	case n == 4:
		mp := &msgParams4{}
		m, p = &mp.m, mp.p[:]
	default:
		return &irc.Message{Prefix: prefix, Command: cmd, Params: append([]string(nil), params...)}
	}
	copy(p, params)
	m.Prefix, m.Command, m.Params = prefix, cmd, p
	return m
}

// serverPrefix is the server's prefix, shared by every line.
func (c *Client) serverPrefix() *irc.Prefix { return c.srv.prefix }

// selfPrefix is the real client's nick!user@host. Caller holds c.mu.
func (c *Client) selfPrefix() *irc.Prefix {
	return &irc.Prefix{Name: c.nick, User: c.user, Host: c.host}
}

// numeric queues a numeric reply to the client, encoded straight into the
// queue's chunk unless a labeled reply is being collected (which keeps
// messages). Caller holds c.mu.
func (c *Client) numeric(code string, params ...string) {
	var room [numericRoom]string // on the stack: msg copies, queueLine encodes
	params = append(append(room[:0], c.nick), params...)
	for i := 1; i < len(params)-1; i++ { // the client's words repeated, often
		params[i] = middleParam(params[i])
	}
	p := c.serverPrefix()
	if c.capture != nil {
		c.send(msg(p, code, params...))
		return
	}
	c.queueLine(p.Name, p.User, p.Host, code, params)
}

// middleParam is s as a middle parameter of a line: "*" when s could not be
// one (empty, starting with ':', or holding a space or a line's end), so
// that a client's odd target never shifts a numeric's parameters.
func middleParam(s string) string {
	if s == "" || s[0] == ':' || strings.ContainsAny(s, " \r\n\x00") {
		return "*"
	}
	return s
}

// numericRoom is how many parameters, the nick included, a numeric has
// room for on the stack (RPL_WHOREPLY's eight; RPL_ISUPPORT's longer
// lines, once per connection, allocate). The reader's stack holds it.
const numericRoom = 8

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
	defer func() {
		if r := recover(); r != nil {
			c.logger().WithField("panic", r).Error("connection goroutine panicked")
			c.shutdown("Internal error", false)
			c.qmu.Lock()
			c.qclosed = true // no writer starts again; this one closes
			c.qmu.Unlock()
		}
	}()
	for {
		c.qmu.Lock()
		if len(c.q) == 0 {
			select {
			case <-c.done:
			default:
				c.writing = false
				c.letGo()
				c.qmu.Unlock()
				final = false
				return
			}
		}
		c.qmu.Unlock()
		select {
		case <-c.done:
			c.finish()
			return
		default:
		}
		batch := c.take()
		c.wdl.Arm(c.nc, time.Now(), c.srv.cfg.WriteTimeout)
		n, err := c.writeBatch(batch)
		reportWritten(batch, n)
		c.giveBack(batch)
		if err != nil {
			c.shutdown("Write error: "+err.Error(), false)
			c.finish()
			return
		}
	}
}

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
	batch = append(batch, entry{m: msg(nil, "ERROR", fmt.Sprintf("Closing link: %s (%s)", host, c.reason))})
	n, _ := c.writeBatch(batch)
	reportWritten(batch, n)
}

// readLoop runs the connection's reader (st nil: a new connection) until
// the connection ends, or until it has rested (see ReaderRest) and hands
// its state to a fresh goroutine.
func (c *Client) readLoop(st *readState) {
	defer c.srv.wg.Done()
	if st == nil {
		st = c.newReadState()
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

// endRead ends the connection once its reader has stopped for reason.
//
//go:noinline
func (c *Client) endRead(reason string) {
	defer c.recoverAndLog()
	defer c.srv.remove(c)
	rest.Remove(c)
	c.closeRead(reason)
}

// Rest asks the reader to hand its wait to a fresh goroutine now (see
// package rest): the read in progress times out, and the reader hands
// over instead of re-arming. A line cut by it is kept, as by any early
// timeout.
func (c *Client) Rest() {
	c.poked.Store(true)
	_ = c.nc.SetReadDeadline(time.Now())
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
	held := c.dropHeld() // never welcomed: nothing can be held after this
	c.dropWhois()
	c.dropPending()
	c.mu.Unlock()
	report(held, false)
	if h != nil {
		h.Closed(c.reason)
	}
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
			c.handleLine(line)
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
	c.handleLine(line)
	c.lineAt = time.Time{}
	// A line a multiline batch took costs no token: a client sends a batch
	// at once, and the batch is bounded (MultilineMaxLines). A line of no
	// open batch, or of a refused one, costs one as any other line.
	batched := c.lineBatched
	c.lineBatched = false
	if c.limiter != nil && !batched && !c.limiter.Allow() { // no token now: wait for one
		c.srv.met.floodDelayed()
		if err := c.limiter.Wait(c.ctx); err != nil {
			return "Connection closed", true
		}
	}
	return "", false
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
	raw = bytes.TrimRight(raw, "\r\n")
	for len(raw) > 0 {
		seg := raw
		if i := bytes.IndexAny(raw, "\r\n"); i >= 0 {
			seg, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if len(seg) == 0 {
			continue
		}
		if c.tracing() {
			c.traceRead(seg)
		}
		if bytes.IndexByte(seg, 0) >= 0 {
			c.shutdown("Malformed line (NUL byte)", true)
			return
		}
		body := seg
		if seg[0] == '@' {
			if i := bytes.IndexByte(seg, ' '); i >= 0 {
				if i+1 > maxClientTagsLen {
					c.tooLong()
					continue
				}
				body = seg[i+1:]
			}
		}
		if len(body) > maxBodyLen {
			c.tooLong()
			continue
		}
		m, err := parseLine(string(seg))
		if err != nil {
			continue // empty command, missing data: ignored like a blank line
		}
		if !utf8.Valid(seg) {
			c.mu.Lock()
			c.send(msg(c.serverPrefix(), "FAIL", m.Command, "INVALID_UTF8", "Message rejected, your IRC software MUST use UTF-8 encoding on this network"))
			c.mu.Unlock()
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

func (c *Client) tooLong() {
	c.mu.Lock()
	c.numeric(errInputTooLong, "Input line was too long")
	c.mu.Unlock()
}

// dispatch runs one command under c.mu, then the backend calls it queued.
func (c *Client) dispatch(m *irc.Message) {
	for _, f := range c.run(m) {
		f()
	}
	if len(c.inputs) > 0 {
		h := c.inputsTo
		for i := range c.inputs {
			h.Message(c.inputs[i])
			c.inputs[i] = Input{}
		}
		c.inputs, c.inputsTo = c.inputs[:0], nil
	}
}

func (c *Client) run(m *irc.Message) []func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref, ok := m.Tags["batch"]; ok && c.welcomed && m.Command != "BATCH" {
		// A line of a multiline batch, run at its end.
		c.lineBatched = c.batchLine(m, ref)
		return nil
	}
	rb := c.startReply(m)
	cmd, ok := commands[m.Command]
	var err *ircError
	switch {
	case !c.welcomed && !(ok && cmd.preReg):
		err = newErr(irc.ERR_NOTREGISTERED, "You have not registered")
	case !ok:
		err = newErr(irc.ERR_UNKNOWNCOMMAND, m.Command, "Unknown command")
	case len(m.Params) < cmd.min:
		err = newErr(irc.ERR_NEEDMOREPARAMS, m.Command, "Not enough parameters")
	default:
		err = cmd.fn(c, m)
	}
	if err != nil {
		c.numeric(err.Code, err.Params...)
	}
	c.endReply(rb)
	calls := c.calls
	c.calls = nil
	return calls
}

// later queues a backend call to run after c.mu is released. Caller holds c.mu.
func (c *Client) later(f func()) { c.calls = append(c.calls, f) }

// withHandler queues a call to the handler if the client is connected.
// Caller holds c.mu.
func (c *Client) withHandler(f func(Handler)) {
	if h := c.handler; h != nil {
		c.later(func() { f(h) })
	}
}
