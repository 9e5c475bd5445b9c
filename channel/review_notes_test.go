package channel

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/msimircd/msimircd/ircd"
)

// sendqIRC is a connection with a SendQ as ircd keeps one: what it is
// given waits there, in lines (a message is cut into pieces of at most
// 512 bytes, as ircd cuts it), until the client reads it (read); a
// delivery past its bound cuts the client off, as ircd does ("SendQ
// exceeded"): what waited is discarded and reported not written, and
// nothing more is taken.
type sendqIRC struct {
	*fakeIRC
	mu      sync.Mutex
	bound   int // the SendQ, in lines
	waiting []sendqEntry
	lines   int // in waiting
	cut     bool
	written []string // the texts written, in order
}

type sendqEntry struct {
	d     ircd.Delivery
	lines int
}

// wireLines is how many IRC messages ircd sends for text, from the
// service nick: each line of it, cut to fit 512 bytes with its prefix.
func wireLines(text string) int {
	const room = 512 - len(":root!root@msimircd NOTICE alice :\r\n")
	n := 0
	for _, l := range strings.Split(text, "\n") {
		n += max(1, (len(l)+room-1)/room)
	}
	return n
}

func (f *sendqIRC) Room() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return 0
	}
	return f.bound - f.lines
}

func (f *sendqIRC) Deliver(d ircd.Delivery) bool {
	n := wireLines(d.Text)
	f.mu.Lock()
	if f.cut {
		f.mu.Unlock()
		if d.Sent != nil {
			go d.Sent(false) // as ircd's reportLater
		}
		return false
	}
	if f.lines+n > f.bound {
		f.cut = true
		lost := f.waiting
		f.waiting, f.lines = nil, 0
		f.mu.Unlock()
		for _, e := range append(lost, sendqEntry{d: d}) {
			if e.d.Sent != nil {
				e.d.Sent(false)
			}
		}
		return false
	}
	f.waiting = append(f.waiting, sendqEntry{d, n})
	f.lines += n
	f.mu.Unlock()
	return true
}

// read has the client read up to n lines: what they take is written,
// and reported so.
func (f *sendqIRC) read(n int) (took int) {
	f.mu.Lock()
	var done []ircd.Delivery
	for len(f.waiting) > 0 && (took == 0 || took+f.waiting[0].lines <= n) {
		e := f.waiting[0]
		f.waiting = f.waiting[1:]
		f.lines -= e.lines
		took += e.lines
		f.written = append(f.written, e.d.Text)
		done = append(done, e.d)
	}
	f.mu.Unlock()
	for _, d := range done {
		if d.Sent != nil {
			d.Sent(true)
		}
	}
	return took
}

func (f *sendqIRC) isCut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut
}

// TestManyLongNotesDoNotCutTheClientOff: store.MaxNotes notes of several
// lines each, more than a client's SendQ (ircd's default) holds at once,
// are told a few at a time as the client reads them, as IMs are paced,
// not all at once as it connects: the client is not cut off ("SendQ
// exceeded", after which every note would be kept again and the next
// connection cut off the same way), and each note is told once, in the
// order kept, none left in the store. So as the session starts with the
// connection, and as a connection attaches to a session running on.
func TestManyLongNotesDoNotCutTheClientOff(t *testing.T) {
	for _, at := range []string{"start", "attach"} {
		t.Run(at, func(t *testing.T) { manyLongNotes(t, at) })
	}
}

func manyLongNotes(t *testing.T, at string) {
	const sendQ = 4096 // ircd's default
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	st := sqliteStore(t)
	storedMemory(t, r, st) // the user's row, for the notes below
	ctx := context.Background()
	var want []string
	for i := range 1000 { // store.MaxNotes
		n := fmt.Sprintf("Note %04d: %s", i, strings.Repeat("a long note about an IM not sent ", 60))
		if err := st.AddNote(ctx, "alice", n); err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	mem := storedMemory(t, r, st) // with the notes
	c := &sendqIRC{fakeIRC: newFakeIRC(), bound: sendQ}
	switch at {
	case "start":
		sessionOn(r, c, mem)
		r.s.start()
	default:
		sessionOn(r, nil, mem)
		r.s.start()
		if err := r.s.attach(newAttachment(c, r.s, nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	if lines := wireLines(want[0]) * len(want); lines <= sendQ {
		t.Fatalf("the notes take %d lines, which the SendQ (%d) holds: no test", lines, sendQ)
	}
	for range 100000 { // the client reads 50 lines at a time, the session goes on
		if c.isCut() || c.read(50) == 0 && !r.s.out.drained.Load() {
			break
		}
		r.afterReports()
	}
	if c.isCut() {
		t.Fatalf("the client was cut off (SendQ exceeded) after %d notes written", len(c.written))
	}
	told := map[string]int{}
	var order []string
	for _, w := range c.written {
		if strings.HasPrefix(w, "Note ") {
			told[w]++
			order = append(order, w)
		}
	}
	missing, twice := 0, 0
	for _, w := range want {
		switch told[w] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	if missing > 0 || twice > 0 {
		t.Errorf("of %d notes, %d were not told, %d were told twice", len(want), missing, twice)
	}
	for i := range min(len(order), len(want)) {
		if order[i] != want[i] {
			t.Errorf("told out of order: note %d is %.10q; want %.10q", i, order[i], want[i])
			break
		}
	}
	if left := mem.takeNotes(); len(left) != 0 {
		t.Errorf("%d notes still kept once told", len(left))
	}
}
