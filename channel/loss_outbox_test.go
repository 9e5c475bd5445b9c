package channel

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// A flood of live IMs past the outbox's bound, for a client that reads
// slower than they arrive, loses none: each one past the bound is held for
// the user's next connection, and the user is told so once, not once per
// IM (a notice per IM would go to the very SendQ that overflows). Once the
// client has read what waited, the held IMs are given (not left for the
// next login, behind newer IMs): every IM is shown once, in the order it
// came. A second flood is told again.
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
	for flood := range 2 {
		irc.full = true
		live := make([]msim.Event, n)
		for i := range live {
			live[i] = msim.IMEvent{From: 7, Text: text(flood*n + i)}
		}
		cl.push(live...)
		r.stepUntil("the IMs taken", func() bool {
			cl.mu.Lock()
			defer cl.mu.Unlock()
			return len(cl.events) == 0
		})
		r.s.mem.settle()

		held := heldTexts(r.s.mem, email)
		for _, want := range []string{text(flood*n + n - 2), text(flood*n + n - 1)} {
			if !strings.Contains(strings.Join(held, "\n"), want) {
				t.Errorf("flood %d: %q past the bound is not held (held: %d IMs)", flood, want, len(held))
			}
		}
		if got := irc.said("was lost"); len(got) != 0 {
			t.Errorf("told lost: %d notices, the first %q; want the IMs held", len(got), got[0])
		}
		if got := irc.said("held for you"); len(got) != flood+1 {
			t.Errorf("after flood %d, told %d times that IMs are held (%q); want once per flood", flood, len(got), got)
		}

		irc.full = false // the client reads again: what waited is shown, then what was held
		for irc.report(); r.s.out.drained.Swap(false); irc.report() {
			r.s.pumpOut()
		}
		r.s.mem.settle()
		var shown []string
		for _, l := range irc.said("PRIVMSG bob : live ") {
			s, _ := strings.CutPrefix(l, "PRIVMSG bob : ")
			shown = append(shown, s)
		}
		var want []string
		for i := range (flood + 1) * n {
			want = append(want, text(i))
		}
		if !slices.Equal(shown, want) {
			missing, twice := 0, 0
			seen := map[string]int{}
			for _, s := range shown {
				seen[s]++
			}
			for _, w := range want {
				switch seen[w] {
				case 0:
					missing++
				case 1:
				default:
					twice++
				}
			}
			t.Errorf("after flood %d: of %d IMs, %d were not shown and %d were shown twice, or out of order (%d shown; the last: %q)",
				flood, len(want), missing, twice, len(shown), shown[max(0, len(shown)-3):])
		}
		if held := heldTexts(r.s.mem, email); len(held) != 0 {
			t.Errorf("after flood %d: still held once the client read what waited: %q", flood, held)
		}
	}
}

// TestOutboxFloodHeldGivenOnceAtRelogin: IMs a flood held past the
// outbox's bound are given once each when the account logs in again
// while what waited is still on its way: the login gives them, and the
// outbox, emptied meanwhile by a client that reads again, does not give
// them a second time.
func TestOutboxFloodHeldGivenOnceAtRelogin(t *testing.T) {
	r := newRig(t, nil)
	irc := &stalledIRC{fakeIRC: r.irc, full: true}
	r.s.irc = irc
	email := r.a.cfg.Email
	bob := []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}
	cl := &fakeMSIM{buddies: bob}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })

	const n = maxHeld + 3
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
	if held := heldTexts(r.s.mem, email); len(held) != 2 {
		t.Fatalf("held past the bound: %q; want 2", held)
	}

	// The client reads one IM, and the session hands it the next; then
	// it reads on, but before the session's turn for that the link is
	// lost and back: the login's first held IM finds room in the outbox,
	// and its pumpOut empties it.
	irc.report()
	r.afterReports()
	irc.full = false
	irc.report()
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork})
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	again := &fakeMSIM{buddies: bob}
	r.okDial(again)
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp })
	for irc.report(); r.s.out.drained.Swap(false); irc.report() {
		r.s.afterReports()
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
	for i := range n {
		if seen[text(i)] != 1 {
			t.Errorf("%q shown or held %d times; want once", text(i), seen[text(i)])
		}
	}
}
