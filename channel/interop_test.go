package channel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"gopkg.in/irc.v4"
)

// TestStatusWords: the login line counts "1 buddy", and status after
// disconnect does not call the account online.
func TestStatusWords(t *testing.T) {
	st := startStack(t)
	c := dial(t, st.ircAddr, "alice", "pw-alice", allCaps...)
	c.joinedControl("&alice")
	if m := c.expectFrom("PRIVMSG", "root", "Logged in to MSIM"); m.Trailing() != "Logged in to MSIM as alice (uid 1000000), 1 buddy." {
		t.Errorf("login line: got %q", m.Trailing())
	}
	c.command("&alice", "disconnect", "")
	c.sync()
	m := c.command("&alice", "status", "alice@msimircd.local is")
	if want := "alice@msimircd.local is offline (link: disconnected); it will be online when it connects."; m.Trailing() != want {
		t.Errorf("status after disconnect: got %q, want %q", m.Trailing(), want)
	}
}

// TestAllowBringsTheBuddyBack: unblocking a buddy puts them back on the
// list, in the channel, with presence flowing again.
func TestAllowBringsTheBuddyBack(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	alice.send("PRIVMSG &alice :block bob")
	alice.expectAll(saysRoot("Blocked bob"), isCmd("PART", "bob"))
	alice.send("PRIVMSG &alice :allow bob")
	alice.expectAll(saysRoot("Unblocked bob; they are on your buddy list again"), func(m *irc.Message) bool {
		return m.Command == "JOIN" && m.Name == "bob"
	})
	bob.send("AWAY :lunch")
	alice.expect("AWAY", func(m *irc.Message) bool { return m.Name == "bob" && m.Trailing() == "lunch" })
	bob.send("AWAY")
	alice.expect("AWAY", func(m *irc.Message) bool { return m.Name == "bob" && len(m.Params) == 0 })
}

// aliceWithDave starts a stack where IRC user alice has MSIM user dave as
// a buddy; it returns alice's client, dave's and alice's uid.
func aliceWithDave(t *testing.T) (*ircClient, *msim.Client, msim.UID) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	dave := msimUser(t, st, "dave")
	alice.add("&alice", "dave")
	return alice, dave, lookupUID(t, dave, "alice")
}

// TestStoppedTypingOnce: a buddy's repeated "stopped typing" reaches IRC
// once.
func TestStoppedTypingOnce(t *testing.T) {
	alice, dave, uid := aliceWithDave(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, typing := range []bool{true, false, false} {
		if err := dave.SendTyping(ctx, uid, typing); err != nil {
			t.Fatal(err)
		}
	}
	if err := dave.SendIM(ctx, uid, "barrier"); err != nil {
		t.Fatal(err)
	}
	got := typingUntilIM(alice, "dave")
	if strings.Join(got, " ") != "active done" {
		t.Errorf("typing notifications: got %q, want active then done once", got)
	}
}

// typingUntilIM reads c's lines up to the next PRIVMSG from nick and
// returns the +typing values of the TAGMSGs from nick before it.
func typingUntilIM(c *ircClient, nick string) []string {
	var got []string
	c.expect("", func(m *irc.Message) bool {
		if m.Command == "TAGMSG" && m.Name == nick {
			got = append(got, m.Tags["+typing"])
		}
		return m.Command == "PRIVMSG" && m.Name == nick
	})
	return got
}

// TestTypingAfterAnIM: an IM ends a buddy's typing for the IRC client too,
// so typing that starts again after it is shown again.
func TestTypingAfterAnIM(t *testing.T) {
	alice, dave, uid := aliceWithDave(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []string
	for _, text := range []string{"first", "second"} {
		if err := dave.SendTyping(ctx, uid, true); err != nil {
			t.Fatal(err)
		}
		if err := dave.SendIM(ctx, uid, text); err != nil {
			t.Fatal(err)
		}
		got = append(got, typingUntilIM(alice, "dave")...)
	}
	if strings.Join(got, " ") != "active active" {
		t.Errorf("typing notifications: got %q, want active before each IM", got)
	}
}

// TestAddSelfRefused: a user cannot put their own account on its buddy
// list.
func TestAddSelfRefused(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	alice.command("&alice", "add alice", "Adding alice failed: that is you")
	if n := alice.names("&alice"); contains(n, "+alice_") || len(n) != 3 {
		t.Errorf("NAMES after adding oneself: got %v, want alice, @root and +tom", n)
	}
}
