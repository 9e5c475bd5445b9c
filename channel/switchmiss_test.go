package channel

import (
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// TestSwitchKeepsTheNewUsersMiss: the only client, closing, misses an IM
// of the user without a password it came in as, and then, register or
// identify having made the session a registered user's, one of that
// user's. What the old user's IM left on the connection is no miss of
// the new user's: the client's position, saved as it leaves, stops before
// the new user's IM, whether the old one's report came before the switch
// or after it.
func TestSwitchKeepsTheNewUsersMiss(t *testing.T) {
	for _, tc := range []struct {
		name        string
		reportAfter bool // the old user's IM is reported missed after the switch
	}{
		{"reported before the switch", false},
		{"reported after the switch", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, st := historyRig(t)
			old := User{Name: "newcomer/alice/x", Ephemeral: true, newcomer: true}
			r.s.user = old
			r.s.b.mu.Lock()
			r.s.b.memory[old.Name] = r.s.mem // as the bridge keeps it, to forget it
			r.s.b.mu.Unlock()
			phoneIRC := &heldSentIRC{closableIRC: closableIRC{fakeIRC: newFakeIRC(), closing: true, queued: true}}
			phone := r.s.cl.ats[0]
			phone.c, phone.name = phoneIRC, "phone"

			r.s.newBuddy(r.a, 7, "bob", "")
			phoneIRC.hold = tc.reportAfter
			r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: "before", Time: time.Now()})
			phoneIRC.hold = false

			alice := User{Name: "alice", registered: true, Accounts: []Account{{Email: "alice@msim.test", Password: "pw", Channel: "&msim"}}}
			r.s.becomeUser(replyCtx{}, alice, old)
			r.stepUntil("the replay read", func() bool { return phone.replaying == nil })
			phoneIRC.report(false) // the old user's IM, if it was still on its way

			a := r.s.accounts[0]
			r.s.newBuddy(a, 7, "bob", "")
			r.s.fromUser(a, 7, msim.IMEvent{From: 7, Text: "hello", Time: time.Now()})
			r.s.closed(phone)
			if got, want := replayedTo(r, st, "phone"), []string{"hello"}; !slices.Equal(got, want) {
				t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
			}
		})
	}
}

// heldSentIRC is a closableIRC whose Sent reports, while hold is set, wait
// until report gives them.
type heldSentIRC struct {
	closableIRC
	hold  bool
	sents []func(bool)
}

func (f *heldSentIRC) Deliver(d ircd.Delivery) bool {
	if f.hold && d.Sent != nil {
		f.sents = append(f.sents, d.Sent)
		return true
	}
	return f.closableIRC.Deliver(d)
}

// report gives the reports held so far as ok.
func (f *heldSentIRC) report(ok bool) {
	sents := f.sents
	f.sents = nil
	for _, sent := range sents {
		sent(ok)
	}
}
