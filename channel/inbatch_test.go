package channel

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
)

// handIRC hands ins to h as ircd's reader does with lines read together:
// one Messages call, or a Message each from a handler without it.
func handIRC(h ircd.Handler, ins []ircd.Input) {
	if mh, ok := h.(ircd.MessagesHandler); ok {
		mh.Messages(ins)
		return
	}
	for _, in := range ins {
		h.Message(in)
	}
}

// imBurst is n IMs to bob, as the client's lines read together give them.
func imBurst(n int) []ircd.Input {
	ins := make([]ircd.Input, n)
	for i := range ins {
		ins[i] = ircd.Input{Command: "PRIVMSG", Target: "bob", Text: fmt.Sprintf("im %d", i), MsgID: fmt.Sprintf("m%d", i), Time: time.Now()}
	}
	return ins
}

// TestMessagesWakeTheSessionOnce: the messages of lines read together
// are one event for the session (posted once), which wakes its waiting
// loop; the loop sends them to MSIM in order. (The wake-up channel holds
// one: extra wake-ups would not show in it; the single event does.)
func TestMessagesWakeTheSessionOnce(t *testing.T) {
	r, cl, _, at := bobOnline(t)
	select { // a wake-up the login's steps left
	case <-r.s.wake:
	default:
	}
	for len(r.s.events) > 0 { // what the login's steps left
		r.s.handleQueued(<-r.s.events)
	}
	r.s.rmu.Lock()
	r.s.waiting = true // as while the loop waits
	r.s.rmu.Unlock()
	const n = 8
	handIRC(at, imBurst(n))
	// A worker the login started may post its result meanwhile: only the
	// events that carry the client's messages count, and every event goes
	// back to the queue in its order for the loop below.
	var queued []event
	for len(r.s.events) > 0 {
		queued = append(queued, <-r.s.events)
	}
	var carrying, inputs int
	for _, ev := range queued {
		switch ev := ev.(type) {
		case *ircBatch:
			carrying++
			inputs += len(ev.ins)
		case *ircInput:
			carrying++
			inputs++
		}
		r.s.events <- ev
	}
	if carrying != 1 || inputs != n {
		t.Errorf("%d messages read together: %d events queued holding %d messages, want 1 holding %d", n, carrying, inputs, n)
	}
	if got := len(r.s.wake); got != 1 {
		t.Errorf("%d messages read together: %d wake-ups, want the loop woken", n, got)
	}
	r.s.rmu.Lock()
	r.s.waiting = false
	r.s.rmu.Unlock()
	cl.mu.Lock()
	cl.sent = nil
	cl.mu.Unlock()
	defer runLoop(r)()
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("im %d", i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl.mu.Lock()
		sent := slices.Clone(cl.sent)
		cl.mu.Unlock()
		if len(sent) >= n {
			if !slices.Equal(sent, want) {
				t.Fatalf("sent to MSIM %q, want %q", sent, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: sent to MSIM %q, want %q", sent, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMessagesRefusedAsTheSessionEnds: messages read together are each
// told not sent, in order, when the session ends before it handles them
// and when they come after its end, as messages posted alone are.
func TestMessagesRefusedAsTheSessionEnds(t *testing.T) {
	r := newRig(t, nil)
	irc := newFakeIRC()
	at := attachNamed(r, irc, "phone")
	const n = 4
	handIRC(at, imBurst(n)) // queued, not handled
	r.s.cancel()
	r.s.shutdown()
	handIRC(at, imBurst(n)) // after the end
	var want []string
	for range 2 {
		for i := range n {
			want = append(want, fmt.Sprintf("bob was not handled: your session ended first. The message: im %d", i))
		}
	}
	var got []string
	for _, l := range irc.said("was not handled") {
		_, text, _ := strings.Cut(l, "Message NOT sent: ")
		got = append(got, text)
	}
	if !slices.Equal(got, want) {
		t.Errorf("told %q, want %q", got, want)
	}
	if len(r.s.events) != 0 {
		t.Errorf("%d events left in the queue, want none", len(r.s.events))
	}
}

// BenchmarkSessionBusyBurst: as BenchmarkSessionBusy, with the IRC
// client's messages coming eight to a read, as at full load: handed to
// the session one by one (alone) or as ircd hands lines read together
// (together). An op is one IM.
func BenchmarkSessionBusyBurst(b *testing.B) {
	for _, mode := range []string{"alone", "together"} {
		b.Run(mode, func(b *testing.B) {
			r, cl, _, at, _ := imWorkRig(b, "off")
			cl.mu.Lock()
			cl.sent = make([]string, 0, 1<<16)
			cl.mu.Unlock()
			defer runLoop(r)()
			const burst = 8
			ins := make([]ircd.Input, burst)
			for i := range ins {
				ins[i] = ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "hello there, how are you today?", MsgID: "m1", Time: time.Now()}
			}
			var h ircd.Handler = at
			if mode == "alone" {
				h = messageOnly{at}
			}
			b.ReportAllocs()
			posted, sent := 0, 0
			for b.Loop() {
				if posted%burst == 0 {
					handIRC(h, ins)
				}
				if posted++; posted%4096 == 0 {
					sent += cl.takeSent()
				}
			}
			posted = (posted + burst - 1) / burst * burst
			for sent += cl.takeSent(); sent < posted; sent += cl.takeSent() {
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
}

// messageOnly is a Handler without Messages.
type messageOnly struct{ ircd.Handler }
