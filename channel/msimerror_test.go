package channel

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// An error the MSIM client reports itself (Unreadable: an IM it could not
// read) is said as the client's, not as an error numbered 0 from the
// server; the server's errors keep their number, 0 too.
func TestClientErrorIsNoServerError(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.push(msim.ErrorEvent{Unreadable: true, Message: "an IM arrived that could not be read (it names no sender): hi"},
		msim.ErrorEvent{Code: 6, Message: "Session expired"},
		msim.ErrorEvent{Message: "numbered nothing"})
	r.stepUntil("all told", func() bool { return len(r.irc.said("numbered nothing")) == 1 })
	if got := r.irc.said("numbered nothing"); !strings.HasSuffix(got[0], "MSIM server error 0: numbered nothing") {
		t.Errorf("told %q; want %q", got, "MSIM server error 0: numbered nothing")
	}
	if got := r.irc.said("could not be read"); len(got) != 1 || !strings.HasSuffix(got[0], "MSIM: an IM arrived that could not be read (it names no sender): hi") {
		t.Errorf("told %q; want once %q", got, "MSIM: an IM arrived that could not be read (it names no sender): hi")
	}
	if got := r.irc.said("Session expired"); !strings.HasSuffix(got[0], "MSIM server error 6: Session expired") {
		t.Errorf("told %q; want %q", got, "MSIM server error 6: Session expired")
	}
}

// An IM the MSIM client could not read during a login that failed comes
// with the login's error as the client's ErrorEvent: the user is told of
// it as of one that came on a link that is up, and the IMs beside it are
// delivered.
func TestFailedLoginTellsItsUnreadableIM(t *testing.T) {
	r := newRig(t, nil)
	r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
		return nil, &msim.UndeliveredError{Err: errors.New("msim: login: eof"), Events: []msim.Event{
			msim.ErrorEvent{Unreadable: true, Message: "an IM arrived that could not be read (it names no sender): hi"},
			msim.IMEvent{From: 7, Text: "stored"}}}
	}
	r.s.start()
	r.stepUntil("the failed login", func() bool { return r.a.state == linkWaiting })
	if got := r.irc.said("could not be read"); len(got) != 1 || !strings.HasSuffix(got[0], "MSIM: an IM arrived that could not be read (it names no sender): hi") {
		t.Errorf("told %q; want once %q", got, "MSIM: an IM arrived that could not be read (it names no sender): hi")
	}
	if got := r.irc.said("stored"); len(got) != 1 {
		t.Errorf("told %q; want the IM \"stored\" once", got)
	}
}

// unreadable is the MSIM client's report of an IM it could not read.
var unreadable = msim.ErrorEvent{Unreadable: true, Message: "an IM arrived that could not be read (it names no sender): hi"}

// A login whose result comes after its session ended (keepLogin) keeps
// the report of an IM its MSIM client could not read as a note for the
// user's next connection, beside the IMs it holds: reported with the
// failed login's error, or among the events of the client it brought.
func TestLoginEndingWithTheSessionNotesItsUnreadableIM(t *testing.T) {
	for _, tc := range []struct {
		name string
		dial func() (MSIMClient, error)
	}{
		{"the login fails", func() (MSIMClient, error) {
			return nil, &msim.UndeliveredError{Err: context.Canceled, Events: []msim.Event{unreadable, msim.IMEvent{From: 7, Text: "stored"}}}
		}},
		{"the login succeeds", func() (MSIMClient, error) {
			cl := &fakeMSIM{}
			cl.events = []msim.Event{unreadable, msim.IMEvent{From: 7, Text: "stored"}}
			return cl, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			started, release := make(chan struct{}), make(chan struct{})
			r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
				close(started)
				<-release
				return tc.dial()
			}
			r.s.start()
			<-started
			r.s.cancel()
			close(release)
			r.s.shutdown() // waits for the login's goroutine
			if held := heldTexts(r.s.mem, r.a.cfg.Email); len(held) != 1 {
				t.Fatalf("held after the session ended: %q, want the login's IM", held)
			}
			want := "MSIM account " + r.a.cfg.Email + ": MSIM: an IM arrived that could not be read (it names no sender): hi"
			if got, all := noteWith(r.s.mem, want); len(got) != 1 || got[0] != want {
				t.Errorf("notes for the next connection: %q; want once %q", all, want)
			}
		})
	}
}

// The report of an IM the MSIM client of an account closed as the user
// left could not read (holdTaken) is noted for the user's next
// connection, and the IM beside it held.
func TestAccountClosedAsTheUserLeftNotesItsUnreadableIM(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.mu.Lock() // taken by the session's end, not before
	cl.events = append(cl.events, unreadable, msim.IMEvent{From: 7, Text: "last one"})
	cl.mu.Unlock()
	r.s.cancel()
	r.s.shutdown()
	if held := heldTexts(r.s.mem, r.a.cfg.Email); len(held) != 1 {
		t.Fatalf("held after the session ended: %q, want the last IM", held)
	}
	want := "MSIM account " + r.a.cfg.Email + ": MSIM: an IM arrived that could not be read (it names no sender): hi"
	if got, all := noteWith(r.s.mem, want); len(got) != 1 || got[0] != want {
		t.Errorf("notes for the next connection: %q; want once %q", all, want)
	}
}

// The report of an IM the MSIM client could not read, among the events of
// a link the session closed on purpose (onStaleMSIM), is told as the IMs
// beside it are: in the control channel when the user disconnects the
// account; once the session has let the account go (the user identified
// as another while its login was under way), kept as a note for the user
// whose account it is, or, for a user who keeps nothing, told on the
// connection now, never in the account's removed channel.
func TestStaleLinksUnreadableIMReachesTheUser(t *testing.T) {
	const text = "MSIM: an IM arrived that could not be read (it names no sender): hi"
	t.Run("disconnect", func(t *testing.T) {
		r := newRig(t, nil)
		cl := &fakeMSIM{}
		r.okDial(cl)
		r.s.start()
		r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
		cl.mu.Lock() // taken as the link closes, not before
		cl.events = append(cl.events, unreadable, msim.IMEvent{From: 7, Text: "last one"})
		cl.mu.Unlock()
		r.s.disconnect(r.a, "Disconnected.")
		if got := r.irc.said("could not be read"); len(got) != 1 || got[0] != "PRIVMSG root "+r.a.channel+": "+text {
			t.Errorf("told %q; want once in %s %q", got, r.a.channel, text)
		}
		if got := r.irc.said("last one"); len(got) != 1 {
			t.Errorf("told %q; want the IM beside it once", got)
		}
	})
	for _, tc := range []struct {
		name      string
		ephemeral bool
	}{
		{"a registered user", false},
		{"a user without a password", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			email, oldMem := r.a.cfg.Email, r.s.mem
			if tc.ephemeral {
				r.s.user.Ephemeral = true
				r.s.b.mu.Lock()
				r.s.b.memory[r.s.user.Name] = oldMem // as the bridge keeps it, to forget it
				r.s.b.mu.Unlock()
			}
			r.s.start() // the dial waits for r.dials
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
			cl := &fakeMSIM{}
			cl.events = []msim.Event{unreadable}
			r.okDial(cl)
			r.step() // the login's result
			oldMem.settle()
			want := "MSIM account " + email + ": " + text
			told := r.irc.said("could not be read")
			noted, all := noteWith(oldMem, want)
			switch {
			case tc.ephemeral && (len(told) != 1 || told[0] != "NOTICE root : "+want):
				t.Errorf("told %q; want once on the connection %q", told, want)
			case !tc.ephemeral && (len(noted) != 1 || noted[0] != want || len(told) != 0):
				t.Errorf("noted for the old user %q, told %q; want once noted %q, nothing told now", all, told, want)
			}
		})
	}
}

// The report of an IM the MSIM client could not read that comes with the
// error of a login that failed once the session had let the account go
// (the user identified as another while it was under way) is not said in
// the account's removed channel: it is kept as a note for the user whose
// account it is, or, for a user who keeps nothing, told on the
// connection now.
func TestStaleFailedLoginsUnreadableIMReachesTheUser(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ephemeral bool
	}{
		{"a registered user", false},
		{"a user without a password", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			email, channel, oldMem := r.a.cfg.Email, r.a.channel, r.s.mem
			if tc.ephemeral {
				r.s.user.Ephemeral = true
				r.s.b.mu.Lock()
				r.s.b.memory[r.s.user.Name] = oldMem // as the bridge keeps it, to forget it
				r.s.b.mu.Unlock()
			}
			r.s.start() // the dial waits for r.dials
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
			r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
				return nil, &msim.UndeliveredError{Err: context.DeadlineExceeded, Events: []msim.Event{unreadable}}
			}
			r.step() // the login's result
			oldMem.settle()
			want := "MSIM account " + email + ": MSIM: an IM arrived that could not be read (it names no sender): hi"
			if got := r.irc.said(channel + ": MSIM: an IM arrived"); len(got) != 0 {
				t.Errorf("told in the removed channel %s: %q", channel, got)
			}
			told := r.irc.said("NOTICE root : " + want)
			noted, all := noteWith(oldMem, want)
			switch {
			case tc.ephemeral && len(told) != 1:
				t.Errorf("told %q; want once on the connection %q", r.irc.said("could not be read"), want)
			case !tc.ephemeral && (len(noted) != 1 || len(told) != 0):
				t.Errorf("noted for the old user %q, told %q; want once noted %q, nothing told now", all, r.irc.said("could not be read"), want)
			}
		})
	}
}
