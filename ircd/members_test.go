package ircd

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMemberList: against a map of the same operations, a member list
// finds every member with its status and no one else, and stays in the
// order of the case-folded nicks, renames included (taken out under the
// old nick, put back under the new, as RenameUser does).
func TestMemberList(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	users := make([]*vuser, 60)
	for i := range users {
		users[i] = &vuser{Nick: fmt.Sprintf("N%c[%d]", 'a'+rune(i%26), i)}
	}
	var m memberList
	m.grow(10)
	model := map[*vuser]status{}
	for step := range 5000 {
		u := users[rng.IntN(len(users))]
		switch rng.IntN(4) {
		case 0, 1:
			st := status(rng.IntN(4))
			m.set(u, st)
			model[u] = st
		case 2:
			_, was := model[u]
			if got := m.remove(u); got != was {
				t.Fatalf("step %d: remove %s: got %v, want %v", step, u.Nick, got, was)
			}
			delete(model, u)
		case 3: // a rename
			st, in := m.get(u)
			if in {
				m.remove(u)
			}
			u.Nick = fmt.Sprintf("n%c{%d}", 'A'+rune(rng.IntN(26)), step)
			if in {
				m.set(u, st)
			}
		}
		if m.len() != len(model) {
			t.Fatalf("step %d: %d members, want %d", step, m.len(), len(model))
		}
		if !slices.IsSortedFunc(m.us, func(a, b *vuser) int { return compareFolded(a.Nick, b.Nick) }) {
			t.Fatalf("step %d: members out of order", step)
		}
		for _, v := range users {
			st, ok := m.get(v)
			want, wantOK := model[v]
			if ok != wantOK || st != want || m.has(v) != wantOK {
				t.Fatalf("step %d: %s: got %v %v, want %v %v", step, v.Nick, st, ok, want, wantOK)
			}
		}
	}
}
