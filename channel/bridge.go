// Package channel is the bridge between IRC and MSIM: each MSIM account of an
// IRC user is a control channel, buddies are nicks in it, and messages,
// presence, typing and zaps cross in both directions.
//
// Ownership: Bridge implements ircd.Backend and keeps a small registry of
// live sessions and remembered per-user state behind a mutex. Each IRC
// connection gets a session whose single goroutine (session.loop) owns all of
// that user's accounts, buddies and nicks; the IRC reader and async requests
// only post events to it, and the MSIM clients only signal that events are
// waiting (their Notify), which the session takes from them itself. The
// goroutine runs only while there is something to handle: whoever posts to
// an idle session starts it (session.kick), and it ends once every queue is
// empty, so an idle session holds no goroutine (one at a time, s.running).
package channel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
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

	// The account's own settings kept in the store (status, status_text).
	status, statusText string
}

// User is an IRC user of the gateway and their MSIM accounts.
type User struct {
	Name     string // key for remembered state (nick renames, settings)
	Accounts []Account
	// Ephemeral users (a nick that connected without a password) keep
	// nothing after their session ends: the bridge forgets their
	// remembered state and, if the Directory is a Forgetter, tells it.
	Ephemeral bool

	registered bool   // kept in the store (WithStore): accounts are saved there
	identify   string // the stored user this connection must identify as
	newcomer   bool   // a nick nobody has, which may register (storeDirectory.newcomer)
}

// Directory tells the bridge who may connect and with which accounts.
type Directory interface {
	// Authenticate checks SASL PLAIN credentials.
	Authenticate(account, password string) error
	// Lookup returns the user that registered with reg (PASS or SASL
	// account, nick), or an error that refuses the connection. With a SASL
	// account, reg.SASLPassword is the password Authenticate accepted for
	// this connection.
	Lookup(reg ircd.Registration) (User, error)
}

// Forgetter is an optional interface of a Directory: Forget is called once
// an Ephemeral user's session has ended and its MSIM accounts are logged
// out, so the directory can let the next client with that name start fresh.
type Forgetter interface {
	Forget(u User)
}

// ErrAuth refuses a connection whose credentials do not match. ircd counts
// it as a failed password guess and shows the client a generic refusal.
var ErrAuth = fmt.Errorf("channel: %w", ircd.ErrBadCredentials)

// Config configures a Bridge.
type Config struct {
	MSIMAddr       string // the MSIM server, host:port
	ServiceNick    string // the control channels' service nick; default "root"
	Directory      Directory
	DialTimeout    time.Duration // MSIM connect and login (after lc 2: of silence, see msim.ClientConfig); default 30s
	RequestTimeout time.Duration // MSIM requests (of silence after it); default 30s
	ReconnectMin   time.Duration // first retry delay; default 2s
	ReconnectMax   time.Duration // longest retry delay; default 5m
	QueueLimit     int           // IMs held per account while its link is down; default 100
	AlertPoll      time.Duration // how often to check for mail and other alerts; default 3m
	// Dial connects to the MSIM server; nil: TCP to MSIMAddr.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// DialMSIM logs an account in (tests pass fakes); nil: msim.Dial.
	DialMSIM DialMSIM
	// Clock runs the bridge's timers; nil: the wall clock.
	Clock Clock
	// Store keeps each user's nicks, settings, channel names, held and
	// queued IMs and notes across restarts, written through as they
	// change; nil keeps them in memory only.
	Store store.Store
	// IdentifyFailures slows (and, per address, refuses) wrong passwords
	// given to identify and drop: per client address as configured, per
	// user name delayed only (at most 5s), so someone else's guessing
	// never locks a user out; with a Store, the per-user counts are kept
	// there, so they outlive a restart and are shared by the instances.
	// Zero fields: guard.DefaultFailures. The
	// wrong MSIM passwords of a registered user's accounts are counted
	// per user there too, and refuse that user's MSIM logins. ircd counts
	// failed PASS and SASL logins in the same limiters when its Config
	// takes them (Bridge.GuessLimiters).
	IdentifyFailures guard.FailureConfig
	// History keeps every IM in and out in the store (with one) for
	// CHATHISTORY, read markers, the replay to clients without
	// chathistory and the history command. ReplayPerBuddy caps that
	// replay per conversation (0: DefaultReplayPerBuddy).
	History        bool
	ReplayPerBuddy int
	// HistoryElsewhere: the store appends history in another process
	// (histproc), so the bridge's history writer only waits for it and
	// keeps its thread's normal priority. Otherwise the writer's thread
	// does the appends at the lowest priority (nice 19).
	HistoryElsewhere bool
	// MaxClients caps the IRC connections attached to one user at once;
	// 0: DefaultMaxClients.
	MaxClients int
	// AlwaysOn keeps the session of a user who is not ephemeral running
	// when their last IRC connection leaves (their MSIM accounts stay
	// online, IMs are held for the next connection), and Start starts one
	// at boot for each user with an account that autoconnects. Off, a
	// session ends with its connection, as in BitlBee.
	AlwaysOn bool
	// Registrations limits the nicks registered per client address; nil:
	// no limit.
	Registrations *guard.Quota
	Log           *logrus.Entry
	// Instance names this gateway among several that share one
	// PostgreSQL Store (lease.go): a user is served by one instance at a
	// time, and moves to the instance their client connects to. "" (the
	// default): the only instance, and no leases are taken.
	Instance string
	// LeaseTTL is how long a user's lease lasts unrenewed (renewed every
	// third of it); an instance that dies hands its users over after it.
	// 0: DefaultLeaseTTL.
	LeaseTTL time.Duration
	// HandOverWait bounds how long a connection waits for another
	// instance to hand its user over, or for that instance's lease to
	// expire; past it the connection is refused, saying when to come
	// back. 0: DefaultHandOverWait.
	HandOverWait time.Duration
	// Metrics, when set, gets the bridge's Prometheus collectors; nil
	// counts nothing.
	Metrics prometheus.Registerer
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
	if c.DialMSIM == nil {
		c.DialMSIM = dialMSIM
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	if c.AlertPoll <= 0 {
		c.AlertPoll = 3 * time.Minute
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = 100
	}
	if c.MaxClients <= 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.ReplayPerBuddy <= 0 {
		c.ReplayPerBuddy = DefaultReplayPerBuddy
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.HandOverWait <= 0 {
		c.HandOverWait = DefaultHandOverWait
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

	users    *storeDirectory // nil: no stored users (WithStore)
	hist     *historyWriter  // nil: no history (Config.History and a store)
	lookups  sync.RWMutex    // held by Connect from Lookup until registered; ReloadUsers takes it
	failAddr *guard.FailureLimiter
	failUser *guard.FailureLimiter
	met      *bridgeMetrics // nil: no metrics
	lease    *leases        // nil: the only instance (Config.Instance "")
	rel      *memReleaser   // returns memory after a burst of logins

	mu       sync.Mutex
	sessions map[string]*session    // live session by user name
	memory   map[string]*userMemory // remembered state by user name
	loading  map[string]*memLoad    // users whose state is being read (loadMemory)
	// deleting: users whom a reload removed whose entry is being deleted
	// (deleteRemoved), each closed once that is over; nil until the first.
	deleting map[string]chan struct{}
	// removedEnd: the sessions a reload ended that had not ended in time,
	// by the removed user's name: their entry is deleted once they end
	// (ended); nil until the first.
	removedEnd map[*session]string

	endWait time.Duration // how long ReloadUsers waits for a session it ends; 0: endWait
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
	if cfg.Instance != "" && cfg.Store == nil {
		return nil, fmt.Errorf("channel: instance %q: several instances need a shared store", cfg.Instance)
	}
	ctx, cancel := context.WithCancel(context.Background())
	perUser := cfg.IdentifyFailures
	perUser.RefuseAfter = -1
	if perUser.MaxDelay <= 0 || perUser.MaxDelay > 5*time.Second {
		perUser.MaxDelay = 5 * time.Second
	}
	if cfg.Store != nil {
		// A restart, or another instance, does not give a guesser a
		// fresh budget at a user.
		perUser.Shared = storeFailures{cfg.Store}
	}
	b := &Bridge{
		cfg: cfg, log: cfg.Log, ctx: ctx, cancel: cancel,
		users:    findUsers(cfg.Directory),
		failAddr: guard.NewFailureLimiter(cfg.IdentifyFailures),
		failUser: guard.NewFailureLimiter(perUser),
		met:      newBridgeMetrics(cfg.Metrics),
		sessions: map[string]*session{},
		memory:   map[string]*userMemory{},
		loading:  map[string]*memLoad{},
		rel:      newMemReleaser(cfg.Clock),
	}
	if cfg.History && cfg.Store != nil {
		b.hist = newHistoryWriter(cfg.Store, !cfg.HistoryElsewhere, cfg.Log, b.met)
	}
	if cfg.Instance != "" {
		b.lease = newLeases(b)
	}
	return b, nil
}

// storeFailures keeps the per-user counts of wrong passwords in the store
// (guard.SharedFailures): the key and when, never what was tried.
type storeFailures struct{ st store.Store }

func (f storeFailures) AddFailure(key string, now time.Time, window time.Duration) (int, error) {
	ctx, cancel := storeCtx()
	defer cancel()
	return f.st.AddLoginFailure(ctx, key, now, window)
}

func (f storeFailures) Failures(key string, now time.Time, window time.Duration) (int, error) {
	ctx, cancel := storeCtx()
	defer cancel()
	return f.st.LoginFailures(ctx, key, now, window)
}

func (f storeFailures) ClearFailures(key string) error {
	ctx, cancel := storeCtx()
	defer cancel()
	return f.st.ClearLoginFailures(ctx, key)
}

// GuessLimiters returns the limiters that count wrong identify and drop
// passwords, per address and per user. ircd.Config's AuthLimiter and
// AccountLimiter take them, so that failed PASS and SASL logins and wrong
// identify passwords from one address count against one budget.
func (b *Bridge) GuessLimiters() (addr, user *guard.FailureLimiter) { return b.failAddr, b.failUser }

// Authenticate implements ircd.Backend (SASL PLAIN). The account may name
// the client after a slash (alice/phone). A user's name longer than
// ircd.NickLen names nobody (users are named by their nick, and a
// configuration's user names are bounded so too): it is refused without a
// lookup. So is a client's name longer than ircd.ClientNameLen (splitClient),
// as a wrong password is.
func (b *Bridge) Authenticate(_ context.Context, account, password string) error {
	account, _, ok := splitClient(account)
	if !ok || len(account) > ircd.NickLen {
		return ErrAuth
	}
	return b.cfg.Directory.Authenticate(account, password)
}

// PassAccount implements ircd.AccountNamer: the user PASS "name:password"
// names when name (or name/client) is a user of the configuration, else
// the nick. Anything else before a ':' may be a password: the server
// password of "SERVERPW:OWN", or one holding a ':'.
func (b *Bridge) PassAccount(reg ircd.Registration) string {
	if name, _, ok := strings.Cut(reg.Pass, ":"); ok {
		// A client's name too long is refused (Connect), as a wrong
		// password: counted against the user all the same.
		if user, _, _ := splitClient(name); user != "" && configuredUser(b.cfg.Directory, user) {
			return user
		}
	}
	return reg.Nick
}

var _ ircd.AccountNamer = (*Bridge)(nil)

// configuredUser reports whether the configuration behind dir names the
// user (StaticDirectory's users, through gates and the store).
func configuredUser(dir Directory, name string) bool {
	switch d := dir.(type) {
	case configured:
		return d.configured(name)
	case *storeDirectory:
		return d.configures(name)
	case *passwordGate:
		return configuredUser(d.next, name)
	case *forgettingGate:
		return configuredUser(d.next, name)
	}
	return false
}

// splitClient splits "alice/phone" into the user and the client's name
// (after the first '/'). ok is false when the client's name is longer than
// ircd.ClientNameLen bytes, as ircd bounds a SASL account's (validAccountName):
// the account's name is shown in RPL_LOGGEDIN (twice) and WHOIS, lines
// that a longer one would push past 512 bytes. Such a name is refused as
// a wrong password is, telling a guesser nothing more.
func splitClient(s string) (user, client string, ok bool) {
	user, client, _ = strings.Cut(s, "/")
	return user, client, len(client) <= ircd.ClientNameLen
}

// clientName takes the client's name out of a registration: soju's
// convention, "user/client" in the SASL account, the user name of USER, or
// the name part of PASS name:password. ok is false when one of them names
// a client with a name too long (splitClient).
func clientName(reg ircd.Registration) (_ ircd.Registration, client string, ok bool) {
	ok = true
	if reg.Account != "" {
		reg.Account, client, ok = splitClient(reg.Account)
	}
	if name, pw, cut := strings.Cut(reg.Pass, ":"); cut && strings.Contains(name, "/") {
		var c string
		var fits bool
		name, c, fits = splitClient(name)
		ok = ok && fits
		if strings.EqualFold(name, reg.Nick) {
			reg.Pass = pw // the nick's own password, as every directory takes it
		} else {
			reg.Pass = name + ":" + pw
		}
		if client == "" {
			client = c
		}
	}
	if u, c, fits := splitClient(reg.User); c != "" { // USERLEN bounds it
		ok = ok && fits
		reg.User = u
		if client == "" {
			client = c
		}
	}
	return reg, client, ok
}

// Connect implements ircd.Backend: it attaches the connection to the
// user's session, starting one if none runs. A connection attached before
// is replaced (closed).
func (b *Bridge) Connect(c *ircd.Client, reg ircd.Registration) (ircd.Handler, error) {
	if b.ctx.Err() != nil {
		return nil, errors.New("server shutting down")
	}
	reg, client, ok := clientName(reg)
	if !ok {
		return nil, ErrAuth // said as a wrong password is
	}
	// Held until the connection's session is registered (or it is
	// refused), so a reload of the users never misses it.
	b.lookups.RLock()
	defer b.lookups.RUnlock()
	u, err := b.cfg.Directory.Lookup(reg)
	if err != nil {
		return nil, err
	}
	for {
		b.mu.Lock()
		if b.ctx.Err() != nil { // while the user's state or lease was awaited
			b.mu.Unlock()
			return nil, errors.New("server shutting down")
		}
		old := b.sessions[u.Name]
		if old != nil && old.nattached.Load() > 0 && reg.Pass == "" && reg.Account == "" {
			// Said as a wrong password is: a refusal never tells whether a
			// user exists or is connected.
			b.mu.Unlock()
			return nil, ErrAuth
		}
		if old != nil && !u.Ephemeral {
			b.mu.Unlock()
			at, ended, err := old.attachClient(c, reg.Remote, client, u.Accounts)
			if err != nil {
				return nil, err
			}
			if !ended {
				return at, nil
			}
			<-old.done // it ended meanwhile: start anew
			continue
		}
		if b.lease.needs(u) && !b.lease.holds(u.Name) {
			b.mu.Unlock()
			if err := b.claim(u, nil); err != nil {
				return nil, err
			}
			continue // the sessions may have changed meanwhile
		}
		if read, err := b.readStateFirst(u); read {
			if err != nil {
				return nil, err
			}
			continue
		}
		s, err := b.startLocked(u, c, reg.Remote)
		b.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if old != nil {
			old.closeClients("Replaced by a new connection") // ephemeral: one connection
			<-old.done                                       // the old session has logged out of MSIM
		}
		at := s.cl.ats[0] // read before run: the session's goroutine owns s.cl then
		at.name = client
		at.unidentified = u.identify != ""
		s.start() // before run: its lines are part of the welcome
		go b.run(s)
		return at, nil
	}
}

// startLocked makes u's session, attached to c (nil: none), and registers
// it; the caller starts it and runs it (run). Caller holds b.mu, and has
// made sure the bridge has u's state (loadMemory).
func (b *Bridge) startLocked(u User, c ircConn, remote net.Addr) (*session, error) {
	mem := b.memory[u.Name]
	if mem == nil {
		b.log.WithField("user", u.Name).Error("a session was started before the user's state was read")
		return nil, errors.New("the gateway could not start your session; try again")
	}
	s := newSession(b, c, u, mem)
	if c != nil {
		s.cl.ats[0].remote = remote
	}
	b.sessions[u.Name] = s
	b.wg.Add(1)
	return s, nil
}

// run runs s (its goroutine starts whenever there is work) and, once it
// has ended, forgets it (and an ephemeral user).
func (b *Bridge) run(s *session) {
	s.run(func() { b.ended(s) })
}

// ended forgets s, which has ended, and an ephemeral user.
func (b *Bridge) ended(s *session) {
	defer b.wg.Done()
	u := s.user // identify, register and drop change it
	b.mu.Lock()
	last := b.sessions[u.Name] == s
	if last {
		delete(b.sessions, u.Name)
	}
	s.gone = true
	removed, deleteNow := b.removedEnd[s]
	delete(b.removedEnd, s)
	var mem *userMemory // an ephemeral user's, forgotten
	if last && u.Ephemeral {
		mem = b.memory[u.Name]
		b.logLost(u, b.forget(u, &s.out))
	}
	var rel *store.Lease
	var left *userMemory // the user's memory, forgotten here
	if last && b.lease != nil {
		// Another instance may serve the user next: their state is read
		// from the store again when they come back.
		left = b.forgetMemory(u.Name)
		rel = b.lease.drop(u.Name)
	}
	b.mu.Unlock()
	// What only memory kept (the store failed) is written to the store
	// once more, before the lease goes: the next holder reads it there.
	b.keepLeftovers(u.Name, left)
	b.lease.release(rel)
	if mem != nil {
		if _, notes := mem.leftovers(); notes > 0 {
			b.log.WithField("user", u.Name).Warnf("%d notes kept for a user without a password were not told: such a user keeps nothing, and their session has ended", notes)
		}
	}
	if f, ok := b.cfg.Directory.(Forgetter); ok && last && u.Ephemeral {
		f.Forget(u)
	}
	if deleteNow {
		// A reload removed the user and did not see the session end: the
		// entry is deleted now, unless a reload since names them again.
		b.deleteRemoved(removed, func() bool {
			d := b.liveUsers()
			return d != nil && !d.cur.Load().named(removed)
		})
	}
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
	if b.hist != nil {
		b.hist.close() // every session has ended: what they recorded is appended
		b.hist = nil
	}
	if b.lease != nil {
		b.lease.stop() // every session has ended and released its lease
	}
	b.mu.Lock()
	memory := maps.Clone(b.memory)
	b.mu.Unlock()
	for name, m := range memory {
		m.settle() // what ircd reported not shown after its session ended
		if held, notes := m.leftovers(); held > 0 || notes > 0 {
			b.log.WithField("user", name).Warnf("exiting with %d IMs held or queued and %d notes kept in memory only (no store, or it failed): they are lost", held, notes)
		}
	}
	return nil
}

// newMemory is what the bridge remembers of u: loaded from the store when
// there is one (ephemeral users are never stored), else empty.
func (b *Bridge) newMemory(u User) (*userMemory, error) {
	if b.cfg.Store == nil || u.Ephemeral {
		m := newUserMemory()
		m.user, m.log, m.met = u.Name, b.log, b.met
		return m, nil
	}
	m, err := loadUserMemory(b.cfg.Store, u, b.log, b.lease == nil)
	if m != nil {
		m.met = b.met
	}
	return m, err
}

// errStateUnavailable is what a user is told when their state cannot be
// read from the store.
var errStateUnavailable = errors.New("the gateway's database is not available; try again later")

// memLoad is a read of a user's state under way (loadMemory).
type memLoad struct {
	done    chan struct{} // closed when it is over
	err     error         // set before done is closed
	waiters int           // other logins of the user waiting for it; b.mu
	stale   bool          // the user's entry was deleted meanwhile: what it read is not kept; b.mu
}

// loadMemory makes sure the bridge has u's state, reading it from the
// store when it has none. It is called without b.mu and reads without it:
// a login waits for its own user's reads (a slow database, a lock held
// elsewhere), never for another user's, and nothing else that needs b.mu
// waits for them either. One read per user at a time: another login of
// the same user waits for it and shares its result, its failure included.
// With several instances, the state is kept only if this instance held
// the user's lease from before the read until after it (the same lease:
// another instance may have served the user in between). Callers look at
// b.memory again under b.mu, and load again if the state is gone by then
// (a lease given up meanwhile).
func (b *Bridge) loadMemory(u User) error {
	b.mu.Lock()
	for {
		if b.memory[u.Name] != nil {
			b.mu.Unlock()
			return nil
		}
		if del := b.deleting[u.Name]; del != nil {
			// What would be read now may be the deleted user's: read once
			// the deletion is over.
			b.mu.Unlock()
			<-del
			b.mu.Lock()
			continue
		}
		l := b.loading[u.Name]
		if l == nil {
			break
		}
		l.waiters++
		b.mu.Unlock()
		<-l.done
		if l.err != nil {
			return errStateUnavailable
		}
		b.mu.Lock() // then it is there, unless the lease went meanwhile
	}
	needs := b.lease.needs(u)
	epoch, held := b.lease.epoch(u.Name)
	l := &memLoad{done: make(chan struct{})}
	b.loading[u.Name] = l
	b.mu.Unlock()
	var mem *userMemory
	defer func() { // a panic too leaves no read under way
		b.mu.Lock()
		delete(b.loading, u.Name)
		if l.err == nil && mem != nil && !l.stale && b.memory[u.Name] == nil {
			if now, still := b.lease.epoch(u.Name); !needs || held && still && now == epoch {
				b.memory[u.Name] = mem
			}
		}
		b.mu.Unlock()
		close(l.done)
	}()
	mem, l.err = b.newMemory(u)
	if l.err != nil {
		b.log.WithError(l.err).WithField("user", u.Name).Error("store: the user's state cannot be loaded")
		return errStateUnavailable
	}
	return nil
}

// readStateFirst is for a caller holding b.mu that is about to use u's
// state: if the bridge has it, it returns false with b.mu still held;
// otherwise it releases b.mu, reads the state (loadMemory) and returns
// true, and the caller starts over (the sessions may have changed
// meanwhile).
func (b *Bridge) readStateFirst(u User) (read bool, err error) {
	if b.memory[u.Name] != nil {
		return false, nil
	}
	b.mu.Unlock()
	return true, b.loadMemory(u)
}

// memoryOf returns the state the bridge has for the user name (nil: none),
// once no read of it is under way.
func (b *Bridge) memoryOf(name string) *userMemory {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		l := b.loading[name]
		if l == nil {
			return b.memory[name]
		}
		b.mu.Unlock()
		<-l.done
		b.mu.Lock()
	}
}

// forget drops what the bridge remembers of an ephemeral user: what comes
// for them from now on is lost (forgotten). It returns what their memory
// still held, lost with it (takeLost), for the caller to tell (tellLost)
// or, with no session left to tell, log (logLost); they count as
// dropped. Those the outbox o of the user's session has handed to ircd
// are left out: their reports tell them lost unless they say they were
// shown (imSentReport.sent). Caller holds b.mu.
func (b *Bridge) forget(u User, o *outbox) []lostHeld {
	m := b.memory[u.Name]
	if m == nil {
		return nil
	}
	delete(b.memory, u.Name)
	// Under the outbox's lock, which the reports take: one reported
	// before is counted here if it was not shown, one reported after
	// finds the memory forgotten.
	o.heldMu.Lock()
	lost := m.takeLost(func(id int64) bool {
		_, out := o.heldOut[heldRef{m, id}]
		return out
	})
	o.heldMu.Unlock()
	for _, l := range lost {
		b.met.imsDropped(l.n + len(l.unsent))
	}
	return lost
}

// logLost logs the IMs held for an ephemeral user that were lost as the
// bridge forgot them (forget) once their session had ended.
func (b *Bridge) logLost(u User, lost []lostHeld) {
	n, unsent := 0, 0
	for _, l := range lost {
		n += l.n
		unsent += len(l.unsent)
	}
	if n > 0 {
		b.log.WithField("user", u.Name).Warnf("%d IMs arrived for a user without a password after they left; such a user keeps nothing, so they are dropped", n)
	}
	if unsent > 0 {
		b.log.WithField("user", u.Name).Warnf("%d IMs a user without a password typed while the MSIM link was down were never sent; such a user keeps nothing, so they are dropped", unsent)
	}
}

// nameHeld remembers nick as the name of k, the sender of an IM held for
// a user who keeps nothing (heldFrom).
func (m *userMemory) nameHeld(k buddyKey, nick string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	put(&m.heldFrom, k, nick)
}

// lostHeld is what a forgotten memory held for one account: n IMs, from
// the senders named, and the IMs the user typed that waited for the
// account's link (unsent), never sent.
type lostHeld struct {
	email  string
	n      int
	from   []string
	unsent []queuedIM
}

// takeLost marks the memory forgotten (forget) and takes what it holds
// in memory, now lost (takeHeldLocked), and the IMs queued for the links
// (takeQueuedLocked): no login sends them now.
func (m *userMemory) takeLost(onWay func(id int64) bool) []lostHeld {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgotten = true
	return m.takeQueuedLocked(m.takeHeldLocked(onWay))
}

// takeQueuedLocked adds to lost, by account (in e-mail order), the IMs
// queued in memory for the accounts' links, and takes them. Caller holds
// m.mu.
func (m *userMemory) takeQueuedLocked(lost []lostHeld) []lostHeld {
	for _, email := range slices.Sorted(maps.Keys(m.queued)) {
		qs := m.queued[email]
		if len(qs) == 0 {
			continue
		}
		i := slices.IndexFunc(lost, func(l lostHeld) bool { return l.email == email })
		if i < 0 {
			lost = append(lost, lostHeld{email: email})
			i = len(lost) - 1
		}
		lost[i].unsent = qs
	}
	m.queued = nil
	return lost
}

// takeHeldLost takes what the memory of a user who keeps nothing holds
// in memory, lost though the memory is not forgotten yet: a drop's
// (takeHeldLocked, with none on its way).
func (m *userMemory) takeHeldLost() []lostHeld {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.takeHeldLocked(func(int64) bool { return false })
}

// takeHeldLocked takes what the memory holds in memory, lost, by account
// (in e-mail order), naming the senders as heldFrom or the nicks kept
// name them, else by uid. Those on their way (onWay: handed to ircd,
// their reports awaited) are taken but not counted: their reports tell
// them. Caller holds m.mu.
func (m *userMemory) takeHeldLocked(onWay func(id int64) bool) []lostHeld {
	var out []lostHeld
	for _, email := range slices.Sorted(maps.Keys(m.held)) {
		l := lostHeld{email: email}
		seen := map[msim.UID]bool{}
		for _, se := range m.held[email] {
			if onWay(se.held) {
				continue
			}
			l.n++
			uid := msim.SenderOf(se.ev)
			if seen[uid] {
				continue
			}
			seen[uid] = true
			k := buddyKey{email, uid}
			name, ok := m.heldFrom[k]
			if !ok {
				name, ok = m.nicks[k]
			}
			if !ok {
				name = uid.String()
			}
			l.from = append(l.from, name)
		}
		if l.n > 0 {
			out = append(out, l)
		}
	}
	m.held, m.heldFrom = nil, nil
	return out
}
