package channel

import (
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// TestPositionStopsAtWhatTheOnlyClientMissed: the only client attached
// closes with an IM still queued for it. The IM is held for the next
// connection, whichever client that is; the closing client's position
// stops before it, as it does when another client is attached, so that
// once another client has been given it as held, the closing client's
// next connection is replayed it rather than never shown it.
func TestPositionStopsAtWhatTheOnlyClientMissed(t *testing.T) {
	r, st := historyRig(t)
	r.s.newBuddy(r.a, 7, "bob", "")
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC(), closing: true, queued: true}
	phone := r.s.cl.ats[0]
	phone.c, phone.name = phoneIRC, "phone"

	r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: "hello", Time: time.Now()})
	if got := heldTexts(r.s.mem, r.a.cfg.Email); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("held %q, want the IM the closing client did not write", got)
	}
	r.s.closed(phone)
	if got, want := replayedTo(r, st, "phone"), []string{"hello"}; !slices.Equal(got, want) {
		t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
	}
}
