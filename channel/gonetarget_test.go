package channel

import (
	"strings"
	"testing"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// ircd takes a message to a nick (or a control channel) as it knows it
// when the line is read; the session may have renamed or removed it before
// it handles the message: another client of the user typed rename, account
// del or identify meanwhile, or the message waited while the session was
// busy. The user is told it was not sent, with its text.
func TestMessageToANickGoneMeanwhileIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string
		text   string
		gone   func(r *rig)
	}{
		{"renamed", "bob", "hi bob", func(r *rig) {
			r.s.command(replyCtx{a: r.a, target: r.a.channel}, "rename bob rob")
		}},
		{"account removed", "bob", "hi bob", func(r *rig) { r.s.removeAccount(r.a, "", "as the account was deleted") }},
		{"control channel removed", "&alice", "bob: hi bob", func(r *rig) { r.s.removeAccount(r.a, "", "as the account was deleted") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, cl := bobLoggedIn(t)
			if r.a.channel != "&alice" {
				t.Fatalf("control channel %s, want &alice", r.a.channel)
			}
			tc.gone(r)
			r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: tc.target, Text: tc.text, MsgID: "m1"})
			if len(cl.sent) != 0 {
				t.Errorf("sent %q, want nothing", cl.sent)
			}
			if got := r.irc.said("NOT sent"); len(got) != 1 || !strings.Contains(got[0], "hi bob") {
				t.Errorf("got notices %q, want one saying the message was not sent, with its text", got)
			}
		})
	}
}

// A notice to a gone control channel goes nowhere, as one to a control
// channel always did; an action or CTCP to a gone nick is named in the
// notice as the user typed it, not as its raw bytes.
func TestGoneTargetNoticeAndCTCP(t *testing.T) {
	for _, tc := range []struct {
		name, command, target, text string
		want                        string // "" for no notice
	}{
		{"notice to a control channel", "NOTICE", "&alice", "bob: hi", ""},
		{"action to a nick", "PRIVMSG", "bob", "\x01ACTION waves\x01", "The message: /me waves"},
		{"CTCP to a nick", "PRIVMSG", "bob", "\x01VERSION\x01", "The message: CTCP VERSION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := bobLoggedIn(t)
			r.s.removeAccount(r.a, "", "as the account was deleted")
			r.s.onIRC(ircd.Input{Command: tc.command, Target: tc.target, Text: tc.text, MsgID: "m1"})
			got := r.irc.said("NOT sent")
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("got notices %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.HasSuffix(got[0], tc.want) || strings.Contains(got[0], "\x01")):
				t.Errorf("got notices %q, want one ending %q, without CTCP's delimiters", got, tc.want)
			}
		})
	}
}

// bobLoggedIn is a rig logged in, with bob (uid 7) online, and its client.
func bobLoggedIn(t *testing.T) (*rig, *fakeMSIM) {
	t.Helper()
	r := newRig(t, nil)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	return r, cl
}
