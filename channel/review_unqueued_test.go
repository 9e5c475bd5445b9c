package channel

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// With several instances on the store, a queued IM sent at a login whose
// delete from the store failed is not sent again by the instance that
// serves the user next: the session's end, before the lease goes, deletes
// it again (the ids were kept in memory only, which the end forgets). If
// the store still refuses, the end logs how many are still marked queued,
// and the user's note says a move to another instance may send them again.
func TestSessionEndRetriesUnqueuedDeletes(t *testing.T) {
	t.Run("the store answers again", func(t *testing.T) { sessionEndUnqueued(t, true) })
	t.Run("the store still fails", func(t *testing.T) { sessionEndUnqueued(t, false) })
}

func sessionEndUnqueued(t *testing.T, recovers bool) {
	const email = "alice@msim.test"
	st := sqliteStore(t)
	faults := &queueFaults{Store: st}
	r, hook, mem := leasedInstanceRig(t, faults)
	b := r.s.b
	u := r.s.user
	mem.queue(email, queuedIM{uid: 7, nick: "bob", text: "typed while away", record: true, at: time.Now()})
	faults.mu.Lock()
	faults.deleteFails = true // the database fails the delete of what is sent
	faults.mu.Unlock()
	sessionOn(r, r.irc, mem)
	runsSession(r)
	cl := &fakeMSIM{buddies: bobContact()}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	mem.settle() // the failed delete
	if n := sentCount("typed while away", cl); n != 1 {
		t.Fatalf("sent at the login: %d; want once", n)
	}
	var note string
	for _, n := range mem.takeNotes() {
		if strings.Contains(n, "could not mark as sent") {
			note = n
		}
	}
	if !strings.Contains(note, "another gateway instance") {
		t.Errorf("the note of the failed delete: %q; want it to say a move to another gateway instance may send them again", note)
	}

	faults.mu.Lock()
	faults.deleteFails = !recovers
	faults.mu.Unlock()
	r.s.shutdown()
	b.ended(r.s) // forgets the memory, then releases the lease

	// The next holder of the user reads the queue.
	next, err := loadUserMemory(st, u, quietLog(), false)
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	for _, q := range next.queuedFor(email) {
		queued = append(queued, q.text)
	}
	var logged []string
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "marked queued") {
			logged = append(logged, e.Message)
		}
	}
	if recovers {
		if len(queued) != 0 {
			t.Errorf("the next instance reads %q as queued; want nothing (it was sent)", queued)
		}
		if len(logged) != 0 {
			t.Errorf("logged %q; want nothing left", logged)
		}
		return
	}
	if !slices.Equal(queued, []string{"typed while away"}) {
		t.Errorf("the next instance reads %q as queued; want the one whose delete still fails", queued)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "1 ") {
		t.Errorf("logged %q; want one line counting the IM still marked queued", logged)
	}
}
