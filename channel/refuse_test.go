package channel

import (
	"context"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
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

// TestTargetsStrangerAnsweredAsTheSessionEnds: CHATHISTORY TARGETS finds
// a conversation with someone not on the list and reads their profile;
// the session ends after the profile came back, before it names them.
// TARGETS is answered all the same, with the session's end: the client
// does not wait for ircd's timeout.
func TestTargetsStrangerAnsweredAsTheSessionEnds(t *testing.T) {
	r, _ := historyRig(t)
	cl := &queuedProfiles{fakeMSIM: &fakeMSIM{}, calls: make(chan chan struct{}, 4)}
	r.a.client = cl
	r.s.record(store.HistoryEntry{MsgID: "m-stranger", Account: "alice@msim.test", Buddy: 9, Kind: kindIM, Text: "hi",
		Time: time.Now().Add(-time.Minute)})
	if !r.s.b.hist.sync(context.Background(), "alice") {
		t.Fatal("history not synced")
	}
	type answer struct {
		ts  []ircd.HistoryTarget
		err error
	}
	answered := make(chan answer, 1)
	r.s.historyTargets(ircd.TargetsQuery{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), Limit: 10},
		func(ts []ircd.HistoryTarget, err error) { answered <- answer{ts, err} })
	r.step() // TARGETS' read of the store
	var profile chan struct{}
	select {
	case profile = <-cl.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("TARGETS read no stranger's profile")
	}
	select { // a wake-up left by what came before
	case <-r.s.wake:
	default:
	}
	r.s.rmu.Lock()
	r.s.waiting = true // as the loop waits: what is posted next wakes it
	r.s.rmu.Unlock()
	close(profile)
	select {
	case <-r.s.wake: // the profile's result is posted
	case <-time.After(10 * time.Second):
		t.Fatal("the profile's result was not posted")
	}
	r.s.cancel()
	r.s.shutdown()
	select {
	case a := <-answered:
		if a.err == nil {
			t.Errorf("TARGETS was answered %v with no error, want the session's end", a.ts)
		}
	default:
		t.Fatal("TARGETS was not answered as the session ended")
	}
}
