package channel

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
)

// ephemeralRig is a rig whose user keeps nothing (a nick without a
// password), its memory kept by the bridge as Connect keeps it, its client
// stalled: what it is handed is reported only when the test says. It
// returns the user's memory and the rig's metrics.
func ephemeralRig(t *testing.T) (*rig, *stalledIRC, *userMemory, *prometheus.Registry) {
	t.Helper()
	r, reg := metricsRig(t)
	irc := &stalledIRC{fakeIRC: r.irc}
	r.s.irc = irc
	r.s.user.Ephemeral = true
	old := r.s.mem
	r.s.b.mu.Lock()
	r.s.b.memory[r.s.user.Name] = old
	r.s.b.mu.Unlock()
	return r, irc, old, reg
}

// afterReports runs the session's turn for what ircd's reports left to it
// (the loop's drained case).
func (r *rig) afterReports() {
	if r.s.out.drained.Swap(false) {
		r.s.afterReports()
	}
}

// A live IM handed to the client of a user without a password just before
// identify makes the session another user's, and reported not shown after
// it, cannot be held: the bridge has forgotten the memory it would be held
// in, where no one would read it. It counts as dropped, and the client is
// told it is lost, with its text, at the session's next turn (the report,
// on ircd's goroutine, never waits for the session); reported once the
// session has ended, it is logged.
func TestInFlightIMOfForgottenUserIsToldWhenNotShown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ended bool // the session ends before the report
	}{
		{"told", false},
		{"the session has ended", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, irc, old, reg := ephemeralRig(t)
			l, hook := logtest.NewNullLogger()
			r.s.log = logrus.NewEntry(l) // the report's, as the IM is handed over
			email := r.a.cfg.Email
			cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
			r.okDial(cl)
			r.s.start()
			r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
			cl.push(msim.IMEvent{From: 7, Text: "live one"})
			r.stepUntil("handed to the client", func() bool { return len(irc.said("live one")) == 1 })
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
			if tc.ended {
				r.s.endLost() // as the session's end does, once holdOutbox has waited
			}
			before := promtest.Value(t, reg, "msimircd_ims_dropped_total")
			irc.reportAll(false) // the client left without showing it
			old.settle()
			r.afterReports()
			if got := heldTexts(old, email); len(got) != 0 {
				t.Errorf("held in the forgotten memory: %q; want none", got)
			}
			if got := promtest.Value(t, reg, "msimircd_ims_dropped_total") - before; got != 1 {
				t.Errorf("IMs counted dropped: got %v, want 1", got)
			}
			said := irc.said("live one")
			if tc.ended {
				logged := 0
				for _, e := range hook.AllEntries() {
					if strings.Contains(e.Message, "did not show was lost") && e.Data["account"] == email {
						logged++
					}
				}
				if len(said) != 1 || logged != 1 {
					t.Errorf("said %q, logged %d; want only the IM said, and the loss logged once", said, logged)
				}
				return
			}
			want := "NOTICE root : An IM (live one) from bob to " + email + " is lost"
			if len(said) != 2 || !strings.HasPrefix(said[1], want) {
				t.Errorf("said %q; want the IM, then a line starting %q", said, want)
			}
		})
	}
}

// A held IM handed to the client of a user without a password before
// identify makes the session another user's is on its way as the bridge
// forgets their memory: it is not told lost with those that wait
// (takeLost), but by its report, and only if that says it was not shown.
func TestInFlightHeldIMShownIsNotToldLost(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shown bool
	}{
		{"shown", true},
		{"not shown", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, irc, old, reg := ephemeralRig(t)
			email := r.a.cfg.Email
			old.hold(email, msim.IMEvent{From: 7, Text: "held one", Time: time.Now()})
			old.hold(email, msim.IMEvent{From: 43, Text: "held two", Time: time.Now()})
			// bob's only: the IM from 43 waits for a stranger's lookup,
			// and is lost as it waits.
			cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
			r.okDial(cl)
			r.s.start()
			r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
			if got := irc.said("held one"); len(got) != 1 {
				t.Fatalf("handed to the client at login: %q, want once", got)
			}
			before := promtest.Value(t, reg, "msimircd_ims_dropped_total")
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
			irc.reportAll(tc.shown)
			old.settle()
			r.afterReports()
			want := "NOTICE root : MSIM account " + email + ": IMs sent to you were lost: 1 from 43 "
			if got := irc.said("IMs sent to you were lost"); len(got) != 1 || !strings.HasPrefix(got[0], want) {
				t.Errorf("told %q; want one line starting %q", got, want)
			}
			told := irc.saidAs("NOTICE root : An IM (held one) from bob", "is lost")
			if told == tc.shown {
				t.Errorf("the IM on its way told lost: %v; want %v", told, !tc.shown)
			}
			wantDropped := 1.0
			if !tc.shown {
				wantDropped = 2
			}
			if got := promtest.Value(t, reg, "msimircd_ims_dropped_total") - before; got != wantDropped {
				t.Errorf("IMs counted dropped: got %v, want %v", got, wantDropped)
			}
		})
	}
}

// The same, as identify hands the connection over to the registered
// user's running session (always on) and the session it leaves ends: the
// held IM on its way, reported not shown, is told lost to the connection
// there.
func TestHandedOverHeldIMNotShownIsToldThere(t *testing.T) {
	r, irc, old, _ := ephemeralRig(t)
	b, email := r.s.b, r.a.cfg.Email
	old.hold(email, msim.IMEvent{From: 7, Text: "held one", Time: time.Now()})
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if got := irc.said("held one"); len(got) != 1 {
		t.Fatalf("handed to the client at login: %q, want once", got)
	}

	carol := User{Name: "carol", registered: true}
	to := runningSession(b, carol) // with no connection

	at := r.s.cl.ats[0]
	r.s.becomeUser(replyCtx{}, carol, r.s.user)
	if at.s != to {
		t.Fatal("the connection was not handed over to carol's session")
	}
	irc.reportAll(false)
	r.s.endLost()      // as the session's end does, once holdOutbox has waited
	passBarrier(t, at) // what its session was given before is done
	if got := irc.said("IMs sent to you were lost"); len(got) != 0 {
		t.Errorf("told with those that waited: %q; want it told by its report", got)
	}
	if !irc.saidAs("NOTICE root : An IM (held one) from bob", "is lost") {
		t.Errorf("not told lost; said %q", irc.said(""))
	}
}

// The IMs the MSIM client still held as a drop closes the account are
// held in the memory the drop leaves the session, for a user who keeps
// nothing and has no account: no connection comes for them. They are
// told lost at once, as the notes of the same close are, and count as
// dropped.
func TestDropTellsTheIMsItsAccountsLeaveHeld(t *testing.T) {
	r, reg := metricsRig(t)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.mu.Lock() // taken as the drop closes the account
	cl.events = append(cl.events, msim.IMEvent{From: 7, Text: "held one"}, msim.IMEvent{From: 7, Text: "held two"})
	cl.mu.Unlock()
	before := promtest.Value(t, reg, "msimircd_ims_dropped_total")
	r.s.dropped(replyCtx{}, "alice", nil, nil)
	r.s.mem.settle()
	if got := heldTexts(r.s.mem, r.a.cfg.Email); len(got) != 0 {
		t.Errorf("held where no one reads them: %q", got)
	}
	want := "NOTICE root : MSIM account " + r.a.cfg.Email + ": IMs sent to you were lost: 2 from bob "
	if got := r.irc.said("IMs sent to you were lost"); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("told %q; want one line starting %q", got, want)
	}
	if got := promtest.Value(t, reg, "msimircd_ims_dropped_total") - before; got != 2 {
		t.Errorf("IMs counted dropped: got %v, want 2", got)
	}
}

// A drop that completes while the always-on session has no connection
// (the client left after "yes") leaves the session a user who keeps
// nothing, whose name no client can give: it ends, as a session whose
// last client leaves does, and its end logs what it held and what it
// noted for a next connection that never comes.
func TestDropWithNoConnectionEndsTheSession(t *testing.T) {
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	b := r.s.b
	l, hook := logtest.NewNullLogger()
	b.log = logrus.NewEntry(l)
	r.s.user.registered = true
	if !r.s.persistent() {
		t.Fatal("want an always-on session")
	}
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if !r.s.closed(r.s.cl.ats[0]) {
		t.Fatal("the always-on session ended with its client")
	}
	cl.mu.Lock() // taken as the drop closes the account
	cl.events = append(cl.events, msim.IMEvent{From: 7, Text: "held one"})
	cl.mu.Unlock()
	r.s.dropped(replyCtx{}, "alice", nil, nil)
	if !r.s.user.Ephemeral {
		t.Fatal("the drop did not make the session an ephemeral user's")
	}
	if r.s.ctx.Err() == nil {
		t.Fatalf("after the drop: session %q runs on with no connection and no way to get one; want it ended", r.s.user.Name)
	}
	b.wg.Add(1) // as Connect counts the sessions it runs
	b.ended(r.s)
	var held, noted bool
	for _, e := range hook.AllEntries() {
		held = held || strings.HasPrefix(e.Message, "1 IMs arrived for a user without a password")
		noted = noted || strings.Contains(e.Message, "notes kept for a user without a password")
	}
	if !held || !noted {
		t.Errorf("as the session ended: held IMs logged %v, notes logged %v; want both", held, noted)
	}
}

// identify by a user without a password whose account's client held an IM
// as the switch closed it, to a registered user whose session runs
// already (always on, with no connection), hands the connection over to
// that session (handOver): the IM is told lost to the connection there,
// on that session's goroutine (tellLostOn), so the test waits for its
// turn.
func TestHandOverTellsTheIMsHeldForTheUserLeft(t *testing.T) {
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	email := r.a.cfg.Email
	r.s.user.Ephemeral = true
	old := r.s.mem
	b := r.s.b
	b.mu.Lock()
	b.memory[r.s.user.Name] = old
	b.mu.Unlock()
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.mu.Lock() // taken as the switch closes the account
	cl.events = append(cl.events, msim.IMEvent{From: 7, Text: "held one"})
	cl.mu.Unlock()

	// carol's session runs with no connection.
	carol := User{Name: "carol", registered: true}
	prev := newSession(b, nil, carol, newUserMemory())
	b.mu.Lock()
	b.sessions[carol.Name] = prev
	b.memory[carol.Name] = prev.mem
	b.mu.Unlock()
	prevEnded := make(chan struct{})
	prev.run(func() { close(prevEnded) })
	t.Cleanup(func() { prev.cancel(); <-prevEnded })

	at := r.s.cl.ats[0]
	r.s.becomeUser(replyCtx{}, carol, r.s.user) // returns once prev has attached the connection
	if r.s.ctx.Err() == nil {
		t.Fatal("the connection was not handed over")
	}
	passBarrier(t, at) // what its session was given before is done
	want := "NOTICE root : MSIM account " + email + ": IMs sent to you were lost: 1 from bob "
	if got := r.irc.said("IMs sent to you were lost"); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("told %q; want one line starting %q (still held in their memory: %q)", got, want, heldTexts(old, email))
	}
}
