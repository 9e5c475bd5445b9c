package ircd

import (
	"testing"
	"time"
)

// TestRoomDoesNotWaitForClientLock: Room takes only the queue's lock, so
// a backend asking it before each delivery never waits for a command the
// reader runs under the client's lock.
func TestRoomDoesNotWaitForClientLock(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	addBud(t, c)
	c.Deliver(Delivery{From: "bud", Text: "hi"})
	got := make(chan int, 1)
	c.mu.Lock()
	go func() { got <- c.Room() }()
	select {
	case n := <-got:
		c.mu.Unlock()
		if want := c.srv.cfg.SendQ - 1; n != want {
			t.Fatalf("got Room %d, want %d", n, want)
		}
	case <-time.After(10 * time.Second):
		c.mu.Unlock()
		t.Fatal("Room waited for the client's lock")
	}
}

// TestRoomCountsHeldLines: the lines held while a labeled JOIN's reply
// waits count against Room as the queued ones do, before and after they
// are queued.
func TestRoomCountsHeldLines(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	addBud(t, c)
	sendQ := c.srv.cfg.SendQ
	if got := c.Room(); got != sendQ {
		t.Fatalf("got Room %d with nothing queued, want %d", got, sendQ)
	}
	c.mu.Lock()
	c.joinsWaiting = 1
	c.mu.Unlock()
	for _, text := range []string{"one", "two", "three"} {
		if !c.Deliver(Delivery{From: "bud", Text: text}) {
			t.Fatalf("Deliver(%s) = false, want true", text)
		}
	}
	if q, got := c.queued(), c.Room(); q != 0 || got != sendQ-3 {
		t.Fatalf("3 lines held: got %d queued, Room %d; want 0 and %d", q, got, sendQ-3)
	}
	c.mu.Lock()
	c.joinsWaiting = 0
	c.releaseHeld()
	c.mu.Unlock()
	if q, got := c.queued(), c.Room(); q != 3 || got != sendQ-3 {
		t.Fatalf("3 lines released: got %d queued, Room %d; want 3 and %d", q, got, sendQ-3)
	}
	c.giveBack(c.take())
	if got := c.Room(); got != sendQ {
		t.Fatalf("got Room %d once written, want %d", got, sendQ)
	}
	c.shutdown("test", false)
	if got := c.Room(); got != 0 {
		t.Fatalf("got Room %d once closing, want 0", got)
	}
}
