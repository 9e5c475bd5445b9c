package channel

import (
	"strings"
	"testing"

	"github.com/msimircd/msimircd/ircd"
)

// An IM a user without a password typed while the link was down, queued
// for the link's return, goes with their accounts when identify or
// register makes the session another user's, or a drop leaves it none:
// what kept it is forgotten, and no login sends it. The connection is told
// it was not sent, with its text, as an IM their MSIM client never sent is.
func TestQueuedIMOfAUserWhoKeepsNothingIsToldNotSent(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(r *rig)
	}{
		{"identify or register", func(r *rig) {
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
		}},
		{"register with the nick's own account", func(r *rig) {
			// As provision takes out the account without a password, before
			// becomeUser.
			for _, a := range r.s.accounts {
				r.s.removeAccount(a, "The account without a password is replaced by your registered one.", "as your accounts changed")
			}
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.s.user.Ephemeral = true
			r.s.b.mu.Lock()
			r.s.b.memory[r.s.user.Name] = r.s.mem // as the bridge keeps it, to forget it
			r.s.b.mu.Unlock()
			loginThenLose(r, &fakeMSIM{buddies: bobContact()})
			r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "typed while down"}) // queued
			if got := r.irc.said("queued"); len(got) != 1 {
				t.Fatalf("told %q; want the IM told queued", got)
			}
			tc.run(r)
			if got := r.irc.said("Not sent to bob"); len(got) != 1 || !strings.HasSuffix(got[0], ": typed while down") {
				t.Errorf("told %q; want the queued IM told not sent, once", got)
			}
		})
	}
}
