package channel

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
)

// TestPositionStopsAtAnOwnMessageMissed: what the user types in one client
// is shown in the others as their own message; a client that is closing
// then (its QUIT read, still attached) does not get it, or gets it queued
// and never written. Its position stops before that message, so its next
// connection is replayed it, as for an IM it missed.
func TestPositionStopsAtAnOwnMessageMissed(t *testing.T) {
	for _, queued := range []bool{false, true} {
		t.Run(fmt.Sprintf("queued=%v", queued), func(t *testing.T) {
			r, st := historyRig(t)
			desk := r.s.cl.ats[0]
			desk.name = "desk"
			phone := attachNamed(r, &closableIRC{fakeIRC: newFakeIRC(), closing: true, queued: queued}, "phone")
			bd := r.s.newBuddy(r.a, 7, "bob", "")
			r.a.client, r.a.state = &fakeMSIM{}, linkUp
			r.s.sender = desk
			r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "typed on the desk", MsgID: "m-own", Time: time.Now()},
				"PRIVMSG", "typed on the desk", "typed on the desk")
			r.s.sender = nil
			r.s.closed(phone)
			r.s.closed(desk)
			if got, want := replayedTo(r, st, "phone"), []string{"typed on the desk"}; !slices.Equal(got, want) {
				t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
			}
			if got := replayedTo(r, st, "desk"); len(got) != 0 {
				t.Errorf("the desk's next connection would be replayed %q, want nothing", got)
			}
		})
	}
}
