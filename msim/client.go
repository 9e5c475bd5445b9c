package msim

// The client side of a session: Dial logs in and returns a *Client whose
// state is shared by the goroutines it owns, one to three:
//
//   - the reader decodes everything the server sends. It hands persist
//     replies straight to the request waiting for them (never through the
//     event queue), applies presence to the contact table, and appends
//     events to an internal queue. It never blocks on the owner. Once it
//     has rested (ReaderRest without a message), or when asked (Rest), it
//     hands its wait to a fresh goroutine, whose stack is the smallest.
//   - the writer drains a bounded queue of encoded messages onto the socket,
//     in batches, each write under a deadline. It runs only while there is
//     something to write: whoever queues onto an empty queue starts it, and
//     it ends once the queue is empty (one at a time, c.writing), so an idle
//     session has no writer. It alone knows which IMs reached the socket:
//     once the link is down it (started by down if none runs) drains what
//     is left of the queue and queues the DisconnectedEvent, with the IMs
//     never sent and those written too shortly before the loss to be sure
//     of.
//   - the pump (only without ClientConfig.Notify) moves queued events into
//     the Events channel, in order, and closes it after the final
//     DisconnectedEvent. With Notify there is no pump: whoever queues an
//     event calls Notify, and the owner takes the queue with TakeEvents.
//
// Nothing else holds a goroutine while the session is idle: timeouts are
// socket deadlines and timers.
//
// The owner calls the methods from one goroutine (calls from several are also
// safe). Shared state (request table, profile, contacts) sits behind c.mu;
// the event queue behind c.qmu. The link goes down exactly once (c.down),
// which closes c.done: every waiter and sender selects on it. Senders hold
// c.smu shared while they put a message in the queue, so that the writer,
// taking it exclusively after c.done, sees every message that got in.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/internal/deadline"
	"github.com/msimircd/msimircd/internal/rest"
	"github.com/sirupsen/logrus"
)

// StatusInvisible is a client-side presence: "appear offline". It is sent on
// the wire as 0, so others see the user as offline.
const StatusInvisible Status = -1

// Client defaults.
const (
	DefaultDialTimeout    = 30 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultDeadAfter      = 180 * time.Second // the spec's liveness figure
	DefaultEventQueue     = 64
	DefaultEventBacklog   = 65536
	// DefaultEventBacklogBytes is the default of
	// ClientConfig.EventBacklogBytes: several times what the largest
	// mailbox msimd hands over at login (its offline caps, with the room
	// it makes past them for IMs it cannot refuse) costs as events.
	DefaultEventBacklogBytes = 64 << 20
	// DefaultUnconfirmedWindow is how long before a link loss a written IM
	// is reported as possibly lost (MSIM has no delivery receipts).
	DefaultUnconfirmedWindow = 5 * time.Second
	writeTimeout             = 15 * time.Second
	outQueue                 = 64
	closeGrace               = 2 * time.Second // how long Close waits to flush logout
	batchSize                = 4 << 10         // the writer writes once this much is gathered, or the queue is empty
	recentIMs                = 64              // written IMs kept for DisconnectedEvent.Unconfirmed
)

// ClientConfig configures Dial.
type ClientConfig struct {
	Addr            string // host:port
	Email, Password string
	Status          Status // initial presence; the zero value means StatusOnline
	StatusText      string
	// ChooseUserName is called when the account has no user name yet (lc 2
	// uniquenick == uid). It returns the name to claim; an error declines,
	// and the login fails with ErrNoUserName. nil ⇒ ErrNoUserName. When a
	// name is taken it is called again with a new suggestion (at most
	// three attempts in all).
	ChooseUserName func(ctx context.Context, suggested string) (string, error)
	// DialTimeout bounds the connect and the handshake up to lc 2 (default
	// 30s). After lc 2 the login's setup fails once the server has sent
	// nothing for this long: a server delivering a long backlog of offline
	// IMs before its replies is busy, not stuck, and dropping the link then
	// would lose the IMs it has already handed over. A login still fails,
	// however busy the server, after the longer of DeadAfter and ten times
	// DialTimeout (Dial then returns once the link is closed, which may
	// take the logout's grace of a few seconds).
	DialTimeout    time.Duration
	RequestTimeout time.Duration // persist replies: a request fails once the server sent nothing for this long after it; default 30s
	DeadAfter      time.Duration // no bytes received for this long ⇒ disconnected; default 180s
	EventQueue     int           // buffer of the Events channel; default 64 (the backlog beyond it is EventBacklog); unused with Notify
	// EventBacklog caps the events received but not yet taken by the
	// owner (with Events, beyond the channel's buffer; with Notify, all the
	// events TakeEvents has not yet returned). Overflow ends the session
	// with DisconnectOverflow. Default 65536.
	EventBacklog int
	// EventBacklogBytes caps the events received but not yet taken by the
	// owner by size (with Events, those in the channel's buffer too):
	// their texts and a fixed overhead each (see eventBytes). Overflow
	// ends the session as the count's does (an event alone is queued
	// whatever its size). It is what a server can make the client hold
	// while its owner takes nothing, as during Dial; the default,
	// DefaultEventBacklogBytes, is far above what a full mailbox of
	// offline IMs costs.
	EventBacklogBytes int
	// Notify, when set, replaces the Events channel: the client runs no
	// goroutine to deliver events. Each time events are queued, Notify is
	// called, and the owner collects them with TakeEvents.
	//
	// Notify is called on the client's reader or writer goroutine, or on
	// the goroutine of a method that produces an event (AddBuddy, Profile…),
	// possibly before Dial returns (events of the login) and even if Dial
	// then fails. It must return at once, never block and never call the
	// Client: the reader waits for it, and persist replies wait for the
	// reader. It may be called many times for one TakeEvents; coalescing is
	// the owner's business (a non-blocking send on a channel with a buffer
	// of one is enough, since every queued event is followed by a call).
	// It is not called after Close returns.
	Notify func()
	// UnconfirmedWindow: IMs written to the socket this long or less before
	// the link was lost are reported in DisconnectedEvent.Unconfirmed.
	// Default DefaultUnconfirmedWindow; negative: none are reported.
	UnconfirmedWindow time.Duration
	// Now is the clock that stamps OutgoingIM times and measures
	// UnconfirmedWindow; nil means time.Now.
	Now func() time.Time
	Log *logrus.Entry

	// Dial makes the connection; nil: a net.Dialer over TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// Test seam: how long Close waits for the logout to be flushed (0:
	// closeGrace).
	closeGrace time.Duration
	// Test seam: the longest a login may take after lc 2, however busy the
	// server (0: the longer of DeadAfter and ten times DialTimeout).
	loginLimit time.Duration
	// Test seam: the bound of persist replies (0: maxReplyBytes).
	replyLimit int
}

func (cfg *ClientConfig) setDefaults() {
	if cfg.Status == StatusOffline { // the zero value; use StatusInvisible to appear offline
		cfg.Status = StatusOnline
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.EventQueue <= 0 {
		cfg.EventQueue = DefaultEventQueue
	}
	if cfg.EventBacklog <= 0 {
		cfg.EventBacklog = DefaultEventBacklog
	}
	if cfg.EventBacklogBytes <= 0 {
		cfg.EventBacklogBytes = DefaultEventBacklogBytes
	}
	if cfg.UnconfirmedWindow == 0 {
		cfg.UnconfirmedWindow = DefaultUnconfirmedWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dial == nil {
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	if cfg.closeGrace <= 0 {
		cfg.closeGrace = closeGrace
	}
	if cfg.replyLimit <= 0 {
		cfg.replyLimit = maxReplyBytes
	}
	if cfg.loginLimit <= 0 {
		cfg.loginLimit = max(cfg.DeadAfter, 10*cfg.DialTimeout)
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = logrus.NewEntry(l)
	}
}

// Client is a logged-in MSIM session. Create it with Dial; always Close it.
type Client struct {
	cfg     ClientConfig
	debug   bool
	nc      net.Conn
	dec     *Decoder
	sesskey int
	uid     UID
	unnamed bool // lc 2's uniquenick was the uid: no user name yet (§3.7)

	imHead string // imHead(sesskey): the start of every IM the session sends

	smu     sync.RWMutex // held shared by senders putting an item in the queue
	wmu     sync.Mutex   // guards writing and the queue
	writing bool         // a writer goroutine runs (or has ended the session)
	out     outRing      // the writer's queue
	ws      *wstate      // the writer's bookkeeping, handed from one writer to the next
	writer  func()       // c.writeLoop, made once: a go statement of a method value allocates
	// readAt is when the reader read the message it is handling (zero
	// between messages): the reader goroutine's.
	readAt     time.Time
	done       chan struct{}
	writerDone chan struct{} // the writer has stopped writing
	readerDone chan struct{} // the reader has stopped: every message it had is handled
	final      chan struct{} // the DisconnectedEvent is queued
	closing    chan struct{} // closed by Close after the link is down
	downOnce   sync.Once
	closeOnce  sync.Once
	closed     atomic.Bool // Close was called
	reason     DisconnectReason
	downErr    error     // written before done is closed
	lostAt     time.Time // when the link was lost, as far as known; written before done is closed
	wg         sync.WaitGroup
	born       time.Time    // when the client was made: lastRead counts from it on the monotonic clock
	lastRead   atomic.Int64 // when the reader last got a message (or the handshake ended), in nanoseconds since born

	// rmu orders Rest against the reader leaving its wait between
	// messages: Rest moves the deadline only while the reader waits there,
	// and the reader, once out, moves it back before it decodes.
	rmu     sync.Mutex
	waiting bool // the reader waits for the next message
	poked   bool // Rest moved the deadline while the reader waited

	mu      sync.Mutex
	rid     int
	pending map[int]*pending
	// replyBytes is the bytes of the persist replies held for requests
	// (pending.size), bounded by maxReplyBytes.
	replyBytes int
	// dropping: requests whose reply passed maxReplyBytes; the rest of
	// their parts are dropped as they come (onPersist).
	dropping map[int]struct{}
	self     Profile
	contacts []contactEntry
	presence map[UID]Presence // latest presence per uid not in contacts, of at most maxStrangers
	// early is the presence received before the contact table was built,
	// in order of arrival (compacted to the last per uid when it would
	// grow large, see noteEarly): a login's burst (the server tells the
	// presence of every online contact as the login ends, before the
	// client asks for its list). setup moves it into the table's entries,
	// and only a stranger's into presence. Lent by earlyBufs; nil once
	// listed. Only the reader and setup see it: Dial returns the client
	// once setup has listed.
	early  *[]earlyPresence
	listed bool // the contact table is built: setup has moved early
	// strangers are the uids Block put in the contact table without their
	// having an entry: Allow takes them off the list again.
	strangers map[UID]struct{}
	groups    []Group

	// held are the events the reader made and has not queued yet (see
	// hold), with their sizes, heldBytes their sum: the reader
	// goroutine's.
	held      []sizedEvent
	heldBytes int

	qmu     sync.Mutex
	queue   []Event
	qfinal  bool
	notify  chan struct{} // wakes the pump; nil with cfg.Notify
	events  chan Event    // nil with cfg.Notify
	backlog int
	// qbytes is the size of the events in queue (eventBytes), capped by
	// cfg.EventBacklogBytes as their count is by backlog, together with
	// sent: the events the pump took from queue that the owner may not
	// have taken from the Events channel yet (see unsentBytes).
	qbytes int
	sent   sentSizes
	// droppedIMs and droppedFrom count the IMs and zaps emit left out
	// (see DisconnectedEvent.DroppedIMs).
	droppedIMs  int
	droppedFrom []UID
}

// Dial connects to cfg.Addr, logs in and loads the session (own profile and
// preferences, contact list and groups, the user names of contacts, the
// block list settings), announces cfg.Status, and returns when the contact
// list is complete. Login outcomes are *LoginError values wrapping
// ErrBadPassword, ErrUnknownAccount, ErrNoUserName, ErrLoggedInElsewhere or
// ErrServer; network failures wrap the net error.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	cfg.setDefaults()
	hctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	nc, err := cfg.Dial(hctx, cfg.Addr)
	if err != nil {
		return nil, errorf("msim: dial %s: %w", cfg.Addr, err)
	}
	c := newClient(cfg, nc)
	if err := c.handshake(hctx); err != nil {
		nc.Close()
		return nil, c.handshakeFailed(err)
	}
	c.heard()
	c.wg.Add(2) // the reader, and the writer that ends the session
	rest.Add(c) // here: on the reader's own stack the map's growth would grow it
	go c.readLoop(nil)
	if cfg.Notify == nil {
		c.wg.Add(1)
		go c.pump()
	}

	lctx, cancelLogin := context.WithTimeoutCause(ctx, cfg.loginLimit, loginLimitError{cfg.loginLimit})
	defer cancelLogin()
	sctx, stop := c.whileHeard(lctx, cfg.DialTimeout)
	err = c.setup(sctx)
	cause := context.Cause(sctx) // before stop, which cancels sctx
	stop()
	if err != nil {
		var evs []Event
		if cfg.Notify == nil {
			// Nobody reads Events while Close runs: take them meanwhile,
			// or the pump waits closeGrace and drops the older ones.
			taken := make(chan []Event, 1)
			go func() { taken <- drainEvents(c.events) }()
			c.Close()
			evs = <-taken
		} else {
			c.Close()
			evs = c.TakeEvents(nil)
		}
		ims := onlyIMs(evs)
		var final DisconnectedEvent // the last event, always
		if len(evs) > 0 {
			final, _ = evs[len(evs)-1].(DisconnectedEvent)
		}
		switch {
		case cause == nil || errors.As(err, new(*LoginError)):
		case errors.Is(err, cause): // the request that waited says why
			err = errorf("msim: login %s: %w", cfg.Email, err)
		default:
			err = errorf("msim: login %s: %w (%w)", cfg.Email, cause, err)
		}
		if len(ims) > 0 || final.DroppedIMs > 0 {
			err = &UndeliveredError{Err: err, Events: ims, DroppedIMs: final.DroppedIMs, DroppedFrom: final.DroppedFrom}
		}
		return nil, err
	}
	return c, nil
}

// loginLimitError ends a login that took longer than its limit, however
// busy the server kept it. It is a timeout (context.DeadlineExceeded).
type loginLimitError struct{ d time.Duration }

func (e loginLimitError) Error() string {
	return fmt.Sprintf("login took longer than %v", e.d.Round(time.Millisecond))
}

func (loginLimitError) Is(target error) bool { return target == context.DeadlineExceeded }

// heard notes that the server just sent something.
func (c *Client) heard() { c.heardAt(time.Now()) }

// heardAt notes that the server sent something at now.
func (c *Client) heardAt(now time.Time) { c.lastRead.Store(int64(now.Sub(c.born))) }

// receivedAt is when the reader read the message being handled, or now
// outside the reader's handling.
func (c *Client) receivedAt() time.Time {
	if !c.readAt.IsZero() {
		return c.readAt
	}
	return time.Now()
}

// quiet is how long the server has sent nothing.
func (c *Client) quiet() time.Duration {
	return time.Since(c.born) - time.Duration(c.lastRead.Load())
}

// silenceError ends a context whileHeard made: the server sent nothing for
// its length. It is a timeout (context.DeadlineExceeded).
type silenceError struct{ d time.Duration }

func (e silenceError) Error() string {
	return fmt.Sprintf("nothing received for %v", e.d.Round(time.Millisecond))
}

func (silenceError) Is(target error) bool { return target == context.DeadlineExceeded }

// whileHeard returns a context that ends with parent or once the server
// has sent nothing for d (its cause is then a silenceError), and the
// function that releases it.
func (c *Client) whileHeard(parent context.Context, d time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	var mu sync.Mutex // t is set before its function can see it
	var t *time.Timer
	stopped := false // once released, the timer is not re-armed
	mu.Lock()
	t = time.AfterFunc(d, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if q := c.quiet(); q < d {
			t.Reset(d - q)
			return
		}
		cancel(silenceError{d})
	})
	mu.Unlock()
	return ctx, func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
		cancel(context.Canceled)
	}
}

// newClient builds a Client over nc, with cfg's defaults already set; Dial
// starts its goroutines once the handshake is done.
func newClient(cfg ClientConfig, nc net.Conn) *Client {
	c := &Client{
		cfg:        cfg,
		born:       time.Now(),
		debug:      cfg.Log.Logger.IsLevelEnabled(logrus.DebugLevel),
		nc:         nc,
		dec:        NewDecoder(nc),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		readerDone: make(chan struct{}),
		final:      make(chan struct{}),
		closing:    make(chan struct{}),
		pending:    make(map[int]*pending),
		presence:   make(map[UID]Presence),
		backlog:    cfg.EventBacklog,
		ws:         &wstate{keep: cfg.UnconfirmedWindow},
	}
	c.writer = c.writeLoop
	if c.ws.keep >= 0 {
		c.ws.keep += cfg.DeadAfter // a timeout dates the loss DeadAfter back
	}
	if cfg.Notify == nil {
		c.notify = make(chan struct{}, 1)
		c.events = make(chan Event, cfg.EventQueue)
	}
	c.dec.MaxSize = ClientMaxSize
	c.dec.SkipEmptyKeys = true // one bad pair loses no IM
	c.dec.room = "msg"         // an IM's body and its message are one allocation
	return c
}

// handshake reads the challenge, answers it and reads lc 2, synchronously,
// before any goroutine runs.
func (c *Client) handshake(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
	}
	netErr := func(step string, err error) error {
		if cerr := ctx.Err(); cerr != nil || isTimeout(err) {
			if cerr == nil {
				cerr = context.DeadlineExceeded // the socket deadline is the ctx's
			}
			return errorf("msim: login %s: %s: %w (%w)", c.cfg.Email, step, cerr, err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errorf("msim: login %s: %s: server closed the connection: %w", c.cfg.Email, step, err)
		}
		return errorf("msim: login %s: %s: %w", c.cfg.Email, step, err)
	}
	next := func(step string) (*Message, error) {
		for {
			m, err := c.dec.Decode()
			if err != nil {
				return nil, netErr(step, err)
			}
			c.trace("<-", m)
			switch m.Type() {
			case "lc":
				return m, nil
			case "error":
				return nil, loginErrorOf(m)
			case "persistr", "ka":
				continue // server info, keepalive
			case "bm":
				if err := c.beforeLogin(m); err != nil {
					return nil, err
				}
			default:
				c.logger().WithField("type", m.Type()).Debug("msim: ignoring message during login")
			}
		}
	}

	m, err := next("challenge")
	if err != nil {
		return err
	}
	if lc, _ := m.TypeInt(); lc != 1 {
		return &LoginError{Message: "expected a challenge, got lc " + m.StrOr("lc", ""), Err: ErrServer}
	}
	nonce, err := m.Base64("nc")
	if err != nil || len(nonce) != NonceSize {
		return &LoginError{Message: ErrBadNonce.Error(), Err: ErrServer}
	}
	resp, err := LoginResponse(nonce, c.cfg.Email, HashPassword(c.cfg.Password), nil)
	if err != nil {
		return &LoginError{Message: err.Error(), Err: ErrServer}
	}
	login := NewInt("login2", LoginAlgorithm).Add("username", c.cfg.Email).
		AddBase64("response", resp).AddInt("clientver", ClientVersion).
		AddInt("langid", 1033).Add("imlang", "ENGLISH").AddInt("reconn", 0).
		AddInt("status", LoginStatusField).AddInt("id", 1)
	c.trace("->", login)
	if _, err := c.nc.Write(Encode(login)); err != nil {
		return netErr("send login2", err)
	}

	m, err = next("login reply")
	if err != nil {
		return err
	}
	if lc, _ := m.TypeInt(); lc != 2 {
		return &LoginError{Message: "expected lc 2, got lc " + m.StrOr("lc", ""), Err: ErrServer}
	}
	sk, err1 := m.Int("sesskey")
	uid, err2 := m.Int("userid")
	if err := errors.Join(err1, err2); err != nil || uid <= 0 {
		return &LoginError{Message: fmt.Sprintf("bad lc 2: %v", err), Err: ErrServer}
	}
	c.setSession(sk, UID(uid))
	// A copy: a substring would keep the whole login reply for the session.
	c.self = Profile{UID: c.uid, UserName: strings.Clone(m.StrOr("uniquenick", ""))}
	// The account has no user name when uniquenick is the uid (spec
	// §3.7), as a number: not a name that starts with the uid's digits,
	// which Pidgin's atoi would read so. Without the field it has one;
	// the own profile tells it.
	if n, err := strconv.Atoi(c.self.UserName); err == nil && n == uid {
		c.self.UserName, c.unnamed = "", true
	}
	_ = c.nc.SetDeadline(time.Time{})
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// logger is the client's log entry: cfg.Log with the account and, once
// logged in, the uid. It is built when something is logged (rarely), not
// kept in every client.
func (c *Client) logger() *logrus.Entry {
	e := c.cfg.Log.WithField("account", c.cfg.Email)
	if c.uid != 0 {
		e = e.WithField("uid", c.uid)
	}
	return e
}

func (c *Client) trace(dir string, m *Message) {
	if c.debug {
		c.logger().Debug("msim ", dir, " ", m.String()) // String redacts secrets
	}
}

// UID returns the logged-in user's uid.
func (c *Client) UID() UID { return c.uid }

// readLoop runs the reader (st nil: a new link) until the link fails, or
// until it has rested (see ReaderRest) and hands st to a fresh goroutine.
func (c *Client) readLoop(st *readState) {
	defer c.wg.Done()
	if st == nil {
		st = &readState{last: time.Now()}
	}
	// What was read is queued before the end, also after a panic read
	// recovered from. (Not deferred in read: with a second defer there,
	// an idle reader's stack stayed a few times the size it needs.)
	rested := c.read(st)
	c.flush()
	if rested {
		c.held = nil // a resting reader holds no array
		c.wg.Add(1)  // before this one's Done: the count never passes 0
		go c.readLoop(st)
		return
	}
	rest.Remove(c)
	close(c.readerDone)
}

// Rest asks the reader, if it waits for the next message, to hand the
// wait to a fresh goroutine now (see package rest). A message being
// decoded is never cut: Rest moves the deadline only while the reader
// waits between messages.
func (c *Client) Rest() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.waiting && !c.poked {
		c.poked = true
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

// wait waits for the next message to begin (see Decoder.Wait); poked:
// Rest moved the deadline meanwhile.
//
//go:noinline
func (c *Client) wait() (err error, poked bool) {
	c.rmu.Lock()
	c.waiting = true
	c.rmu.Unlock()
	err = c.dec.Wait()
	c.rmu.Lock()
	c.waiting = false
	poked, c.poked = c.poked, false
	c.rmu.Unlock()
	return err, poked
}

// readState is the reader's, kept from message to message and from one
// goroutine to the next. The deadline is moved only once it has gone stale
// by a 64th of DeadAfter (moving it costs more than reading a small
// message); a timeout that comes before DeadAfter has passed since the
// last message, between messages, re-arms it.
type readState struct {
	last  time.Time // when the last message came
	armed time.Time // the last message's time when the deadline was set
	// rest is the socket's deadline when it is set ReaderRest after a
	// message rather than DeadAfter (zero otherwise); worn: a message was
	// handled since the goroutine began or the rest was armed.
	rest time.Time
	worn bool
	// calm: no rest is armed before it. A rest's deadline put back for a
	// message that had not arrived whole is not armed again at once: in
	// a burst of messages split across reads each would cost two.
	calm time.Time
	// ahead: the next message had arrived whole when the last was
	// handled, so it came with last's read: it is neither waited for
	// nor stamped anew.
	ahead bool
}

// ReaderRest is how long the reader, once it has handled a message, waits
// for the next before it hands the wait to a fresh goroutine (see package
// rest for why).
const ReaderRest = rest.Idle

// read decodes and handles messages until the link fails (false) or the
// reader has rested (true).
func (c *Client) read(st *readState) (rested bool) {
	defer c.recover("reader")
	for {
		ahead := st.ahead
		st.ahead = false
		c.arm(st)
		// Between messages the reader waits in Wait, not in Decode: an
		// idle connection's goroutine then has a stack small enough to be
		// shrunk. A message already here whole needs no wait.
		var err error
		var poked bool
		if !ahead {
			err, poked = c.wait()
		}
		if poked && err != nil && isTimeout(err) && time.Since(st.last) < c.cfg.DeadAfter {
			st.rest, st.armed = time.Time{}, time.Time{}
			return true
		}
		if err == nil && (poked || !st.rest.IsZero() && !ahead && !c.dec.whole()) {
			// Neither the poke's deadline nor the rest's may cut a
			// message: decoding cannot resume. Back to DeadAfter.
			_ = c.nc.SetReadDeadline(st.last.Add(c.cfg.DeadAfter))
			st.rest, st.armed = time.Time{}, st.last
			st.calm = time.Now().Add(ReaderRest / 8)
		}
		var m *Message
		if err == nil {
			m = readMsgs.Get().(*Message)
			if err = c.dec.DecodeInto(m); err != nil {
				putReadMsg(m)
			}
		}
		if err != nil {
			c.flush() // before the reader can wait again
			var se *SyntaxError
			switch {
			case isTimeout(err) && !errors.As(err, &se) && time.Since(st.last) < c.cfg.DeadAfter:
				st.armed = time.Time{} // early: set it to DeadAfter after the last message
				if !st.rest.IsZero() {
					st.rest = time.Time{}
					if !st.worn {
						return true // nothing since the rest was armed
					}
				}
				continue
			case isTimeout(err):
				c.down(DisconnectTimeout, errorf("%w: nothing received for %v", ErrDeadLink, c.cfg.DeadAfter))
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				c.down(DisconnectNetwork, errorf("msim: server closed the connection: %w", err))
			case errors.As(err, &se) && (errors.Is(err, ErrMalformed) || errors.Is(err, ErrEmptyKey)):
				// An empty message, or one whose first key (its
				// type) is empty, names no type: it is no bm, so
				// it carries no IM, and only the log is told.
				// The error holds no field's value.
				c.logger().WithError(err).Warn("msim: skipping malformed message")
				continue
			case errors.As(err, &se):
				c.down(DisconnectServerError, errorf("msim: protocol error from server: %w", err))
			default:
				c.down(DisconnectNetwork, errorf("msim: read: %w", err))
			}
			return false
		}
		// One clock read for the message: when it was heard, and an IM's
		// time; none for one that came with the last.
		now := st.last
		if !ahead {
			now = time.Now()
			c.heardAt(now)
		}
		st.last, st.worn = now, true
		c.readAt = now
		c.trace("<-", m)
		c.handle(m) // keeps neither m nor its fields
		c.readAt = time.Time{}
		putReadMsg(m)
		// The events held wait while the next message is here whole
		// (decoding it cannot block), up to heldEvents of them.
		st.ahead = len(c.held) > 0 && c.dec.whole()
		if !st.ahead {
			c.flush()
		}
	}
}

// arm sets the socket's read deadline for the next message: ReaderRest
// from now once a message was handled, otherwise DeadAfter after the last.
//
//go:noinline
func (c *Client) arm(st *readState) {
	if !st.rest.IsZero() {
		return // a timeout at the rest decides (see read)
	}
	due := st.last.Add(c.cfg.DeadAfter)
	// A rest is armed only when the reader is about to wait: with a
	// message already buffered it would be moved back for nothing.
	if st.worn && c.dec.buffered() == 0 {
		now := time.Now()
		if at := now.Add(ReaderRest); !now.Before(st.calm) && at.Before(due) {
			_ = c.nc.SetReadDeadline(at)
			st.rest, st.armed, st.worn = at, time.Time{}, false
			return
		}
	}
	if st.last.Sub(st.armed) > c.cfg.DeadAfter/64 {
		_ = c.nc.SetReadDeadline(due)
		st.armed = st.last
	}
}

// readMsgs holds the messages readers decode into, one at a time each:
// a message handled is garbage, and most sessions get many small ones.
var readMsgs = sync.Pool{New: func() any { return &Message{fields: make([]Field, 0, keptReadFields)} }}

// keptReadFields is the most fields a message readMsgs keeps has room for.
const keptReadFields = 16

// putReadMsg gives m back to readMsgs, holding no value (so that it pins
// no message's text), unless its fields outgrew keptReadFields.
func putReadMsg(m *Message) {
	if m.room != nil {
		m.room.Reset() // the decoder keeps no message's text
		m.room = nil
	}
	if cap(m.fields) > keptReadFields {
		return
	}
	clear(m.fields[:cap(m.fields)])
	m.fields = m.fields[:0]
	readMsgs.Put(m)
}

// outRing is the writer's queue of at most outQueue items, in a ring
// borrowed from outRings while the writer runs: an idle session holds
// none. Guarded by Client.wmu.
type outRing struct {
	ring    *[outQueue]outItem
	head, n int
	room    chan struct{} // made when a sender waits for room; closed once there is
}

// outRings holds the rings of writers that stopped.
var outRings = sync.Pool{New: func() any { return new([outQueue]outItem) }}

// push adds it as the newest item; with the queue full it returns false
// and the channel to wait on for room.
func (q *outRing) push(it outItem) (chan struct{}, bool) {
	if q.n == outQueue {
		if q.room == nil {
			q.room = make(chan struct{})
		}
		return q.room, false
	}
	if q.ring == nil {
		q.ring = outRings.Get().(*[outQueue]outItem)
	}
	q.ring[(q.head+q.n)%outQueue] = it
	q.n++
	return nil, true
}

// pop takes the oldest item, waking the senders waiting for room.
func (q *outRing) pop() (outItem, bool) {
	if q.n == 0 {
		return outItem{}, false
	}
	it := q.ring[q.head]
	q.ring[q.head] = outItem{}
	q.head = (q.head + 1) % outQueue
	q.n--
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	return it, true
}

// release hands the ring of an empty queue back to outRings.
func (q *outRing) release() {
	if q.n == 0 && q.ring != nil {
		outRings.Put(q.ring)
		q.ring, q.head = nil, 0
	}
}

// outItem is an entry of the writer's queue.
type outItem struct {
	b      []byte     // an encoded message; nil: flush what came before and stop (Close)
	im     OutgoingIM // the IM b is, when isIM: carried in the item, so no IM costs an object of its own
	isIM   bool       // b is an IM from SendIM
	pooled *[]byte    // b's buffer from imBufs, handed back once copied into a batch
}

// imBufs holds the buffers IMs are encoded into: the writer copies an IM
// into its batch and hands the buffer back.
var imBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// maxPooledIM is the largest IM buffer handed back to imBufs.
const maxPooledIM = 4 << 10

// batchIM is an IM in the writer's batch and where its bytes end there.
type batchIM struct {
	im  OutgoingIM
	end int
}

// batchBufs holds the writers' batch buffers: a writer takes one when it
// starts and hands it back when it stops, so an idle client keeps none.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchSize); return &b }}

// wstate is the writer goroutine's own bookkeeping; nothing else touches it.
type wstate struct {
	batch   []byte
	held    *[]byte      // batch's holder from batchBufs (nil: none taken)
	ims     []batchIM    // the IMs in batch, in order
	unsent  []OutgoingIM // IMs of a batch whose write failed before their last byte
	recent  imRing       // written IMs, oldest first: at most recentIMs, none older than keep
	keep    time.Duration
	evicted time.Time // Written of the newest IM dropped from recent for room
	flushed bool      // Close's final flush succeeded
	stop    bool      // the batch gathered ends with a stop item (gather)
	dl      deadline.Write
}

// take adds an item to the batch. It reports whether the item asks the
// writer to stop.
func (w *wstate) take(it outItem) (stop bool) {
	if it.b == nil {
		return true
	}
	if w.held == nil {
		w.held = batchBufs.Get().(*[]byte)
		w.batch = (*w.held)[:0]
	}
	w.batch = append(w.batch, it.b...)
	if it.isIM {
		w.ims = append(w.ims, batchIM{im: it.im, end: len(w.batch)})
	}
	if it.pooled != nil && cap(it.b) <= maxPooledIM {
		*it.pooled = it.b[:0]
		imBufs.Put(it.pooled)
	}
	return false
}

// putBatch hands the (empty) batch buffer back as the writer stops.
func (w *wstate) putBatch() {
	if w.held == nil {
		return
	}
	if cap(w.batch) <= 4*batchSize {
		*w.held = w.batch[:0]
		batchBufs.Put(w.held)
	}
	w.held, w.batch = nil, nil
}

// remember keeps a written IM for the Unconfirmed report.
func (w *wstate) remember(im OutgoingIM) {
	if w.keep < 0 {
		return
	}
	r := &w.recent
	for r.n > 0 && r.at(0).Written.Before(im.Written.Add(-w.keep)) {
		r.drop()
	}
	if r.n >= recentIMs {
		w.evicted = r.at(0).Written
		r.drop()
	}
	r.push(im)
}

// since returns the remembered IMs written at or after cutoff, and whether
// earlier ones written after it were dropped for room.
func (w *wstate) since(cutoff time.Time) ([]OutgoingIM, bool) {
	var out []OutgoingIM
	for i := range w.recent.n {
		if im := w.recent.at(i); !im.Written.Before(cutoff) {
			out = append(out, *im)
		}
	}
	return out, !w.evicted.IsZero() && !w.evicted.Before(cutoff)
}

// imRing is a queue of IMs, oldest first, in a ring that grows (doubling,
// up to recentIMs) only while it is full, so a steady flow of IMs moves no
// memory and a quiet client holds a small one.
type imRing struct {
	buf      []OutgoingIM
	start, n int
}

// at returns the i-th oldest IM; i < n.
func (r *imRing) at(i int) *OutgoingIM { return &r.buf[(r.start+i)%len(r.buf)] }

// drop forgets the oldest IM (and its text).
func (r *imRing) drop() {
	*r.at(0) = OutgoingIM{}
	r.start = (r.start + 1) % len(r.buf)
	r.n--
}

// push adds im as the newest; the caller keeps n below recentIMs.
func (r *imRing) push(im OutgoingIM) {
	if r.n == len(r.buf) {
		nb := make([]OutgoingIM, min(max(4, 2*len(r.buf)), recentIMs))
		for i := range r.n {
			nb[i] = *r.at(i)
		}
		r.buf, r.start = nb, 0
	}
	*r.at(r.n) = im
	r.n++
}

// startWriter starts the writer unless one runs (or the session ended).
// down calls it after closing done (tryPut starts one with wmu held).
func (c *Client) startWriter() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.startWriterLocked()
}

// startWriterLocked is startWriter with c.wmu held.
func (c *Client) startWriterLocked() {
	if !c.writing {
		c.writing = true
		go c.writer()
	}
}

// tryPut queues it and starts the writer; with the queue full it returns
// false and a channel closed once the writer has made room. Senders that
// waited are let in in no particular order, and a new one may come first.
func (c *Client) tryPut(it outItem) (<-chan struct{}, bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if room, ok := c.out.push(it); !ok {
		return room, false
	}
	c.startWriterLocked()
	return nil, true
}

// next takes the oldest queued item; false when the queue is empty.
func (c *Client) next() (outItem, bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.out.pop()
}

// writeLoop writes queued messages in batches: it writes when batchSize
// bytes are gathered or the queue runs empty, and ends when the queue is
// empty. The writer that sees the link down (or is told to stop, or fails
// to write) ends the session's writing for good (endWriter) and counts
// itself done in c.wg; no writer starts after it.
func (c *Client) writeLoop() {
	w := c.ws
	final := true // unless it ends with the queue empty and the link up
	defer func() {
		if final {
			c.endWriter(w)
			c.wg.Done()
		}
	}()
	defer c.recover("writer")
	// A writer is a new goroutine for each run (one per burst under
	// load), whose stack starts small: the frames down to the socket's
	// write are kept small enough for it (gather, armWrite, wrote and
	// writeFailed, out of line, do the rest), or each run would grow and
	// copy its stack there.
	for {
		switch c.gather(w) {
		case gatherDown:
			return
		case gatherEmpty:
			final = false
			return
		}
		if err := c.write(w); err != nil {
			c.writeFailed(err)
			return
		}
		if w.stop {
			w.flushed = true
			return
		}
	}
}

// writeFailed ends the link for a failed write.
//
//go:noinline
func (c *Client) writeFailed(err error) {
	c.down(DisconnectNetwork, errorf("msim: write: %w", err))
}

// What gather found.
const (
	gatherBatch = iota // a batch to write (w.stop: the last)
	gatherEmpty        // the queue is empty and the writer stopped
	gatherDown         // the link is down
)

// gather takes the next batch from the queue into w (items until it holds
// batchSize bytes or more), or stops the writer if the queue is empty.
//
//go:noinline
func (c *Client) gather(w *wstate) int {
	select {
	case <-c.done:
		return gatherDown
	default:
	}
	c.wmu.Lock()
	it, ok := c.out.pop()
	if !ok {
		// Empty: stop, unless the link went down (down saw writing
		// set and relies on this one). An item queued from now on
		// starts a writer again.
		select {
		case <-c.done:
			c.wmu.Unlock()
			return gatherDown
		default:
		}
		c.out.release()
		w.putBatch()
		c.writing = false
		c.wmu.Unlock()
		return gatherEmpty
	}
	c.wmu.Unlock()
	w.stop = w.take(it)
	for !w.stop && len(w.batch) < batchSize {
		it, ok := c.next()
		if !ok {
			break
		}
		w.stop = w.take(it)
	}
	return gatherBatch
}

// write writes the batch. An IM counts as written once all its bytes were
// accepted by the socket; the rest of a failed batch is unsent.
func (c *Client) write(w *wstate) error {
	if len(w.batch) == 0 {
		return nil
	}
	c.armWrite(w)
	n, err := c.nc.Write(w.batch)
	c.wrote(w, n)
	return err
}

// armWrite moves the socket's write deadline if it must.
//
//go:noinline
func (c *Client) armWrite(w *wstate) { w.dl.Arm(c.nc, time.Now(), writeTimeout) }

// wrote settles a batch of which the socket took n bytes.
//
//go:noinline
func (c *Client) wrote(w *wstate, n int) {
	now := c.cfg.Now()
	for i := range w.ims {
		if b := &w.ims[i]; b.end <= n {
			b.im.Written = now
			w.remember(b.im)
		} else {
			w.unsent = append(w.unsent, b.im)
		}
	}
	clear(w.ims)
	w.ims = w.ims[:0]
	if cap(w.batch) > 4*batchSize {
		w.batch, w.held = nil, nil // do not keep a large message's buffer
	} else {
		w.batch = w.batch[:0]
	}
}

// endWriter runs when the writer stops. Once the link is down it collects
// every IM SendIM accepted that did not reach the socket, in order (a failed
// batch, then the queue), and queues the DisconnectedEvent.
func (c *Client) endWriter(w *wstate) {
	close(c.writerDone)
	<-c.done
	// The reader stops once the closed connection has nothing more for it;
	// what it had read (the link may have failed on a write while messages
	// waited in its buffer) becomes events before the final one.
	<-c.readerDone
	unsent := w.unsent
	for _, b := range w.ims { // a batch never tried (the writer panicked)
		unsent = append(unsent, b.im)
	}
	// Senders hold smu shared from their check of done until their item is
	// in the queue (or they gave up): once we hold it, nothing more comes.
	c.smu.Lock()
	for it, ok := c.next(); ok; it, ok = c.next() {
		if it.isIM {
			unsent = append(unsent, it.im)
		}
	}
	c.wmu.Lock()
	c.out.release()
	c.wmu.Unlock()
	c.smu.Unlock()
	ev := DisconnectedEvent{Reason: c.reason, Err: c.downErr, Unsent: unsent}
	if !(c.reason == DisconnectClosed && w.flushed) && c.cfg.UnconfirmedWindow >= 0 {
		ev.Unconfirmed, ev.MoreUnconfirmed = w.since(c.lostAt.Add(-c.cfg.UnconfirmedWindow))
	}
	if len(unsent) > 0 {
		c.logger().WithField("unsent", len(unsent)).Info("msim: IMs not sent before the link went down")
	}
	c.qmu.Lock()
	c.qfinal = true // nothing is queued after it
	// The reader has stopped: no IM comes after these.
	ev.DroppedIMs, ev.DroppedFrom = c.droppedIMs, c.droppedFrom
	c.queue = append(c.queue, ev) // the final event, whatever the backlog
	c.qbytes += eventBytes(ev)
	c.qmu.Unlock()
	if ev.DroppedIMs > 0 {
		c.logger().WithField("dropped", ev.DroppedIMs).Warn("msim: IMs received past the event backlog were dropped")
	}
	c.wake()
	close(c.final)
}

func (c *Client) recover(who string) {
	if r := recover(); r != nil {
		err := errorf("msim: internal error in %s: %v", who, r)
		c.logger().WithError(err).Error("msim: panic; ending the session")
		c.down(DisconnectNetwork, err)
	}
}

// send queues m for the writer. It blocks while the queue is full, bounded by
// ctx and by the link going down.
func (c *Client) send(ctx context.Context, m *Message) error {
	return c.enqueueEncoded(ctx, outItem{b: Encode(m)}, m.Type(), m)
}

// enqueueEncoded queues the item it, a message of type typ already
// encoded; m is the same message for the debug trace (nil when not
// tracing). Once it returns nil for an IM (it.isIM), the IM is either
// written or reported in the DisconnectedEvent's Unsent.
func (c *Client) enqueueEncoded(ctx context.Context, it outItem, typ string, m *Message) error {
	c.smu.RLock()
	defer c.smu.RUnlock()
	select {
	case <-c.done:
		return c.linkErr()
	default:
	}
	if m != nil {
		c.trace("->", m)
	}
	for {
		room, ok := c.tryPut(it)
		if ok {
			return nil
		}
		select { // ctx's Done only now: a cancelable ctx's Done allocates
		case <-room:
		case <-c.done:
			return c.linkErr()
		case <-ctx.Done():
			return errorf("msim: send %s: %w", typ, ctx.Err())
		}
	}
}

// linkErr is the error methods return once the link is down.
func (c *Client) linkErr() error {
	<-c.done
	return errorf("%w (%v): %w", ErrDisconnected, c.reason, c.downErr)
}

// down ends the session once: it records why and when, wakes every waiter,
// closes the socket and stops the event queue; the writer then queues the
// final DisconnectedEvent (endWriter).
func (c *Client) down(reason DisconnectReason, err error) {
	c.downOnce.Do(func() {
		if c.closed.Load() {
			reason, err = DisconnectClosed, ErrClosed
		}
		c.reason, c.downErr = reason, err
		c.lostAt = c.cfg.Now()
		if reason == DisconnectTimeout {
			// Nothing came for DeadAfter: the link may have died just
			// after the last message received.
			c.lostAt = c.lostAt.Add(-c.cfg.DeadAfter)
		}
		// Events still come until the writer queues the final one, once
		// the reader has stopped (see endWriter): what it had read is not
		// lost. Past an overflow none does: after the one left out, a
		// later event would leave a gap.
		if reason == DisconnectOverflow {
			c.qmu.Lock()
			c.qfinal = true
			c.qmu.Unlock()
		}
		close(c.done)
		_ = c.nc.Close()
		if reason != DisconnectClosed {
			c.logger().WithError(err).WithField("reason", reason).Info("msim: disconnected")
		}
		c.startWriter() // the writer ends the session; a running one sees done
	})
}

// Close logs out (unless the send queue stays full for its whole grace),
// closes the connection and waits for the client's goroutines. It is
// idempotent and always returns nil. The session's events still end with a
// DisconnectedEvent (DisconnectClosed unless the link was already down).
// With Events, events not yet taken from the channel may be discarded (IMs
// only after a grace for a reader still draining it, and counted in the
// DisconnectedEvent's DroppedIMs), and the channel is closed after the
// DisconnectedEvent. With Notify, nothing is discarded short of the
// EventBacklog and EventBacklogBytes caps: once Close returns, TakeEvents returns every event not
// yet taken, the DisconnectedEvent last. The logout goes after every queued
// message; IMs still queued when Close stops waiting for the flush are the
// event's Unsent. After the logout, Close reads on until
// the server closes the connection (bounded by the same grace), so IMs the
// server wrote before it read the logout become events rather than vanish in
// the socket.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		select {
		case <-c.done:
		default:
			t := time.NewTimer(c.cfg.closeGrace)
			defer t.Stop()
			b := Encode(New("logout", "").AddInt("sesskey", c.sesskey))
			expired := false // the grace ran out while the queue was full
		items:
			for _, item := range []outItem{{b: b}, {}} {
				for {
					room, ok := c.tryPut(item)
					if ok {
						break
					}
					select {
					case <-room:
					case <-c.done:
						break items
					case <-t.C:
						expired = true
						break items
					}
				}
			}
			if !expired {
				c.awaitLogout(t.C)
			}
		}
		c.down(DisconnectClosed, ErrClosed)
		<-c.final
		close(c.closing)
	})
	c.wg.Wait()
	return nil
}

// awaitLogout waits, until expired fires, for the writer to have written
// the logout and then for the server to close the connection.
func (c *Client) awaitLogout(expired <-chan time.Time) {
	select {
	case <-c.writerDone:
		// The logout is out. The server may have written IMs
		// before it read the logout; it counts them delivered, so
		// read on until it closes the connection.
		select {
		case <-c.done:
		case <-expired:
		}
	case <-c.done:
	case <-expired:
	}
}

// Self returns the logged-in user's profile as loaded at login.
func (c *Client) Self() Profile {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self
}

// Contacts returns a copy of the contact list: the login-time list kept up
// to date by presence, by the buddy methods and by ContactInfo. Blocked
// entries are included with Blocked set.
func (c *Client) Contacts() []Contact { return c.AppendContacts(nil) }

// AppendContacts appends the contact list to dst, as Contacts returns it,
// so that a caller can reuse one array for the lists of many logins.
func (c *Client) AppendContacts(dst []Contact) []Contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	dst = slices.Grow(dst, len(c.contacts))
	for i := range c.contacts {
		dst = append(dst, c.contacts[i].contact())
	}
	return dst
}

// Groups returns the groups as loaded at login.
func (c *Client) Groups() []Group {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Group(nil), c.groups...)
}

// contactIndex returns the index of uid in c.contacts, or -1. c.mu held.
func (c *Client) contactIndex(uid UID) int {
	for i := range c.contacts {
		if UID(c.contacts[i].uid) == uid {
			return i
		}
	}
	return -1
}
