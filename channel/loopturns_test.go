package channel

import (
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// TestLoopGivesEachSourceATurn: the session's goroutine takes what waits
// in turn, so an IRC client's flood of messages does not hold up an IM
// that came from MSIM meanwhile: it is taken after at most one of them.
// (The select the loop had before chose among them at random: it took two
// or more of the flood first about one round in four, so the rounds below
// all pass with it about once in a hundred runs.)
func TestLoopGivesEachSourceATurn(t *testing.T) {
	for round := range 16 {
		if n, flood := floodRound(t); n > 1 {
			t.Fatalf("round %d: the IM from MSIM was taken after %d of the %d IRC messages waiting with it, want at most 1", round, n, flood)
		}
	}
}

// floodRound runs a session's loop on a flood of IRC messages with an IM
// from MSIM waiting too, and returns how many of the flood went to MSIM
// before the loop took the IM.
func floodRound(t *testing.T) (before, flood int) {
	r, cl, _, at := bobOnline(t)
	// Room is left for what the login's work posts meanwhile.
	flood = cap(r.s.events) - 8
	for i := range flood {
		r.s.events <- newIRCInput(at, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "flood", MsgID: string(rune('a' + i%26)), Time: time.Now()})
	}
	before = -1
	cl.mu.Lock()
	cl.taken = func(int) { before = len(cl.sent) } // TakeEvents holds cl.mu
	cl.mu.Unlock()
	cl.push(msim.IMEvent{From: 7, Text: "meanwhile"})

	defer runLoop(r)()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl.mu.Lock()
		n, took := len(cl.sent), before
		cl.mu.Unlock()
		if n >= flood && took >= 0 {
			return took, flood
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d of %d IRC messages sent, MSIM's IM taken after %d", n, flood, took)
		}
		time.Sleep(time.Millisecond)
	}
}

// runLoop runs the rig's session loop on a goroutine of its own, and
// returns what ends it and waits for it.
func runLoop(r *rig) (end func()) {
	r.s.afterEnd = func() {}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.s.loop()
	}()
	return func() {
		r.s.cancel()
		r.s.kick() // the end is work (run registers this; the rig does not call run)
		<-done
	}
}

// signalIRC tells got of each delivery.
type signalIRC struct {
	*fakeIRC
	got chan struct{}
}

func (s *signalIRC) Deliver(d ircd.Delivery) bool {
	if d.Sent != nil {
		d.Sent(true)
	}
	s.got <- struct{}{}
	return true
}

// BenchmarkSessionWake: an IM from MSIM reaches a session whose goroutine
// waits for work, one at a time: the MSIM client's wake-up, the session
// taking the IM and handing it to the IRC client (a fake that reports it
// at once), and the session waiting again.
func BenchmarkSessionWake(b *testing.B) {
	r, cl, q, _ := bobOnline(b)
	irc := &signalIRC{fakeIRC: q.fakeIRC, got: make(chan struct{})}
	r.s.irc = irc
	r.s.cl.ats = []*attachment{newAttachment(irc, r.s, nil)}
	defer runLoop(r)()
	var ev msim.Event = msim.IMEvent{From: 7, Text: "hello"}
	b.ReportAllocs()
	for b.Loop() {
		cl.push(ev)
		<-irc.got
	}
}
