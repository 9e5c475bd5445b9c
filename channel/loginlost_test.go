package channel

import (
	"context"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// TestFailedLoginBringsItsIMs: a login that failed after the MSIM server
// had handed over stored IMs (msim.UndeliveredError; the server keeps
// them no longer) shows them, in order, and then retries.
func TestFailedLoginBringsItsIMs(t *testing.T) {
	r := newRig(t, nil)
	r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
		return nil, &msim.UndeliveredError{Err: context.DeadlineExceeded, Events: []msim.Event{
			msim.IMEvent{From: 42, Text: "stored first"},
			msim.ZapEvent{From: 42},
			msim.IMEvent{From: 42, Text: "stored second"},
		}}
	}
	r.s.start()
	r.stepUntil("the stored IMs shown", func() bool { return len(r.irc.said("stored second")) == 1 })
	first, second := -1, -1
	r.irc.mu.Lock()
	for i, l := range r.irc.lines {
		switch {
		case strings.Contains(l, "stored first"):
			first = i
		case strings.Contains(l, "stored second"):
			second = i
		}
	}
	r.irc.mu.Unlock()
	if first < 0 || first > second {
		t.Errorf("got the stored IMs at lines %d and %d, want both, in order", first, second)
	}
	r.stepUntil("the retry", func() bool { return len(r.clock.Pending()) == 1 })
	if got := r.irc.said("Cannot connect to MSIM"); len(got) != 1 {
		t.Errorf("got %q, want the failure told once", got)
	}
}
