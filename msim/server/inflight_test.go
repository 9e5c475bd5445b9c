package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/internal/fakeclock"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/msim"
)

// heldSleeps replaces the server's login delay: once held, a delay blocks
// until let go, so the attempt stays under way, and says so on entered.
type heldSleeps struct {
	mu      sync.Mutex
	gate    chan struct{} // nil: delays return at once
	entered chan struct{}
}

func (h *heldSleeps) sleep(_ time.Duration, done <-chan struct{}) bool {
	h.mu.Lock()
	gate := h.gate
	h.mu.Unlock()
	if gate == nil {
		return true
	}
	h.entered <- struct{}{}
	select {
	case <-gate:
		return true
	case <-done:
		return false
	}
}

func (h *heldSleeps) hold(gate chan struct{}) {
	h.mu.Lock()
	h.gate = gate
	h.mu.Unlock()
}

// TestLoginGuessesInFlightBounded: at an account with failed logins,
// parallel logins from many addresses do not all get their password
// checked after the one delay: at most guard.MaxInFlight are under way at
// once; the others are told to try again later (not "wrong password"),
// with no password checked and no failure counted.
func TestLoginGuessesInFlightBounded(t *testing.T) {
	clock := fakeclock.New()
	cfg := Config{
		// The addresses are not what this tests: they never refuse.
		LoginFailures:   guard.FailureConfig{Free: 1000, RefuseAfter: -1, Clock: clock},
		AccountFailures: guard.FailureConfig{Free: 3, Delay: time.Second, MaxDelay: time.Minute, Clock: clock},
	}
	log := testLog(t)
	hook := logtest.NewLocal(log.Logger)
	srv, err := New(cfg, NewMemStore(), log)
	if err != nil {
		t.Fatal(err)
	}
	hs := &heldSleeps{entered: make(chan struct{}, 64)}
	srv.sleep = hs.sleep
	addr := serve(t, srv)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	const email = "alice@example.com"
	for i := range 5 {
		c := dialFrom(t, "127.0.0.1", addr)
		if m := c.tryLogin(email, fmt.Sprint("guess", i)); !isError(msim.ErrCodeBadPassword)(m) {
			t.Fatalf("guess %d: got %v, want err 260", i+1, m)
		}
	}
	checked := func() int { return len(logLines(hook, logrus.InfoLevel, "login refused: wrong password")) }
	checkedBefore := checked()

	gate := make(chan struct{})
	hs.hold(gate)
	const tries = 6
	answers := make(chan *msim.Message, tries)
	for i := range tries {
		c := dialFrom(t, fmt.Sprintf("127.0.0.%d", 10+i), addr)
		resp, err := msim.LoginResponse(c.nonce, email, msim.HashPassword(fmt.Sprint("parallel", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.send(msim.NewInt("login2", msim.LoginAlgorithm).Add("username", email).AddBase64("response", resp).
			AddInt("clientver", 673).AddInt("reconn", 0).AddInt("status", 100).AddInt("id", 1))
		go func() {
			for {
				m, err := c.read()
				if err != nil {
					answers <- nil
					return
				}
				if m.Is("error") || m.Is("lc") {
					answers <- m
					return
				}
			}
		}()
	}
	// Wait until every attempt is either under way (in its delay) or
	// answered.
	var got []*msim.Message
	entered := 0
	deadline := time.After(testWait)
	for entered+len(got) < tries {
		select {
		case <-hs.entered:
			entered++
		case m := <-answers:
			got = append(got, m)
		case <-deadline:
			t.Fatalf("after %v: %d attempts under way, %d answered; want %d in all", testWait, entered, len(got), tries)
		}
	}
	close(gate)
	for len(got) < tries {
		got = append(got, <-answers)
	}
	wrong, later := 0, 0
	for _, m := range got {
		switch {
		case isError(msim.ErrCodeBadPassword)(m):
			wrong++
		case isError(ErrCodeRefused)(m) && m.Has("fatal") && m.StrOr("errmsg", "") != textBadLogin:
			later++
		default:
			t.Errorf("answer %v: want err 260 or a fatal err %d", m, ErrCodeRefused)
		}
	}
	n := checked() - checkedBefore
	t.Logf("%d parallel wrong logins: %d under way at once, %d passwords checked, %d told to try later", tries, entered, n, later)
	if entered > guard.MaxInFlight || n > guard.MaxInFlight || wrong != n {
		t.Errorf("got %d under way and %d passwords checked (%d answered 260); want at most %d", entered, n, wrong, guard.MaxInFlight)
	}
	if wrong+later != tries {
		t.Errorf("got %d wrong-password and %d try-later answers; want %d in all", wrong, later, tries)
	}
	// Those told to try later counted no failure: 5 + the ones checked.
	hs.hold(nil)
	want := 5 + n
	if d, err := srv.accounts.Check(accountKey(email)); err != nil || d != min(time.Second<<(want-3), time.Minute) {
		t.Errorf("after: got delay %v (%v), want %v (%d failures)", d, err, min(time.Second<<(want-3), time.Minute), want)
	}
	// The owner, alone, gets in.
	loginFrom(t, "127.0.0.2", addr, email, "Secret1")
}
