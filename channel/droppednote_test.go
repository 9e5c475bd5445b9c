package channel

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// noteWith returns the notes kept in m that contain every one of texts.
func noteWith(m *userMemory, texts ...string) (match, all []string) {
	all = m.takeNotes()
	for _, n := range all {
		ok := true
		for _, t := range texts {
			ok = ok && strings.Contains(n, t)
		}
		if ok {
			match = append(match, n)
		}
	}
	return match, all
}

// A login whose result comes after its session ended (keepLogin) keeps,
// beside its IMs, a note for the user's next connection of the IMs its
// MSIM client dropped past its backlog, naming how many and from whom
// (by a nick the user's memory keeps, else by uid): reported by the
// failed login's error, or by the final event of the client it brought.
// Its result is posted to the ended session or not; either way.
func TestLoginEndingWithTheSessionNotesItsDroppedIMs(t *testing.T) {
	for _, tc := range []struct {
		name string
		dial func() (MSIMClient, error)
	}{
		{"the login fails", func() (MSIMClient, error) {
			return nil, &msim.UndeliveredError{Err: context.Canceled, Events: []msim.Event{msim.IMEvent{From: 7, Text: "stored"}},
				DroppedIMs: 3, DroppedFrom: []msim.UID{7, 43}}
		}},
		{"the login succeeds", func() (MSIMClient, error) {
			cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
			cl.events = []msim.Event{msim.IMEvent{From: 7, Text: "stored"},
				msim.DisconnectedEvent{Reason: msim.DisconnectOverflow, Err: msim.ErrEventOverflow, DroppedIMs: 3, DroppedFrom: []msim.UID{7, 43}}}
			return cl, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 {
				r := newRig(t, nil)
				r.s.mem.setNick(buddyKey{r.a.cfg.Email, 7}, "robert", false) // renamed at an earlier login
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
				if got, all := noteWith(r.s.mem, r.a.cfg.Email, "3 from robert, 43"); len(got) != 1 {
					t.Fatalf("notes for the next connection: %q; want one telling of the 3 IMs dropped from robert and 43 on %s", all, r.a.cfg.Email)
				}
			}
		})
	}
}

// The IMs the MSIM client of an account closed as the user left dropped
// past its backlog (holdTaken) are noted for the user's next connection,
// with their senders.
func TestAccountClosedAsTheUserLeftNotesItsDroppedIMs(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.mu.Lock() // taken by the session's end, not before
	cl.events = append(cl.events, msim.IMEvent{From: 7, Text: "last one"},
		msim.DisconnectedEvent{Reason: msim.DisconnectClosed, Err: errors.New("closed"), DroppedIMs: 2, DroppedFrom: []msim.UID{7}})
	cl.mu.Unlock()
	r.s.cancel()
	r.s.shutdown()
	if held := heldTexts(r.s.mem, r.a.cfg.Email); len(held) != 1 {
		t.Fatalf("held after the session ended: %q, want the last IM", held)
	}
	if got, all := noteWith(r.s.mem, r.a.cfg.Email, "2 from bob"); len(got) != 1 {
		t.Errorf("notes for the next connection: %q; want one telling of the 2 IMs dropped from bob on %s", all, r.a.cfg.Email)
	}
}
