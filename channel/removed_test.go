package channel

import (
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// An account taken out of the session while its login was under way (account
// del, a reload, identify) gets the login's result later: the IMs the login
// brought are from senders the account no longer knows, and are kept for
// the account, as what a logged-in client held is when it is taken out.
func TestLoginOfARemovedAccountKeepsItsIMs(t *testing.T) {
	r := newRig(t, nil)
	r.s.start() // autoconnect: the login is under way
	r.s.removeAccount(r.a, "")
	cl := &fakeMSIM{events: []msim.Event{msim.IMEvent{From: 42, Text: "while you were logging in", Offline: true}}}
	r.okDial(cl)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("the login's result for the removed account panicked: %v", p)
			}
		}()
		r.step() // the login's result
	}()
	held := r.s.mem.heldFor(r.a.cfg.Email)
	if len(held) != 1 || held[0].ev.(msim.IMEvent).Text != "while you were logging in" {
		t.Fatalf("got held %v, want the login's IM", held)
	}
	if bd := r.s.buddyByNick("42"); bd != nil {
		t.Errorf("the removed account has a buddy %q again", bd.nick)
	}
}

