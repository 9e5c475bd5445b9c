package channel

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// stalledBobRig is a rig logged in, with bob (uid 7) online, whose IRC
// client has no room in its SendQ (irc.full): one IM at a time is handed
// over.
func stalledBobRig(t *testing.T) (*rig, *stalledIRC, *fakeMSIM) {
	t.Helper()
	r := newRig(t, nil)
	irc := &stalledIRC{fakeIRC: r.irc, full: true}
	r.s.irc = irc
	cl := &fakeMSIM{buddies: bobContact()}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	return r, irc, cl
}

// liveText is the text of the live IM i of a flood.
func liveText(i int) string { return fmt.Sprintf("live %d.", i) }

// takeLive has bob send the live IMs from to from+n-1 (liveText), and
// steps r's session until it has taken them all from cl; then lets its
// memory settle.
func takeLive(r *rig, cl *fakeMSIM, from, n int) {
	r.t.Helper()
	live := make([]msim.Event, n)
	for i := range live {
		live[i] = msim.IMEvent{From: 7, Text: liveText(from + i)}
	}
	cl.push(live...)
	r.stepUntil("the IMs taken", func() bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return len(cl.events) == 0
	})
	r.s.mem.settle()
}

// A flood of live IMs past the outbox's bound, for a client that reads
// slower than they arrive, loses none: each one past the bound is held for
// the user's next connection, and the user is told so once, not once per
// IM (a notice per IM would go to the very SendQ that overflows). Once the
// client has read what waited, the held IMs are given (not left for the
// next login, behind newer IMs): every IM is shown once, in the order it
// came. A second flood is told again.
func TestOutboxFullLiveIMIsHeld(t *testing.T) {
	r, irc, cl := stalledBobRig(t)
	email := r.a.cfg.Email

	const n = maxHeld + 3 // one handed to ircd, maxHeld wait, two past the bound
	for flood := range 2 {
		irc.full = true
		takeLive(r, cl, flood*n, n)

		held := heldTexts(r.s.mem, email)
		for _, want := range []string{liveText(flood*n + n - 2), liveText(flood*n + n - 1)} {
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
			want = append(want, liveText(i))
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
	r, irc, cl := stalledBobRig(t)
	email := r.a.cfg.Email

	const n = maxHeld + 3
	takeLive(r, cl, 0, n)
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
	again := &fakeMSIM{buddies: bobContact()}
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
		if seen[liveText(i)] != 1 {
			t.Errorf("%q shown or held %d times; want once", liveText(i), seen[liveText(i)])
		}
	}
}
