package channel_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/testlog"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
)

// failureCalls is a store that counts the requests about failed logins.
type failureCalls struct {
	store.Store
	mu                  sync.Mutex
	adds, reads, clears int
}

func (f *failureCalls) AddLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	f.mu.Lock()
	f.adds++
	f.mu.Unlock()
	return f.Store.AddLoginFailure(ctx, key, now, window)
}

func (f *failureCalls) LoginFailures(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	f.mu.Lock()
	f.reads++
	f.mu.Unlock()
	return f.Store.LoginFailures(ctx, key, now, window)
}

func (f *failureCalls) ClearLoginFailures(ctx context.Context, key string) error {
	f.mu.Lock()
	f.clears++
	f.mu.Unlock()
	return f.Store.ClearLoginFailures(ctx, key)
}

// take returns the requests counted since the last call.
func (f *failureCalls) take() (adds, reads, clears int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	adds, reads, clears = f.adds, f.reads, f.clears
	f.adds, f.reads, f.clears = 0, 0, 0
	return adds, reads, clears
}

// loginGateway runs a bridge and its ircd on st, wired as msimircd wires
// them (failed logins counted by the bridge's limiters, so in st), for
// users user0… with password "pw" and open0… with none, all without MSIM
// accounts.
func loginGateway(t testing.TB, st store.Store, users int) string {
	t.Helper()
	dir := &channel.StaticDirectory{}
	for i := range users {
		dir.Users = append(dir.Users, channel.StaticUser{Name: fmt.Sprintf("user%d", i), Password: "pw"}, channel.StaticUser{Name: fmt.Sprintf("open%d", i)})
	}
	log := testlog.New(t, logrus.WarnLevel)
	b, err := channel.New(channel.Config{MSIMAddr: "127.0.0.1:1", Directory: dir, Store: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	addrLimiter, userLimiter := b.GuessLimiters()
	isrv := ircd.NewServer(ircd.Config{ServerName: "msimircd.test", AuthLimiter: addrLimiter, AccountLimiter: userLimiter}, b, log)
	ln := listenLoopback(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = isrv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = isrv.Shutdown(sctx)
		_ = b.Shutdown(sctx)
		cancel()
		<-served
	})
	return ln.Addr().String()
}

// loginOnce registers with lines and waits for the end of the welcome (or a
// 464), then quits.
func loginOnce(t testing.TB, addr string, lines ...string) (welcomed bool) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	for _, l := range lines {
		if _, err := fmt.Fprintf(nc, "%s\r\n", l); err != nil {
			t.Fatal(err)
		}
	}
	r := irc.NewReader(bufio.NewReader(nc))
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("registering with %q: %v", lines, err)
		}
		switch m.Command {
		case irc.RPL_ENDOFMOTD, irc.ERR_NOMOTD:
			_, _ = fmt.Fprintf(nc, "QUIT\r\n")
			return true
		case irc.ERR_PASSWDMISMATCH:
			return false
		}
	}
}

// TestLoginStormStoreCalls: in a storm of logins to distinct users, each
// login with a right PASS asks the store once for the user's failed
// logins and does not clear them (there are none), and a login without
// PASS asks nothing; the login after a wrong password clears them.
func TestLoginStormStoreCalls(t *testing.T) {
	const users = 20
	st := &failureCalls{Store: openStore(t)}
	addr := loginGateway(t, st, users)
	for i := range users {
		if !loginOnce(t, addr, fmt.Sprintf("PASS user%d:pw", i), fmt.Sprintf("NICK user%d", i), "USER u 0 * :R") {
			t.Fatalf("user%d: refused", i)
		}
	}
	if adds, reads, clears := st.take(); adds != 0 || reads != users || clears != 0 {
		t.Errorf("%d logins with PASS: got %d failures counted, %d read, %d cleared; want 0, %d, 0", users, adds, reads, clears, users)
	}
	for i := range users {
		if !loginOnce(t, addr, fmt.Sprintf("NICK open%d", i), "USER u 0 * :R") {
			t.Fatalf("open%d: refused", i)
		}
	}
	if adds, reads, clears := st.take(); adds != 0 || reads != 0 || clears != 0 {
		t.Errorf("%d logins without PASS: got %d failures counted, %d read, %d cleared; want none", users, adds, reads, clears)
	}
	if loginOnce(t, addr, "PASS user0:guess", "NICK user0", "USER u 0 * :R") {
		t.Fatal("a wrong password: welcomed")
	}
	if !loginOnce(t, addr, "PASS user0:pw", "NICK user0", "USER u 0 * :R") {
		t.Fatal("user0: refused")
	}
	if adds, reads, clears := st.take(); adds != 1 || reads != 2 || clears != 1 {
		t.Errorf("a wrong password, then the right one: got %d failures counted, %d read, %d cleared; want 1, 2, 1", adds, reads, clears)
	}
}

// TestNoPasswordRefusalsCountNothingAgainstTheUser: registrations with a
// user's nick and no password, which the directory refuses, count no
// failed login against the user (their address's count is another
// matter), so that anyone connecting with the nick cannot slow the
// owner's logins; the owner's right password then finds none to clear.
func TestNoPasswordRefusalsCountNothingAgainstTheUser(t *testing.T) {
	st := &failureCalls{Store: openStore(t)}
	addr := loginGateway(t, st, 1)
	for range 2 { // below the address's free failures, so the owner's login is not slowed for it
		if loginOnce(t, addr, "NICK user0", "USER u 0 * :R") {
			t.Fatal("user0's nick without a password: welcomed")
		}
	}
	if adds, reads, clears := st.take(); adds != 0 || reads != 0 || clears != 0 {
		t.Errorf("2 refusals without PASS: got %d failures counted, %d read, %d cleared in the store; want none", adds, reads, clears)
	}
	if !loginOnce(t, addr, "PASS user0:pw", "NICK user0", "USER u 0 * :R") {
		t.Fatal("user0 with the right password: refused")
	}
	if adds, reads, clears := st.take(); adds != 0 || reads != 1 || clears != 0 {
		t.Errorf("user0's right password: got %d failures counted, %d read, %d cleared; want 0, 1, 0 (no failure to forget)", adds, reads, clears)
	}
}

// BenchmarkLogin: logins to distinct users of a gateway on a SQLite
// store, with and without PASS; it reports the store's requests about
// failed logins per login.
func BenchmarkLogin(b *testing.B) {
	const users = 1000
	for _, bc := range []struct {
		name  string
		lines func(u int) []string
	}{
		{"PASS", func(u int) []string {
			return []string{fmt.Sprintf("PASS user%d:pw", u), fmt.Sprintf("NICK user%d", u), "USER u 0 * :R"}
		}},
		{"no PASS", func(u int) []string { return []string{fmt.Sprintf("NICK open%d", u), "USER u 0 * :R"} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st := &failureCalls{Store: openStore(b)}
			addr := loginGateway(b, st, users)
			b.ResetTimer()
			for i := range b.N {
				if !loginOnce(b, addr, bc.lines(i%users)...) {
					b.Fatalf("login %d: refused", i)
				}
			}
			b.StopTimer()
			adds, reads, clears := st.take()
			b.ReportMetric(float64(adds+reads+clears)/float64(b.N), "failure-calls/login")
		})
	}
}

// BenchmarkRightPasswordGuessCheck: what a login with a right password
// asks of the user limiter (Check, then Succeed), alone, on a SQLite
// store, for distinct users that failed no login.
func BenchmarkRightPasswordGuessCheck(b *testing.B) {
	st := &failureCalls{Store: openStore(b)}
	br, err := channel.New(channel.Config{MSIMAddr: "127.0.0.1:1", Directory: &channel.StaticDirectory{}, Store: st, Log: testlog.New(b, logrus.WarnLevel)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Shutdown(context.Background()) })
	_, users := br.GuessLimiters()
	b.ResetTimer()
	for i := range b.N {
		key := ircd.AccountKey(fmt.Sprintf("user%d", i%1000))
		if _, err := users.Check(key); err != nil {
			b.Fatal(err)
		}
		users.Succeed(key)
	}
	b.StopTimer()
	adds, reads, clears := st.take()
	b.ReportMetric(float64(adds+reads+clears)/float64(b.N), "failure-calls/login")
}
