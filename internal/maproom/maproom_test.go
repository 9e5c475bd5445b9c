package maproom

import (
	"testing"

	"github.com/msimircd/msimircd/internal/allocs"
)

// TestFor: the map keeps its entries, and taking the n entries it was
// sized for allocates (next to) nothing more.
func TestFor(t *testing.T) {
	m := map[int]string{1: "a", 2: "b"}
	m = For(m, 100)
	if len(m) != 2 || m[1] != "a" || m[2] != "b" {
		t.Fatalf("entries changed: %v", m)
	}
	n := allocs.Of(func() {
		for i := range 100 {
			m[10+i] = "x"
		}
	})
	if n > 2 { // room for another goroutine's
		t.Errorf("%d allocations adding the entries it was sized for, want at most 2", n)
	}
	big := map[int]int{1: 1, 2: 2, 3: 3}
	if got := For(big, 2); len(got) != 3 {
		t.Fatalf("a map larger than n: %v", got)
	}
}

// TestRoom: values from a room are distinct and zeroed, come from one
// allocation, and keep coming (one by one) once it is used up.
func TestRoom(t *testing.T) {
	type rec struct{ n int }
	var r Room[rec]
	r.Make(10)
	seen := make(map[*rec]bool, 16)
	n := allocs.Of(func() {
		for range 10 {
			v := r.Take()
			if *v != (rec{}) || seen[v] {
				t.Fatalf("got %v (seen %v), want a new zero value", *v, seen[v])
			}
			v.n = 1
			seen[v] = true
		}
	})
	if n > 2 { // room for another goroutine's
		t.Errorf("%d allocations taking 10 values, want next to none", n)
	}
	if v := r.Take(); *v != (rec{}) || seen[v] {
		t.Fatalf("after the room: got %v (seen %v), want a new zero value", *v, seen[v])
	}
}
