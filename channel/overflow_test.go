package channel

import (
	"errors"
	"fmt"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// TestDroppedIMsAreReported: when the MSIM client fell behind its event
// backlog and dropped the link (msim.DisconnectOverflow), IMs sent to the
// user may have been lost with it, and those the client received but
// dropped are lost for sure: the user is told, with their senders, whether
// the link was up, a login was under way, or the link was being closed on
// purpose. A link lost for another reason with nothing dropped says
// nothing of the kind.
func TestDroppedIMsAreReported(t *testing.T) {
	overflow := fmt.Errorf("%w: 65536 events not taken", msim.ErrEventOverflow)
	bob := []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}
	lostUp := func(ev msim.DisconnectedEvent) func(*rig) {
		return func(r *rig) {
			cl := &fakeMSIM{buddies: bob}
			r.okDial(cl)
			r.s.start()
			r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
			cl.push(ev)
			r.stepUntil("the link lost", func() bool { return r.a.state != linkUp })
		}
	}
	cases := []struct {
		name string
		run  func(*rig)
		want string // "" for no report
	}{
		{"overflow, two dropped", lostUp(msim.DisconnectedEvent{Reason: msim.DisconnectOverflow, Err: overflow, DroppedIMs: 3, DroppedFrom: []msim.UID{7, 42}}),
			"IMs sent to you were lost: 3 from bob, 42 came when the gateway had fallen behind the MSIM link"},
		{"overflow, none dropped", lostUp(msim.DisconnectedEvent{Reason: msim.DisconnectOverflow, Err: overflow}),
			"IMs sent to you just before this may have been lost: the gateway fell behind the MSIM link"},
		{"network, one dropped", lostUp(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof"), DroppedIMs: 1, DroppedFrom: []msim.UID{7}}),
			"IMs sent to you were lost: 1 from bob came"},
		{"network, none dropped", lostUp(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")}), ""},
		{"login overflowed", func(r *rig) {
			r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
				return nil, &msim.UndeliveredError{Err: fmt.Errorf("msim: login: %w", overflow), DroppedIMs: 1, DroppedFrom: []msim.UID{42}}
			}
			r.s.start()
			r.stepUntil("the failed login", func() bool { return r.a.state == linkWaiting })
		}, "IMs sent to you were lost: 1 from 42 came"},
		{"login overflowed, none dropped", func(r *rig) {
			r.dials <- func(msim.ClientConfig) (MSIMClient, error) { return nil, fmt.Errorf("msim: login: %w", overflow) }
			r.s.start()
			r.stepUntil("the failed login", func() bool { return r.a.state == linkWaiting })
		}, "IMs sent to you just before this may have been lost"},
		{"closed after an overflow", func(r *rig) {
			cl := &fakeMSIM{buddies: bob}
			r.okDial(cl)
			r.s.start()
			r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
			// The overflow's event is still in the client when the user
			// disconnects: the close hands it over.
			cl.mu.Lock()
			cl.events = append(cl.events, msim.DisconnectedEvent{Reason: msim.DisconnectOverflow, Err: overflow, DroppedIMs: 1, DroppedFrom: []msim.UID{7}})
			cl.mu.Unlock()
			r.s.disconnect(r.a, "Disconnected.")
		}, "IMs sent to you were lost: 1 from bob came"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			tc.run(r)
			got := r.irc.said("IMs sent to you")
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("got %q, want no report of lost IMs", got)
			case tc.want != "" && (len(got) != 1 || len(r.irc.said(tc.want)) != 1):
				t.Errorf("got %q, want one line with %q", got, tc.want)
			}
		})
	}
}
