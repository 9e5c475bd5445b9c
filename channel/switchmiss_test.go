package channel

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
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

// failLoadStore is a store that cannot read the state of one user.
type failLoadStore struct {
	store.Store
	name string
}

func (s failLoadStore) LoadUser(ctx context.Context, name string) (store.UserState, error) {
	if name == s.name {
		return store.UserState{}, errors.New("disk on fire")
	}
	return s.Store.LoadUser(ctx, name)
}

// TestFailedSwitchKeepsTheMiss: a switch to another user that fails (the
// new user's state cannot be read) leaves the session its user's, and the
// miss its client recorded before stays theirs: the client's position,
// saved as it leaves, stops before the IM it missed.
func TestFailedSwitchKeepsTheMiss(t *testing.T) {
	r, st := historyRig(t)
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC(), closing: true, queued: true}
	phone := r.s.cl.ats[0]
	phone.c, phone.name = phoneIRC, "phone"
	r.s.newBuddy(r.a, 7, "bob", "")
	r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: "missed", Time: time.Now()})

	r.s.b.cfg.Store = failLoadStore{Store: st, name: "carol"}
	old := r.s.user
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, old)
	if r.s.user.Name != old.Name {
		t.Fatalf("the session is %s's after a failed switch, want %s's", r.s.user.Name, old.Name)
	}
	r.s.b.cfg.Store = st
	r.s.closed(phone)
	if got, want := replayedTo(r, st, "phone"), []string{"missed"}; !slices.Equal(got, want) {
		t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
	}
}
