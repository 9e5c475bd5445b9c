package channel

import (
	"errors"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// The notes the accounts of a dropped registration leave as the drop
// closes them (what their MSIM client never sent, or dropped) are told on
// the session's connections at once: the memory the drop leaves the
// session keeps nothing for a next connection, and none comes to it.
func TestDropTellsWhatItsAccountsLeaveToTell(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.mu.Lock() // taken as the drop closes the account
	cl.events = append(cl.events, msim.DisconnectedEvent{Reason: msim.DisconnectClosed, Err: errors.New("closed"),
		Unsent: []msim.OutgoingIM{{To: 7, Text: "typed one"}}, DroppedIMs: 2, DroppedFrom: []msim.UID{7}})
	cl.mu.Unlock()
	r.s.dropped(replyCtx{}, "alice", nil, nil)
	for _, want := range []string{
		"NOTICE root : Not sent to bob",
		"NOTICE root : MSIM account alice@msim.test: IMs sent to you were lost: 2 from bob",
	} {
		if got := r.irc.said(want); len(got) != 1 {
			t.Errorf("told %q; want one line %q", got, want)
		}
	}
	if got := r.irc.said("typed one"); len(got) != 1 {
		t.Errorf("told %q; want the unsent IM's text once", got)
	}
	if left := r.s.mem.takeNotes(); len(left) != 0 {
		t.Errorf("still kept in the dropped session's memory, where no one reads them: %q", left)
	}
}
