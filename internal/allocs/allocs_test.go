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

// TestBytes counts the bytes the code allocates, and LeastBytes the
// fewest of its tries, as Least does for allocations.
func TestBytes(t *testing.T) {
	if n := Bytes(func() { sink = make([]byte, 4096) }); n < 4096 {
		t.Errorf("4096 bytes counted as %d", n)
	}
	extra := 1
	n := LeastBytes(5, func() func() {
		sink = make([]byte, 1<<16) // preparing: not counted
		return func() {
			if extra > 0 { // the first try allocates more, as if another goroutine did
				sink = make([]byte, 1<<14)
				extra = 0
			}
			sink = make([]byte, 4096)
		}
	})
	if n < 4096 || n >= 1<<14 {
		t.Errorf("LeastBytes got %d bytes, want those of the 4096-byte allocation", n)
	}
}
