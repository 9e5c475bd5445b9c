package channel

import "testing"

// TestBecomeUserRefusesANameBeingDropped: identify (or register) ends
// with becomeUser once the password is checked, off the session; a drop
// of the name begun meanwhile is refused there before the session lets
// go of anything of its user's: it stays the user it was, with its
// accounts.
func TestBecomeUserRefusesANameBeingDropped(t *testing.T) {
	r := newRig(t, nil)
	b := r.s.b
	dropped := newUserMemory()
	dropped.setDropping()
	b.mu.Lock()
	b.memory["carol"] = dropped
	b.mu.Unlock()

	old := r.s.user
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, old)
	if got := r.irc.said("carol is being dropped"); len(got) != 1 {
		t.Errorf("told: %q, want that carol is being dropped, once", got)
	}
	if r.s.user.Name != old.Name || r.s.mem == dropped {
		t.Errorf("the session is %s's; want still %s's", r.s.user.Name, old.Name)
	}
	if len(r.s.accounts) != 1 || r.s.accounts[0] != r.a {
		t.Errorf("the session's accounts: %d; want its account kept", len(r.s.accounts))
	}
}
