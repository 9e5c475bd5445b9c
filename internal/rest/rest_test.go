package rest

import (
	"sync/atomic"
	"testing"
)

type counter struct{ n atomic.Int32 }

func (c *counter) Rest() { c.n.Add(1) }

// TestAll: All asks every registered reader once, and no removed one; a
// reader may remove itself (or another) from inside Rest.
func TestAll(t *testing.T) {
	base := Len()
	a, b := &counter{}, &counter{}
	self := &selfRemoving{}
	Add(a)
	Add(b)
	Add(self)
	Remove(b)
	if got := Len(); got != base+2 {
		t.Fatalf("Len: got %d, want %d", got, base+2)
	}
	if got := All(); got < 2 {
		t.Fatalf("All asked %d, want at least 2", got)
	}
	if a.n.Load() != 1 || b.n.Load() != 0 || self.n.Load() != 1 {
		t.Errorf("Rest calls: a %d, b %d, self %d; want 1, 0, 1", a.n.Load(), b.n.Load(), self.n.Load())
	}
	if got := Len(); got != base+1 {
		t.Errorf("Len after a reader removed itself: got %d, want %d", got, base+1)
	}
	Remove(a)
}

type selfRemoving struct{ counter }

func (s *selfRemoving) Rest() {
	s.counter.Rest()
	Remove(s)
}
