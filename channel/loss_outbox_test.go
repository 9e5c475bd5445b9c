package channel

import (
	"fmt"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// A flood of live IMs past the outbox's bound, for a client that reads
// slower than they arrive, loses none: each one past the bound is held for
// the user's next connection, and the user is told so once, not once per
// IM (a notice per IM would go to the very SendQ that overflows). Every IM
// is either shown or held, once.
func TestOutboxFullLiveIMIsHeld(t *testing.T) {
	r := newRig(t, nil)
	irc := &stalledIRC{fakeIRC: r.irc, full: true}
	r.s.irc = irc
	email := r.a.cfg.Email
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })

	const n = maxHeld + 3 // one handed to ircd, maxHeld wait, two past the bound
	text := func(i int) string { return fmt.Sprintf("live %d.", i) }
	live := make([]msim.Event, n)
	for i := range live {
		live[i] = msim.IMEvent{From: 7, Text: text(i)}
	}
	cl.push(live...)
	r.stepUntil("the IMs taken", func() bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return len(cl.events) == 0
	})
	r.s.mem.settle()

	held := heldTexts(r.s.mem, email)
	for _, want := range []string{text(n - 2), text(n - 1)} {
		if !strings.Contains(strings.Join(held, "\n"), want) {
			t.Errorf("%q past the bound is not held (held: %d IMs)", want, len(held))
		}
	}
	if got := irc.said("was lost"); len(got) != 0 {
		t.Errorf("told lost: %d notices, the first %q; want the IMs held", len(got), got[0])
	}
	if got := irc.said("held for you"); len(got) != 1 {
		t.Errorf("told %d times that IMs are held (%q); want once", len(got), got)
	}

	irc.full = false // the client reads again: what waited is shown
	for irc.report(); r.s.out.drained.Swap(false); irc.report() {
		r.s.pumpOut()
	}
	r.s.mem.settle()
	seen := map[string]int{}
	for _, l := range irc.said("PRIVMSG bob : live ") {
		shown, _ := strings.CutPrefix(l, "PRIVMSG bob : ")
		seen[shown]++
	}
	for _, h := range heldTexts(r.s.mem, email) {
		seen[h]++
	}
	missing, twice := 0, 0
	for i := range n {
		switch seen[text(i)] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	if missing > 0 || twice > 0 {
		t.Errorf("of %d IMs, %d were neither shown nor held, %d were both or twice", n, missing, twice)
	}
}
