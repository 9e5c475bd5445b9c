package channel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// A held IM that a login hands out while the outbox is full (a client
// that does not read) stays held, and the user is told so, not that it
// was lost: it is given again at the account's next login.
func TestHeldIMRefusedByAFullOutboxIsKept(t *testing.T) {
	r := newRig(t, nil)
	irc := &stalledIRC{fakeIRC: r.irc, full: true}
	r.s.irc = irc
	email := r.a.cfg.Email
	bob := []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}
	login := func(what string) *fakeMSIM {
		t.Helper()
		cl := &fakeMSIM{buddies: bob}
		r.okDial(cl)
		if r.a.state == linkWaiting {
			r.clock.Advance(r.clock.Pending()[0])
		}
		r.stepUntil(what, func() bool { return r.a.state == linkUp })
		return cl
	}
	cut := func(cl *fakeMSIM) {
		t.Helper()
		cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
		r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	}

	r.s.start()
	first := login("logged in")
	var live []msim.Event
	for i := range maxHeld + 1 { // one handed to ircd, the others wait
		live = append(live, msim.IMEvent{From: 7, Text: fmt.Sprintf("live %d", i)})
	}
	first.push(live...)
	for i := 0; len(r.s.out.waiting()) < maxHeld; i++ {
		if i == 10*maxHeld {
			t.Fatalf("the outbox holds %d IMs, want %d", len(r.s.out.waiting()), maxHeld)
		}
		r.step()
	}
	cut(first)
	r.s.mem.hold(email, msim.IMEvent{From: 7, Text: "held late", Time: time.Now()})
	second := login("logged in again")

	if got := irc.said("held late"); len(got) != 0 {
		t.Fatalf("given with the outbox full: %q", got)
	}
	for _, l := range irc.said("from bob") {
		if strings.Contains(l, "lost") {
			t.Errorf("told lost: %q; want it told kept", l)
		}
	}
	if got := irc.said("held for you"); len(got) != 1 {
		t.Errorf("told %q; want one notice that the held IM is kept", got)
	}
	if held := heldTexts(r.s.mem, email); !slices.Equal(held, []string{"held late"}) {
		t.Fatalf("held: %q; want the refused one", held)
	}

	irc.full = false
	for irc.report(); r.s.out.drained.Swap(false); irc.report() {
		r.s.pumpOut() // what waited for room
	}
	cut(second)
	login("logged in once more")
	for irc.report(); r.s.out.drained.Swap(false); irc.report() {
		r.s.pumpOut()
	}
	r.s.mem.settle()
	if got := irc.said("PRIVMSG bob : held late"); len(got) != 1 {
		t.Errorf("at the next login the held IM was given %d times (%q); want once", len(got), got)
	}
	if held := heldTexts(r.s.mem, email); len(held) != 0 {
		t.Errorf("still held once shown: %q", held)
	}
}
