package channel

import (
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// TestAccountDelShowsIMsItsCloseTook: an IM the MSIM client of an account
// deleted by account del still held as the account closed, and one from a
// stranger waiting for their profile, are shown to the user at once, with
// sender and text: nothing is kept for a deleted account, so holding them
// would lose them; and no note says they are kept.
func TestAccountDelShowsIMsItsCloseTook(t *testing.T) {
	onUnsentNowRigs(t, func(t *testing.T, r *rig) {
		cl := r.a.client.(*fakeMSIM)
		cl.mu.Lock() // came just before the close: the client still holds it
		cl.events = append([]msim.Event{msim.IMEvent{From: 7, Text: "late hello"}}, cl.events...)
		cl.mu.Unlock()
		// One from a stranger waits for their profile.
		r.s.fromUser(r.a, 9, msim.IMEvent{From: 9, Text: "stranger hello"})
		accountZeroDel(t, r)
		for _, want := range []struct{ text, from string }{{"late hello", "bob"}, {"stranger hello", "9"}} {
			got := r.irc.said(want.text)
			if len(got) != 1 || !strings.Contains(got[0], " from "+want.from+" ") {
				t.Errorf("the IM %q: told %q; want it once, from %s (all: %q)", want.text, got, want.from, r.irc.lines)
			}
		}
		if got := r.irc.said("kept in memory"); len(got) != 0 {
			t.Errorf("told it is kept: %q", got)
		}
		for _, n := range r.s.mem.takeNotes() {
			t.Errorf("kept for the next connection: %q", n)
		}
		if held, _ := r.s.mem.leftovers(); held != 0 {
			t.Errorf("%d IMs still held or queued in memory", held)
		}
	})
}
