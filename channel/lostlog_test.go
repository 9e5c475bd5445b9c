package channel

import (
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/msim"
)

// Identify makes the session of a user who keeps nothing another user's:
// the IMs held for the user it leaves are told lost, and logged under
// that user's name, not the new user's, whether the session runs on as
// the new user's or hands its connection to the new user's session.
func TestLostAtASwitchLoggedForTheUserItConcerns(t *testing.T) {
	for _, handOver := range []bool{false, true} {
		name := "the session runs on as carol's"
		if handOver {
			name = "the connection is handed to carol's session"
		}
		t.Run(name, func(t *testing.T) {
			l, hook := logtest.NewNullLogger()
			r := newRig(t, func(c *Config) { c.Log = logrus.NewEntry(l) })
			b := r.s.b
			r.s.user.Ephemeral = true
			b.mu.Lock()
			b.sessions[r.s.user.Name] = r.s
			b.memory[r.s.user.Name] = r.s.mem // as the bridge keeps it, to forget it
			b.mu.Unlock()
			cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
			r.okDial(cl)
			r.s.start()
			r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
			cl.mu.Lock() // taken as identify closes the account: held for alice
			cl.events = append(cl.events, msim.IMEvent{From: 7, Text: "held one"})
			cl.mu.Unlock()
			carol := User{Name: "carol", registered: true}
			at := r.s.cl.ats[0]
			if handOver {
				runningSession(b, carol)
			}
			r.s.becomeUser(replyCtx{}, carol, r.s.user)
			if handOver {
				passBarrier(t, at) // the connection is told there
			}
			if got := r.irc.said("IMs sent to you were lost"); len(got) != 1 {
				t.Fatalf("told %q; want the held IM told lost once", got)
			}
			var users []any
			for _, e := range hook.AllEntries() {
				if strings.Contains(e.Message, "were lost as the session became another user's") {
					users = append(users, e.Data["user"])
				}
			}
			if len(users) != 1 || users[0] != "alice" {
				t.Errorf("the loss was logged for the users %v; want once, for alice", users)
			}
		})
	}
}
