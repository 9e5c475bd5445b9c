package ircd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/msimircd/msimircd/internal/guard"
	"github.com/sirupsen/logrus"
)

// ErrBadCredentials is what a Backend.Connect error wraps when the client's
// PASS (or missing password) does not open the account. ircd counts it as a
// failed guess (against the account only if a password was given) and
// answers 464 with a generic text, never the error's.
var ErrBadCredentials = errors.New("ircd: invalid credentials")

// errGuessRefused refuses a login without asking the backend while its
// source address is refused after too many failed guesses.
var errGuessRefused = fmt.Errorf("%w: %w", ErrBadCredentials, guard.ErrRefused)

// guesses slows password guessing (SASL and PASS) per source address (a
// growing delay, then a temporary refusal) and per account (a delay only,
// so that someone guessing never locks the account's owner out).
type guesses struct {
	addr, account *guard.FailureLimiter
	sleep         func(ctx context.Context, d time.Duration) error // tests replace it
}

func newGuesses(cfg *Config) *guesses {
	g := &guesses{addr: cfg.AuthLimiter, account: cfg.AccountLimiter, sleep: sleepCtx}
	if g.addr == nil {
		g.addr = guard.NewFailureLimiter(cfg.AuthFailures)
	}
	if g.account == nil {
		g.account = guard.NewFailureLimiter(cfg.AccountFailures)
	}
	return g
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// guessKeys are the limiter keys of a login attempt: the source address and
// the account (AccountKey).
type guessKeys struct{ addr, account string }

func keysFor(remote net.Addr, account string) guessKeys {
	return guessKeys{guard.AddrKey(remote), AccountKey(account)}
}

// AccountKey is the key under which failed logins to the account name are
// counted (Config.AccountLimiter): "account:" and the name folded as nicks
// are (CASEMAPPING=rfc1459: []\~ are the capitals of {}|^) and as Unicode
// case folding makes names equal (strings.EqualFold: "ſam" is "sam"), so
// that every spelling of one account counts against it.
func AccountKey(name string) string { return "account:" + strings.Map(foldAccountRune, name) }

// foldAccountRune maps every rune of a case-folding orbit (K, k and the
// Kelvin sign) to one of them, in lower case, and []\~ to {}|^.
func foldAccountRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	if m = unicode.ToLower(m); m < utf8.RuneSelf {
		return rune(foldByte(byte(m)))
	}
	return m
}

// AccountNamer is an optional interface of a Backend. PassAccount names the
// account a registration without SASL logs in to, for the guessing limits
// and their log lines: only the backend knows whether the part of PASS
// before a ':' is a name or a password (a server password followed by the
// client's own, a password holding a ':'), and a log must never show a
// password. Without it, ircd takes the name before ':' in PASS, else the
// nick.
type AccountNamer interface {
	PassAccount(reg Registration) string
}

// Unidentified is an optional interface of a Handler. Unidentified reports
// that the backend let the connection in without checking a password of
// its account: a registered nick given only the server password, say, left
// to identify later. ircd forgets an account's failed guesses only after a
// login that checked its password, so such a login keeps them. Without it,
// ircd takes a login with a PASS as one that did.
type Unidentified interface {
	Unidentified() bool
}

// checkedPassword reports whether the login that h was accepted for
// checked a password of its account (Unidentified).
func checkedPassword(h Handler, reg Registration) bool {
	if u, ok := h.(Unidentified); ok && u.Unidentified() {
		return false
	}
	return reg.Pass != ""
}

// accountOf is the package's accountOf, the backend naming the account of
// a PASS when it can (AccountNamer).
func (s *Server) accountOf(reg Registration) string {
	if n, ok := s.backend.(AccountNamer); ok && reg.Account == "" {
		return withoutClient(n.PassAccount(reg))
	}
	return accountOf(reg)
}

// accountOf names the account a registration logs in to: the SASL account,
// else the name before ':' in PASS, else the nick.
func accountOf(reg Registration) string {
	if reg.Account != "" {
		return withoutClient(reg.Account)
	}
	if name, _, ok := strings.Cut(reg.Pass, ":"); ok && name != "" {
		return withoutClient(name)
	}
	return reg.Nick
}

// withoutClient drops a client's name (alice/phone → alice), so that
// guesses against one account count together whatever client they name.
func withoutClient(name string) string {
	if u, _, ok := strings.Cut(name, "/"); ok && u != "" {
		return u
	}
	return name
}

// before waits the delay that earlier failures of k call for, bounded by
// ctx. It returns guard.ErrRefused while k's address is refused (the backend
// is then not asked), or ctx's error. An attempt that gives no password
// (guess false) guesses none of the account's: only its address's delay
// applies, and the account's failures, which may be in a store, are not
// asked for.
func (g *guesses) before(ctx context.Context, k guessKeys, guess bool) error {
	wa, err := g.addr.Check(k.addr)
	if err != nil {
		return err
	}
	var wb time.Duration
	if guess {
		if wb, err = g.account.Check(k.account); err != nil {
			return err
		}
	}
	if w := max(wa, wb); w > 0 {
		return g.sleep(ctx, w)
	}
	return nil
}

// failed counts a failed login against its address and, if it gave a
// password (guess), against the account: a login without one guessed none
// of the account's, and counting it would let anyone slow the owner's
// logins by connecting with their nick. The failure that starts slowing or
// refusing a key is logged, once per burst, naming the keys (never the
// password).
func (g *guesses) failed(log *logrus.Entry, k guessKeys, guess bool) {
	outs := g.addr.Fail(k.addr)
	if guess {
		outs = append(outs, g.account.Fail(k.account)...)
	}
	if len(outs) == 0 {
		return
	}
	refused := false
	keys := make([]string, 0, len(outs))
	for _, o := range outs {
		keys = append(keys, o.Key)
		refused = refused || o.Refused
	}
	log = log.WithFields(logrus.Fields{"keys": strings.Join(keys, " "), "failures": outs[0].Failures})
	if refused {
		log.Warn("failed logins: refusing further attempts for a while")
	} else {
		log.Warn("failed logins: slowing further attempts down")
	}
}

// succeeded forgets the account's failures. The address's stay: a right
// password for one account says nothing about guesses at others.
func (g *guesses) succeeded(k guessKeys) { g.account.Succeed(k.account) }

// conns caps open connections and refuses the excess with a clear ERROR,
// logging one line per burst of refusals.
type conns struct {
	limit    *guard.ConnLimiter
	refusing atomic.Int32 // refusals being written now

	mu      sync.Mutex
	logged  time.Time // the last refusal logged
	skipped int       // refusals since, not logged
}

// refusalLogEvery is how often a refusal is logged while they go on.
const refusalLogEvery = time.Minute

// maxRefusing bounds the refusals written at once; beyond it a refused
// connection is closed without an ERROR.
const maxRefusing = 64

func (s *Server) refuse(nc net.Conn, cerr *guard.ConnLimitError) {
	text := "Too many connections to this server"
	switch {
	case cerr.Site:
		text = "Too many connections from your network"
	case cerr.PerKey:
		text = "Too many connections from your address"
	}
	c := &s.conns
	c.mu.Lock()
	now := time.Now()
	if now.Sub(c.logged) >= refusalLogEvery {
		s.log.WithFields(logrus.Fields{"remote": nc.RemoteAddr().String(), "limit": cerr.Limit, "refused_before": c.skipped}).
			Warn("refusing connections: " + strings.ToLower(text))
		c.logged, c.skipped = now, 0
	} else {
		c.skipped++
	}
	c.mu.Unlock()

	s.mu.Lock()
	closing := s.closing
	if !closing && c.refusing.Load() < maxRefusing {
		c.refusing.Add(1)
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer c.refusing.Add(-1)
			sayGoodbye(nc, "ERROR :Closing link: "+hostOf(nc.RemoteAddr())+" ("+text+")\r\n")
		}()
		return
	}
	s.mu.Unlock()
	_ = nc.Close()
}

// sayGoodbye writes line and closes nc, reading (and discarding) what the
// client sent meanwhile, so that the close does not reset the connection
// before the client has read line. It takes at most twice finalWriteWindow.
func sayGoodbye(nc net.Conn, line string) {
	defer func() { _ = nc.Close() }()
	// Reads too: on a TLS connection the write runs the handshake first,
	// which waits for the client's hello.
	_ = nc.SetDeadline(time.Now().Add(finalWriteWindow))
	if _, err := io.WriteString(nc, line); err != nil {
		return
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = nc.SetReadDeadline(time.Now().Add(finalWriteWindow))
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
}
