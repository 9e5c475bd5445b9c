package channel_test

import (
	"testing"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
)

// TestIdentifyReplaysWhatTheClientMissed: a client that connects without
// its password and identifies, with no session of its user running, is
// replayed what it missed since it last left, by its name, as a
// connection with its password is; else its position, saved as it
// leaves, would pass what it was never shown.
func TestIdentifyReplaysWhatTheClientMissed(t *testing.T) {
	ss := startSelfService(t, channel.RegistrationOpen, fastFailures(), func(c *channel.Config) { c.History = true })
	addr := ss.gw.ircAddr
	bob := msimUser(t, ss.stk, "bob")

	ivy := dial(t, addr, "ivy", "", allCaps...)
	ivy.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	ivy.private("register ivy-pw", "The nick ivy is registered")
	ivy.expectFrom("PRIVMSG", "root", "Logged in to MSIM as ivy (")
	ivy.add("&ivy", "bob")
	ivy.quit()
	waitLeft(t, ss.gw.bridge, "ivy")
	ivyUID := lookupUID(t, bob, "ivy")

	phone := dial(t, addr, "ivy", "ivy/phone:ivy-pw", allCaps...)
	phone.expectFrom("PRIVMSG", "root", "Logged in to MSIM as ivy (")
	phone.quit()
	waitLeft(t, ss.gw.bridge, "ivy")

	desk := dial(t, addr, "ivy", "ivy/desk:ivy-pw", allCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM as ivy (")
	sendIMs(t, bob, ivyUID, "while the phone was away")
	desk.expectFrom("PRIVMSG", "bob", "while the phone was away")
	desk.quit()
	waitLeft(t, ss.gw.bridge, "ivy")

	// The phone again, naming itself by USER, without its password.
	nc := mustDial(t, addr)
	t.Cleanup(func() { nc.Close() })
	phone = &ircClient{t: t, nick: "ivy", conn: nc, r: irc.NewReader(nc), w: irc.NewWriter(nc)}
	phone.send("NICK ivy")
	phone.send("USER ivy/phone 0 * :Ivy")
	phone.expect("001", nil)
	phone.expectFrom("PRIVMSG", "root", "identify")
	phone.private("identify ivy-pw", "Password accepted")
	phone.expectFrom("PRIVMSG", "bob", "while the phone was away")
	for _, m := range phone.sync() {
		if m.Command == "PRIVMSG" && m.Name == "bob" {
			t.Errorf("replayed twice: %v", m)
		}
	}
}
