package channel

import (
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// TestLoopGivesEachSourceATurn: the session's goroutine takes what waits
// in turn, so an IRC client's flood of messages does not hold up an IM
// that came from MSIM meanwhile. (The select it had before chose among
// them at random: it took more than two of the flood first about one time
// in eight.)
func TestLoopGivesEachSourceATurn(t *testing.T) {
	r, cl, _, at := bobOnline(t)

	// Room is left for what the login's work posts meanwhile.
	flood := cap(r.s.events) - 8
	for i := range flood {
		r.s.events <- newIRCInput(at, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "flood", MsgID: string(rune('a' + i%26)), Time: time.Now()})
	}
	sentBefore := -1
	cl.mu.Lock()
	cl.taken = func(int) { sentBefore = len(cl.sent) } // TakeEvents holds cl.mu
	cl.mu.Unlock()
	cl.push(msim.IMEvent{From: 7, Text: "meanwhile"})

	r.s.afterEnd = func() {}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.s.loop()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl.mu.Lock()
		n, took := len(cl.sent), sentBefore
		cl.mu.Unlock()
		if n >= flood && took >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d of %d IRC messages sent, MSIM's IM taken after %d", n, flood, took)
		}
		time.Sleep(time.Millisecond)
	}
	r.s.cancel()
	<-done
	if sentBefore > 2 {
		t.Errorf("the IM from MSIM was taken after %d of the %d IRC messages waiting with it, want at most 2", sentBefore, flood)
	}
}
