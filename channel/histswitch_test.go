package channel

import (
	"errors"
	"testing"
)

// A report of an entry left out of the history of the user a session
// served before identify made it another user's is that user's: it is
// never told to the new user, whether it was queued at the switch,
// reported after it, or came once identify had handed the connection to
// the new user's own session. The user it belongs to keeps it as a
// note for their next connection, once.
func TestHistoryFailureAcrossASwitchStaysWithItsUser(t *testing.T) {
	carol := User{Name: "carol", registered: true}
	for _, tc := range []struct {
		name string
		text string // what the user is told of it
		// run reports alice's failures around the switch (switchTo),
		// then lets the session handle what was posted.
		run func(t *testing.T, r *rig, failed func(error), switchTo func())
	}{
		{"a failure queued at the switch", "history could not be saved", func(t *testing.T, r *rig, failed func(error), switchTo func()) {
			failed(errors.New("disk full"))
			failed(errors.New("disk full"))
			switchTo()
			r.settle()
		}},
		{"a failure reported after the switch", "history could not be saved", func(t *testing.T, r *rig, failed func(error), switchTo func()) {
			switchTo()
			failed(errors.New("disk full"))
			failed(errors.New("disk full"))
			r.settle()
		}},
		{"a failure queued at a hand-over", "history could not be saved", func(t *testing.T, r *rig, failed func(error), switchTo func()) {
			failed(errors.New("disk full"))
			at := handOverTo(r, carol, switchTo)
			failed(errors.New("disk full")) // the session has ended
			passBarrier(t, at)
		}},
		{"a failure reported after a hand-over", "history could not be saved", func(t *testing.T, r *rig, failed func(error), switchTo func()) {
			at := handOverTo(r, carol, switchTo)
			failed(errors.New("disk full")) // the session has ended
			failed(errors.New("disk full"))
			passBarrier(t, at)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			aliceMem := r.s.mem
			failed := r.s.historyFailure() // alice's, as record hands it to the writer
			tc.run(t, r, failed, func() { r.s.becomeUser(replyCtx{}, carol, r.s.user) })
			if got := r.irc.said(tc.text); len(got) != 0 {
				t.Errorf("carol's connection was told of alice's history: %q", got)
			}
			if r.s.mem != aliceMem {
				if got, _ := noteWith(r.s.mem, tc.text); len(got) != 0 {
					t.Errorf("kept for carol: %q", got)
				}
			}
			aliceMem.settle()
			if got, all := noteWith(aliceMem, tc.text); len(got) != 1 {
				t.Errorf("notes kept for alice: %q; want one telling %q", all, tc.text)
			}
		})
	}
}

// A failure of the history of a user the session still serves is told
// there, as ever, and kept as no note.
func TestHistoryFailureOfTheSessionsUserIsToldThere(t *testing.T) {
	r := newRig(t, nil)
	r.s.historyFailure()(errors.New("disk full"))
	r.settle()
	if got := r.irc.said("history could not be saved"); len(got) != 1 {
		t.Errorf("told %q; want one notice", got)
	}
	if got, _ := noteWith(r.s.mem, "history could not be saved"); len(got) != 0 {
		t.Errorf("kept as notes too: %q", got)
	}
}

// handOverTo starts u's session, with no connection, and switches r's
// session to u (switchTo), which hands its connection over there; it
// returns the connection.
func handOverTo(r *rig, u User, switchTo func()) *attachment {
	r.t.Helper()
	to := runningSession(r.s.b, u)
	at := r.s.cl.ats[0]
	switchTo()
	if at.s != to {
		r.t.Fatalf("the connection was not handed over to %s's session", u.Name)
	}
	return at
}
