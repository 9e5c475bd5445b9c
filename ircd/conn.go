package ircd

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/internal/deadline"
	"github.com/msimircd/msimircd/internal/maproom"
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
	// handshaking: the reader runs the connection's TLS handshake, which
	// Rest leaves be (see handshake).
	handshaking atomic.Bool
	// capsOn is a copy of caps (nil: none) that HasCap reads without
	// c.mu, replaced whole (publishCaps) whenever caps changes.
	capsOn atomic.Pointer[map[string]bool]

	// Outgoing queue: a slice grown on demand (an idle connection holds no
	// buffer), bounded by SendQ. The writer goroutine runs only while there
	// is something to write (writing): whoever queues onto an idle
	// connection starts it, and it ends once the queue is empty, so an idle
	// connection holds no writer. qclosed is set once the writer has taken
	// the queue for the last time.
	qmu      sync.Mutex
	q, spare []entry
	qc       *lineChunk // the encoded lines of entries queued (rawline.go)
	qclosed  bool
	writing  bool
	noWriter bool // tests that drain the queue themselves (take) start no writer
	done     chan struct{}
	// closing is set just before done is closed, for the checks of every
	// line queued (admit, isClosed) to read without a channel operation.
	closing   atomic.Bool
	closeOnce sync.Once
	// heldLines is len(held) and burstQueued welcomed, for Room to read
	// without c.mu; both are written under c.mu after the lines they let
	// go of are queued, so that meanwhile Room counts those lines twice
	// rather than not at all.
	heldLines   atomic.Int32
	burstQueued atomic.Bool
	reason      string // why the connection closed; written before done is closed
	flush       bool   // whether to flush the queue before the final ERROR

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
	// lineID, when not empty, is the msgid made with the line being
	// handled for its message (plainMessage), at lineIDAt: the first
	// message of the line made at that time takes it (msgID). The reader
	// goroutine's, as lineAt.
	lineID   string
	lineIDAt time.Time
	cw       countingWriter // the writer goroutine's byte count of a batch
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
	connecting bool    // Backend.Connect in progress or done
	welcomed   bool    // 001 sent; driving-API lines are held until then
	held       []entry // driving-API lines held (holdWorld)
	handler    Handler
	away       string
	umodes     string
	signon     time.Time
	lastActive time.Time
	// now is the current stamp while its timer runs (stampStop): the
	// clock is read for it once, and the timer (staleStamp), set for the
	// next second's start, makes the next stamp read it again, so that IMs
	// arriving in a burst do not read the clock each.
	now        stamp
	stampStop  func() bool                   // stops the timer that ends now (nil when none runs: now is stale)
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
	// inputsTo is the handler then. Those of plain lines read together
	// are held until the reader has handled them all (handInputs). The
	// reader goroutine's alone, as are readAhead and linesAhead.
	inputs   []Input
	inputsTo Handler
	// readAhead: the line reader holds another complete line after the
	// one being handled; linesAhead: so does the line being handled
	// (handleLine), or readAhead. The plain way holds its Inputs then.
	readAhead, linesAhead bool

	whois   []*whoisReq // WHOIS replies waiting, in the order asked
	pending []*asyncReq // replies waiting for a HistoryHandler, in the order asked
	capture *replyBuf   // the labeled reply being collected (labeled.go)
	// joinsWaiting counts the labeled JOIN replies in pending; while it
	// is not 0, driving-API lines are held as before the welcome
	// (holdWorld).
	joinsWaiting int
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
	if _, ok := nc.(*tls.Conn); ok {
		c.handshaking.Store(true)
	}
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

// dispatch runs one command under c.mu, then the backend calls it queued.
// (The reader hands the Inputs held before it over first.)
func (c *Client) dispatch(m *irc.Message) { c.afterRun(c.run(m)) }

// afterRun makes the backend calls a command queued (calls, then the
// handler's Message calls), c.mu released.
func (c *Client) afterRun(calls []func()) {
	for _, f := range calls {
		f()
	}
	c.handInputs(len(c.inputs))
}

// maxHeldInputs bounds the Inputs the reader holds (see MessagesHandler).
const maxHeldInputs = 16

// handInputs hands the first n Inputs queued to the handler they were
// queued for: one Messages call if it has the method, else a Message each.
// They are taken from c.inputs before the call, so that a handler that
// panics never gets them again.
func (c *Client) handInputs(n int) {
	if n == 0 {
		return
	}
	ins, h := c.inputs, c.inputsTo
	c.inputs = nil
	if mh, ok := h.(MessagesHandler); ok {
		mh.Messages(ins[:n])
	} else {
		for i := range ins[:n] {
			h.Message(ins[i])
		}
	}
	clear(ins[:n])
	rest := copy(ins, ins[n:])
	clear(ins[rest:])
	c.inputs = ins[:rest]
	if rest == 0 {
		c.inputsTo = nil
	}
}

// handLeft hands over the Inputs held when the reader stops (the
// connection ends, the reader panicked or rests), before the handler
// learns of the end. A handler's panic is logged, as the reader's.
func (c *Client) handLeft() {
	if len(c.inputs) == 0 {
		return
	}
	defer c.recoverAndLog()
	c.handInputs(len(c.inputs))
}

func (c *Client) run(m *irc.Message) []func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref, ok := m.Tags["batch"]; ok && c.welcomed && m.Command != "BATCH" {
		// A line of a multiline batch, run at its end. One of no batch
		// open is refused, with its label if it has one.
		var rb *replyBuf
		if b := c.mline; b == nil || b.ref != ref {
			rb = c.startReply(m)
		}
		c.lineBatched = c.batchLine(m, ref)
		c.endReply(rb)
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
