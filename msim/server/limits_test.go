package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/internal/fakeclock"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/msim"
)

// sleeps replaces the server's login delay: it records the delays and
// returns at once.
type sleeps struct {
	mu  sync.Mutex
	got []time.Duration
}

func (s *sleeps) sleep(d time.Duration, _ <-chan struct{}) bool {
	s.mu.Lock()
	s.got = append(s.got, d)
	s.mu.Unlock()
	return true
}

func (s *sleeps) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

// limitedServer starts a server whose login delays are recorded, not
// slept, and whose log the test can read.
func limitedServer(t *testing.T, cfg Config, store Store) (*Server, string, *sleeps, *logtest.Hook) {
	t.Helper()
	log := testLog(t)
	hook := logtest.NewLocal(log.Logger)
	srv, err := New(cfg, store, log)
	if err != nil {
		t.Fatal(err)
	}
	sl := &sleeps{}
	srv.sleep = sl.sleep
	return srv, serve(t, srv), sl, hook
}

// logLines returns the messages of the entries at level or above whose
// message contains text.
func logLines(hook *logtest.Hook, level logrus.Level, text string) []*logrus.Entry {
	var out []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Level <= level && strings.Contains(e.Message, text) {
			out = append(out, e)
		}
	}
	return out
}

// noSecrets fails if any log entry shows one of secrets.
func noSecrets(t *testing.T, hook *logtest.Hook, secrets ...string) {
	t.Helper()
	for _, e := range hook.AllEntries() {
		line, _ := e.String()
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("the log shows %q: %s", s, line)
			}
		}
	}
}

// TestLoginGuessingSlowedThenRefused: a burst of wrong passwords from one
// address is delayed more and more, then refused without a password check
// (one log line when each begins); the right password from another address
// still logs in, and the refusal ends in time.
func TestLoginGuessingSlowedThenRefused(t *testing.T) {
	clock := fakeclock.New()
	cfg := Config{
		LoginFailures: guard.FailureConfig{Free: 3, Delay: time.Second, MaxDelay: 4 * time.Second,
			RefuseAfter: 6, RefuseFor: 10 * time.Minute, Clock: clock},
		AccountFailures: guard.FailureConfig{Free: 3, Delay: time.Second, MaxDelay: 2 * time.Second, Clock: clock},
	}
	srv, addr, sl, hook := limitedServer(t, cfg, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")

	const guesser, owner = "127.0.0.1", "127.0.0.2"
	steps := []struct {
		name, from, pw string
		wantText       string          // errmsg; "" = logged in
		wantSleep      []time.Duration // the delay before the check
	}{
		{"guess 1", guesser, "guess1", textBadLogin, nil},
		{"guess 2", guesser, "guess2", textBadLogin, nil},
		{"guess 3 (slowing starts)", guesser, "guess3", textBadLogin, nil},
		{"guess 4", guesser, "guess4", textBadLogin, []time.Duration{time.Second}},
		{"guess 5", guesser, "guess5", textBadLogin, []time.Duration{2 * time.Second}},
		{"guess 6 (refusal starts)", guesser, "guess6", textBadLogin, []time.Duration{4 * time.Second}},
		{"refused, password not checked", guesser, "Secret1", textLoginsLater, nil},
		{"refused again", guesser, "guess7", textLoginsLater, nil},
		{"the owner from elsewhere", owner, "Secret1", "", []time.Duration{2 * time.Second}},
	}
	for _, st := range steps {
		c := dialFrom(t, st.from, addr)
		m := c.tryLogin("alice@example.com", st.pw)
		if st.wantText == "" {
			if !m.Is("lc") {
				t.Fatalf("%s: got %v, want lc 2", st.name, m)
			}
		} else {
			text, _ := m.Str("errmsg")
			code := msim.ErrCodeBadPassword
			if st.wantText == textLoginsLater {
				code = ErrCodeRefused
			}
			if !isError(code)(m) || !m.Has("fatal") || text != st.wantText {
				t.Fatalf("%s: got %v, want fatal err %d %q", st.name, m, code, st.wantText)
			}
			c.expectClosed()
		}
		if got := sl.take(); !slices.Equal(got, st.wantSleep) {
			t.Errorf("%s: delays got %v, want %v", st.name, got, st.wantSleep)
		}
	}
	for _, want := range []struct {
		text, key string
	}{
		{"slowing down", "addr:" + guesser},
		{"slowing down", "account:alice@example.com"},
		{"refusing", "addr:" + guesser},
	} {
		n := 0
		for _, e := range logLines(hook, logrus.WarnLevel, want.text) {
			if e.Data["key"] == want.key {
				n++
			}
		}
		if n != 1 {
			t.Errorf("log lines %q for %s: got %d, want 1 per burst", want.text, want.key, n)
		}
	}
	if n := len(logLines(hook, logrus.WarnLevel, "repeated failed logins")); n != 3 {
		t.Errorf("burst log lines: got %d, want 3", n)
	}
	noSecrets(t, hook, "Secret1", "guess")

	// The refusal is temporary; afterwards guessing starts slowed.
	clock.Advance(11 * time.Minute)
	c := dialFrom(t, guesser, addr)
	if m := c.tryLogin("alice@example.com", "guess8"); m.StrOr("errmsg", "") != textBadLogin {
		t.Errorf("after the refusal: got %v, want %q", m, textBadLogin)
	}
	if got := sl.take(); len(got) != 1 || got[0] != time.Second {
		t.Errorf("after the refusal: delays got %v, want [1s]", got)
	}
}

// TestRefusedAddressIsNotAWrongPassword: while an address is refused for
// its failed logins, a login from it (with the right password) is told to
// try again later with a code that does not say the password is wrong:
// clients take err 260 as an incorrect password and stop logging in for
// good (spec §3.6, §7.2; so do msimircd's accounts), where the refusal
// ends by itself. Another gateway user's typos must not stop every account
// behind the same address.
func TestRefusedAddressIsNotAWrongPassword(t *testing.T) {
	clock := fakeclock.New()
	cfg := Config{
		LoginFailures:   guard.FailureConfig{Free: 1, Delay: time.Second, MaxDelay: time.Second, RefuseAfter: 2, RefuseFor: 10 * time.Minute, Clock: clock},
		AccountFailures: guard.FailureConfig{Free: 10, Delay: time.Second, Clock: clock},
	}
	srv, addr, _, _ := limitedServer(t, cfg, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	const gateway = "127.0.0.1"
	for i := range 2 {
		c := dialFrom(t, gateway, addr)
		if m := c.tryLogin("alice@example.com", fmt.Sprintf("typo%d", i)); !isError(msim.ErrCodeBadPassword)(m) {
			t.Fatalf("typo %d: got %v, want err 260", i, m)
		}
	}
	c := dialFrom(t, gateway, addr)
	m := c.tryLogin("bob@example.com", "hunter2")
	if text, _ := m.Str("errmsg"); !m.Is("error") || !m.Has("fatal") || text != textLoginsLater {
		t.Fatalf("refused: got %v, want a fatal error %q", m, textLoginsLater)
	}
	if isError(msim.ErrCodeBadPassword)(m) {
		t.Errorf("refused: got %v, a wrong password's code", m)
	}
	_, err := msim.Dial(context.Background(), msim.ClientConfig{Addr: addr, Email: "bob@example.com", Password: "hunter2",
		DialTimeout: testWait, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(gateway)}}
			return d.DialContext(ctx, "tcp", addr)
		}})
	var le *msim.LoginError
	if !errors.As(err, &le) || errors.Is(err, msim.ErrBadPassword) {
		t.Errorf("msim.Dial while refused: got %v, want a login error that is not ErrBadPassword", err)
	}
}

// TestLoginUnknownLikeWrongPassword: an unknown e-mail address and a wrong
// password get the same answer and the same delays, so neither tells
// whether an account exists.
func TestLoginUnknownLikeWrongPassword(t *testing.T) {
	clock := fakeclock.New()
	cfg := Config{
		LoginFailures:   guard.FailureConfig{Free: 2, Delay: time.Second, MaxDelay: 8 * time.Second, RefuseAfter: -1, Clock: clock},
		AccountFailures: guard.FailureConfig{Free: 2, Delay: time.Second, MaxDelay: 8 * time.Second, Clock: clock},
	}
	srv, addr, sl, _ := limitedServer(t, cfg, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	type answer struct {
		code   int
		text   string
		fatal  bool
		delays []time.Duration
	}
	run := func(from, email string) []answer {
		var out []answer
		for i := range 4 {
			c := dialFrom(t, from, addr)
			m := c.tryLogin(email, fmt.Sprint("wrong", i))
			code, _ := m.Int("err")
			out = append(out, answer{code, m.StrOr("errmsg", ""), m.Has("fatal"), sl.take()})
		}
		return out
	}
	wrong := run("127.0.0.3", "alice@example.com")
	unknown := run("127.0.0.4", "nobody@example.com")
	if wrong[0].code != msim.ErrCodeBadPassword || wrong[0].text != textBadLogin || !wrong[0].fatal {
		t.Errorf("wrong password: got %+v, want fatal 260 %q", wrong[0], textBadLogin)
	}
	for i := range wrong {
		if fmt.Sprint(wrong[i]) != fmt.Sprint(unknown[i]) {
			t.Errorf("attempt %d: unknown e-mail got %+v, wrong password %+v; want the same", i+1, unknown[i], wrong[i])
		}
	}
	if len(wrong[3].delays) == 0 {
		t.Errorf("the fourth attempt was not delayed: %+v", wrong)
	}
}

// TestConnectionCaps: a connection over a cap gets a clear fatal error and
// is closed, with a log line; sessions already in keep working, and a
// closed connection frees its slot.
func TestConnectionCaps(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		from     [3]string // alice, bob, the one refused
		wantText string
		other    string // an address still let in, "" for none
	}{
		{"per address", Config{MaxConnectionsPerAddr: 2}, [3]string{"127.0.0.1", "127.0.0.1", "127.0.0.1"},
			"too many connections from your address (limit 2)", "127.0.0.2"},
		{"total", Config{MaxConnections: 2}, [3]string{"127.0.0.1", "127.0.0.2", "127.0.0.3"},
			"too many connections to this server (limit 2)", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr, _, hook := limitedServer(t, tc.cfg, NewMemStore())
			addAccount(t, srv, "alice@example.com", "Secret1", "alice")
			addAccount(t, srv, "bob@example.com", "hunter2", "bob")
			alice := loginFrom(t, tc.from[0], addr, "alice@example.com", "Secret1")
			bob := loginFrom(t, tc.from[1], addr, "bob@example.com", "hunter2")

			over := connect(t, tc.from[2], addr)
			m := over.expect("refusal", isError(ErrCodeRefused))
			if text, _ := m.Str("errmsg"); !m.Has("fatal") || !strings.Contains(text, tc.wantText) {
				t.Errorf("refusal: got %v, want fatal with %q", m, tc.wantText)
			}
			over.expectClosed()
			if n := len(logLines(hook, logrus.WarnLevel, "connection refused")); n != 1 {
				t.Errorf("log lines for the refusal: got %d, want 1", n)
			}
			exchange(t, alice, bob, "still here")
			if tc.other != "" {
				dialFrom(t, tc.other, addr)
			}

			bob.send(msim.New("logout", "").AddInt("sesskey", bob.key))
			bob.expectClosed()
			dialFrom(t, tc.from[2], addr) // bob's slot is free again
		})
	}
}

// TestTrustedNetsNotCappedPerAddress: a trusted bridge address is capped
// neither in connections nor in failed logins per address.
func TestTrustedNetsNotCappedPerAddress(t *testing.T) {
	clock := fakeclock.New()
	cfg := Config{
		MaxConnectionsPerAddr: 1,
		TrustedNets:           []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		LoginFailures:         guard.FailureConfig{Free: 1, RefuseAfter: 2, Clock: clock},
	}
	srv, addr, sl, _ := limitedServer(t, cfg, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	alice := login(t, addr, "alice@example.com", "Secret1")
	for i := range 3 {
		c := dial(t, addr) // a second connection from the same address
		if m := c.tryLogin(fmt.Sprintf("user%d@example.com", i), "x"); m.StrOr("errmsg", "") != textBadLogin {
			t.Fatalf("failed login %d from a trusted address: got %v, want %q", i+1, m, textBadLogin)
		}
	}
	if got := sl.take(); len(got) != 0 {
		t.Errorf("delays for a trusted address: got %v, want none", got)
	}
	alice.sync()
}

// TestOfflineByteCaps: offline mail is capped in bytes per sender and per
// recipient; a refused IM gets its sender a non-fatal error naming the
// recipient and a log line, everyone else can still leave mail, and the
// recipient's login frees the room.
func TestOfflineByteCaps(t *testing.T) {
	type send struct {
		from string // "alice" or "carol"
		size int
		want string // errmsg substring; "" = stored
	}
	cases := []struct {
		name  string
		cfg   Config
		sends []send
	}{
		{"per sender", Config{OfflinePerSenderBytes: 100, OfflinePerRecipientBytes: 1000}, []send{
			{"alice", 60, ""}, {"alice", 60, textSenderFull}, {"carol", 60, ""}, {"alice", 40, ""},
		}},
		{"per recipient", Config{OfflinePerSenderBytes: 100, OfflinePerRecipientBytes: 150}, []send{
			{"alice", 80, ""}, {"carol", 80, textOfflineFull}, {"carol", 70, ""}, {"alice", 1, textOfflineFull},
		}},
	}
	engines := map[string]func(t *testing.T) Store{
		"mem": func(*testing.T) Store { return NewMemStore() },
		"file": func(t *testing.T) Store {
			s, err := OpenFileStore(filepath.Join(t.TempDir(), "msim.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for engine, open := range engines {
		for _, tc := range cases {
			t.Run(engine+"/"+tc.name, func(t *testing.T) {
				srv, addr, _, hook := limitedServer(t, tc.cfg, open(t))
				addAccount(t, srv, "alice@example.com", "Secret1", "alice")
				addAccount(t, srv, "carol@example.com", "Secret3", "carol")
				bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
				senders := map[string]*client{
					"alice": login(t, addr, "alice@example.com", "Secret1"),
					"carol": login(t, addr, "carol@example.com", "Secret3"),
				}
				var stored []string
				refused := 0
				for i, s := range tc.sends {
					c := senders[s.from]
					body := fmt.Sprintf("%d%s", i, strings.Repeat("x", s.size-1))
					c.bm(msim.BMIM, bUID, body)
					c.sync()
					errs := slices.DeleteFunc(c.takeSeen(), func(m *msim.Message) bool { return !m.Is("error") })
					switch {
					case s.want == "" && len(errs) != 0:
						t.Errorf("send %d: got %v, want it stored", i, errs)
					case s.want == "":
						stored = append(stored, body)
					case len(errs) != 1 || !isError(ErrCodeNotStored)(errs[0]) || errs[0].Has("fatal") ||
						!strings.Contains(errs[0].StrOr("errmsg", ""), s.want) ||
						!strings.Contains(errs[0].StrOr("errmsg", ""), bUID.String()):
						t.Errorf("send %d: got %v, want one non-fatal %d saying %q about %v", i, errs, ErrCodeNotStored, s.want, bUID)
					default:
						refused++
					}
				}
				if n := len(logLines(hook, logrus.InfoLevel, "offline IM refused")); n != refused {
					t.Errorf("log lines: got %d, want %d (one per refused IM)", n, refused)
				}
				bob := login(t, addr, "bob@example.com", "hunter2")
				bob.sync()
				var got []string
				for _, m := range bob.takeSeen() {
					if isType("bm", msim.BMIM)(m) {
						got = append(got, m.StrOr("msg", ""))
					}
				}
				if !slices.Equal(got, stored) {
					t.Errorf("bob got %q, want %q", got, stored)
				}
				bob.send(msim.New("logout", "").AddInt("sesskey", bob.key))
				bob.expectClosed()
				a := senders["alice"]
				a.bm(msim.BMIM, bUID, strings.Repeat("y", 60))
				a.sync()
				none(t, a.takeSeen(), "an error once bob took his mail", func(m *msim.Message) bool { return m.Is("error") })
			})
		}
	}
}

// sharedFailures is a guard.SharedFailures that counts failures per key,
// as a database would, and records the keys it is given.
type sharedFailures struct {
	mu   sync.Mutex
	n    map[string]int
	keys map[string]bool
}

func (s *sharedFailures) record(key string) {
	if s.keys == nil {
		s.keys, s.n = map[string]bool{}, map[string]int{}
	}
	s.keys[key] = true
}

func (s *sharedFailures) AddFailure(key string, _ time.Time, _ time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(key)
	s.n[key]++
	return s.n[key], nil
}

func (s *sharedFailures) Failures(key string, _ time.Time, _ time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(key)
	return s.n[key], nil
}

func (s *sharedFailures) ClearFailures(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record(key)
	delete(s.n, key)
	return nil
}

// TestLoginFailureKeysAreBounded: the account limiter's key for the
// e-mail address a login names is bounded whatever the address's length,
// so logins naming long addresses grow neither its table nor a shared
// store of failures by their length. A long address is still one key:
// its failures add up whatever its case, and slow its logins; two long
// addresses are two keys.
func TestLoginFailureKeysAreBounded(t *testing.T) {
	const keyBound = 300 // bytes: an address of any real length, and its prefix
	clock := fakeclock.New()
	shared := &sharedFailures{}
	cfg := Config{
		LoginFailures:   guard.FailureConfig{Free: 100, RefuseAfter: -1, Clock: clock},
		AccountFailures: guard.FailureConfig{Free: 2, Delay: time.Second, MaxDelay: 4 * time.Second, Clock: clock, Shared: shared},
	}
	srv, addr, sl, _ := limitedServer(t, cfg, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	long := strings.Repeat("a", 16<<10) + "@example.com"
	other := strings.Repeat("b", 16<<10) + "@example.com"
	for i, email := range []string{long, strings.ToUpper(long), long, other} {
		c := dial(t, addr)
		if m := c.tryLogin(email, "guess"); !isError(msim.ErrCodeBadPassword)(m) {
			t.Fatalf("login %d: got %v, want err %d", i, m, msim.ErrCodeBadPassword)
		}
		c.expectClosed()
	}
	if got, want := sl.take(), []time.Duration{time.Second}; !slices.Equal(got, want) {
		t.Errorf("delays got %v, want %v (the third failure in a row of one long address)", got, want)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for k := range shared.keys {
		if len(k) > keyBound {
			t.Errorf("a key of %d bytes for an address of %d, want at most %d", len(k), len(long), keyBound)
		}
	}
	if len(shared.keys) != 2 {
		t.Errorf("%d keys for two long addresses, want 2", len(shared.keys))
	}
}

// TestLoggedEmailIsBounded: a login naming an address of any length is
// logged with a bounded part of it (its start and its length), at every
// level the failures are logged, so a stranger's long names cannot grow
// the log by a message's size at each try.
func TestLoggedEmailIsBounded(t *testing.T) {
	const lineBound = 1 << 10
	clock := fakeclock.New()
	cfg := Config{
		LoginFailures:   guard.FailureConfig{Free: 100, RefuseAfter: -1, Clock: clock},
		AccountFailures: guard.FailureConfig{Free: 1, Delay: time.Second, MaxDelay: 4 * time.Second, Clock: clock},
	}
	srv, addr, _, hook := limitedServer(t, cfg, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	long := strings.Repeat("é", 8<<10) + "@example.com"
	for i := range 3 {
		c := dial(t, addr)
		if m := c.tryLogin(long, "guess"); !isError(msim.ErrCodeBadPassword)(m) {
			t.Fatalf("login %d: got %v, want err %d", i, m, msim.ErrCodeBadPassword)
		}
		c.expectClosed()
	}
	named := 0
	for _, e := range hook.AllEntries() {
		v, ok := e.Data["email"].(string)
		if !ok || v == "alice@example.com" {
			continue
		}
		named++
		if len(v) > lineBound || !utf8.ValidString(v) {
			t.Errorf("%q logged with an email field of %d bytes (valid UTF-8: %v), want at most %d", e.Message, len(v), utf8.ValidString(v), lineBound)
		}
		if !strings.HasPrefix(v, "éé") || !strings.Contains(v, strconv.Itoa(len(long))) {
			t.Errorf("%q logged the email as %.40q…, want its start and its length %d", e.Message, v, len(long))
		}
	}
	if named == 0 {
		t.Fatal("no log entry named the email")
	}
}
