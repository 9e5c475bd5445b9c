package channel_test

import (
	"context"
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/ircd"
)

// TestGuessesOutliveRestart: with a store, the wrong passwords counted
// against a user slow the next guess at that user in a bridge started
// afterwards on the same store (a restart, or another instance), whatever
// the spelling of the name; a right password forgets them there too.
func TestGuessesOutliveRestart(t *testing.T) {
	st := openStore(t)
	newBridge := func() *channel.Bridge {
		b, err := channel.New(channel.Config{
			MSIMAddr: "127.0.0.1:1", Directory: channel.WithStore(st, &channel.StaticDirectory{}, ""), Store: st,
			IdentifyFailures: guard.FailureConfig{Free: 1, Delay: time.Second, MaxDelay: 4 * time.Second, Window: time.Hour},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
		return b
	}
	_, before := newBridge().GuessLimiters()
	for range 3 {
		before.Fail(ircd.AccountKey("alice"))
	}
	_, after := newBridge().GuessLimiters()
	if d, err := after.Check(ircd.AccountKey("ALICE")); err != nil || d != 4*time.Second {
		t.Errorf("the next guess at alice after a restart: got a delay of %v, %v; want 4s (after 3 wrong passwords)", d, err)
	}
	after.Succeed(ircd.AccountKey("Alice"))
	_, again := newBridge().GuessLimiters()
	if d, err := again.Check(ircd.AccountKey("alice")); err != nil || d != 0 {
		t.Errorf("a guess after the right password, in another bridge: got a delay of %v, %v; want none", d, err)
	}
}
