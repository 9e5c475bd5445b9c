package channel

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// fullQueueMSIM is a fakeMSIM whose send queue is full: SendIM waits for
// room until its ctx ends, then fails as the MSIM client's does, having
// queued nothing. waiting is closed once a send waits.
type fullQueueMSIM struct {
	*fakeMSIM
	waiting chan struct{}
}

func (f *fullQueueMSIM) SendIM(ctx context.Context, _ msim.UID, _ string) error {
	close(f.waiting)
	<-ctx.Done()
	return fmt.Errorf("msim: send im: %w", ctx.Err())
}

// endWhileIMWaitsForRoom logs r's account in, with bob (uid 7) online,
// to a fullQueueMSIM; has the user send bob "hi", which waits for room
// in the full send queue; and ends the session with why while it waits.
// It returns once the send has ended and the session has shut down (as
// the loop does once it sees the end).
func endWhileIMWaitsForRoom(t *testing.T, r *rig, why string) {
	t.Helper()
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
	r.s.endWith(why)
	select {
	case <-handled:
	case <-time.After(5 * time.Second):
		t.Fatal("the send did not end with the session")
	}
	r.s.shutdown()
}

// TestShutdownQueuesIMBlockedOnFullSendQueue: an IM the user typed that
// waits for room in the MSIM client's full send queue as the gateway
// shuts down never reached the client: it is queued, kept by the user's
// memory and sent at the next login, not refused with a notice to a
// connection that is closing.
func TestShutdownQueuesIMBlockedOnFullSendQueue(t *testing.T) {
	r := newRig(t, nil)
	endWhileIMWaitsForRoom(t, r, shutDownAs)

	var queued []string
	for _, q := range r.s.mem.queuedFor(r.a.cfg.Email) {
		queued = append(queued, q.text)
	}
	if !slices.Equal(queued, []string{"hi"}) {
		t.Errorf("queued for the next login: %q; want hi (told %q)", queued, r.irc.said("hi"))
	}
	if got := r.irc.said("NOT sent"); len(got) != 0 {
		t.Errorf("told it was not sent: %q", got)
	}
	for _, n := range r.s.mem.takeNotes() {
		t.Errorf("noted for the next connection: %q", n)
	}

	// The user's next session sends it as the account logs in.
	r.s = newSession(r.s.b, r.irc, r.s.user, r.s.mem)
	r.a = r.s.accounts[0]
	next := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(next)
	r.s.start()
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp })
	next.mu.Lock()
	sent := slices.Clone(next.sent)
	next.mu.Unlock()
	if !slices.Equal(sent, []string{"hi"}) {
		t.Errorf("sent at the next login: %q; want hi", sent)
	}
}
