package ircd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/internal/fakeclock"
	"github.com/msimircd/msimircd/internal/guard"
)

// waits records the delays the server waited before asking the backend,
// instead of waiting them.
type waits struct {
	mu sync.Mutex
	ds []time.Duration
}

func (w *waits) sleep(_ context.Context, d time.Duration) error {
	w.mu.Lock()
	w.ds = append(w.ds, d)
	w.mu.Unlock()
	return nil
}

// take returns the delays recorded since the last call.
func (w *waits) take() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	ds := w.ds
	w.ds = nil
	return ds
}

// guessServer runs a server whose guessing limits use clock and whose
// delays are recorded instead of waited.
func guessServer(t *testing.T, b *fakeBackend, clock guard.Clock) (string, *waits, *logtest.Hook) {
	t.Helper()
	cfg := testConfig()
	cfg.AuthFailures = guard.FailureConfig{Free: 2, Delay: time.Second, MaxDelay: 4 * time.Second, RefuseAfter: 3, RefuseFor: time.Hour, Clock: clock}
	cfg.AccountFailures = guard.FailureConfig{Free: 2, Delay: time.Second, MaxDelay: 2 * time.Second, Clock: clock}
	log, hook := testLog()
	srv := NewServer(cfg, b, log)
	ws := &waits{}
	srv.guesses.sleep = ws.sleep
	addr, _ := startWith(t, srv)
	return addr, ws, hook
}

// guessLogs returns the log lines about failed logins, checking that none
// holds a password.
func guessLogs(t *testing.T, hook *logtest.Hook, passwords ...string) []string {
	t.Helper()
	var out []string
	for _, e := range hook.AllEntries() {
		line, _ := e.String()
		for _, p := range passwords {
			if strings.Contains(line, p) {
				t.Fatalf("log line %q holds a password", line)
			}
		}
		if strings.HasPrefix(e.Message, "failed logins:") {
			out = append(out, e.Message+" keys="+fmt.Sprint(e.Data["keys"]))
		}
	}
	return out
}

// Failed SASL logins from one address are slowed, then refused without
// asking the backend, with one log line when each starts; the account's
// owner on another address still gets in.
func TestSASLGuessing(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New()
	b := newBackend()
	var asked atomic.Int32
	b.authErr = func(account, password string) error {
		asked.Add(1)
		if password != "secret" {
			return fmt.Errorf("no such account %s", account)
		}
		return nil
	}
	addr, ws, hook := guessServer(t, b, clock)
	attacker := dialFrom(t, addr, "127.0.0.1")
	owner := dialFrom(t, addr, "127.0.0.2")
	for _, c := range []*tclient{attacker, owner} {
		c.send(t, "CAP LS 302", "CAP REQ :sasl")
		c.sync(t)
	}
	ok := []want{w("AUTHENTICATE", "+"), w("900", nil...), w("903", nil...)}
	fail := []want{w("AUTHENTICATE", "+"), w("904", "*", "SASL authentication failed")}
	steps := []struct {
		name  string
		c     *tclient
		pass  string
		step  time.Duration // the clock moves on first
		want  []want
		asked bool
		waits []time.Duration
	}{
		{"first failure", attacker, "guess1", 0, fail, true, nil},
		{"second failure starts slowing", attacker, "guess2", 0, fail, true, nil},
		{"slowed", attacker, "guess3", 0, fail, true, []time.Duration{time.Second}},
		{"refused", attacker, "secret", 0, fail, false, nil},
		{"owner elsewhere gets in, slowed", owner, "secret", 0, ok, true, []time.Duration{2 * time.Second}},
		{"refusal over", dialSASL(t, addr, "127.0.0.1"), "secret", time.Hour + time.Second, ok, true, nil},
	}
	for _, st := range steps {
		clock.Advance(st.step)
		before := asked.Load()
		st.c.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("Alice", st.pass))
		checkMsgs(t, st.c.sync(t), st.want)
		if got := asked.Load() > before; got != st.asked {
			t.Fatalf("%s: got backend asked %v, want %v", st.name, got, st.asked)
		}
		if got := ws.take(); !slices.Equal(got, st.waits) {
			t.Fatalf("%s: got waits %v, want %v", st.name, got, st.waits)
		}
	}
	got := guessLogs(t, hook, "guess1", "guess2", "guess3", "secret")
	wantLogs := []string{
		"failed logins: slowing further attempts down keys=addr:127.0.0.1 account:alice",
		"failed logins: refusing further attempts for a while keys=addr:127.0.0.1",
	}
	if !slices.Equal(got, wantLogs) {
		t.Fatalf("got log lines %q, want %q", got, wantLogs)
	}
}

// dialSASL connects from ip with the sasl capability.
func dialSASL(t *testing.T, addr, ip string) *tclient {
	t.Helper()
	c := dialFrom(t, addr, ip)
	c.send(t, "CAP LS 302", "CAP REQ :sasl")
	c.sync(t)
	return c
}

// A PASS the backend refuses with ErrBadCredentials gets a generic 464 and
// counts as a failed guess: slowed, then refused without asking the backend;
// the right password from another address still works.
func TestPassGuessing(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New()
	b := newBackend()
	var asked atomic.Int32
	b.connErr = func(reg Registration) error {
		asked.Add(1)
		if reg.Pass != "alice:secret" {
			name, _, _ := strings.Cut(reg.Pass, ":")
			return fmt.Errorf("%w: no account named %s", ErrBadCredentials, name)
		}
		return nil
	}
	addr, ws, hook := guessServer(t, b, clock)
	steps := []struct {
		name  string
		from  string
		pass  string
		ok    bool
		asked bool
		waits []time.Duration
	}{
		{"first failure", "127.0.0.1", "alice:guess1", false, true, nil},
		{"second failure starts slowing", "127.0.0.1", "ALICE:guess2", false, true, nil},
		{"slowed, third failure refuses", "127.0.0.1", "alice:guess3", false, true, []time.Duration{time.Second}},
		{"refused", "127.0.0.1", "alice:secret", false, false, nil},
		{"owner elsewhere gets in, slowed", "127.0.0.2", "alice:secret", true, true, []time.Duration{2 * time.Second}},
	}
	for _, st := range steps {
		before := asked.Load()
		c := dialFrom(t, addr, st.from)
		c.send(t, "PASS "+st.pass, "NICK me", "USER u 0 * :R")
		if st.ok {
			c.readUntil(t, irc.RPL_ENDOFMOTD)
			b.conn(t, c)
		} else {
			checkMsg(t, expect(t, c, irc.ERR_PASSWDMISMATCH), w("464", "me", "Password incorrect"))
			if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Password incorrect)" {
				t.Fatalf("%s: got ERROR %q, want a generic text", st.name, got)
			}
		}
		if got := asked.Load() > before; got != st.asked {
			t.Fatalf("%s: got backend asked %v, want %v", st.name, got, st.asked)
		}
		if got := ws.take(); !slices.Equal(got, st.waits) {
			t.Fatalf("%s: got waits %v, want %v", st.name, got, st.waits)
		}
	}
	got := guessLogs(t, hook, "guess1", "guess2", "guess3", "secret")
	wantLogs := []string{
		"failed logins: slowing further attempts down keys=addr:127.0.0.1 account:alice",
		"failed logins: refusing further attempts for a while keys=addr:127.0.0.1",
	}
	if !slices.Equal(got, wantLogs) {
		t.Fatalf("got log lines %q, want %q", got, wantLogs)
	}
}

func TestAccountOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		reg  Registration
		want string
	}{
		{"sasl account", Registration{Account: "Alice", Pass: "bob:x", Nick: "carol"}, "Alice"},
		{"pass name", Registration{Pass: "bob:x", Nick: "carol"}, "bob"},
		{"pass without name", Registration{Pass: "x", Nick: "carol"}, "carol"},
		{"empty name", Registration{Pass: ":x", Nick: "carol"}, "carol"},
		{"no pass", Registration{Nick: "carol"}, "carol"},
		{"sasl account with a client", Registration{Account: "alice/phone"}, "alice"},
		{"pass name with a client", Registration{Pass: "alice/laptop:x", Nick: "carol"}, "alice"},
	}
	for _, tc := range tests {
		if got := accountOf(tc.reg); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// Connections over the total or the per-address cap get a clear ERROR, one
// log line per burst of refusals, and the others keep working.
func TestConnectionCaps(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxConnections, cfg.MaxConnectionsPerAddr = 3, 2
	b := newBackend()
	log, hook := testLog()
	addr, _ := startWith(t, NewServer(cfg, b, log))
	reg := func(from, nick string) (*tclient, *fakeConn) {
		t.Helper()
		c := dialFrom(t, addr, from)
		c.send(t, "NICK "+nick, "USER u 0 * :R")
		c.readUntil(t, irc.RPL_ENDOFMOTD)
		return c, b.conn(t, c)
	}
	refused := func(from, want string) {
		t.Helper()
		c := dialFrom(t, addr, from)
		if got := c.expectClosed(t); got != want {
			t.Fatalf("from %s: got ERROR %q, want %q", from, got, want)
		}
	}
	c1, f1 := reg("127.0.0.1", "one")
	c2, _ := reg("127.0.0.1", "two")
	refused("127.0.0.1", "Closing link: 127.0.0.1 (Too many connections from your address)")
	c3, _ := reg("127.0.0.2", "three")
	refused("127.0.0.3", "Closing link: 127.0.0.3 (Too many connections to this server)")
	refused("127.0.0.1", "Closing link: 127.0.0.1 (Too many connections to this server)")
	for _, c := range []*tclient{c1, c2, c3} {
		c.sync(t) // still served
	}
	c1.send(t, "QUIT")
	c1.expectClosed(t)
	f1.waitClosed(t)
	reg("127.0.0.1", "four") // a place is free again
	var lines []string
	for _, e := range hook.AllEntries() {
		if strings.HasPrefix(e.Message, "refusing connections") {
			lines = append(lines, e.Message)
		}
	}
	if want := []string{"refusing connections: too many connections from your address"}; !slices.Equal(lines, want) {
		t.Fatalf("got log lines %q, want %q", lines, want)
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                     string
		in                       Config
		conns, perAddr           int
		acctRefuse, addrRefuse   int
		acctMaxDelay, addrMaxDel time.Duration
	}{
		{"zero", Config{}, 4096, 32, -1, 0, 5 * time.Second, 0},
		{"set", Config{MaxConnections: 10, MaxConnectionsPerAddr: 3,
			AuthFailures:    guard.FailureConfig{RefuseAfter: 7, MaxDelay: time.Minute},
			AccountFailures: guard.FailureConfig{RefuseAfter: 9, MaxDelay: time.Second}}, 10, 3, 9, 7, time.Second, time.Minute},
		{"no caps", Config{MaxConnections: -1, MaxConnectionsPerAddr: -1}, -1, -1, -1, 0, 5 * time.Second, 0},
	}
	for _, tc := range tests {
		got := tc.in.withDefaults()
		if got.MaxConnections != tc.conns || got.MaxConnectionsPerAddr != tc.perAddr ||
			got.AccountFailures.RefuseAfter != tc.acctRefuse || got.AuthFailures.RefuseAfter != tc.addrRefuse ||
			got.AccountFailures.MaxDelay != tc.acctMaxDelay || got.AuthFailures.MaxDelay != tc.addrMaxDel {
			t.Errorf("%s: got caps %d/%d, refuse after %d/%d, max delay %v/%v; want %d/%d, %d/%d, %v/%v", tc.name,
				got.MaxConnections, got.MaxConnectionsPerAddr, got.AccountFailures.RefuseAfter, got.AuthFailures.RefuseAfter,
				got.AccountFailures.MaxDelay, got.AuthFailures.MaxDelay,
				tc.conns, tc.perAddr, tc.acctRefuse, tc.addrRefuse, tc.acctMaxDelay, tc.addrMaxDel)
		}
	}
}

// With no caps, one address may open more connections than the default
// per-address cap.
func TestNoConnectionCap(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxConnections, cfg.MaxConnectionsPerAddr = -1, -1
	addr, _ := startServer(t, cfg, newBackend())
	for i := range DefaultConfig().MaxConnectionsPerAddr + 1 {
		c := dial(t, addr)
		c.send(t, fmt.Sprintf("NICK n%d", i))
		c.sync(t)
	}
}

// A client slowed at SASL is not slowed again when it registers.
func TestSASLLoginWaitsOnce(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, ws, _ := guessServer(t, b, fakeclock.New())
	c := dialSASL(t, addr, "127.0.0.1")
	for _, pass := range []string{"guess1", "guess2", "secret"} {
		c.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", pass))
		c.readUntil(t, irc.ERR_SASLFAIL, irc.RPL_SASLSUCCESS)
	}
	c.send(t, "CAP END", "NICK me", "USER u 0 * :R")
	c.readUntil(t, irc.RPL_ENDOFMOTD)
	if fc := b.conn(t, c); fc.reg.Account != "alice" {
		t.Fatalf("got account %q, want alice", fc.reg.Account)
	}
	if got, want := ws.take(), []time.Duration{time.Second}; !slices.Equal(got, want) {
		t.Fatalf("got waits %v, want %v (once, at SASL)", got, want)
	}
}

// Guesses at one account over SASL count together whatever client name
// ("alice/1", "alice/2") they give, as they do with PASS: the client
// name does not reset the account's delay.
func TestSASLGuessesIgnoreClientName(t *testing.T) {
	t.Parallel()
	b := newBackend()
	b.authErr = func(account, password string) error { return fmt.Errorf("wrong password for %s", account) }
	addr, ws, _ := guessServer(t, b, fakeclock.New())
	for i, from := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		c := dialSASL(t, addr, from)
		c.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain(fmt.Sprintf("alice/client%d", i), "guess"))
		c.readUntil(t, irc.ERR_SASLFAIL)
	}
	if got, want := ws.take(), []time.Duration{time.Second}; !slices.Equal(got, want) {
		t.Fatalf("got waits %v, want %v (the third guess at alice slowed)", got, want)
	}
}

// Guesses at one account count together however its name is spelled: in
// any case as IRC folds nicks (CASEMAPPING=rfc1459, where []\~ are the
// capitals of {}|^), and as Unicode case folding makes names equal (a
// backend may look its users up so: "ſam" is "sam"), over SASL and with the
// nick of a PASS.
func TestGuessesFoldAccountNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		names []string
		sasl  bool
	}{
		{"SASL, rfc1459", []string{"dev[x]", "DEV{X}", "dev{x]"}, true},
		{"SASL, rfc1459 \\ and ~", []string{`a\b~`, "a|b^", `A|b~`}, true},
		{"SASL, Unicode", []string{"sam", "ſam", "SAM"}, true},
		{"nick", []string{"dev[x]", "DEV{X}", "dev{x]"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend()
			b.authErr = func(account, password string) error { return fmt.Errorf("wrong password for %s", account) }
			b.connErr = func(reg Registration) error { return fmt.Errorf("%w: wrong password", ErrBadCredentials) }
			addr, ws, _ := guessServer(t, b, fakeclock.New())
			for i, name := range tc.names {
				from := fmt.Sprintf("127.0.0.%d", i+1)
				if tc.sasl {
					c := dialSASL(t, addr, from)
					c.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain(name, "guess"))
					c.readUntil(t, irc.ERR_SASLFAIL)
					continue
				}
				c := dialFrom(t, addr, from)
				c.send(t, "PASS guess", "NICK "+name, "USER u 0 * :R")
				c.readUntil(t, irc.ERR_PASSWDMISMATCH)
			}
			if got, want := ws.take(), []time.Duration{time.Second}; !slices.Equal(got, want) {
				t.Fatalf("got waits %v, want %v (the third guess at one account slowed)", got, want)
			}
		})
	}
}

// sharedCounts is a guard.SharedFailures in memory that counts the
// requests it gets, as a store's would be.
type sharedCounts struct {
	mu                  sync.Mutex
	n                   map[string]int
	adds, reads, clears int
}

func (s *sharedCounts) AddFailure(key string, _ time.Time, _ time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adds++
	s.n[key]++
	return s.n[key], nil
}

func (s *sharedCounts) Failures(key string, _ time.Time, _ time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return s.n[key], nil
}

func (s *sharedCounts) ClearFailures(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clears++
	delete(s.n, key)
	return nil
}

// take returns the requests counted since the last call.
func (s *sharedCounts) take() (adds, reads, clears int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	adds, reads, clears = s.adds, s.reads, s.clears
	s.adds, s.reads, s.clears = 0, 0, 0
	return adds, reads, clears
}

// The per-account failures, which a store may keep, are asked for only
// by a login that gives a password (PASS or SASL), and are cleared at a
// right password only when there are some: a registration without PASS,
// refused or not, and a right password after no failure ask the store
// nothing more.
func TestGuessesAskSharedOnlyWithPasswords(t *testing.T) {
	t.Parallel()
	b := newBackend()
	b.connErr = func(reg Registration) error {
		if strings.Contains(reg.Pass, "guess") || reg.Nick == "refused" {
			return fmt.Errorf("%w: wrong password", ErrBadCredentials)
		}
		return nil
	}
	sh := &sharedCounts{n: map[string]int{}}
	cfg := testConfig()
	cfg.AccountLimiter = guard.NewFailureLimiter(guard.FailureConfig{Free: 2, RefuseAfter: -1, Clock: fakeclock.New(), Shared: sh})
	log, _ := testLog()
	srv := NewServer(cfg, b, log)
	srv.guesses.sleep = (&waits{}).sleep
	addr, _ := startWith(t, srv)
	for i, st := range []struct {
		name                string
		lines               []string
		sasl                bool
		ok                  bool
		adds, reads, clears int
	}{
		{"no PASS", []string{"NICK me", "USER u 0 * :R"}, false, true, 0, 0, 0},
		{"no PASS, refused", []string{"NICK refused", "USER u 0 * :R"}, false, false, 0, 0, 0},
		{"PASS", []string{"PASS alice:secret", "NICK me", "USER u 0 * :R"}, false, true, 0, 1, 0},
		{"SASL", []string{"CAP END", "NICK alice", "USER u 0 * :R"}, true, true, 0, 1, 0},
		{"wrong PASS", []string{"PASS alice:guess", "NICK me", "USER u 0 * :R"}, false, false, 1, 1, 0},
		{"PASS after a failure", []string{"PASS alice:secret", "NICK me", "USER u 0 * :R"}, false, true, 0, 1, 1},
		{"PASS after the failure was cleared", []string{"PASS alice:secret", "NICK me", "USER u 0 * :R"}, false, true, 0, 1, 0},
	} {
		from := fmt.Sprintf("127.0.0.%d", i+1)
		var c *tclient
		if st.sasl {
			c = dialSASL(t, addr, from)
			c.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "secret"))
			c.readUntil(t, irc.RPL_SASLSUCCESS)
		} else {
			c = dialFrom(t, addr, from)
		}
		c.send(t, st.lines...)
		if st.ok {
			c.readUntil(t, irc.RPL_ENDOFMOTD)
			b.conn(t, c)
		} else {
			c.readUntil(t, irc.ERR_PASSWDMISMATCH)
		}
		if adds, reads, clears := sh.take(); adds != st.adds || reads != st.reads || clears != st.clears {
			t.Errorf("%s: got %d failures counted, %d read, %d cleared in the store; want %d, %d, %d",
				st.name, adds, reads, clears, st.adds, st.reads, st.clears)
		}
	}
}

// A registration without any password guesses none of the account's: a
// refusal counts against its address only, so that connecting with
// someone's nick and no password does not slow the owner's logins.
func TestNoPasswordRefusalsDoNotSlowTheAccount(t *testing.T) {
	t.Parallel()
	b := newBackend()
	b.connErr = func(reg Registration) error {
		if reg.Pass != "secret" {
			return fmt.Errorf("%w: alice needs her password", ErrBadCredentials)
		}
		return nil
	}
	addr, ws, hook := guessServer(t, b, fakeclock.New())
	for i := range 4 {
		c := dialFrom(t, addr, "127.0.0.1")
		c.send(t, "NICK alice", "USER u 0 * :R")
		checkMsg(t, expect(t, c, irc.ERR_PASSWDMISMATCH), w("464", "alice", "Password incorrect"))
		c.expectClosed(t)
		if i == 2 {
			// The address's own delay still applies.
			if got, want := ws.take(), []time.Duration{time.Second}; !slices.Equal(got, want) {
				t.Fatalf("third refusal: got waits %v, want %v", got, want)
			}
		}
	}
	ws.take()
	owner := dialFrom(t, addr, "127.0.0.2")
	owner.send(t, "PASS secret", "NICK alice", "USER u 0 * :R")
	owner.readUntil(t, irc.RPL_ENDOFMOTD)
	b.conn(t, owner)
	if got := ws.take(); len(got) != 0 {
		t.Fatalf("owner's login: got waits %v, want none", got)
	}
	got := guessLogs(t, hook, "secret")
	wantLogs := []string{
		"failed logins: slowing further attempts down keys=addr:127.0.0.1",
		"failed logins: refusing further attempts for a while keys=addr:127.0.0.1",
	}
	if !slices.Equal(got, wantLogs) {
		t.Fatalf("got log lines %q, want %q", got, wantLogs)
	}
}

// TestRefusalNamesTheNetwork: a connection refused by the cap of its IPv6
// /48 (guard's SiteFactor) is told the network's cap, not its address's.
func TestRefusalNamesTheNetwork(t *testing.T) {
	t.Parallel()
	log, _ := testLog()
	s := NewServer(testConfig(), newBackend(), log)
	server, client := net.Pipe()
	defer client.Close()
	s.refuse(server, &guard.ConnLimitError{PerKey: true, Site: true, Limit: 256})
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "(Too many connections from your network)") {
		t.Errorf("got %q, want the network's cap named", line)
	}
	s.wg.Wait()
}
