package channel_test

import (
	"testing"

	"gopkg.in/irc.v4"
)

// TestSetnameShared: the real name one of a user's clients sets with
// SETNAME is the user's other clients' too (a SETNAME line to those with
// setname, WHO for all), and that of a client attaching later, as a
// bouncer keeps one real name for all of them.
func TestSetnameShared(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", "setname")
	phone := dial(t, st.ircAddr, "alice", "alice/phone:pw-alice", "setname")
	phone.sync()
	plain := dial(t, st.ircAddr, "alice", "alice/plain:pw-alice")
	plain.sync()

	alice.send("SETNAME :Alice Liddell")
	alice.expect("SETNAME", func(m *irc.Message) bool { return m.Trailing() == "Alice Liddell" })
	phone.expect("SETNAME", func(m *irc.Message) bool { return m.Name == "alice" && m.Trailing() == "Alice Liddell" })

	laptop := dial(t, st.ircAddr, "alice", "alice/laptop:pw-alice")
	laptop.sync()
	for _, c := range []*ircClient{phone, plain, laptop} {
		c.send("WHO alice")
		c.expect("352", func(m *irc.Message) bool {
			if m.Trailing() != "0 Alice Liddell" {
				t.Errorf("%s: WHO alice: got %q, want the real name Alice Liddell", c.nick, m.Trailing())
			}
			return true
		})
	}
}
