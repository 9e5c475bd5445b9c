package maproom

import (
	"runtime"
	"testing"
)

// TestFor: the map keeps its entries, and taking the n entries it was
// sized for allocates nothing more.
func TestFor(t *testing.T) {
	m := map[int]string{1: "a", 2: "b"}
	m = For(m, 100)
	if len(m) != 2 || m[1] != "a" || m[2] != "b" {
		t.Fatalf("entries changed: %v", m)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range 100 {
		m[10+i] = "x"
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n > 2 {
		t.Errorf("%d allocations adding the entries it was sized for, want none", n)
	}
	big := map[int]int{1: 1, 2: 2, 3: 3}
	if got := For(big, 2); len(got) != 3 {
		t.Fatalf("a map larger than n: %v", got)
	}
}
