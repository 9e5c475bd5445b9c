package store

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlowHook: a write that waits for the database's lock longer than
// the bound calls the hook while it waits; one that does not, never; and
// hook calls never overlap.
func TestSlowHook(t *testing.T) {
	db := newSQLiteDB(t)
	var calls, inHook, overlapped atomic.Int32
	release := make(chan struct{})
	hook := func() {
		if inHook.Add(1) > 1 {
			overlapped.Add(1)
		}
		defer inHook.Add(-1)
		calls.Add(1)
		<-release // slow, so that a second slow operation finds it under way
	}
	s := WithSlowWriteHook(db.open(t, testKey(1)), 50*time.Millisecond, hook)
	mustCreate(t, s, "alice")
	if got := calls.Load(); got != 0 {
		t.Fatalf("hook calls after a quick operation: got %d, want 0", got)
	}

	r, _ := db.raw(t)
	tx, err := r.BeginTx(ctx, nil) // _txlock=immediate: holds the write lock
	check(t, "begin", err)
	var wg sync.WaitGroup
	for _, name := range []string{"bob", "carol"} {
		wg.Go(func() {
			if _, err := s.CreateUser(context.Background(), name, testHash()); err != nil {
				t.Errorf("CreateUser %s once the lock was released: %v", name, err)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no hook call while two operations waited for the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond) // the second waiter's bound passes too
	check(t, "rollback", tx.Rollback())
	close(release)
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Errorf("hook calls: got %d, want 1 (the second came while the first was under way)", got)
	}
	if overlapped.Load() != 0 {
		t.Error("hook calls overlapped")
	}
	if _, err := s.User(context.Background(), "carol"); err != nil {
		t.Errorf("User carol: %v", err)
	}
}

// TestSlowHookSkipsReads: an operation that only reads never calls the
// hook, however long it takes; one that writes does.
func TestSlowHookSkipsReads(t *testing.T) {
	var calls atomic.Int32
	h := WithSlowWriteHook(nil, 10*time.Millisecond, func() { calls.Add(1) }).(*slowHook)
	slow := func() { time.Sleep(60 * time.Millisecond) }
	for _, op := range []string{opUser, opLoadUser, opHistory, opHistorySince, opClientPosition} {
		h.around(context.Background(), op, slow)
	}
	if got := calls.Load(); got != 0 {
		t.Errorf("hook calls for slow reads: got %d, want 0", got)
	}
	h.around(context.Background(), opSetClientPosition, slow)
	if got := calls.Load(); got != 1 {
		t.Errorf("hook calls for a slow write: got %d, want 1", got)
	}
}

// TestReadOpsAreOps: every operation said to only read is one of the
// store's.
func TestReadOpsAreOps(t *testing.T) {
	all := slices.Concat(allOps, historyOps, leaseOps, failureOps)
	for op := range readOps {
		if !slices.Contains(all, op) {
			t.Errorf("readOps has %q, which is no operation", op)
		}
	}
}
