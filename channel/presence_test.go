package channel

import (
	"strings"
	"testing"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// TestPresenceReadFromClientTable: the bridge keeps no copy of a buddy's
// presence; blist and info show what the MSIM client's table holds, and a
// presence event applies the table's latest (a newer one whose event is
// still on its way included).
func TestPresenceReadFromClientTable(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusAway, StatusText: "lunch"}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	blist := func() string {
		r.t.Helper()
		before := len(r.irc.said("bob (bob, "))
		r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: r.a.channel, Text: "blist all"})
		got := r.irc.said("bob (bob, ")
		if len(got) != before+1 {
			r.t.Fatalf("blist: got %q, want one more line about bob", got)
		}
		return got[len(got)-1]
	}
	for _, tc := range []struct {
		name string
		set  func()
		want string
	}{
		{"from the login's list", func() {}, "away: lunch"},
		{"the table changed, its event not yet taken", func() {
			cl.mu.Lock()
			cl.presence = map[msim.UID]msim.PresenceEvent{7: {UID: 7, Status: msim.StatusIdle, Text: "brb"}}
			cl.mu.Unlock()
		}, "idle: brb"},
		{"an older event applies the table's latest", func() {
			cl.mu.Lock()
			cl.events = append(cl.events, msim.PresenceEvent{UID: 7, Status: msim.StatusAway, Text: "old"})
			cl.presence[7] = msim.PresenceEvent{UID: 7, Status: msim.StatusOnline}
			cl.mu.Unlock()
			r.s.takeMSIM()
		}, "online"},
	} {
		tc.set()
		if got := blist(); !strings.HasSuffix(strings.ToLower(got), tc.want) {
			t.Errorf("%s: blist got %q, want it to end in %q", tc.name, got, tc.want)
		}
	}
	if bd := r.a.buddy(7); bd == nil || !bd.inChan || !bd.voiced {
		t.Errorf("bob online: got %+v, want in the channel, voiced", bd)
	}
}

// TestEventBufferLetsABurstGo: the session keeps its buffer of MSIM events
// for reuse after a few, and lets a burst's go (a login's presences).
func TestEventBufferLetsABurstGo(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	for _, tc := range []struct {
		events int
		kept   bool
	}{{3, true}, {64, false}, {16, true}} {
		for i := range tc.events {
			cl.mu.Lock()
			cl.events = append(cl.events, msim.PresenceEvent{UID: msim.UID(100 + i), Status: msim.StatusOnline})
			cl.mu.Unlock()
		}
		r.s.takeMSIM()
		if kept := cap(r.s.evbuf) > 0; kept != tc.kept {
			t.Errorf("after %d events: buffer kept %v, want %v", tc.events, kept, tc.kept)
		}
	}
}
