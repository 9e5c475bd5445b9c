package channel

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// heldTexts is the text of each IM held in m for email.
func heldTexts(m *userMemory, email string) []string {
	var out []string
	for _, se := range m.heldFor(email) {
		if im, ok := se.ev.(msim.IMEvent); ok {
			out = append(out, im.Text)
		}
	}
	return out
}

// reportAll reports every IM handed over so far: shown, or not.
func (f *stalledIRC) reportAll(shown bool) {
	f.mu.Lock()
	rs := f.reports
	f.reports = nil
	f.mu.Unlock()
	for _, r := range rs {
		r(shown)
	}
}

// saidAs reports whether a line that starts with prefix contains text.
func (f *fakeIRC) saidAs(prefix, text string) bool {
	return slices.ContainsFunc(f.said(text), func(l string) bool { return strings.HasPrefix(l, prefix) })
}

// The IMs of the user a session leaves (identify or register make it
// another's) that still wait in the outbox for a slow client stay that
// user's: held for them, or, for a user without a password, who keeps
// nothing, told as lost. None is held for the new user, and none held
// for the old one is shown and still held.
func TestOutboxStaysWithTheUserTheSessionLeaves(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ephemeral bool
		shown     bool // the client shows what it was handed
	}{
		{"the client shows them", false, true},
		{"the client leaves", false, false},
		{"a user without a password, the client shows them", true, true},
		{"a user without a password, the client leaves", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			irc := &stalledIRC{fakeIRC: r.irc, full: true}
			r.s.irc = irc
			r.s.user.Ephemeral = tc.ephemeral
			email := r.a.cfg.Email
			oldMem := r.s.mem
			for _, text := range []string{"held one", "held two"} {
				oldMem.hold(email, msim.IMEvent{From: 7, Text: text, Time: time.Now()})
			}
			cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
			r.okDial(cl)
			r.s.start()
			r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
			cl.push(msim.IMEvent{From: 7, Text: "live one"})
			r.stepUntil("the live IM queued", func() bool { return len(r.s.out.waiting()) == 2 })
			if got := irc.said("held one"); len(got) != 1 {
				t.Fatalf("handed to ircd before the switch: %q, want the first held IM", got)
			}

			old := r.s.user
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, old)
			if r.s.mem == oldMem {
				t.Fatal("the session kept the old user's memory")
			}
			irc.full = false
			for irc.reportAll(tc.shown); r.s.out.drained.Swap(false); irc.reportAll(tc.shown) {
				r.s.pumpOut()
			}
			oldMem.settle()
			r.s.mem.settle()

			if got := heldTexts(r.s.mem, email); len(got) != 0 {
				t.Errorf("held for the new user: %q; want none", got)
			}
			held := heldTexts(oldMem, email)
			for _, text := range []string{"held one", "held two", "live one"} {
				shown := tc.shown && irc.saidAs("PRIVMSG bob ", text)
				lost := irc.saidAs("NOTICE ", text)
				isHeld := slices.Contains(held, text)
				switch {
				case shown && isHeld:
					t.Errorf("%q: shown, and still held for the old user", text)
				case !shown && !isHeld && !lost:
					t.Errorf("%q: not shown, and neither held for the old user nor told lost (said %q)", text, irc.said(text))
				case isHeld && lost:
					t.Errorf("%q: told lost, and held for the old user", text)
				}
			}
		})
	}
}
