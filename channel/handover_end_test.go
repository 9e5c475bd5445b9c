package channel

import (
	"testing"

	"github.com/msimircd/msimircd/ircd"
)

// handOverEndRig is a session logged in with bob (uid 7) online and a
// second connection (the phone) about to be handed over to carol's
// session, which runs with no connection (the set-up of
// TestHandOverBatchAfterEndRefuses).
type handOverEndRig struct {
	r     *rig
	cl    *fakeMSIM
	phone *fakeIRC
	pat   *attachment // the phone's
	at    *attachment // the connection handed over
	to    *session    // carol's
}

func newHandOverEndRig(t *testing.T) *handOverEndRig {
	t.Helper()
	r, cl := bobLoggedIn(t)
	phone := newFakeIRC()
	h := &handOverEndRig{r: r, cl: cl, phone: phone}
	h.pat = attachNamed(r, phone, "phone")
	h.at = r.s.cl.ats[0]

	b := r.s.b
	carol := User{Name: "carol", registered: true}
	h.to = newSession(b, nil, carol, newUserMemory())
	b.mu.Lock()
	b.sessions[carol.Name] = h.to
	b.memory[carol.Name] = h.to.mem
	b.mu.Unlock()
	toEnded := make(chan struct{})
	h.to.run(func() { close(toEnded) })
	t.Cleanup(func() { h.to.cancel(); <-toEnded })
	return h
}

// endAndHandOver ends the session (as another goroutine may), then hands
// the connection over, and waits for the session's workers.
func (h *handOverEndRig) endAndHandOver() {
	h.r.t.Helper()
	h.r.s.cancel()
	moved, err := h.r.s.handOver(h.at, h.to)
	if !moved || err != nil {
		h.r.t.Fatalf("handOver: moved %v, %v", moved, err)
	}
	h.r.s.workers.Wait()
}

// sentToMSIM is what the fake MSIM client was asked to send.
func (h *handOverEndRig) sentToMSIM() []string {
	h.cl.mu.Lock()
	defer h.cl.mu.Unlock()
	return append([]string(nil), h.cl.sent...)
}

// TestHandOverInputAfterEndRefuses: as TestHandOverBatchAfterEndRefuses,
// for a single line (posted alone, not as a batch): once the session has
// ended, handOver refuses it with a notice, and it does not reach MSIM.
func TestHandOverInputAfterEndRefuses(t *testing.T) {
	h := newHandOverEndRig(t)
	h.pat.Messages([]ircd.Input{{Command: "PRIVMSG", Target: "bob", Text: "alone"}})
	h.endAndHandOver()
	if got := h.phone.said("Message NOT sent: bob was not handled: your session ended first"); len(got) != 1 {
		t.Errorf("told the phone %q; want one refusal", h.phone.lines)
	}
	if sent := h.sentToMSIM(); len(sent) != 0 {
		t.Errorf("handled after the session ended: sent to MSIM %q", sent)
	}
}
