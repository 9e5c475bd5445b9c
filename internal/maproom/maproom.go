// Package maproom sizes a map for entries about to be added. Used by the
// bridge (channel) and ircd before they add a contact list; owns nothing.
package maproom

import "maps"

// For returns m, or a copy of it sized for n more entries when it is not
// larger than n already: Go's maps grow only as entries come, each step a
// new table, and a copy costs no more than the entries' own growth.
func For[K comparable, V any](m map[K]V, n int) map[K]V {
	if len(m) > n {
		return m
	}
	g := make(map[K]V, len(m)+n)
	maps.Copy(g, m)
	return g
}
