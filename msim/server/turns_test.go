package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/fakeclock"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/msim"
)

// Logins at one account made at once from many addresses wait in turns,
// a delay apart, and past the turns are told to try later without their
// password being checked; the owner, from an address they logged in from
// before, waits the delay only.
func TestLoginGuessesAtOnceTakeTurns(t *testing.T) {
	clock := fakeclock.New() // never moves: every login is at once
	cfg := Config{
		LoginFailures:   guard.FailureConfig{Free: 3, Delay: time.Second, MaxDelay: 4 * time.Second, RefuseAfter: 6, RefuseFor: 10 * time.Minute, Clock: clock},
		AccountFailures: guard.FailureConfig{Free: 1, Delay: time.Second, MaxDelay: 2 * time.Second, Clock: clock},
	}
	srv, addr, sl, _ := limitedServer(t, cfg, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	const owner = "127.0.0.2"
	if m := dialFrom(t, owner, addr).tryLogin("alice@example.com", "Secret1"); !m.Is("lc") {
		t.Fatalf("owner's first login: got %v, want lc 2", m)
	}
	// Two failures from two addresses: the account's delay is at its cap.
	for i := range 2 {
		c := dialFrom(t, fmt.Sprintf("127.0.1.%d", i+1), addr)
		if m := c.tryLogin("alice@example.com", "guess"); !isError(msim.ErrCodeBadPassword)(m) {
			t.Fatalf("guess %d: got %v, want a wrong password", i+1, m)
		}
	}
	sl.take()
	turns := DefaultAccountFailures().Turns
	for i := range turns {
		c := dialFrom(t, fmt.Sprintf("127.0.2.%d", i+1), addr)
		if m := c.tryLogin("alice@example.com", "guess"); !isError(msim.ErrCodeBadPassword)(m) {
			t.Fatalf("guess %d at once: got %v, want a wrong password", i+1, m)
		}
		// The second failure booked a turn at now+1 s, free from now+2 s.
		if got, want := sl.take(), []time.Duration{time.Duration(2*(i+1)) * time.Second}; !slices.Equal(got, want) {
			t.Fatalf("guess %d at once: got delays %v, want %v", i+1, got, want)
		}
	}
	c := dialFrom(t, "127.0.3.1", addr)
	if m := c.tryLogin("alice@example.com", "Secret1"); !isError(ErrCodeRefused)(m) {
		t.Fatalf("a login past the turns: got %v, want told to try later (password not checked)", m)
	}
	if got := sl.take(); len(got) != 0 {
		t.Fatalf("a login past the turns waited %v", got)
	}
	if m := dialFrom(t, owner, addr).tryLogin("alice@example.com", "Secret1"); !m.Is("lc") {
		t.Fatalf("owner from their address: got %v, want lc 2", m)
	}
	if got, want := sl.take(), []time.Duration{2 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("owner: got delays %v, want %v (the delay, no turn)", got, want)
	}
}
