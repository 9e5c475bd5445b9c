package channel

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// hookMSIM is a fakeMSIM that runs do as it is asked to send the IM on.
type hookMSIM struct {
	*fakeMSIM
	on string
	do func()
}

func (h *hookMSIM) SendIM(ctx context.Context, uid msim.UID, text string) error {
	if text == h.on {
		h.do()
	}
	return h.fakeMSIM.SendIM(ctx, uid, text)
}

// endRig is a rig logged in with bob online through a hookMSIM that runs
// do while sending "im 0", and a client, phone, whose messages are handed
// as ircd hands lines read together (together) or one by one (alone).
func endRig(t *testing.T, do func(r *rig)) (r *rig, cl *fakeMSIM, irc *fakeIRC, at *attachment) {
	t.Helper()
	r = newRig(t, nil)
	cl = &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	h := &hookMSIM{fakeMSIM: cl, on: "im 0", do: func() { do(r) }}
	r.dialAs(cl, h)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	for len(r.s.events) > 0 { // what the login's steps left
		r.s.handleQueued(<-r.s.events)
	}
	irc = newFakeIRC()
	at = attachNamed(r, irc, "phone")
	return r, cl, irc, at
}

// endedMessages runs three IMs read together through a session that
// ends while it sends the first (do), alone and together, and checks
// that the two that were not sent are each told so, as when posted alone.
func endedMessages(t *testing.T, do func(r *rig)) {
	for _, mode := range []string{"alone", "together"} {
		t.Run(mode, func(t *testing.T) {
			r, cl, irc, at := endRig(t, do)
			var h ircd.Handler = at
			if mode == "alone" {
				h = messageOnly{at}
			}
			handIRC(h, imBurst(3)) // queued before the loop runs
			end := runLoop(r)
			select { // the loop ends on its own: do ends the session
			case <-r.s.done:
			case <-time.After(10 * time.Second):
				t.Fatal("the session did not end")
			}
			end()
			var told []string
			for _, l := range irc.said("NOT sent") {
				_, text, _ := strings.Cut(l, "Message NOT sent")
				told = append(told, text)
			}
			cl.mu.Lock()
			sent := slices.Clone(cl.sent)
			cl.mu.Unlock()
			var want []string
			for i := 1; i < 3; i++ {
				want = append(want, fmt.Sprintf(": bob was not handled: your session ended first. The message: im %d", i))
			}
			if !slices.Equal(told, want) || slices.Contains(sent, "im 1") || slices.Contains(sent, "im 2") {
				t.Errorf("sent to MSIM %q; told %q, want im 1 and im 2 told not handled:\n%q", sent, told, want)
			}
		})
	}
}

// TestMessagesAfterAPanic: the session ends on a panic while it handles
// the first message of a batch (an internal error): the messages after it
// in the batch are each told not sent, as the queued messages posted
// alone are (shutdown refuses them); not silently dropped though echoed.
func TestMessagesAfterAPanic(t *testing.T) {
	endedMessages(t, func(*rig) { panic("test: the MSIM client failed") })
}

// TestMessagesAfterTheEnd: the session is ended (gateway shutdown, from
// another goroutine) while it sends the first message of a batch: the
// loop handles no event after that, so the messages after it are refused
// (told not handled), not sent on an ended session.
func TestMessagesAfterTheEnd(t *testing.T) {
	endedMessages(t, func(r *rig) { r.s.endWith(shutDownAs) })
}
