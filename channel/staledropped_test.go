package channel

import (
	"context"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// A login's dropped-IM warning that comes once the session has let the
// account go (the user identified as another while the login was under
// way) does not go to the account's control channel, which is gone,
// whether the failed login's error or the last event of the client it
// brought reports the IMs: it is kept as a note for the user whose
// account it is, or, for a user who keeps nothing, told on the
// connection now.
func TestStaleLoginsDroppedIMsReachTheUser(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ephemeral bool
		succeeds  bool // the login succeeds, its client's last event reporting them
	}{
		{"a registered user", false, false},
		{"a user without a password", true, false},
		{"a registered user, the login succeeds", false, true},
		{"a user without a password, the login succeeds", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			email, channel, oldMem := r.a.cfg.Email, r.a.channel, r.s.mem
			if tc.ephemeral {
				r.s.user.Ephemeral = true
				r.s.b.mu.Lock()
				r.s.b.memory[r.s.user.Name] = oldMem // as the bridge keeps it, to forget it
				r.s.b.mu.Unlock()
			}
			r.s.start() // the dial waits for r.dials
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
			if tc.succeeds {
				cl := &fakeMSIM{}
				cl.events = []msim.Event{msim.DisconnectedEvent{Reason: msim.DisconnectOverflow, Err: msim.ErrEventOverflow, DroppedIMs: 2, DroppedFrom: []msim.UID{7}}}
				r.okDial(cl)
			} else {
				r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
					return nil, &msim.UndeliveredError{Err: context.DeadlineExceeded, DroppedIMs: 2, DroppedFrom: []msim.UID{7}}
				}
			}
			r.step() // the login's result
			oldMem.settle()
			if got := r.irc.said(channel + ": IMs sent to you were lost"); len(got) != 0 {
				t.Errorf("told in the removed channel %s: %q", channel, got)
			}
			told := r.irc.said("NOTICE root : MSIM account " + email + ": IMs sent to you were lost: 2 from 7")
			noted, all := noteWith(oldMem, email, "2 from 7")
			switch {
			case tc.ephemeral && len(told) != 1:
				t.Errorf("told %q; want the dropped IMs told once on the connection", told)
			case !tc.ephemeral && (len(noted) != 1 || len(told) != 0):
				t.Errorf("noted for the old user %q, told %q; want one note for them, nothing told now", all, told)
			}
		})
	}
}
