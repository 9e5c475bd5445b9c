package channel_test

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
)

// TestMonitorFollowsPresence: an IRC client's notify list (MONITOR, or
// ISON for clients that poll) follows a buddy's MSIM presence, not the
// buddy's place in the world: a buddy who is offline is offline, with
// show_offline too, and invisible looks offline; away is still on.
func TestMonitorFollowsPresence(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	alice.command("&alice", "set show_offline true", "show_offline = true")
	alice.sync()

	monOn := func(m *irc.Message) bool {
		return m.Command == irc.RPL_MONONLINE && strings.HasPrefix(m.Trailing(), "bob!bob@msim")
	}
	monOff := func(m *irc.Message) bool { return m.Command == irc.RPL_MONOFFLINE && m.Trailing() == "bob" }
	ison := func(want string) {
		t.Helper()
		alice.send("ISON bob")
		if m := alice.expect(irc.RPL_ISON, nil); m.Trailing() != want {
			t.Errorf("ISON bob: got %q, want %q", m.Trailing(), want)
		}
	}

	alice.send("MONITOR + bob")
	alice.expect(irc.RPL_MONONLINE, monOn)
	ison("bob")

	bob.send("AWAY :gone fishing") // away is still on the network
	alice.expect("AWAY", isAway("bob", "gone fishing"))
	bob.command("&bob", "status invisible", "invisible")
	alice.expect(irc.RPL_MONOFFLINE, monOff)
	ison("")
	bob.command("&bob", "status online", "online")
	alice.expect(irc.RPL_MONONLINE, monOn)

	bob.send("QUIT :bye")
	alice.expect(irc.RPL_MONOFFLINE, monOff)
	if n := alice.names("&alice"); !contains(n, "bob") {
		t.Fatalf("NAMES with show_offline: got %v, want bob kept", n)
	}
	ison("")
	alice.send("MONITOR S")
	alice.expect(irc.RPL_MONOFFLINE, monOff)

	login(t, st, "bob", allCaps...)
	alice.expect(irc.RPL_MONONLINE, monOn)
	ison("bob")
}
