package channel

import (
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// A report of ircd (Delivery.Sent, on ircd's goroutines) never waits for
// the memory's writer: with memWrites writes queued for it, the first
// held by the store, a live IM reported not shown and a held IM reported
// shown return at once. Once the store goes on, the first is held and
// the second held no more.
func TestReportsNeverWaitForTheMemorysWriter(t *testing.T) {
	r, _, h := heldMemoryRig(t, "AddNote")
	t.Cleanup(h.free)
	email := r.a.cfg.Email
	bd := r.s.newBuddy(r.a, 7, "bob", "")
	shownID, ok := r.s.mem.holdEvent(email, seqEvent{ev: msim.IMEvent{From: 7, Text: "held, shown", Time: time.Now()}, seq: r.s.mem.nextSeq()})
	if !ok {
		t.Fatal("the IM to show was not held")
	}
	for range memWrites { // the writer's queue full, its first write held
		r.s.mem.note("a note")
	}
	h.held(t)

	reports := []struct {
		it    outIM
		shown bool
	}{
		{outIM{bd, seqEvent{ev: msim.IMEvent{From: 7, Text: "live, not shown"}, seq: r.s.mem.nextSeq()}}, false},
		{outIM{bd, seqEvent{ev: msim.IMEvent{From: 7, Text: "held, shown"}, held: shownID}}, true},
	}
	for _, rep := range reports {
		r.s.out.inflight.Add(1)
		if rep.it.held != 0 {
			r.s.out.handOut(r.s.mem, rep.it.held) // as pumpOut does
		}
		sent := r.s.imSent(rep.it, 1)
		returned := make(chan struct{})
		go func() {
			sent(rep.shown)
			close(returned)
		}()
		select {
		case <-returned:
		case <-time.After(10 * time.Second): // only to fail instead of hang
			t.Fatalf("the report of %q (shown: %v) waits for the memory's writer", rep.it.ev.(msim.IMEvent).Text, rep.shown)
		}
	}

	h.free()
	r.s.mem.settle()
	if got, want := heldTexts(r.s.mem, email), []string{"live, not shown"}; !slices.Equal(got, want) {
		t.Errorf("held: %q, want %q", got, want)
	}
}
