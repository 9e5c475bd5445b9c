package ircd

import (
	"fmt"
	"testing"

	"github.com/msimircd/msimircd/internal/allocs"
)

// TestReserve: after Reserve, adding the users it made room for (each
// with its Mask, which the client keeps as it is given) and
// joining them to the channel allocates nothing per user (the nicks are
// made beforehand; the client is not in the channel, so it is sent no
// lines), and the world is the same as without it: the users already
// there stay, and a user beyond the room is still added.
func TestReserve(t *testing.T) {
	const n = 100
	nicks := make([]string, n+1)
	for i := range nicks {
		nicks[i] = fmt.Sprintf("buddy%03d", i)
	}
	c, done := fuzzClient(t)
	defer done()
	c.Reserve("#other", n)
	allocs := allocs.Of(func() {
		for i := range n {
			if err := c.AddUser(User{Nick: nicks[i], Mask: "u@msim", RealName: "Buddy"}); err != nil {
				t.Fatal(err)
			}
			c.JoinUser("#other", nicks[i], i%2 == 0)
		}
	})
	if allocs > n/10 { // room for another goroutine's few, not one per user
		t.Errorf("%d allocations for %d users, want at most %d (another goroutine's), none of them the users'", allocs, n, n/10)
	}
	if err := c.AddUser(User{Nick: nicks[n], RealName: "One more"}); err != nil {
		t.Fatalf("a user beyond the room: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nick := range append([]string{"tom", "ann", "ghost"}, nicks...) {
		if c.findUser(nick) == nil {
			t.Errorf("%s missing", nick)
		}
	}
	if ch := c.channel("#other"); ch.members.len() != n {
		t.Errorf("#other has %d members, want %d", ch.members.len(), n)
	}
	if ch := c.channel("&bitlbee"); ch.members.len() != 2 {
		t.Errorf("&bitlbee has %d members, want 2", ch.members.len())
	}
}
