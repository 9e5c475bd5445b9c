package channel

import (
	"strings"
	"testing"

	"github.com/msimircd/msimircd/ircd"
)

// What the user typed and a session will not handle, as it ended (the
// session identify hands the connection over to ended meanwhile, the
// line waited in the queue of a session that ended, or it was typed
// after the session ended), is refused with a
// notice that says it was not sent, with its text; a typing notice goes
// unsaid, as a notice to a control channel, which goes nowhere.
func TestTypedInputRefusedAsTheSessionEnds(t *testing.T) {
	inputs := []struct {
		in   ircd.Input
		told bool
	}{
		{ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "hello bob"}, true},
		{ircd.Input{Command: "NOTICE", Target: "bob", Text: "a notice for bob"}, true},
		{ircd.Input{Command: "PRIVMSG", Target: "&alice", Text: "add carol"}, true},
		{ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "\x01ACTION waves\x01"}, true},
		{ircd.Input{Command: "TAGMSG", Target: "bob", Tags: map[string]string{"+typing": "active"}}, false},
		{ircd.Input{Command: "NOTICE", Target: "&alice", Text: "a notice goes nowhere"}, false},
	}
	for _, tc := range []struct {
		name   string
		refuse func(r *rig, at *attachment, ev *ircInput)
	}{
		{"handed over to a session that ended", func(r *rig, at *attachment, ev *ircInput) {
			to := newSession(r.s.b, newFakeIRC(), User{Name: "carol"}, newUserMemory())
			to.cancel()
			if mine := r.s.forward(ev, at, to, nil); len(mine) != 0 {
				t.Errorf("kept by the session handing over: %d events", len(mine))
			}
		}},
		{"queued as the session ends", func(r *rig, at *attachment, ev *ircInput) {
			if !r.s.post(ev) {
				t.Fatal("not posted")
			}
			r.s.cancel()
			r.s.shutdown()
		}},
		{"typed after the session ended", func(r *rig, at *attachment, ev *ircInput) {
			r.s.cancel()
			r.s.shutdown()
			at.Message(ev.in)
			ev.release() // the test's own: Message made another
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, tt := range inputs {
				in := tt.in
				shown := strings.Replace(in.Text, "\x01ACTION ", "/me ", 1)
				shown = strings.TrimSuffix(shown, "\x01")
				r := newRig(t, nil)
				c := newFakeIRC()
				at := attachNamed(r, c, "phone")
				tc.refuse(r, at, newIRCInput(at, in))
				got := c.said("Message NOT sent")
				switch {
				case tt.told && (len(got) != 1 || !c.saidAs("NOTICE ", shown)):
					t.Errorf("%s %s: told %q; want one notice with %q", in.Command, in.Target, got, shown)
				case !tt.told && len(c.lines) != 0:
					t.Errorf("%s %s: told %q; want nothing", in.Command, in.Target, c.lines)
				}
			}
		})
	}
}
