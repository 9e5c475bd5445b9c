package guard

import (
	"errors"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/fakeclock"
)

// TestFailureLimiterInFlight: at a key with failures at most MaxInFlight
// attempts are under way at once; one more is refused (ErrBusy, which is
// ErrRefused) without being counted, and ending one lets a new one in. A
// key without failures is not bounded: its owner may log in from several
// clients at once.
func TestFailureLimiterInFlight(t *testing.T) {
	clk := fakeclock.New()
	l := NewFailureLimiter(FailureConfig{Free: 3, Delay: time.Second, MaxDelay: 5 * time.Second, RefuseAfter: -1, Clock: clk})
	const key = "account:alice"
	for range 5 {
		l.Fail(key)
	}
	var dones []func()
	for i := range MaxInFlight {
		wait, done, err := l.Begin(key)
		if err != nil || done == nil {
			t.Fatalf("attempt %d of %d: got %v, want it let in", i+1, MaxInFlight, err)
		}
		if wait != 4*time.Second {
			t.Errorf("attempt %d: got delay %v, want 4s", i+1, wait)
		}
		dones = append(dones, done)
	}
	if _, done, err := l.Begin(key); !errors.Is(err, ErrBusy) || !errors.Is(err, ErrRefused) || done != nil {
		t.Fatalf("attempt %d while %d are under way: got %v, want ErrBusy", MaxInFlight+1, MaxInFlight, err)
	}
	// The refusal counted no failure: the delay is still that of 5.
	if got := mustCheck(t, l, key); got != 4*time.Second {
		t.Errorf("after the refusal: got delay %v, want 4s (no failure counted)", got)
	}
	dones[0]()
	dones[0]() // idempotent: it must not end another attempt
	_, again, err := l.Begin(key)
	if err != nil {
		t.Fatalf("after one ended: got %v, want a new attempt let in", err)
	}
	if _, _, err := l.Begin(key); !errors.Is(err, ErrBusy) {
		t.Fatalf("with %d under way again: got %v, want ErrBusy", MaxInFlight, err)
	}
	again()
	dones[1]()
	if n := l.inFlight(key); n != 0 {
		t.Errorf("all ended: %d still counted under way", n)
	}

	// No failures: not bounded (the owner's clients at once).
	for i := range 10 {
		if _, _, err := l.Begin("account:bob"); err != nil {
			t.Fatalf("attempt %d at a key without failures: got %v, want it let in", i+1, err)
		}
	}
	// A success makes the key clean again.
	l.Succeed(key)
	for i := range 5 {
		if _, _, err := l.Begin(key); err != nil {
			t.Fatalf("attempt %d after a success: got %v, want it let in", i+1, err)
		}
	}
}
