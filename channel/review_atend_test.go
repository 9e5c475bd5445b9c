package channel

import "testing"

// TestSessionEndRefusesIMForUserWhoKeepsNothing: an IM the user typed that
// waits for room in the MSIM client's full send queue as the session ends
// is not queued for a user who keeps nothing (a nick without a password):
// their memory is forgotten with the session, and no login would send it.
// The user is told it was NOT sent, not promised it will be.
func TestSessionEndRefusesIMForUserWhoKeepsNothing(t *testing.T) {
	r := newRig(t, nil)
	r.s.user.Ephemeral = true
	endWhileIMWaitsForRoom(t, r, "as you disconnected")

	if qs := r.s.mem.queuedFor(r.a.cfg.Email); len(qs) != 0 {
		t.Errorf("queued for a user who keeps nothing: %+v", qs)
	}
	if got := r.irc.said("will be sent"); len(got) != 0 {
		t.Errorf("promised delivery: %q", got)
	}
	if got := r.irc.said("Message NOT sent"); len(got) != 1 {
		t.Errorf("told %q; want the IM NOT sent, once (all: %q)", got, r.irc.lines)
	}
}
