package ircd

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMemberList: against a map of the same operations, a member list
// finds every member with its status and no one else, and stays in the
// order of the users' ids, whatever their nicks become.
func TestMemberList(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	users := make([]*vuser, 60)
	for i := range users {
		users[i] = &vuser{Nick: fmt.Sprintf("N%c[%d]", 'a'+rune(i%26), i), id: uint32(len(users) - i)}
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
		case 3: // a rename changes nothing
			u.Nick = fmt.Sprintf("n%c{%d}", 'A'+rune(rng.IntN(26)), step)
		}
		if m.len() != len(model) {
			t.Fatalf("step %d: %d members, want %d", step, m.len(), len(model))
		}
		if !slices.IsSortedFunc(m.us, func(a, b *vuser) int { return cmp.Compare(a.id, b.id) }) {
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

// TestUserIDsWrap: once a connection has given out the last user id, the
// users are numbered again and every channel's members stay found, in
// order, with their status; without it the ids after the wrap would be
// those of users still there.
func TestUserIDsWrap(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	if err := c.CreateChannel("#wrap", ""); err != nil {
		t.Fatal(err)
	}
	voiced := map[string]bool{}
	add := func(nick string, voice bool) {
		t.Helper()
		if err := c.AddUser(User{Nick: nick}); err != nil {
			t.Fatal(err)
		}
		c.JoinUser("#wrap", nick, voice)
		voiced[nick] = voice
	}
	add("early", true)
	c.mu.Lock()
	early := c.findUser("early").id
	c.lastUserID = math.MaxUint32 - 1
	c.mu.Unlock()
	add("last", false)         // takes the last id
	for i := range early + 1 { // past the wrap, up to early's id
		add(fmt.Sprintf("w%d", i), i%2 == 0)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.channel("#wrap")
	if !slices.IsSortedFunc(ch.members.us, func(a, b *vuser) int { return cmp.Compare(a.id, b.id) }) {
		t.Fatal("members out of order after the ids wrapped")
	}
	for nick, v := range voiced {
		st, ok := ch.members.get(c.findUser(nick))
		if !ok || st.has(stVoice) != v {
			t.Errorf("%s: member %v, status %v; want a member, voiced %v", nick, ok, st, v)
		}
	}
	if ch.members.len() != len(voiced) {
		t.Errorf("%d members, want %d", ch.members.len(), len(voiced))
	}
}
