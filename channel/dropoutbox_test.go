package channel

import (
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
)

// The IMs still waiting in the outbox for a slow client as a drop
// completes were the deleted user's: a held one among them is held in
// the deleted user's memory, and a report after the drop reaches the
// memory the drop leaves the session. They are lost, as the drop's
// accounts' held IMs are: told with their text and counted dropped, none
// handed over afterwards and none left held.
func TestDropTellsTheOutboxLost(t *testing.T) {
	r, reg := metricsRig(t)
	irc := &stalledIRC{fakeIRC: r.irc, full: true}
	r.s.irc = irc
	email := r.a.cfg.Email
	for _, text := range []string{"held one", "held two"} {
		r.s.mem.hold(email, msim.IMEvent{From: 7, Text: text, Time: time.Now()})
	}
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.push(msim.IMEvent{From: 7, Text: "live one"})
	r.stepUntil("the live IM queued", func() bool { return len(r.s.out.waiting()) == 2 })
	if got := irc.said("held one"); len(got) != 1 {
		t.Fatalf("handed to ircd before the drop: %q, want the first held IM", got)
	}
	before := promtest.Value(t, reg, "msimircd_ims_dropped_total")

	r.s.dropped(replyCtx{}, "alice", nil, nil)
	irc.full = false
	for irc.reportAll(false); r.s.out.drained.Swap(false); irc.reportAll(false) {
		r.s.afterReports()
	}
	r.s.mem.settle()

	if got := heldTexts(r.s.mem, email); len(got) != 0 {
		t.Errorf("held in the memory the drop left: %q; want none", got)
	}
	for _, text := range []string{"held one", "held two", "live one"} {
		if irc.saidAs("PRIVMSG bob ", text) && text != "held one" {
			t.Errorf("%q: handed to the client after the drop", text)
		}
		if !irc.saidAs("NOTICE ", text) {
			t.Errorf("%q: not told lost (said %q)", text, irc.said(text))
		}
	}
	if got := promtest.Value(t, reg, "msimircd_ims_dropped_total") - before; got != 3 {
		t.Errorf("IMs counted dropped: got %v, want 3", got)
	}
}
