// Package maproom makes room for values about to be added, allocated
// together. Used by the bridge (channel) and ircd before they add a
// contact list; owns nothing.
package maproom

// Min is the least number of entries worth making room for: below it the
// entries' own allocations cost about as much.
const Min = 8

// Room hands out values allocated together in one array, then one at a
// time once it is used up. The array stays as long as any of its values
// is kept, so it suits values made together that go together (a contact
// list's). The zero Room allocates each value on its own.
type Room[T any] struct{ free []T }

// Make makes room for n values; what was left of the last room is given up.
func (r *Room[T]) Make(n int) { r.free = make([]T, n) }

// Take returns a zeroed value from the room, or a new one once it is used up.
func (r *Room[T]) Take() *T {
	if len(r.free) == 0 {
		r.free = nil
		return new(T)
	}
	v := &r.free[0]
	r.free = r.free[1:]
	return v
}
