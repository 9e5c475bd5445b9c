package msim

// The client side of a session: Dial logs in and returns a *Client whose
// state is shared by three goroutines it owns:
//
//   - the reader decodes everything the server sends. It hands persist
//     replies straight to the request waiting for them (never through the
//     event queue), applies presence to the contact table, and appends
//     events to an internal queue. It never blocks on the owner.
//   - the writer drains a bounded queue of encoded messages onto the socket,
//     each write under a deadline.
//   - the pump moves queued events into the Events channel, in order, and
//     closes it after the final DisconnectedEvent.
//
// The owner calls the methods from one goroutine (calls from several are also
// safe). Shared state (request table, profile, contacts) sits behind c.mu;
// the event queue behind c.qmu. The link goes down exactly once (c.down),
// which closes c.done: every waiter and sender selects on it.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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
	writeTimeout          = 15 * time.Second
	outQueue              = 64
	closeGrace            = 2 * time.Second // how long Close waits to flush logout
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
	DialTimeout    time.Duration // default 30s; also bounds the whole login
	RequestTimeout time.Duration // persist replies; default 30s
	DeadAfter      time.Duration // no bytes received for this long ⇒ disconnected; default 180s
	EventQueue     int           // buffer of the Events channel; default 64 (the backlog beyond it is EventBacklog)
	// EventBacklog caps the events received but not yet taken by the
	// Events consumer (beyond the channel's buffer). Overflow ends the
	// session with DisconnectOverflow. Default 65536.
	EventBacklog int
	Log          *logrus.Entry
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
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = logrus.NewEntry(l)
	}
}

// Client is a logged-in MSIM session. Create it with Dial; always Close it.
type Client struct {
	cfg     ClientConfig
	log     *logrus.Entry
	debug   bool
	nc      net.Conn
	dec     *Decoder
	sesskey int
	uid     UID

	out        chan []byte // encoded messages; nil = flush and stop
	done       chan struct{}
	writerDone chan struct{}
	closing    chan struct{} // closed by Close after the link is down
	downOnce   sync.Once
	closeOnce  sync.Once
	closed     atomic.Bool // Close was called
	reason     DisconnectReason
	downErr    error // written before done is closed
	wg         sync.WaitGroup

	mu       sync.Mutex
	rid      int
	pending  map[int]*pending
	self     Profile
	prefs    Dict
	contacts []Contact
	presence map[UID]Presence // latest presence per uid, contact or not
	groups   []Group

	qmu     sync.Mutex
	queue   []Event
	qfinal  bool
	notify  chan struct{}
	events  chan Event
	backlog int
}

// Dial connects to cfg.Addr, logs in and loads the session (own profile and
// preferences, contact list and groups, the user names of contacts, the
// block list settings), announces cfg.Status, and returns when the contact
// list is complete. Login outcomes are *LoginError values wrapping
// ErrBadPassword, ErrUnknownAccount, ErrNoUserName, ErrLoggedInElsewhere or
// ErrServer; network failures wrap the net error.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	cfg.setDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	log := cfg.Log.WithField("account", cfg.Email)

	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("msim: dial %s: %w", cfg.Addr, err)
	}
	c := &Client{
		cfg:        cfg,
		log:        log,
		debug:      log.Logger.IsLevelEnabled(logrus.DebugLevel),
		nc:         nc,
		dec:        NewDecoder(nc),
		out:        make(chan []byte, outQueue),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		closing:    make(chan struct{}),
		pending:    make(map[int]*pending),
		presence:   make(map[UID]Presence),
		notify:     make(chan struct{}, 1),
		events:     make(chan Event, cfg.EventQueue),
		backlog:    cfg.EventBacklog,
	}
	c.dec.MaxSize = ClientMaxSize

	if err := c.handshake(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	c.log = c.log.WithField("uid", c.uid)
	c.wg.Add(3)
	go c.readLoop()
	go c.writeLoop()
	go c.pump()

	if err := c.setup(ctx); err != nil {
		c.Close()
		if ctx.Err() != nil && !errors.As(err, new(*LoginError)) {
			err = fmt.Errorf("msim: login %s: %w (%w)", cfg.Email, ctx.Err(), err)
		}
		return nil, err
	}
	return c, nil
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
			return fmt.Errorf("msim: login %s: %s: %w (%w)", c.cfg.Email, step, cerr, err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("msim: login %s: %s: server closed the connection: %w", c.cfg.Email, step, err)
		}
		return fmt.Errorf("msim: login %s: %s: %w", c.cfg.Email, step, err)
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
			default:
				c.log.WithField("type", m.Type()).Debug("msim: ignoring message during login")
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
	c.sesskey, c.uid = sk, UID(uid)
	c.self = Profile{UID: c.uid, UserName: m.StrOr("uniquenick", "")}
	if c.self.UserName == c.uid.String() {
		c.self.UserName = ""
	}
	_ = c.nc.SetDeadline(time.Time{})
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Client) trace(dir string, m *Message) {
	if c.debug {
		c.log.Debug("msim ", dir, " ", m.String()) // String redacts secrets
	}
}

// UID returns the logged-in user's uid.
func (c *Client) UID() UID { return c.uid }

// readLoop decodes messages until the link fails.
func (c *Client) readLoop() {
	defer c.wg.Done()
	defer c.recover("reader")
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.DeadAfter))
		m, err := c.dec.Decode()
		if err != nil {
			var se *SyntaxError
			switch {
			case isTimeout(err):
				c.down(DisconnectTimeout, fmt.Errorf("%w: nothing received for %v", ErrDeadLink, c.cfg.DeadAfter))
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				c.down(DisconnectNetwork, fmt.Errorf("msim: server closed the connection: %w", err))
			case errors.As(err, &se) && (errors.Is(err, ErrMalformed) || errors.Is(err, ErrEmptyKey)):
				c.log.WithError(err).Warn("msim: skipping malformed message")
				continue
			case errors.As(err, &se):
				c.down(DisconnectServerError, fmt.Errorf("msim: protocol error from server: %w", err))
			default:
				c.down(DisconnectNetwork, fmt.Errorf("msim: read: %w", err))
			}
			return
		}
		c.trace("<-", m)
		c.handle(m)
	}
}

// writeLoop writes queued messages, flushing when the queue runs empty.
func (c *Client) writeLoop() {
	defer c.wg.Done()
	defer close(c.writerDone)
	defer c.recover("writer")
	bw := bufio.NewWriterSize(c.nc, 4<<10)
	for {
		select {
		case b := <-c.out:
			var err error
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if b == nil {
				_ = bw.Flush()
				return
			}
			if _, err = bw.Write(b); err == nil && len(c.out) == 0 {
				err = bw.Flush()
			}
			if err != nil {
				c.down(DisconnectNetwork, fmt.Errorf("msim: write: %w", err))
				return
			}
		case <-c.done:
			return
		}
	}
}

func (c *Client) recover(who string) {
	if r := recover(); r != nil {
		err := fmt.Errorf("msim: internal error in %s: %v", who, r)
		c.log.WithError(err).Error("msim: panic; ending the session")
		c.down(DisconnectNetwork, err)
	}
}

// send queues m for the writer. It blocks while the queue is full, bounded by
// ctx and by the link going down.
func (c *Client) send(ctx context.Context, m *Message) error {
	select {
	case <-c.done:
		return c.linkErr()
	default:
	}
	c.trace("->", m)
	b := Encode(m)
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return c.linkErr()
	case <-ctx.Done():
		return fmt.Errorf("msim: send %s: %w", m.Type(), ctx.Err())
	}
}

// linkErr is the error methods return once the link is down.
func (c *Client) linkErr() error {
	<-c.done
	return fmt.Errorf("%w (%v): %w", ErrDisconnected, c.reason, c.downErr)
}

// down ends the session once: it records why, wakes every waiter, closes
// the socket and queues the final DisconnectedEvent.
func (c *Client) down(reason DisconnectReason, err error) {
	c.downOnce.Do(func() {
		if c.closed.Load() {
			reason, err = DisconnectClosed, ErrClosed
		}
		c.reason, c.downErr = reason, err
		close(c.done)
		_ = c.nc.Close()
		if reason != DisconnectClosed {
			c.log.WithError(err).WithField("reason", reason).Info("msim: disconnected")
		}
		c.qmu.Lock()
		c.queue = append(c.queue, DisconnectedEvent{Reason: reason, Err: err})
		c.qfinal = true
		c.qmu.Unlock()
		c.wake()
	})
}

// Close logs out, closes the connection and waits for the client's
// goroutines. It is idempotent and always returns nil. Events not yet taken
// from Events may be discarded; the channel still ends with a
// DisconnectedEvent (DisconnectClosed unless the link was already down) and
// is closed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		select {
		case <-c.done:
		default:
			t := time.NewTimer(closeGrace)
			defer t.Stop()
			b := Encode(New("logout", "").AddInt("sesskey", c.sesskey))
			for _, item := range [][]byte{b, nil} {
				select {
				case c.out <- item:
				case <-c.done:
				case <-t.C:
				}
			}
			select {
			case <-c.writerDone:
			case <-c.done:
			case <-t.C:
			}
		}
		c.down(DisconnectClosed, ErrClosed)
		close(c.closing)
	})
	c.wg.Wait()
	return nil
}

// Events returns the channel of session events. They arrive in order; the
// last is a DisconnectedEvent, after which the channel is closed. Read it
// until then, or call Close.
func (c *Client) Events() <-chan Event { return c.events }

// emit queues an event for the pump. Past the backlog cap the session ends.
func (c *Client) emit(ev Event) {
	c.qmu.Lock()
	if c.qfinal {
		c.qmu.Unlock()
		return
	}
	if len(c.queue) >= c.backlog {
		c.qmu.Unlock()
		c.down(DisconnectOverflow, fmt.Errorf("%w: %d events not taken", ErrEventOverflow, c.backlog))
		return
	}
	c.queue = append(c.queue, ev)
	c.qmu.Unlock()
	c.wake()
}

func (c *Client) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// pump moves queued events into the Events channel one at a time, so that
// at most one event is held outside the capped queue.
func (c *Client) pump() {
	defer c.wg.Done()
	defer close(c.events)
	defer c.recover("pump")
	for {
		c.qmu.Lock()
		var ev Event
		if len(c.queue) > 0 {
			ev, c.queue[0] = c.queue[0], nil
			c.queue = c.queue[1:]
		}
		c.qmu.Unlock()
		if ev == nil {
			select {
			case <-c.notify:
				continue
			case <-c.closing:
				c.finish(nil)
				return
			}
		}
		select {
		case c.events <- ev:
			if _, last := ev.(DisconnectedEvent); last {
				return
			}
		case <-c.closing:
			c.finish([]Event{ev})
			return
		}
	}
}

// finish runs after Close: it delivers what fits in the channel without
// blocking and makes sure the DisconnectedEvent ends the stream, dropping
// older undelivered events to make room for it.
func (c *Client) finish(rest []Event) {
	c.qmu.Lock()
	rest = append(rest, c.queue...)
	c.queue = nil
	c.qmu.Unlock()
	if len(rest) == 0 {
		return
	}
	last := rest[len(rest)-1]
	grace := time.NewTimer(closeGrace)
	defer grace.Stop()
	expired := false
	for _, ev := range rest[:len(rest)-1] {
		if im, ok := ev.(IMEvent); ok && !expired {
			// An IM was received: give a reader that is still draining
			// Events the time to take it rather than drop it.
			select {
			case c.events <- ev:
			case <-grace.C:
				expired = true
				c.log.WithField("from", im.From).Warn("msim: IMs received before Close were not taken from Events")
			}
			continue
		}
		select {
		case c.events <- ev:
		default:
		}
	}
	for {
		select {
		case c.events <- last:
			return
		default:
		}
		select {
		case <-c.events: // make room (the channel has a buffer of at least 1)
		default:
		}
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
func (c *Client) Contacts() []Contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Contact(nil), c.contacts...)
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
		if c.contacts[i].UID == uid {
			return i
		}
	}
	return -1
}

// DisconnectReason says why a session ended.
type DisconnectReason int

// Reasons for a DisconnectedEvent.
const (
	DisconnectNetwork     DisconnectReason = iota // connection lost or closed by the server
	DisconnectKicked                              // err 6: the account logged in elsewhere; do not reconnect automatically
	DisconnectServerError                         // a fatal \error\ or a protocol violation by the server
	DisconnectTimeout                             // nothing received for DeadAfter
	DisconnectClosed                              // Close was called
	DisconnectOverflow                            // the Events consumer fell EventBacklog events behind
)

func (r DisconnectReason) String() string {
	switch r {
	case DisconnectNetwork:
		return "network"
	case DisconnectKicked:
		return "kicked"
	case DisconnectServerError:
		return "server error"
	case DisconnectTimeout:
		return "timeout"
	case DisconnectClosed:
		return "closed"
	case DisconnectOverflow:
		return "event overflow"
	}
	return "reason " + strconv.Itoa(int(r))
}

// Client errors. Login failures are *LoginError, fatal server errors after
// login *ServerError, failed persist replies *PersistError; all wrap one of
// these where it applies, so test with errors.Is.
var (
	ErrBadPassword       = errors.New("msim: incorrect password")
	ErrUnknownAccount    = errors.New("msim: unknown account")
	ErrNoUserName        = errors.New("msim: the account has no user name")
	ErrUserNameTaken     = errors.New("msim: user name not available")
	ErrLoggedInElsewhere = errors.New("msim: logged in from another location")
	ErrServer            = errors.New("msim: server error")
	ErrNoSuchUser        = errors.New("msim: no such user")
	ErrNotContact        = errors.New("msim: not in the contact list")
	ErrTimeout           = errors.New("msim: request timed out")
	ErrDisconnected      = errors.New("msim: disconnected")
	ErrClosed            = errors.New("msim: client closed")
	ErrDeadLink          = errors.New("msim: connection silent")
	ErrEventOverflow     = errors.New("msim: event backlog overflow")
)

// sentinelFor maps an \error\ code to its sentinel.
func sentinelFor(code int) error {
	switch code {
	case ErrCodeBadPassword:
		return ErrBadPassword
	case ErrCodeUnknownAccount:
		return ErrUnknownAccount
	case ErrCodeElsewhere:
		return ErrLoggedInElsewhere
	}
	return ErrServer
}

// LoginError is a login the server (or the user-name flow) refused.
type LoginError struct {
	Code    int    // the server's err code; 0 when the client gave up
	Message string // the server's errmsg, for a person
	Err     error  // ErrBadPassword, ErrUnknownAccount, ErrNoUserName, ErrLoggedInElsewhere, ErrServer…
}

func (e *LoginError) Error() string {
	s := "msim: login failed: " + e.Err.Error()
	if e.Code != 0 {
		s += " (err " + strconv.Itoa(e.Code) + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *LoginError) Unwrap() error { return e.Err }

func loginErrorOf(m *Message) *LoginError {
	code, _ := m.Int("err")
	return &LoginError{Code: code, Message: m.StrOr("errmsg", ""), Err: sentinelFor(code)}
}

// ServerError is an \error\ received after login. Fatal ones end the session
// and are the Err of its DisconnectedEvent.
type ServerError struct {
	Code    int
	Message string
	Fatal   bool
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("msim: server error %d: %s", e.Code, e.Message)
}

func (e *ServerError) Unwrap() error { return sentinelFor(e.Code) }

// PersistError is a persist reply with the error bit set.
type PersistError struct {
	Cmd, DSN, LID int
	Message       string // the reply's ErrorMessage
}

func (e *PersistError) Error() string {
	return fmt.Sprintf("msim: persist %d/%d/%d failed: %s", e.Cmd&^CmdError, e.DSN, e.LID, e.Message)
}
