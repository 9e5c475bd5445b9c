// Package channel is the bridge between IRC and MSIM: each MSIM account of an
// IRC user is a control channel, buddies are nicks in it, and messages,
// presence, typing and zaps cross in both directions.
//
// Ownership: Bridge implements ircd.Backend and keeps a small registry of
// live sessions and remembered per-user state behind a mutex. Each IRC
// connection gets a session whose single goroutine (session.run) owns all of
// that user's accounts, buddies and nicks; the IRC reader, the MSIM clients'
// event pumps and async requests only post events to it.
package channel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// Account is one MSIM account of an IRC user.
type Account struct {
	Email    string
	Password string
	// Channel is the control channel's name; "" means "&" + the account's
	// user name (the part of the e-mail before '@' until the first login
	// tells the real one).
	Channel     string
	AutoConnect bool
}

// User is an IRC user of the gateway and their MSIM accounts.
type User struct {
	Name     string // key for remembered state (nick renames, settings)
	Accounts []Account
}

// Directory tells the bridge who may connect and with which accounts.
type Directory interface {
	// Authenticate checks SASL PLAIN credentials.
	Authenticate(account, password string) error
	// Lookup returns the user that registered with reg (PASS or SASL
	// account, nick), or an error that refuses the connection.
	Lookup(reg ircd.Registration) (User, error)
}

// ErrAuth refuses a connection whose credentials do not match.
var ErrAuth = errors.New("channel: invalid credentials")

// Config configures a Bridge.
type Config struct {
	MSIMAddr       string // the MSIM server, host:port
	ServiceNick    string // the control channels' service nick; default "root"
	Directory      Directory
	DialTimeout    time.Duration // MSIM connect and login; default 30s
	RequestTimeout time.Duration // MSIM requests; default 30s
	ReconnectMin   time.Duration // first retry delay; default 2s
	ReconnectMax   time.Duration // longest retry delay; default 5m
	QueueLimit     int           // IMs held per account while its link is down; default 100
	AlertPoll      time.Duration // how often to check for mail and other alerts; default 3m
	Log            *logrus.Entry
}

func (c Config) withDefaults() Config {
	if c.ServiceNick == "" {
		c.ServiceNick = "root"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 30 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 2 * time.Second
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = 5 * time.Minute
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.AlertPoll <= 0 {
		c.AlertPoll = 3 * time.Minute
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = 100
	}
	if c.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.WarnLevel)
		c.Log = logrus.NewEntry(l)
	}
	return c
}

// Bridge is the ircd.Backend of msimircd.
type Bridge struct {
	cfg    Config
	log    *logrus.Entry
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session    // live session by user name
	memory   map[string]*userMemory // remembered state by user name
}

// New returns a bridge. Call Shutdown to end its sessions.
func New(cfg Config) (*Bridge, error) {
	cfg = cfg.withDefaults()
	if cfg.Directory == nil {
		return nil, errors.New("channel: no directory configured")
	}
	if cfg.MSIMAddr == "" {
		return nil, errors.New("channel: no MSIM server address configured")
	}
	if !validNick(cfg.ServiceNick) {
		return nil, fmt.Errorf("channel: service nick %q is not a valid nick", cfg.ServiceNick)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Bridge{
		cfg: cfg, log: cfg.Log, ctx: ctx, cancel: cancel,
		sessions: map[string]*session{},
		memory:   map[string]*userMemory{},
	}, nil
}

// Authenticate implements ircd.Backend (SASL PLAIN).
func (b *Bridge) Authenticate(_ context.Context, account, password string) error {
	return b.cfg.Directory.Authenticate(account, password)
}

// Connect implements ircd.Backend: it starts the user's session. A second
// connection of the same user replaces the first.
func (b *Bridge) Connect(c *ircd.Client, reg ircd.Registration) (ircd.Handler, error) {
	if b.ctx.Err() != nil {
		return nil, errors.New("server shutting down")
	}
	u, err := b.cfg.Directory.Lookup(reg)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	old := b.sessions[u.Name]
	if old != nil && !old.ircGone.Load() && reg.Pass == "" && reg.Account == "" {
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: %s is connected already; give its password to take the session over", ErrAuth, u.Name)
	}
	mem := b.memory[u.Name]
	if mem == nil {
		mem = newUserMemory()
		b.memory[u.Name] = mem
	}
	s := newSession(b, c, u, mem)
	b.sessions[u.Name] = s
	b.wg.Add(1)
	b.mu.Unlock()
	if old != nil {
		old.irc.Close("Replaced by a new connection")
		<-old.done // the old session has logged out of MSIM
	}
	go func() {
		defer b.wg.Done()
		s.run()
		b.mu.Lock()
		if b.sessions[u.Name] == s {
			delete(b.sessions, u.Name)
		}
		b.mu.Unlock()
	}()
	return s, nil
}

// Shutdown logs every session out of MSIM and waits for them, bounded by ctx.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.cancel()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, m := range b.memory {
		m.mu.Lock()
		held := 0
		for _, evs := range m.held {
			held += len(evs)
		}
		if held > 0 || len(m.notes) > 0 {
			b.log.WithField("user", name).Warnf("exiting with %d IMs held and %d notes for a user who is not connected: they are lost", held, len(m.notes))
		}
		m.mu.Unlock()
	}
	return nil
}

// userMemory is what the bridge remembers of a user between connections:
// buddy nicks (so they are stable and renames stick), settings and channel
// names. It is leaf state behind its own mutex.
type userMemory struct {
	mu       sync.Mutex
	nicks    map[buddyKey]string
	byNick   map[string]buddyKey // nickKey(nick) → its buddy, so a nick stays its owner's
	settings map[string]string
	channels map[string]string // account e-mail → channel name
	// IMs that reached an account after its IRC client left, by account
	// e-mail: shown, with their time, when the account next logs in.
	held  map[string][]msim.IMEvent
	notes []string // told to the user when they next connect
}

func (m *userMemory) note(text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.notes) < maxHeld {
		m.notes = append(m.notes, text)
	}
}

func (m *userMemory) takeNotes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.notes
	m.notes = nil
	return n
}

// maxHeld bounds the IMs held per account for a detached user.
const maxHeld = 1000

// hold keeps an IM for the user's next connection; false if none fits.
func (m *userMemory) hold(email string, ev msim.IMEvent) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.held[email]) >= maxHeld {
		return false
	}
	ev.Offline = true // show its time: it is late
	m.held[email] = append(m.held[email], ev)
	return true
}

// takeHeld returns and forgets the IMs held for an account.
func (m *userMemory) takeHeld(email string) []msim.IMEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.held[email]
	delete(m.held, email)
	return evs
}

func newUserMemory() *userMemory {
	return &userMemory{nicks: map[buddyKey]string{}, byNick: map[string]buddyKey{}, settings: map[string]string{}, channels: map[string]string{}, held: map[string][]msim.IMEvent{}}
}

// buddyKey names a buddy of one of the user's accounts.
type buddyKey struct {
	email string
	uid   msim.UID
}

func (m *userMemory) nick(k buddyKey) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nicks[k]
	return n, ok
}

func (m *userMemory) setNick(k buddyKey, nick string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.nicks[k]; ok {
		delete(m.byNick, nickKey(old))
	}
	m.nicks[k] = nick
	m.byNick[nickKey(nick)] = k
}

// ownedByOther reports whether the nick key is remembered for a buddy other
// than k (who may be offline or on an account that logs in later).
func (m *userMemory) ownedByOther(key string, k buddyKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	owner, ok := m.byNick[key]
	return ok && owner != k
}

func (m *userMemory) get(tbl map[string]string, k string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := tbl[k]
	return v, ok
}

func (m *userMemory) set(tbl map[string]string, k, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tbl[k] = v
}
