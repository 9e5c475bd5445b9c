package ircd

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/fakeclock"
)

// Guesses at one account made at once, from many addresses, wait in
// turns, a delay apart, and past AccountTurns of them are refused without
// asking the backend; the owner, from an address they logged in from
// before, waits the delay only and gets in.
func TestAccountGuessesTakeTurns(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New() // never moves: every attempt is at once
	b := newBackend()
	var asked atomic.Int32
	b.authErr = func(account, password string) error {
		asked.Add(1)
		if password != "secret" {
			return fmt.Errorf("no such account %s", account)
		}
		return nil
	}
	addr, ws, _ := guessServer(t, b, clock)
	ok := []want{w("AUTHENTICATE", "+"), w("900", nil...), w("903", nil...)}
	fail := []want{w("AUTHENTICATE", "+"), w("904", "*", "SASL authentication failed")}
	owner := dialSASL(t, addr, "127.0.0.2")
	owner.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "secret"))
	checkMsgs(t, owner.sync(t), ok)
	// Three failures from three addresses slow the account (the second
	// starts it: 1 s, then 2 s, the cap).
	for i := range 3 {
		c := dialSASL(t, addr, fmt.Sprintf("127.0.1.%d", i+1))
		c.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "guess"))
		checkMsgs(t, c.sync(t), fail)
	}
	ws.take()
	// AccountTurns more at once: each waits its turn.
	for i := range AccountTurns {
		c := dialSASL(t, addr, fmt.Sprintf("127.0.2.%d", i+1))
		c.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "guess"))
		checkMsgs(t, c.sync(t), fail)
		// The turn before this one was booked for now+2i s (the first at
		// now+2 s, since a 1 s turn was booked by the third failure).
		if got, want := ws.take(), []time.Duration{time.Duration(2*(i+1)) * time.Second}; !slices.Equal(got, want) {
			t.Fatalf("guess %d at once: got waits %v, want %v", i+1, got, want)
		}
	}
	before := asked.Load()
	late := dialSASL(t, addr, "127.0.3.1")
	late.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "guess"))
	checkMsgs(t, late.sync(t), fail)
	if asked.Load() != before {
		t.Fatal("a guess past the turns asked the backend")
	}
	if got := ws.take(); len(got) != 0 {
		t.Fatalf("a guess past the turns waited %v, want refused at once", got)
	}
	// The owner, from their earlier address, is not held up by the turns.
	owner2 := dialSASL(t, addr, "127.0.0.2")
	owner2.send(t, "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "secret"))
	checkMsgs(t, owner2.sync(t), ok)
	if got, want := ws.take(), []time.Duration{2 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("owner: got waits %v, want %v (the delay, no turn)", got, want)
	}
}
