package guard

import (
	"errors"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/fakeclock"
)

// turnsLimiter is an account's limiter with turns: 1 free failure, then a
// delay of 1 s doubling to 4 s, never refused for failures alone.
func turnsLimiter(clk *fakeclock.Clock, turns int) *FailureLimiter {
	return NewFailureLimiter(FailureConfig{Free: 1, Delay: time.Second, MaxDelay: 4 * time.Second,
		RefuseAfter: -1, Window: time.Hour, Turns: turns, Clock: clk})
}

func TestFailureLimiterTurnsSpreadParallelGuesses(t *testing.T) {
	clk := fakeclock.New()
	l := turnsLimiter(clk, 4)
	for range 5 {
		l.Fail("account:alice")
	}
	// Four attempts at once, from four addresses: each waits its turn, a
	// delay (the capped 4 s) after the one before, not all 4 s together.
	for i := range 4 {
		got, err := l.CheckFrom("account:alice", "addr:"+string(rune('a'+i)))
		if err != nil {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		if want := time.Duration(i+1) * 4 * time.Second; got != want {
			t.Fatalf("attempt %d at once: got a wait of %v, want %v", i+1, got, want)
		}
	}
	// A fifth would wait past the four turns: refused, and books nothing.
	if _, err := l.CheckFrom("account:alice", "addr:e"); !errors.Is(err, ErrRefused) {
		t.Fatalf("fifth attempt at once: got %v, want ErrRefused", err)
	}
	// Check (no source) takes turns too.
	if _, err := l.Check("account:alice"); !errors.Is(err, ErrRefused) {
		t.Fatalf("Check past the turns: got %v, want ErrRefused", err)
	}
	// Another key is not held up.
	if got := mustCheck(t, l, "account:bob"); got != 0 {
		t.Fatalf("another key: got %v, want 0", got)
	}
	// Once the first turn has passed, one more may book, at the end.
	clk.Advance(4 * time.Second)
	if got, err := l.CheckFrom("account:alice", "addr:e"); err != nil || got != 16*time.Second {
		t.Fatalf("after a turn passed: got %v, %v, want 16s", got, err)
	}
	// Once every turn has passed, a lone attempt waits only the delay.
	clk.Advance(time.Minute)
	if got := mustCheck(t, l, "account:alice"); got != 4*time.Second {
		t.Fatalf("after the turns: got %v, want the delay 4s", got)
	}
}

func TestFailureLimiterTurnsLeaveOneAtATimeAlone(t *testing.T) {
	clk := fakeclock.New()
	l := turnsLimiter(clk, 4)
	// One guesser at a time waits what it did without turns: the delay
	// its failures call for, each time.
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		got, err := l.CheckFrom("account:alice", "addr:x")
		if err != nil || got != w {
			t.Fatalf("attempt %d: got %v, %v, want %v", i+1, got, err, w)
		}
		clk.Advance(got)
		l.Fail("account:alice")
	}
}

func TestFailureLimiterTurnsOwnerSourceSkips(t *testing.T) {
	clk := fakeclock.New()
	l := turnsLimiter(clk, 2)
	if got, err := l.CheckFrom("account:alice", "addr:home"); err != nil || got != 0 {
		t.Fatalf("first login: got %v, %v", got, err)
	}
	l.SucceedFrom("account:alice", "addr:home")
	// Someone elsewhere guesses, from many connections at once, until
	// every turn is booked.
	for range 3 {
		l.Fail("account:alice")
	}
	for range 2 {
		if _, err := l.CheckFrom("account:alice", "addr:guesser"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.CheckFrom("account:alice", "addr:guesser2"); !errors.Is(err, ErrRefused) {
		t.Fatalf("past the turns: got %v, want ErrRefused", err)
	}
	// The owner, from where they logged in before, waits the delay only.
	if got, err := l.CheckFrom("account:alice", "addr:home"); err != nil || got != 4*time.Second {
		t.Fatalf("owner's source: got %v, %v, want the delay 4s and no turn", got, err)
	}
	// A right password ends the turns of everyone.
	l.SucceedFrom("account:alice", "addr:home")
	if got, err := l.CheckFrom("account:alice", "addr:guesser2"); err != nil || got != 0 {
		t.Fatalf("after the owner's login: got %v, %v, want 0", got, err)
	}
}

func TestFailureLimiterTurnsOwnersBounded(t *testing.T) {
	clk := fakeclock.New()
	l := NewFailureLimiter(FailureConfig{Turns: 2, MaxKeys: 10, Clock: clk})
	for i := range 100 {
		l.SucceedFrom("account:"+string(rune('a'+i)), "addr:x")
	}
	for i := range 10 {
		l.SucceedFrom("account:a", "addr:"+string(rune('a'+i)))
	}
	if n := len(l.opened); n > 10 {
		t.Fatalf("got %d keys' owners, want at most 10", n)
	}
	if n := len(l.opened["account:a"]); n > openedPerKey {
		t.Fatalf("got %d sources of one key, want at most %d", n, openedPerKey)
	}
	if !l.openedBy("account:a", "addr:j") || l.openedBy("account:a", "addr:a") {
		t.Fatalf("got %v, want the latest %d sources", l.opened["account:a"], openedPerKey)
	}
}

func TestFailureLimiterWithoutTurnsUnchanged(t *testing.T) {
	clk := fakeclock.New()
	l := turnsLimiter(clk, 0)
	for range 5 {
		l.Fail("account:alice")
	}
	for i := range 10 {
		if got, err := l.CheckFrom("account:alice", "addr:"+string(rune('a'+i))); err != nil || got != 4*time.Second {
			t.Fatalf("attempt %d at once without turns: got %v, %v, want 4s", i+1, got, err)
		}
	}
}
