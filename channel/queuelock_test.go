package channel

import (
	"context"
	"errors"
	"testing"

	"github.com/msimircd/msimircd/store"
)

// queueProbe is lockProbe for the queued IMs: it looks, in the store's
// queue of an IM (an insert) and its read of the queued IMs, whether the
// memory's mutex is held; if it is not, it runs meanwhile after the
// store's own write or read. While failDelete is set, its deletes of
// queued IMs fail.
type queueProbe struct {
	*lockProbe
	queueLocked, readLocked bool
	failDelete              bool
}

func (p *queueProbe) QueueIM(ctx context.Context, user, email string, im store.QueuedIM) (store.QueuedIM, error) {
	return probed(p.lockProbe, &p.queueLocked, func() (store.QueuedIM, error) { return p.Store.QueueIM(ctx, user, email, im) })
}

func (p *queueProbe) QueuedIMs(ctx context.Context, user, email string) ([]store.QueuedIM, error) {
	return probed(p.lockProbe, &p.readLocked, func() ([]store.QueuedIM, error) { return p.Store.QueuedIMs(ctx, user, email) })
}

func (p *queueProbe) DeleteQueued(ctx context.Context, user, email string, ids ...int64) error {
	if p.failDelete {
		return errors.New("database is locked")
	}
	return p.Store.DeleteQueued(ctx, user, email, ids...)
}

func queuedTexts(qs []queuedIM) []string {
	var out []string
	for _, q := range qs {
		out = append(out, q.text)
	}
	return out
}

// TestQueueWithoutTheMemoryLock: the memory's queue of an IM typed while
// the link is down (a store insert) and its read of the queued IMs are
// made without its mutex, which the session and ircd's reports take, so
// that a database busy with another writer stalls neither. An IM queued
// while a read is under way and after it looked is not missed by the
// next login (mayQueued stays set), and one sent whose delete goes
// through while the read is under way is not given again.
func TestQueueWithoutTheMemoryLock(t *testing.T) {
	p := &queueProbe{lockProbe: &lockProbe{Store: sqliteStore(t)}}
	const email = "ann@example.com"
	u := User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}}}
	m, err := loadUserMemory(p, u, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	p.m = m

	// One queued and sent: the next read may find some.
	sent := m.queue(email, queuedIM{uid: 7, text: "sent"})
	if p.queueLocked {
		t.Error("the memory's mutex was held while the store queued an IM")
	}
	m.unqueue(email, sent.id)
	p.meanwhile = func() { m.queue(email, queuedIM{uid: 7, text: "meanwhile"}) }
	q, err := m.readQueued(email)
	if err != nil || len(q) != 0 {
		t.Errorf("queued: %q, %v; want none", queuedTexts(q), err)
	}
	if p.readLocked {
		t.Error("the memory's mutex was held while the store read the queued IMs")
	}
	q, _ = m.readQueued(email)
	if got := queuedTexts(q); len(got) != 1 || got[0] != "meanwhile" {
		t.Fatalf("queued at the next login: %q; want the IM queued during the read before", got)
	}

	// Sent, and its delete fails: left out of the reads. Its delete
	// goes through (as at the session's end: storeLeftovers) while a
	// read is under way, after the store's read found it.
	m.unqueue(email, q[0].id)
	p.failDelete = true
	m.settle()
	if q, _ := m.readQueued(email); len(q) != 0 {
		t.Fatalf("queued after a failed delete: %q; want none", queuedTexts(q))
	}
	p.meanwhile = func() {
		p.failDelete = false
		ctx, cancel := m.ctx()
		defer cancel()
		if _, err := m.deleteUnqueued(ctx, email); err != nil {
			t.Errorf("delete again: %v", err)
		}
	}
	p.failDelete = true // the read's own retry fails too
	if q, _ := m.readQueued(email); len(q) != 0 {
		t.Errorf("queued while its delete went through: %q; want none (it was sent)", queuedTexts(q))
	}
	if p.meanwhile != nil {
		t.Error("the read of the queued IMs was made under the memory's mutex")
	}
}
