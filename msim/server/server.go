// Package server is an MSIM (MySpaceIM) server: the embedded network of
// msimircd, the peer of every end-to-end test, and a server a real MSIM
// client (libpurple's msimprpl, the 2007 official client) can log in to.
//
// It owns accounts (through a Store), login, contact lists and groups,
// presence fan-out, IM routing with offline storage, lookups, block lists
// and the demo user Tom; and the limits at its door (limits.go): failed
// logins slowed per address and account, connections and offline mail
// capped. The file store keeps password hashes sealed under a key file
// (seal.go). With Config.Metrics it counts what it does for Prometheus and
// offers readiness probes (metrics.go).
//
// Goroutines: Serve runs one accept loop per listener. Every connection has
// a reader goroutine, which decodes requests and handles them one at a time
// (it alone touches the session's login state), and a writer goroutine, which
// drains the session's bounded queue to the socket and sends keepalives.
// Routing state shared between sessions (who is online, who watches whom,
// presence and privacy settings) lives in the registry behind one mutex;
// sending to another session only appends to its queue and never blocks.
// The Store is safe for concurrent use.
//
// With Config.Bus the server is one node of a cluster (bus.go, remote.go;
// package cluster is the bus over NATS): the registry also follows the
// states of listed users whose sessions are on other nodes, and what it
// cannot deliver locally goes to the bus before it is stored. The bus calls
// back through Peer on its own goroutines; the registry is never locked
// across a bus call. Without a Bus none of this runs.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/msim"
)

// Config tunes a Server. Zero fields take their defaults.
type Config struct {
	KeepAlive    time.Duration // idle time before \ka\\final\ (default 60s)
	LoginTimeout time.Duration // close connections that have not logged in (default 60s)
	Demo         bool          // seed Tom (uid 6221), list him on every new account; he is online and answers IMs
	MaxMessage   int           // largest accepted message, default msim.DefaultMaxSize
	SendQ        int           // per-session outgoing queue length (messages), default 1024; overflow closes that session

	// PresenceDelay bounds how long a contact's presence change may wait
	// in a watcher's queue for more to share its write (default 50ms;
	// negative: none waits). Anything else queued takes it along at once.
	PresenceDelay time.Duration

	// Failed logins are slowed per address (LoginFailures, default
	// guard.DefaultFailures: a growing delay, then a temporary refusal) and
	// per account (AccountFailures, default DefaultAccountFailures: a delay
	// only, whatever RefuseAfter 0 says). Their Clock is the limiters'.
	LoginFailures   guard.FailureConfig
	AccountFailures guard.FailureConfig

	// Caps: 0 takes the default (Default… constants), a negative value is
	// no cap. Connections count from accept to close, logged in or not.
	MaxConnections           int
	MaxConnectionsPerAddr    int
	OfflinePerRecipientBytes int64 // bytes of offline IMs waiting for one user
	OfflinePerSenderBytes    int64 // bytes one sender may have waiting for one user

	// TrustedNets are networks whose connections are not limited per
	// address (connections and failed logins): a bridge such as msimircd
	// logs all its users in from one address. The total cap and the
	// per-account delays still apply.
	TrustedNets []netip.Prefix

	// Metrics, if not nil, gets the server's Prometheus collectors
	// (metrics.go); nil counts nothing.
	Metrics prometheus.Registerer

	// Bus, if not nil, makes the server one node of a cluster (bus.go):
	// what crosses sessions crosses the bus when the peer is on another
	// node. All the nodes must share one Store. nil: a single process.
	Bus Bus
}

func (c *Config) defaults() {
	if c.KeepAlive <= 0 {
		c.KeepAlive = 60 * time.Second
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = 60 * time.Second
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = msim.DefaultMaxSize
	}
	if c.SendQ <= 0 {
		c.SendQ = 1024
	}
	if c.PresenceDelay == 0 {
		c.PresenceDelay = defaultPresenceDelay
	}
}

// presenceBatch is how many presence changes wait in a watcher's queue
// at most: presenceBatch, or half the SendQ when that is smaller, so
// waiting never fills the queue of a client that reads.
func (c *Config) presenceBatch() int { return min(presenceBatch, max(1, c.SendQ/2)) }

// writeTimeout bounds every socket write; a peer that does not read for this
// long is dropped.
const writeTimeout = 15 * time.Second

// Server is an MSIM server. Create it with New.
type Server struct {
	cfg   Config
	store Store
	log   *logrus.Entry
	reg   registry
	tom   *tom // nil unless cfg.Demo
	bus   Bus  // nil unless cfg.Bus

	metrics   *metricSet  // nil without cfg.Metrics
	lastLogin *lastLogins // login times on their way to the store

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*session]struct{}
	closed    bool
	probe     *storeProbe // the CheckStore read under way, if any
	wg        sync.WaitGroup

	// offlineMu orders storing an offline message against the recipient's
	// login (which takes its stored messages), so none is left behind.
	offlineMu sync.Mutex
	// held: under offlineMu, the IMs taken from a mailbox that a restore
	// stores again once a rescue is done (restore), by recipient. The
	// stores meanwhile count them (addOffline).
	held map[msim.UID]heldIMs

	connID atomic.Uint64
	rid    atomic.Int64 // rid of unsolicited persistr messages

	// Limits (limits.go), built by New from cfg.
	logins        *guard.FailureLimiter // failed logins per address
	accounts      *guard.FailureLimiter // failed logins per account
	connCap       *guard.ConnLimiter
	connLog       *guard.Quota // log lines of refused connections per address
	offlineLimits OfflineLimits
	rescueLimits  OfflineLimits                                    // the ceiling of rescueIMs (rescueFactor)
	untoldLimits  OfflineLimits                                    // the hard ceiling, for IMs whose senders cannot be told (untoldFactor)
	sleep         func(d time.Duration, done <-chan struct{}) bool // the login delay; tests replace it
	flood         floodControl                                     // the accounts' flood control buckets (flood.go)
	inflowWait    func(d time.Duration, done <-chan struct{}) bool // flood control's wait (session.throttle); tests replace it
	now           func() time.Time                                 // flood control's clock; tests replace it
	decoy         msim.PasswordHash                                // checked for unknown e-mail addresses
}

// New returns a Server on store. With cfg.Demo it makes sure the demo user
// Tom exists.
func New(cfg Config, store Store, log *logrus.Entry) (*Server, error) {
	cfg.defaults()
	s := &Server{
		cfg:       cfg,
		store:     store,
		log:       log,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*session]struct{}{},
		lastLogin: newLastLogins(store, log),
	}
	s.reg.init(cfg.Demo)
	s.bus, s.reg.bus = cfg.Bus, cfg.Bus
	s.initLimits()
	m, err := newMetricSet(cfg.Metrics, s)
	if err != nil {
		return nil, err
	}
	s.metrics, s.reg.metrics = m, m
	s.rid.Store(10594326) // the 2007 server's rids were of this size
	if cfg.Demo {
		t, err := newTom(s)
		if err != nil {
			return nil, err
		}
		s.tom = t
	}
	if s.bus != nil {
		s.bus.Attach(peer{s})
	}
	return s, nil
}

// AddAccount creates an account out of band (the login crypto never reveals
// the password, so accounts cannot be created by logging in). Only
// msim.HashPassword(password) is stored. userName "" leaves the user name
// unset (the client's set-username flow then applies). With Demo, Tom is put
// on the new account's list.
func (s *Server) AddAccount(email, password, userName string) (msim.UID, error) {
	if !validEmail(email) {
		return 0, fmt.Errorf("msim/server: add account: bad e-mail address %q", email)
	}
	if userName != "" {
		if err := ValidUserName(userName); err != nil {
			return 0, fmt.Errorf("msim/server: add account %s: %w", email, err)
		}
	}
	a := &Account{
		Email:    email,
		UserName: userName,
		Hash:     msim.HashPassword(password),
		Groups:   defaultGroups(),
	}
	if err := s.store.CreateAccount(a); err != nil {
		return 0, fmt.Errorf("msim/server: add account %s: %w", email, err)
	}
	if s.tom != nil {
		c := Contact{UID: TomUID, GroupName: "IM Friends", Position: 1000, Visibility: 1}
		if err := s.store.PutContact(a.UID, c); err != nil {
			return a.UID, fmt.Errorf("msim/server: add account %s: list Tom: %w", email, err)
		}
	}
	s.log.WithFields(logrus.Fields{"uid": a.UID, "email": email}).Info("account created")
	return a.UID, nil
}

// CheckPassword reports whether password is the account's (nil), or
// ErrNoSuchAccount, or ErrWrongPassword. Only hashes are compared, in
// constant time.
func (s *Server) CheckPassword(email, password string) error {
	a, err := s.store.AccountByEmail(email)
	if err != nil {
		return err
	}
	h := msim.HashPassword(password)
	if subtle.ConstantTimeCompare(h[:], a.Hash[:]) != 1 {
		return ErrWrongPassword
	}
	return nil
}

// SeedAccount makes sure an account exists for an "EMAIL:PASSWORD" spec (the
// -account flags of msimd and msimircd). Its user name is the part of the
// e-mail before '@' when that is valid and free, else none (the client's
// set-username flow applies). An existing account is kept as it is:
// created is false then.
func (s *Server) SeedAccount(spec string) (uid msim.UID, created bool, err error) {
	email, pw, ok := strings.Cut(spec, ":")
	if !ok || email == "" || pw == "" {
		return 0, false, errors.New("msim/server: an account spec is not EMAIL:PASSWORD") // never echo it: it may hold the password
	}
	name, _, _ := strings.Cut(email, "@")
	if ValidUserName(name) != nil {
		name = ""
	}
	uid, err = s.AddAccount(email, pw, name)
	if errors.Is(err, ErrUserNameTaken) {
		uid, err = s.AddAccount(email, pw, "")
	}
	if errors.Is(err, ErrAccountExists) {
		return 0, false, nil
	}
	return uid, err == nil, err
}

// Online reports whether uid has a live session (Tom always does in the demo).
func (s *Server) Online(uid msim.UID) bool {
	if s.tom != nil && uid == TomUID {
		return true
	}
	return s.reg.session(uid) != nil
}

// Serve accepts connections on ln until ctx ends or Shutdown is called; it
// closes ln then. It returns nil in those cases, the accept error otherwise.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if !isLoopback(ln.Addr()) {
		s.log.WithField("listen", ln.Addr().String()).Warn("serving MSIM on a non-loopback address: logins are unencrypted")
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if retryable(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.WithError(err).Warn("accept failed; retrying")
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("msim/server: accept: %w", err)
		}
		backoff = 0
		s.startSession(nc)
	}
}

// retryable reports accept errors worth retrying: timeouts and resource
// exhaustion (EMFILE and friends, which the net package marks temporary).
func retryable(err error) bool {
	var t interface {
		Timeout() bool
		Temporary() bool
	}
	return errors.As(err, &t) && (t.Timeout() || t.Temporary())
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) startSession(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	id := s.connID.Add(1)
	release, err := s.admit(nc, id)
	if err != nil {
		s.mu.Unlock()
		s.refuseConn(nc, err)
		return
	}
	ss := newSession(s, nc, id)
	ss.release = release
	s.conns[ss] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	go ss.writeLoop()
	go ss.readLoop()
}

func (s *Server) forget(ss *session) {
	s.mu.Lock()
	delete(s.conns, ss)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes every session (each is logged out, so
// watchers see it go offline) and waits for all goroutines, or until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*session, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeAfterFlush()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.lastLogin.close(ctx)
		return ctx.Err()
	case <-ctx.Done():
		for _, c := range conns {
			c.closeNow()
		}
		<-done
		s.lastLogin.close(ctx)
		return ctx.Err()
	}
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return !ok || ta.IP.IsLoopback()
}

// nextRID returns the rid of an unsolicited persistr.
func (s *Server) nextRID() int { return int(s.rid.Add(1)) }
