package channel

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/msimircd/msimircd/store"
)

// queueFailsOnce is a store whose next insert of a queued IM fails
// while failNext is set, which that insert clears.
type queueFailsOnce struct {
	store.Store
	failNext atomic.Bool
}

func (f *queueFailsOnce) QueueIM(ctx context.Context, user, email string, im store.QueuedIM) (store.QueuedIM, error) {
	if f.failNext.Swap(false) {
		return store.QueuedIM{}, errStoreDown
	}
	return f.Store.QueueIM(ctx, user, email, im)
}

// TestQueuedInTheOrderTypedAfterAFailedWrite: an IM typed while the link
// was down that the store failed to take (kept in memory), and one typed
// after it once the store is back, are read (to be sent at the login) in
// the order typed, and the user is told that both are kept in memory;
// and so are they once the session's end has written what the memory
// kept to the store, as a restart reads them, even if the first of
// those writes fails.
func TestQueuedInTheOrderTypedAfterAFailedWrite(t *testing.T) {
	const email = "ann@example.com"
	want := []string{"first", "second"}
	st := &queueFailsOnce{Store: sqliteStore(t)}
	u := User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}}}
	m, err := loadUserMemory(st, u, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	st.failNext.Store(true)
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "first", record: true})
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "second", record: true})
	if got := queuedTexts(m.queuedFor(email)); !slices.Equal(got, want) {
		t.Errorf("queued: %q, want %q", got, want)
	}
	if got := m.takeNotes(); len(got) != 2 {
		t.Errorf("notes: %q, want one for each IM kept in memory", got)
	}

	st.failNext.Store(true)
	if w := m.storeLeftovers(); w.err == nil {
		t.Fatal("the session's end wrote what was kept; want its first write failed")
	}
	if w := m.storeLeftovers(); w.err != nil || w.queued != 2 {
		t.Fatalf("the session's end wrote %d queued IMs (%v); want both", w.queued, w.err)
	}
	again, err := loadUserMemory(st, u, quietLog(), true) // a restart
	if err != nil {
		t.Fatal(err)
	}
	if got := queuedTexts(again.queuedFor(email)); !slices.Equal(got, want) {
		t.Errorf("queued after a restart: %q, want %q", got, want)
	}
}
