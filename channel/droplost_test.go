package channel

import (
	"errors"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// The notes the accounts of a dropped registration leave as the drop
// closes them (what their MSIM client never sent, or dropped) are told on
// the session's connections at once: the memory the drop leaves the
// session keeps nothing for a next connection, and none comes to it.
func TestDropTellsWhatItsAccountsLeaveToTell(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.mu.Lock() // taken as the drop closes the account
	cl.events = append(cl.events, msim.DisconnectedEvent{Reason: msim.DisconnectClosed, Err: errors.New("closed"),
		Unsent: []msim.OutgoingIM{{To: 7, Text: "typed one"}}, DroppedIMs: 2, DroppedFrom: []msim.UID{7}})
	cl.mu.Unlock()
	r.s.dropped(replyCtx{}, "alice", nil, nil)
	for _, want := range []string{
		"NOTICE root : Not sent to bob",
		"NOTICE root : MSIM account alice@msim.test: IMs sent to you were lost: 2 from bob",
	} {
		if got := r.irc.said(want); len(got) != 1 {
			t.Errorf("told %q; want one line %q", got, want)
		}
	}
	if got := r.irc.said("typed one"); len(got) != 1 {
		t.Errorf("told %q; want the unsent IM's text once", got)
	}
	if left := r.s.mem.takeNotes(); len(left) != 0 {
		t.Errorf("still kept in the dropped session's memory, where no one reads them: %q", left)
	}
}

// The IMs held in the memory of a user who keeps nothing (a nick without
// a password, or the session a drop left) when the session becomes
// another user's (identify, register) are lost with it: the session's
// connections are told once how many, on which account and from whom.
func TestForgottenHeldIMsAreToldLost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dropped bool // the session is the one a drop left
	}{
		{"a user without a password", false},
		{"a dropped registration", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			email := r.a.cfg.Email
			cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
			if !tc.dropped {
				r.s.user.Ephemeral = true
				r.s.b.mu.Lock()
				r.s.b.memory[r.s.user.Name] = r.s.mem // as the bridge keeps it, to forget it
				r.s.b.mu.Unlock()
			}
			r.okDial(cl)
			r.s.start()
			r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
			// Taken as the account closes (the drop, or the switch): held
			// in the memory of the user who keeps nothing.
			cl.mu.Lock()
			cl.events = append(cl.events, msim.IMEvent{From: 7, Text: "held one"}, msim.IMEvent{From: 43, Text: "held two"},
				msim.IMEvent{From: 7, Text: "held three"})
			cl.mu.Unlock()
			if tc.dropped {
				r.s.dropped(replyCtx{}, "alice", nil, nil)
			}
			old := r.s.mem
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
			if got := heldTexts(old, email); len(got) != 0 {
				t.Errorf("still held in the forgotten memory: %q", got)
			}
			if got := heldTexts(r.s.mem, email); len(got) != 0 {
				t.Errorf("held for the new user (carol): %q", got)
			}
			want := "NOTICE root : MSIM account " + email + ": IMs sent to you were lost: 3 from bob, 43"
			if got := r.irc.said("IMs sent to you were lost"); len(got) != 1 || !strings.HasPrefix(got[0], want) {
				t.Errorf("told %q; want one line starting %q", got, want)
			}
		})
	}
}

// What the accounts of a user who keeps nothing leave to tell as
// identify or register closes them (what their MSIM client never sent)
// is told on the session's connections, not kept in the memory the
// bridge forgets.
func TestSwitchTellsWhatAnEphemeralUsersAccountsLeaveToTell(t *testing.T) {
	r := newRig(t, nil)
	old := r.s.mem
	r.s.user.Ephemeral = true
	r.s.b.mu.Lock()
	r.s.b.memory[r.s.user.Name] = old // as the bridge keeps it, to forget it
	r.s.b.mu.Unlock()
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.mu.Lock() // taken as the switch closes the account
	cl.events = append(cl.events, msim.DisconnectedEvent{Reason: msim.DisconnectClosed, Err: errors.New("closed"),
		Unsent: []msim.OutgoingIM{{To: 7, Text: "typed one"}}})
	cl.mu.Unlock()
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
	if got := r.irc.said("NOTICE root : Not sent to bob"); len(got) != 1 || !strings.HasSuffix(got[0], "typed one") {
		t.Errorf("told %q; want the unsent IM told once", got)
	}
	if left := old.takeNotes(); len(left) != 0 {
		t.Errorf("still kept in the forgotten memory: %q", left)
	}
}
