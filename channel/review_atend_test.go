package channel

import (
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// TestSessionEndRefusesIMForUserWhoKeepsNothing: an IM the user typed that
// waits for room in the MSIM client's full send queue as the session ends
// is not queued for a user who keeps nothing (a nick without a password):
// their memory is forgotten with the session, and no login would send it.
// The user is told it was NOT sent, not promised it will be.
func TestSessionEndRefusesIMForUserWhoKeepsNothing(t *testing.T) {
	r := newRig(t, nil)
	r.s.user.Ephemeral = true
	cl := &fullQueueMSIM{fakeMSIM: &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}},
		waiting: make(chan struct{})}
	r.dialAs(cl.fakeMSIM, cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })

	handled := make(chan struct{})
	go func() {
		defer close(handled)
		r.s.handle(newIRCInput(r.s.cl.ats[0], ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "hi"}))
	}()
	select {
	case <-cl.waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("the IM was not sent")
	}
	r.s.endWith("as you disconnected")
	select {
	case <-handled:
	case <-time.After(5 * time.Second):
		t.Fatal("the send did not end with the session")
	}
	r.s.shutdown()

	if qs := r.s.mem.queuedFor(r.a.cfg.Email); len(qs) != 0 {
		t.Errorf("queued for a user who keeps nothing: %+v", qs)
	}
	if got := r.irc.said("will be sent"); len(got) != 0 {
		t.Errorf("promised delivery: %q", got)
	}
	if got := r.irc.said("Message NOT sent"); len(got) != 1 {
		t.Errorf("told %q; want the IM NOT sent, once (all: %q)", got, r.irc.lines)
	}
}
