package allocs

import "testing"

var sink []byte

// TestOf counts what the code allocates.
func TestOf(t *testing.T) {
	if n := Of(func() { sink = make([]byte, 64) }); n < 1 {
		t.Errorf("one allocation counted as %d", n)
	}
}

// TestLeast: the fewest of the tries counts, each prepared afresh, and
// preparing counts nothing.
func TestLeast(t *testing.T) {
	tries, extra := 0, 3
	n := Least(5, func() func() {
		tries++
		sink = make([]byte, 1024) // preparing: not counted
		return func() {
			for range extra { // the first try allocates more, as if another goroutine did
				sink = make([]byte, 64)
			}
			sink = make([]byte, 64)
			extra = 0
		}
	})
	if n != 1 {
		t.Errorf("Least got %d allocations, want 1", n)
	}
	if tries != 5 {
		t.Errorf("prepared %d times, want 5", tries)
	}
	tries = 0
	if n := Least(5, func() func() { tries++; return func() {} }); n != 0 || tries != 1 {
		t.Errorf("no allocations: got %d after %d tries, want 0 after 1", n, tries)
	}
}
