package channel

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/msimircd/msimircd/store"
)

// stackedDeletes is a store that notes, for each DeleteQueued, whether
// the memory's writer made it (writeAll is on its goroutine's stack).
type stackedDeletes struct {
	store.Store
	mu       sync.Mutex
	byWriter []bool
}

func (f *stackedDeletes) DeleteQueued(ctx context.Context, user, email string, ids ...int64) error {
	buf := make([]byte, 64<<10)
	stack := string(buf[:runtime.Stack(buf, false)])
	f.mu.Lock()
	f.byWriter = append(f.byWriter, strings.Contains(stack, "(*userMemory).writeAll"))
	f.mu.Unlock()
	return f.Store.DeleteQueued(ctx, user, email, ids...)
}

// TestQueueReadRetriesDeletesOnTheWriter: the delete, tried again, of
// queued IMs sent whose delete had failed is the memory's writer's, as
// every write a session makes as it goes on: a read of the queue (an
// account's login, or its making) does not call the store for it on the
// session's goroutine. The read leaves them out, and once the delete is
// through they are gone from the store.
func TestQueueReadRetriesDeletesOnTheWriter(t *testing.T) {
	const email = "alice@msim.test"
	r := newRig(t, nil)
	st := sqliteStore(t)
	faults := &queueFaults{Store: st, deleteFails: true}
	sd := &stackedDeletes{Store: faults}
	mem := storedMemory(t, r, sd)
	q := mem.queue(email, queuedIM{uid: 7, nick: "bob", text: "sent", record: true})
	mem.unqueue(email, q.id) // sent; its delete fails
	mem.settle()
	faults.mu.Lock()
	faults.deleteFails = false
	faults.mu.Unlock()

	if qs := mem.queuedFor(email); len(qs) != 0 {
		t.Errorf("read as queued: %+v; want none (sent)", qs)
	}
	mem.settle()
	sd.mu.Lock()
	byWriter := sd.byWriter
	sd.mu.Unlock()
	if len(byWriter) != 2 || !byWriter[1] {
		t.Errorf("deletes (made by the memory's writer): %v; want the first (unqueue) and its retry both the writer's", byWriter)
	}
	if qs, err := st.QueuedIMs(context.Background(), "alice", email); err != nil || len(qs) != 0 {
		t.Errorf("still in the store: %+v, %v", qs, err)
	}
}

// TestQueueOfAccountWithoutRowIsEmpty: an account the store has no row
// for (deleted by another instance, say) has nothing queued there: its
// read is not a failure, and the user is not told their queue could not
// be read.
func TestQueueOfAccountWithoutRowIsEmpty(t *testing.T) {
	const email = "alice@msim.test"
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	st := sqliteStore(t)
	mem, err := loadUserMemory(st, r.s.user, quietLog(), false) // every read goes to the store
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteAccount(context.Background(), "alice", email); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.readQueued(email); err != nil {
		t.Errorf("read of the queue of an account with no row: %v; want none queued, no error", err)
	}
	sessionOn(r, r.irc, mem)
	r.s.start()
	if got := r.irc.said("could not be read"); len(got) != 0 {
		t.Errorf("told %q; want nothing", got)
	}
	if r.s.queueUnread[r.a] {
		t.Error("the account's queue is marked unread")
	}
}
