package channel

import (
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
)

// TestCallsRefusedAsTheSessionEnds: what a connection asks of its
// session (CHATHISTORY, TARGETS, a read marker) is answered when the
// session ends before it is handled, and when it is asked of a session
// that has ended: nothing waits for ircd's timeout.
func TestCallsRefusedAsTheSessionEnds(t *testing.T) {
	asks := []struct {
		name string
		ask  func(at *attachment, answered chan<- struct{})
	}{
		{"chathistory", func(at *attachment, answered chan<- struct{}) {
			at.History(ircd.HistoryQuery{Subcommand: "LATEST", Target: "bob", Limit: 10},
				func([]ircd.HistoryMessage, error) { answered <- struct{}{} })
		}},
		{"targets", func(at *attachment, answered chan<- struct{}) {
			at.HistoryTargets(ircd.TargetsQuery{From: time.Now().Add(-time.Hour), To: time.Now(), Limit: 10},
				func([]ircd.HistoryTarget, error) { answered <- struct{}{} })
		}},
		{"read marker", func(at *attachment, answered chan<- struct{}) {
			at.ReadMarker("bob", func(time.Time) { answered <- struct{}{} })
		}},
	}
	const later = 32 // asked of the ended session
	for _, tc := range asks {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			at := attachNamed(r, newFakeIRC(), "phone")
			answered := make(chan struct{}, 1+later)
			tc.ask(at, answered) // queued, not handled
			r.s.cancel()
			r.s.shutdown()
			if got := len(answered); got != 1 {
				t.Errorf("asked before the end: %d answers, want 1", got)
			}
			for range later {
				tc.ask(at, answered)
			}
			if got := len(answered) - 1; got != later {
				t.Errorf("asked after the end: %d answers, want %d", got, later)
			}
		})
	}
}
