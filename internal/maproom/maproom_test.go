package maproom

import (
	"testing"

	"github.com/msimircd/msimircd/internal/allocs"
)

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
