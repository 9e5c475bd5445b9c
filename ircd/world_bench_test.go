package ircd

import (
	"fmt"
	"testing"
)

// BenchmarkContactList: what a contact list of 1,000 costs a client's
// world: room made, every user added (offline), joined to a channel the
// client is in, then set back and voiced, as the bridge does at a login;
// the lines it queues are taken and dropped.
func BenchmarkContactList(b *testing.B) {
	const n = 1000
	nicks := make([]string, n)
	for i := range nicks {
		nicks[i] = fmt.Sprintf("buddy%04d", (i*7919)%n) // not in order
	}
	for b.Loop() {
		c, done := fuzzClient(b)
		c.Reserve("&bitlbee", n)
		for _, nick := range nicks {
			if err := c.AddUser(User{Nick: nick, Mask: "u@msim.1", RealName: "Buddy", Away: "Offline", Offline: true}); err != nil {
				b.Fatal(err)
			}
			c.JoinUser("&bitlbee", nick, false)
		}
		for _, nick := range nicks {
			c.SetPresence(nick, "", true)
			c.SetVoice("&bitlbee", nick, true)
		}
		c.take()
		done()
	}
}
