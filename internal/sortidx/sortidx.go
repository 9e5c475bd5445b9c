// Package sortidx keeps values sorted by a key for lookups by binary
// search: what a map does for the small indexes the bridge (channel) and
// ircd keep per user (buddies by nick and by uid, virtual users by nick),
// in the memory of one slice of the values, which hold their own keys.
// Adding or removing a value moves the ones after it, so it suits indexes
// of up to a few thousand values that are read far more than changed.
// Owns nothing; not safe for concurrent use.
package sortidx

import "slices"

// Index is a set of values of type T sorted by a key of type K that each
// value holds: cmp(v, k) compares v's key with k, as strings.Compare
// does. Values with equal keys are not allowed. The zero Index is not
// usable: make one with New.
type Index[T, K any] struct {
	s   []T
	cmp func(T, K) int
}

// New returns an empty index ordered by cmp.
func New[T, K any](cmp func(T, K) int) Index[T, K] { return Index[T, K]{cmp: cmp} }

// Len is the number of values.
func (x *Index[T, K]) Len() int { return len(x.s) }

// All returns the values in key order. The slice is the index's own: the
// caller must not change it, and it is valid until the index changes.
func (x *Index[T, K]) All() []T { return x.s }

// Get returns the value with key k.
func (x *Index[T, K]) Get(k K) (T, bool) {
	i, ok := slices.BinarySearchFunc(x.s, k, x.cmp)
	if !ok {
		var zero T
		return zero, false
	}
	return x.s[i], true
}

// Add inserts v under key k (v's own); false, and nothing changed, when a
// value with that key is there already.
func (x *Index[T, K]) Add(v T, k K) bool {
	i, ok := slices.BinarySearchFunc(x.s, k, x.cmp)
	if ok {
		return false
	}
	x.s = slices.Insert(x.s, i, v)
	return true
}

// Delete removes the value with key k and returns it.
func (x *Index[T, K]) Delete(k K) (T, bool) {
	i, ok := slices.BinarySearchFunc(x.s, k, x.cmp)
	if !ok {
		var zero T
		return zero, false
	}
	v := x.s[i]
	x.s = slices.Delete(x.s, i, i+1) // zeroes the freed end: it holds no value
	return v, true
}

// Grow makes room for n more values, so that adding them allocates
// nothing more; the room is exact, as a contact list's size is known.
func (x *Index[T, K]) Grow(n int) {
	if n > cap(x.s)-len(x.s) {
		s := make([]T, len(x.s), len(x.s)+n)
		copy(s, x.s)
		x.s = s
	}
}
