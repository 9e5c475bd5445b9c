package channel

import (
	"errors"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// TestDisconnectReportsUnconfirmed: the IMs a link lost just before the
// user typed disconnect may not have arrived (MSIM has no receipts): the
// close hands over its loss, which the session sees as a link closed on
// purpose, and the user is told of them as for a link lost while up, in
// words for a link that closed (as holdTaken words its note), not lost.
func TestDisconnectReportsUnconfirmed(t *testing.T) {
	r, cl := bobLoggedIn(t)
	cl.mu.Lock() // lost, and not yet seen by the session
	cl.events = append(cl.events, msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof"),
		Unconfirmed: []msim.OutgoingIM{{To: 7, Text: "maybe"}}, MoreUnconfirmed: true})
	cl.mu.Unlock()
	r.s.handle(newIRCInput(r.s.cl.ats[0], ircd.Input{Command: "PRIVMSG", Target: r.a.channel, Text: "disconnect"}))
	want := "NOTICE bob : The MSIM link closed just after this was sent; it may not have arrived: maybe"
	if got := r.irc.said("may not have arrived"); len(got) != 2 || got[0] != want || !strings.Contains(got[1], "before the link closed") {
		t.Errorf("told %q; want %q, then that more may not have arrived (all: %q)", got, want, r.irc.lines)
	}
}
