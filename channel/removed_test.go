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
	r.s.removeAccount(r.a, "", "as the account was deleted")
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

// A stranger's profile that comes once their account was taken out of the
// session makes no buddy there: the IM that waited for it was kept for the
// account as it was taken out, once.
func TestStrangerKnownAfterTheAccountWasRemoved(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.push(msim.IMEvent{From: 42, Text: "who am I?"})
	r.stepUntil("the stranger's IM taken", func() bool { _, ok := r.a.pending[42]; return ok })
	r.s.removeAccount(r.a, "", "as the account was deleted")
	r.step() // the stranger's profile
	if n := r.s.nicks.Len(); n != 0 {
		t.Errorf("got %d nicks after the account was removed, want none: %v", n, r.s.nicks.All()[0].nick)
	}
	if held := r.s.mem.heldFor(r.a.cfg.Email); len(held) != 1 {
		t.Errorf("got %d IMs held, want the stranger's one", len(held))
	}
}
