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

// TestQueuedAfterAFailedWriteStored: an IM typed while the link was down
// that the store failed to take is kept in memory (and the user told);
// those typed after it, once the store is back, go to the store, so that
// a restart before the link comes back loses only the one, not the rest
// of the outage's. (They are read, to be sent, before the one in memory.)
func TestQueuedAfterAFailedWriteStored(t *testing.T) {
	const email = "ann@example.com"
	st := &queueFailsOnce{Store: sqliteStore(t)}
	u := User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}}}
	m, err := loadUserMemory(st, u, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	st.failNext.Store(true)
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "first", record: true})
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "second", record: true})
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "third", record: true})
	if got := m.takeNotes(); len(got) != 1 {
		t.Errorf("notes: %q, want one, for the IM the store failed to take", got)
	}
	if got, want := queuedTexts(m.queuedFor(email)), []string{"second", "third", "first"}; !slices.Equal(got, want) {
		t.Errorf("queued: %q, want %q", got, want)
	}
	again, err := loadUserMemory(st, u, quietLog(), true) // a restart, the memory lost
	if err != nil {
		t.Fatal(err)
	}
	if got, want := queuedTexts(again.queuedFor(email)), []string{"second", "third"}; !slices.Equal(got, want) {
		t.Errorf("queued after a restart: %q, want %q (those typed after the failure in the store)", got, want)
	}
}
