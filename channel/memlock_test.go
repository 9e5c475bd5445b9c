package channel

import (
	"context"
	"testing"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// lockProbe is a store that looks, in its reads of held IMs and its takes
// of notes (which write: they remove rows), whether the memory's mutex is
// held, from another goroutine as the memory's other users would; if it
// is not, it runs meanwhile after the store's own read, as a hold or a
// note that comes while the read is under way.
type lockProbe struct {
	store.Store
	m                       *userMemory
	heldLocked, notesLocked bool
	meanwhile               func()
}

func (p *lockProbe) locked() bool {
	got := make(chan bool)
	go func() {
		ok := p.m.mu.TryLock()
		if ok {
			p.m.mu.Unlock()
		}
		got <- !ok
	}()
	return <-got
}

func (p *lockProbe) then() {
	if f := p.meanwhile; f != nil {
		p.meanwhile = nil
		f()
	}
}

// probed makes the store's call (whose result goes in locked: whether
// the memory's mutex was held as it began) and, with the mutex free,
// runs meanwhile after it.
func probed[T any](p *lockProbe, locked *bool, call func() (T, error)) (T, error) {
	if *locked = p.locked(); *locked {
		return call()
	}
	v, err := call()
	p.then()
	return v, err
}

func (p *lockProbe) HeldIMs(ctx context.Context, user, email string) ([]store.HeldIM, error) {
	return probed(p, &p.heldLocked, func() ([]store.HeldIM, error) { return p.Store.HeldIMs(ctx, user, email) })
}

func (p *lockProbe) TakeNotes(ctx context.Context, user string) ([]string, error) {
	return probed(p, &p.notesLocked, func() ([]string, error) { return p.Store.TakeNotes(ctx, user) })
}

// TestStoreReadsWithoutTheMemoryLock: the memory's reads of held IMs and
// takes of notes, which write to the store (they remove rows that cannot
// be read, or the notes), are made without its mutex, which the session
// and ircd's reports take, so that a database busy with another writer
// stalls neither. An IM held, or a note written, while the read is under
// way and after it looked is not missed by the next login (mayHeld,
// mayNotes stay set).
func TestStoreReadsWithoutTheMemoryLock(t *testing.T) {
	p := &lockProbe{Store: sqliteStore(t)}
	const email = "ann@example.com"
	u := User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}}}
	m, err := loadUserMemory(p, u, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	p.m = m

	// Something was held and shown: the next read may find some.
	id, _ := m.holdEvent(email, seqEvent{ev: msim.IMEvent{From: 7, Text: "shown"}, seq: m.nextSeq()})
	m.dropHeld(email, id)
	p.meanwhile = func() { m.hold(email, msim.IMEvent{From: 7, Text: "meanwhile"}) }
	if got := m.heldFor(email); len(got) != 0 {
		t.Errorf("held: %d, want none", len(got))
	}
	if p.heldLocked {
		t.Error("the memory's mutex was held while the store read the held IMs")
	}
	if got := m.heldFor(email); len(got) != 1 || got[0].ev.(msim.IMEvent).Text != "meanwhile" {
		t.Errorf("held at the next login: %v; want the IM held during the read before", got)
	}

	m.addNote("taken")
	p.meanwhile = func() { m.addNote("meanwhile") }
	if got := m.takeNotes(); len(got) != 1 || got[0] != "taken" {
		t.Errorf("notes: %q, want [taken]", got)
	}
	if p.notesLocked {
		t.Error("the memory's mutex was held while the store took the notes")
	}
	if got := m.takeNotes(); len(got) != 1 || got[0] != "meanwhile" {
		t.Errorf("notes at the next login: %q; want the note written during the take before", got)
	}
}
