package channel

import (
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// Identify hands the connection of a user who keeps nothing to the
// registered user's session, which runs already (always on): the IMs
// held for the user the connection leaves are lost as the bridge forgets
// their memory, at once, and the connection is told so, once, through
// the session it now belongs to, after its world there is built.
func TestHandOverTellsTheHeldIMsLost(t *testing.T) {
	r := newRig(t, nil)
	b, email := r.s.b, r.a.cfg.Email
	old := r.s.mem
	r.s.user.Ephemeral = true
	b.mu.Lock()
	b.sessions[r.s.user.Name] = r.s
	b.memory[r.s.user.Name] = old // as the bridge keeps it, to forget it
	b.mu.Unlock()
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.mu.Lock() // taken as identify closes the account: held for alice
	cl.events = append(cl.events, msim.IMEvent{From: 7, Text: "held one"}, msim.IMEvent{From: 43, Text: "held two"},
		msim.IMEvent{From: 7, Text: "held three"})
	cl.mu.Unlock()

	carol := User{Name: "carol", registered: true}
	to := runningSession(b, carol) // with no connection

	at := r.s.cl.ats[0]
	r.s.becomeUser(replyCtx{}, carol, r.s.user)
	if at.s != to {
		t.Fatal("the connection was not handed over to carol's session")
	}
	if got := heldTexts(old, email); len(got) != 0 {
		t.Errorf("still held in alice's memory after the hand-over: %q", got)
	}
	passBarrier(t, at) // what its session was given before is done
	want := "NOTICE root : MSIM account " + email + ": IMs sent to you were lost: 3 from bob, 43"
	if got := r.irc.said("IMs sent to you were lost"); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("told %q; want one line starting %q", got, want)
	}
}

// runningSession starts a session of u on b with no connection, as the
// bridge keeps an always-on user's, and returns it.
func runningSession(b *Bridge, u User) *session {
	s := newSession(b, nil, u, newUserMemory())
	b.mu.Lock()
	b.sessions[u.Name] = s
	b.memory[u.Name] = s.mem
	b.mu.Unlock()
	b.wg.Add(1) // as Connect counts the sessions it runs
	b.run(s)
	return s
}

// passBarrier waits until the session at belongs to now has run what it
// was given before (a hand-over's attach, what that posted).
func passBarrier(t *testing.T, at *attachment) {
	t.Helper()
	done := make(chan struct{})
	at.do(func(*session) { close(done) }, func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection's session did not run the barrier")
	}
}
