package channel

import (
	"errors"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// TestHeldIMsOnTheirWayAreKeptPerMemoryAcrossIdentify: the held IMs the
// outbox has handed to ircd for the user a session leaves (identify,
// register), not yet reported, are that user's. The new user's held IMs,
// whose ids (numbered per memory) may be the same, are given at their
// login all the same; the old user's reports, coming after, do not make
// the new user's next login give theirs again.
func TestHeldIMsOnTheirWayAreKeptPerMemoryAcrossIdentify(t *testing.T) {
	r := newRig(t, nil)
	irc := &stalledIRC{fakeIRC: r.irc, full: true}
	r.s.irc = irc
	email := r.a.cfg.Email
	r.s.mem.hold(email, msim.IMEvent{From: 7, Text: "alice's held", Time: time.Now()})
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if got := irc.said("alice's held"); len(got) != 1 {
		t.Fatalf("handed to ircd: %q", got)
	}
	// Not yet reported when the session becomes carol's.
	carol := User{Name: "carol", registered: true, Accounts: []Account{{Email: "carol@msim.test", Password: "pw", AutoConnect: true}}}
	r.s.becomeUser(replyCtx{}, carol, r.s.user)
	r.s.mem.hold("carol@msim.test", msim.IMEvent{From: 9, Text: "carol's held", Time: time.Now()})
	dave := []msim.Contact{{UID: 9, UserName: "dave", Status: msim.StatusOnline}}
	first := &fakeMSIM{buddies: dave}
	r.okDial(first)
	ca := r.s.accounts[0]
	r.stepUntil("carol logged in", func() bool { return ca.state == linkUp })
	irc.full = false
	r.s.pumpOut()
	if got := irc.said("carol's held"); len(got) != 1 {
		t.Fatalf("carol's held IM given at her login: %q; want it given once", got)
	}

	// alice's IM is reported shown; carol's is not yet, as her link is
	// lost and back.
	irc.mu.Lock()
	alices := irc.reports[0]
	irc.reports = irc.reports[1:]
	irc.mu.Unlock()
	alices(true)
	first.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
	r.stepUntil("carol's link lost", func() bool { return ca.state == linkWaiting })
	r.okDial(&fakeMSIM{buddies: dave})
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("carol logged in again", func() bool { return ca.state == linkUp })
	r.s.pumpOut()
	if got := irc.said("carol's held"); len(got) != 1 {
		t.Errorf("carol's held IM, on its way, given %d times: %q; want once", len(got), got)
	}
}
