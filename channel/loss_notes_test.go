package channel

import (
	"fmt"
	"slices"
	"testing"
)

// TestNotesKeptWhenConnectionDropsBeforeShown: a note (here, of an IM
// not sent) that the connection it is given to never writes (Deliver
// refuses it, or its lines are discarded with the connection's SendQ)
// is kept for the next connection, which is told it once; a connection
// after that is not told it again. So as the session starts with the
// connection, and as the connection attaches to a session running on;
// with the notes in memory, and in the store.
func TestNotesKeptWhenConnectionDropsBeforeShown(t *testing.T) {
	const note = "Not sent to bob (the MSIM link closed): typed x"
	for _, stored := range []bool{false, true} {
		for _, queued := range []bool{false, true} {
			for _, at := range []string{"start", "attach"} {
				t.Run(fmt.Sprintf("stored=%v/queued=%v/%s", stored, queued, at), func(t *testing.T) {
					r := newRig(t, func(c *Config) { c.AlwaysOn = true })
					mem := newUserMemory()
					if stored {
						mem = storedMemory(t, r, sqliteStore(t))
					}
					mem.note(note)
					dropping := &closableIRC{fakeIRC: newFakeIRC(), closing: true, queued: queued}
					if at == "start" {
						sessionOn(r, dropping, mem)
						r.s.start()
					} else {
						sessionOn(r, nil, mem)
						r.s.start()
						if err := r.s.attach(newAttachment(dropping, r.s, nil), nil); err != nil {
							t.Fatal(err)
						}
					}
					r.s.closed(r.s.cl.ats[0]) // the connection ends

					next := newFakeIRC()
					if err := r.s.attach(newAttachment(next, r.s, nil), nil); err != nil {
						t.Fatal(err)
					}
					if got := next.said(note); len(got) != 1 {
						t.Errorf("the next connection was told %q; want the note once", got)
					}
					r.s.closed(r.s.cl.ats[0])
					after := newFakeIRC()
					if err := r.s.attach(newAttachment(after, r.s, nil), nil); err != nil {
						t.Fatal(err)
					}
					if got := after.said(note); len(got) != 0 {
						t.Errorf("told again to the connection after: %q", got)
					}
					if n := mem.takeNotes(); slices.Contains(n, note) {
						t.Errorf("still kept: %q", n)
					}
				})
			}
		}
	}
}
