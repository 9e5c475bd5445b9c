// Package ircd is a tiny, correct IRC server whose users each see their own
// world of virtual users and channels, created and driven by a Backend.
//
// It owns the listener, the per-connection reader and writer, registration
// (PASS, NICK, USER, CAP, SASL PLAIN), the command table, and the virtual
// users and channels of every connection. It knows nothing about MSIM.
//
// Goroutines: Serve runs the accept loop. Each connection has a reader
// goroutine, which parses and handles client lines and is the only caller of
// the connection's Handler, and, while it has lines to write or is closing,
// a writer goroutine, which is the only writer to the socket and drains a
// bounded queue. The per-connection world (nick,
// caps, virtual users and channels) is guarded by the Client's mutex because
// the backend drives it synchronously from its own goroutine (AddUser returns
// an error); the mutex is never held during network I/O or a Backend or
// Handler call, and queuing a line never blocks: a client whose queue is full
// is disconnected. A WHOIS reply that waits for an AsyncWhoisHandler is
// queued by whichever goroutine brings its answer, or by the timer that ends
// the wait.
//
// Conventions a client sees: CASEMAPPING=rfc1459 for nicks and channels;
// the real client is a plain member of its channels (no @), so MODE and
// TOPIC changes from it get 482, while virtual users show "+" (voice) and
// "@" (op, via SetOp), both with multi-prefix. Backend-supplied WHOIS lines
// (from an AsyncWhoisHandler) are sent as 320 RPL_WHOISSPECIAL; the reply
// waits for them without stalling the reader.
// Capabilities never change at run time, so cap-notify never sends CAP
// NEW/DEL. Lines longer than 512 bytes (8191 more for tags) get 417; a line
// that overflows the read buffer (512+8191 bytes) gets 417 and a close; a
// NUL byte closes the connection; invalid UTF-8 gets FAIL <cmd>
// INVALID_UTF8 (UTF8ONLY is advertised); a bare CR or LF ends a line;
// parameters beyond the 14th are one 15th, space-separated. A NOTICE
// never gets an automatic reply, errors included. WHO with a mask lists
// the matching users of the client's world.
//
// Abuse: connections are capped in total and per address, and failed
// logins (SASL, and PASS the backend refuses with ErrBadCredentials) are
// slowed per address and per account, then refused per address for a while
// (Config.MaxConnections, AuthFailures and the like).
//
// Memory: an idle connection holds a read buffer of one ordinary line
// (grown only while a longer line is read), no write buffer (one is
// borrowed per batch) and a send queue that is empty or small; its reader
// waits on a fresh goroutine once it has rested (ReaderRest, Rest); its
// world holds a small record per virtual user and per channel membership
// besides the strings the backend gave (a user's ident and host as one,
// User.Mask; its away text shared with the users that have the same).
// BenchmarkWorldMemory measures them.
//
// Delivery: Deliver reports whether a message was queued, Delivery.Sent
// when it was written, and Room how much the send queue takes now, so a
// backend can pace a large replay by what the client drains and keep what
// it did not receive.
package ircd

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/internal/rest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"gopkg.in/irc.v4"
)

// Config holds the server settings. NewServer fills zero fields with the
// values of DefaultConfig, except FloodRate where 0 means no flood control.
type Config struct {
	ServerName string // the server's name in prefixes and numerics
	Network    string // NETWORK in ISUPPORT
	Version    string
	MOTD       []string // no lines: 422 ERR_NOMOTD

	PingInterval        time.Duration // idle time before the server sends PING
	PingTimeout         time.Duration // time to answer it before being dropped
	RegistrationTimeout time.Duration // time to finish NICK/USER/CAP END
	WriteTimeout        time.Duration // per write to the socket
	WhoisTimeout        time.Duration // wait for an AsyncWhoisHandler's answer

	// History offers draft/chathistory and draft/read-marker in CAP LS;
	// they work for connections whose Handler is a HistoryHandler.
	// HistoryLimit is the most messages one CHATHISTORY may ask for
	// (ISUPPORT CHATHISTORY), and the most conversations TARGETS is
	// given; HistoryTimeout the wait for the backend's answer to
	// CHATHISTORY or MARKREAD.
	History        bool
	HistoryLimit   int
	HistoryTimeout time.Duration

	SendQ      int     // queued messages per connection before it is dropped
	FloodRate  float64 // lines per second after the burst; 0 = no limit
	FloodBurst int     // lines read without throttling

	// MaxConnections caps open connections (registered or not), and
	// MaxConnectionsPerAddr those from one address (an IPv6 /64); 0 takes
	// the default, a negative value means no cap. A connection over a cap
	// gets an ERROR saying so and is closed.
	MaxConnections        int
	MaxConnectionsPerAddr int

	// AuthFailures slows password guessing (failed SASL logins, and PASS
	// logins the backend refuses with ErrBadCredentials) per source
	// address: a growing delay, then a temporary refusal. Zero fields take
	// guard.DefaultFailures.
	AuthFailures guard.FailureConfig
	// AccountFailures slows guessing per account. Zero fields take
	// guard.DefaultFailures, except MaxDelay and RefuseAfter, which take
	// DefaultConfig's (a shorter delay, and never refused, so guessing
	// never locks the owner out).
	AccountFailures guard.FailureConfig
	// AuthLimiter and AccountLimiter, when set, count the failures in
	// place of limiters made from AuthFailures and AccountFailures (under
	// guard.AddrKey of the address and AccountKey of the account): a
	// backend that takes passwords of its own after registration counts
	// its failures in the same limiters, so that an address has one budget
	// of guesses however it spends them.
	AuthLimiter, AccountLimiter *guard.FailureLimiter

	// TraceLines logs every line read from a client and every line
	// written to it on the server's logger at debug level ("irc <- …",
	// "irc -> …", with the connection's fields conn, remote and, once it
	// has registered, nick). PASS, AUTHENTICATE payloads, OPER passwords
	// and commands to NickServ are masked, then Redact masks the
	// backend's secrets; the text of every PRIVMSG and NOTICE, masked or
	// not, is then shown as its size ("<N bytes>"), never as written.
	// Nothing is formatted while the logger is above
	// debug level, which is checked as lines come and go (a level changed
	// at run time counts).
	TraceLines bool
	// Redact, when not nil, masks the backend's secrets in a traced line:
	// it is given each line the client sent and each line sent to the
	// client from the client itself (echo-message), and returns the line
	// to log, m itself when there is nothing to mask. It must not modify
	// m, and may be called from any connection's goroutines at once.
	Redact func(m *irc.Message) *irc.Message
	// Metrics, when set, gets the server's Prometheus collectors
	// (connections, SendQ disconnects, flood delays); nil counts nothing.
	Metrics prometheus.Registerer
}

// DefaultConfig returns the defaults, including flood control.
func DefaultConfig() Config {
	return Config{
		ServerName:          "irc.msimircd.local",
		Network:             "msimircd",
		Version:             "msimircd-0.1",
		PingInterval:        90 * time.Second,
		PingTimeout:         60 * time.Second,
		RegistrationTimeout: 30 * time.Second,
		WriteTimeout:        15 * time.Second,
		WhoisTimeout:        3 * time.Second,
		HistoryLimit:        500,
		HistoryTimeout:      10 * time.Second,
		SendQ:               4096,
		FloodRate:           5,
		FloodBurst:          20,

		MaxConnections:        4096,
		MaxConnectionsPerAddr: 32,
		AccountFailures:       guard.FailureConfig{MaxDelay: 5 * time.Second, RefuseAfter: -1},
	}
}

func (cfg Config) withDefaults() Config {
	d := DefaultConfig()
	if cfg.ServerName == "" {
		cfg.ServerName = d.ServerName
	}
	if cfg.Network == "" {
		cfg.Network = d.Network
	}
	if cfg.Version == "" {
		cfg.Version = d.Version
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = d.PingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = d.PingTimeout
	}
	if cfg.RegistrationTimeout <= 0 {
		cfg.RegistrationTimeout = d.RegistrationTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = d.WriteTimeout
	}
	if cfg.WhoisTimeout <= 0 {
		cfg.WhoisTimeout = d.WhoisTimeout
	}
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = d.HistoryLimit
	}
	if cfg.HistoryTimeout <= 0 {
		cfg.HistoryTimeout = d.HistoryTimeout
	}
	if cfg.SendQ <= 0 {
		cfg.SendQ = d.SendQ
	}
	if cfg.FloodRate > 0 && cfg.FloodBurst <= 0 {
		cfg.FloodBurst = d.FloodBurst
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = d.MaxConnections
	}
	if cfg.MaxConnectionsPerAddr == 0 {
		cfg.MaxConnectionsPerAddr = d.MaxConnectionsPerAddr
	}
	if cfg.AccountFailures.MaxDelay <= 0 {
		cfg.AccountFailures.MaxDelay = d.AccountFailures.MaxDelay
	}
	if cfg.AccountFailures.RefuseAfter == 0 {
		cfg.AccountFailures.RefuseAfter = d.AccountFailures.RefuseAfter
	}
	return cfg
}

// Backend decides authentication and drives each connection's world.
type Backend interface {
	// Authenticate checks SASL PLAIN credentials during CAP negotiation:
	// nil gives 900 and 903; an error gives 904 at once, sets nothing and
	// counts as a failed guess (Config.AuthFailures, AccountFailures); the
	// client may try again. It is not asked about an empty password, an
	// account name that could not be repeated in a reply (validAccountName:
	// a control character, invalid UTF-8, a user's name past NickLen, a
	// client's past ClientNameLen), nor while the client's address is refused.
	Authenticate(ctx context.Context, account, password string) error
	// Connect is called at the end of registration (after NICK and USER,
	// and CAP END if the client negotiated), after the delay earlier failed
	// guesses call for. An error sends 464 with its text and closes the
	// connection, except one wrapping ErrBadCredentials: it counts as a
	// failed guess (against the account only if the client gave PASS or
	// logged in with SASL) and gets a generic 464 that does not tell
	// whether the account exists. Connect may call c's methods; lines they produce are
	// sent after the welcome burst.
	Connect(c *Client, reg Registration) (Handler, error)
}

// Registration describes a client that finished registering.
type Registration struct {
	// User is USER's user name, with a client's name after a '/' as the
	// client gave it (alice/phone); the client's hostmask shows the user
	// name alone.
	Nick, User, RealName string
	Pass                 string // PASS value, "" if none
	Account              string // SASL-authenticated account, "" if none
	// SASLPassword is the password Authenticate accepted for Account on
	// this connection, so that the backend can tie what it does at Connect
	// to this client's login, not to another's at the same account.
	SASLPassword string
	Remote       net.Addr
}

// Handler receives what the real client does in its world. Its methods are
// called from the connection's reader goroutine, one at a time, and must not
// block for long. They may call the Client's methods.
type Handler interface {
	// Message is a PRIVMSG, NOTICE or TAGMSG to a virtual user or to a
	// channel the client is in.
	Message(in Input)
	Join(channel string) // the client joined a channel of its world
	Part(channel, reason string)
	Away(text string)     // "" = back
	Nick(newNick string)  // the client changed its nick
	Closed(reason string) // the connection ended; called exactly once
}

// MessagesHandler is an optional interface of a Handler, for the
// messages of lines a client sent together. Messages is called where
// Message would be, from the connection's reader goroutine without ircd's
// locks, with the Inputs of consecutive plain PRIVMSG and NOTICE lines the
// reader had in hand without waiting for more bytes (a bounded number), in
// the order sent. ins is valid only during the call: a backend keeps the
// Inputs, not the slice.
//
// The reader hands them over before it handles any other line, before it
// waits for more bytes or for flood control, and when the connection ends
// or its reader stops, so every other call of the Handler keeps its order
// relative to the messages. Echoes, numerics and msgids are as for lines
// read one by one. A Handler without it gets a Message for each Input.
type MessagesHandler interface {
	Messages(ins []Input)
}

// RealNameHandler is an optional interface of a Handler: RealName is
// called, as Handler's methods are, when the client changes its real name
// with SETNAME, so that a backend with several clients of one user can
// give the name to the others (Client.SetOwnRealName), as a bouncer keeps
// one real name for all of a user's clients.
type RealNameHandler interface {
	RealName(name string)
}

// AsyncWhoisHandler is an optional interface of a Handler, for the extra
// lines of a WHOIS about a virtual user, which ircd sends as 320
// RPL_WHOISSPECIAL (cleaned and split like any backend text).
//
// WhoisAsync is called from the connection's reader goroutine without
// ircd's locks, and must return at once: the client's next lines are read
// meanwhile. The backend calls answer exactly once, from any goroutine,
// before or after WhoisAsync returns, with the lines (nil for none); answer
// takes the client's lock briefly and never blocks on I/O. If no answer
// comes within Config.WhoisTimeout, ircd sends the reply without extra
// lines; an answer after that, and any second answer, is ignored.
//
// The whole reply (311 319 312 301 320… 317 318) is queued at once when the
// answer comes, so no other line comes between its numerics, and it shows
// the user as it is then (401 and 318 if it was removed meanwhile). Lines
// the client sends after the WHOIS are answered as usual, so their replies
// may come before it; WHOIS replies themselves come in the order they were
// asked, a quick answer waiting for a slower one asked before it (a WHOIS
// of the client itself or of an unknown nick too). A WHOIS while many are
// waiting already gets 263 RPL_TRYAGAIN.
type AsyncWhoisHandler interface {
	WhoisAsync(nick string, answer func(lines []string))
}

// Input is a message from the real client. Target is the virtual user's nick
// or the channel's name as the backend created it. Text is raw, CTCP framing
// (\x01ACTION ...\x01) included. Tags holds only client-only tags ("+typing"),
// and is nil when there are none. MsgID (a NewMsgID) and Time (when ircd
// read the line, UTC, whole milliseconds) are those of the client's
// echo-message echo, so a stored copy can carry the same msgid and time.
// Lines, for a message that came as a multiline batch, are the lines of
// its echo's batch, which Text joins; a Delivery of the message given them
// shows it to another multiline client as the same batch.
type Input struct {
	Command string // PRIVMSG, NOTICE or TAGMSG
	Target  string
	Text    string
	Tags    irc.Tags
	MsgID   string
	Time    time.Time
	Lines   []BatchLine
}

// Errors returned by the driving API.
var (
	ErrInvalidNick    = errors.New("ircd: invalid nick")
	ErrNickInUse      = errors.New("ircd: nick in use")
	ErrNoSuchUser     = errors.New("ircd: no such virtual user")
	ErrInvalidChannel = errors.New("ircd: invalid channel name")
	ErrChannelExists  = errors.New("ircd: channel exists")
	ErrNoSuchChannel  = errors.New("ircd: no such channel")
	ErrInvalidUser    = errors.New("ircd: invalid user or host")
	ErrClosed         = errors.New("ircd: server closed")
)

// Server accepts IRC connections and runs them.
type Server struct {
	cfg     Config
	backend Backend
	log     *logrus.Entry
	created time.Time

	welcomeLines int  // lines of the welcome burst (welcomeLines)
	live         live // what SetMOTD and SetFlood change (reload.go)
	guesses      *guesses
	conns        conns
	met          *serverMetrics // nil: no metrics

	// prefix is the server's own prefix, shared by the lines it sends
	// (nothing changes a message's prefix once built).
	prefix *irc.Prefix

	// afterFunc runs f after d on its own goroutine unless stopped, as
	// time.AfterFunc does; tests replace it to step time by hand.
	afterFunc func(d time.Duration, f func()) (stop func() bool)
	// stampAfter is afterFunc for the timers that end a client's current
	// stamp (Client.stamp), apart so that a test counts them alone.
	stampAfter func(d time.Duration, f func()) (stop func() bool)
	// now reads the clock for a line a client sent, and for a client's
	// stamp: time.Now. A test may replace it to see which time a line is
	// given, calling the reader's line handling itself (a reader on a
	// socket sets its deadlines from that time), or to count a client's
	// clock reads.
	now func() time.Time

	wg      sync.WaitGroup // every connection goroutine and accept loop
	nextID  atomic.Uint64
	mu      sync.Mutex // guards clients, closing and lns
	clients map[*Client]struct{}
	lns     map[net.Listener]struct{}
	closing bool
}

// NewServer returns a server that hands registered clients to b.
func NewServer(cfg Config, b Backend, log *logrus.Entry) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:          cfg,
		backend:      b,
		log:          log,
		created:      time.Now(),
		welcomeLines: welcomeLines(&cfg),
		prefix:       &irc.Prefix{Name: cfg.ServerName},
		afterFunc:    afterFunc,
		stampAfter:   afterFunc,
		now:          time.Now,
		guesses:      newGuesses(&cfg),
		met:          newServerMetrics(cfg.Metrics),
		clients:      make(map[*Client]struct{}),
		lns:          make(map[net.Listener]struct{}),
	}
	s.conns.limit = guard.NewConnLimiter(max(cfg.MaxConnections, 0), max(cfg.MaxConnectionsPerAddr, 0))
	return s
}

func afterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// Serve accepts connections on ln until ctx is done or Shutdown is called,
// then closes ln and returns nil. Connections accepted by Serve are closed
// when ctx is done. It may be called for several listeners.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrClosed
	}
	s.lns[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	// One hook for the listener and every connection it accepts. It stays
	// after Serve returns (a listener closed by the caller, say): the
	// connections are still closed when ctx is done.
	sv := &serving{ln: ln}
	context.AfterFunc(ctx, func() { s.closeServed(sv) })
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if ctx.Err() != nil || closing || errors.Is(err, net.ErrClosed) {
				return nil
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.WithError(err).Warn("accept failed; retrying")
			select {
			case <-time.After(backoff):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		backoff = 0
		release, err := s.conns.limit.Acquire(guard.AddrKey(nc.RemoteAddr()))
		if cerr := (*guard.ConnLimitError)(nil); errors.As(err, &cerr) {
			s.refuse(nc, cerr)
			continue
		}
		if !s.start(ctx, sv, nc, release) {
			release()
			_ = nc.Close()
			return nil
		}
	}
}

// start registers and runs a new connection; false if shutting down.
// release uncounts the connection once it ends.
func (s *Server) start(ctx context.Context, sv *serving, nc net.Conn, release func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || ctx.Err() != nil { // after ctx's end closeServed has run, or is waiting for s.mu
		return false
	}
	c := newClient(ctx, s, nc)
	c.serving = sv
	c.release = release
	s.clients[c] = struct{}{}
	s.met.connOpened()
	s.wg.Add(2) // the reader, and the writer that finishes the connection
	rest.Add(c) // here: on the reader's own stack the map's growth would grow it
	go c.readLoop(nil)
	return true
}

func (s *Server) remove(c *Client) {
	s.mu.Lock()
	delete(s.clients, c)
	s.mu.Unlock()
	s.met.connClosed()
}

// serving is one call of Serve, which its connections point to.
type serving struct{ ln net.Listener }

// closeServed closes sv's listener and the connections it accepted, now
// that its context is done: one hook per Serve rather than one per
// connection.
func (s *Server) closeServed(sv *serving) {
	_ = sv.ln.Close()
	s.mu.Lock()
	var cs []*Client
	for c := range s.clients {
		if c.serving == sv {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.Close(ShutdownReason)
	}
}

// ShutdownReason is the reason Shutdown, and the closing of a listener,
// give the connections they close (in their ERROR, and to
// Handler.Closed).
const ShutdownReason = "Server shutting down"

// Shutdown stops accepting, sends ERROR :Server shutting down to every
// client, closes them and waits for all goroutines, or until ctx is done, in
// which case the remaining sockets are closed at once and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.lns {
		_ = ln.Close()
	}
	cs := make([]*Client, 0, len(s.clients))
	for c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.Close(ShutdownReason)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.clients {
			_ = c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
