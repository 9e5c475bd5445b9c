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
	n := allocs.Least(5, func() func() {
		m := For(map[int]string{1: "a", 2: "b"}, 100)
		return func() {
			for i := range 100 {
				m[10+i] = "x"
			}
		}
	})
	if n > 0 {
		t.Errorf("%d allocations adding the entries it was sized for, want none", n)
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
	var seen map[*rec]bool
	fresh := true
	n := allocs.Least(5, func() func() {
		r = Room[rec]{}
		r.Make(10)
		seen = make(map[*rec]bool, 16)
		return func() {
			for range 10 {
				v := r.Take()
				if *v != (rec{}) || seen[v] {
					fresh = false
				}
				v.n = 1
				seen[v] = true
			}
		}
	})
	if !fresh {
		t.Fatal("a value from the room was not new and zero")
	}
	if n > 0 {
		t.Errorf("%d allocations taking 10 values, want none", n)
	}
	if v := r.Take(); *v != (rec{}) || seen[v] {
		t.Fatalf("after the room: got %v (seen %v), want a new zero value", *v, seen[v])
	}
}
