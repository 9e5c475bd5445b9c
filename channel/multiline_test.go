package channel_test

import (
	"strings"
	"testing"

	"gopkg.in/irc.v4"
)

var multilineCaps = []string{"batch", "draft/multiline", "server-time", "message-tags", "echo-message"}

// multilineStack starts a stack with alice and bob, who take multiline
// messages, and carol, who does not, both on alice's list, and alice's
// phone, which takes them too.
func multilineStack(t *testing.T) (alice, bob, carol, phone *ircClient) {
	t.Helper()
	st := startStack(t)
	alice = login(t, st, "alice", multilineCaps...)
	bob = login(t, st, "bob", multilineCaps...)
	carol = login(t, st, "carol", allCaps...)
	alice.add("&alice", "bob")
	alice.add("&alice", "carol")
	alice.sync()
	phone = dial(t, st.ircAddr, "alice", "alice/phone:pw-alice", multilineCaps...)
	phone.sync()
	return alice, bob, carol, phone
}

// TestMultilineIM: a multiline batch typed to a buddy is one IM on MSIM,
// which the buddy's multiline client gets as one batch and another client
// as lines; the user's other client gets it as its own message, one batch;
// several lines in the control channel are several commands.
func TestMultilineIM(t *testing.T) {
	alice, bob, carol, phone := multilineStack(t)

	alice.sendMultiline("bob", "first line", "", "third line")
	wantLines := func(c *ircClient, from string) {
		t.Helper()
		open := c.expect("BATCH", func(m *irc.Message) bool { return m.Param(1) == "draft/multiline" && m.Name == from })
		var got []string
		for {
			m, err := c.next()
			if err != nil {
				t.Fatal(err)
			}
			if m.Command == "BATCH" && m.Param(0) == "-"+open.Param(0)[1:] {
				break
			}
			if m.Command == "PRIVMSG" && m.Tags["batch"] == open.Param(0)[1:] {
				got = append(got, m.Trailing())
			}
		}
		if strings.Join(got, "|") != "first line||third line" {
			t.Errorf("%s got lines %q, want one batch of the three", c.nick, got)
		}
	}
	wantLines(alice, "alice") // the echo
	wantLines(bob, "alice")
	wantLines(phone, "alice")

	alice.sendMultiline("carol", "one", "two")
	carol.expectFrom("PRIVMSG", "alice", "one")
	carol.expectFrom("PRIVMSG", "alice", "two")

	alice.sendMultiline("&alice", "set typing false", "set show_offline true")
	alice.expectFrom("PRIVMSG", "root", "typing = false")
	alice.expectFrom("PRIVMSG", "root", "show_offline = true")
}

// TestMultilineControlAddressed: each line of a multiline message to the
// control channel is taken as if typed alone: "nick: text" on one line
// goes to that buddy only, the next line to whoever it names.
func TestMultilineControlAddressed(t *testing.T) {
	alice, bob, carol, phone := multilineStack(t)

	alice.sendMultiline("&alice", "bob: one", "carol: two")
	carol.expectFrom("PRIVMSG", "alice", "two")
	if m := bob.expectFrom("PRIVMSG", "alice", "one"); m.Trailing() != "one" {
		t.Errorf("bob got %q, want one", m.Trailing())
	}
	for _, m := range bob.sync() {
		if m.Command == "PRIVMSG" && strings.Contains(m.Trailing(), "two") {
			t.Errorf("bob got %q, the line for carol", m.Trailing())
		}
	}
	// The user's other client sees both as its own, each with its msgid.
	one := phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Param(0) == "bob" && m.Trailing() == "one" })
	two := phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Param(0) == "carol" && m.Trailing() == "two" })
	if one.Tags["msgid"] == "" || one.Tags["msgid"] == two.Tags["msgid"] {
		t.Errorf("msgids %q and %q, want two different ones", one.Tags["msgid"], two.Tags["msgid"])
	}
}

// TestControlChannelIMsKeepTheirOwnMsgid: the IMs of one multiline message
// in the control channel are each found in the history by the msgid the
// user's other clients were shown: nothing comes after the line for carol
// in her conversation.
func TestControlChannelIMsKeepTheirOwnMsgid(t *testing.T) {
	stk, g := historyGateway(t)
	msimUser(t, stk, "bob")
	msimUser(t, stk, "carol")
	caps := append([]string{"draft/multiline"}, historyCaps...)
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", caps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	desk.add("&al", "carol")
	phone := dial(t, g.ircAddr, "al", "al/phone:al-irc", historyCaps...)
	phone.sync()

	desk.sendMultiline("&al", "bob: one", "carol: two")
	two := phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Param(0) == "carol" && m.Trailing() == "two" })
	phone.send("CHATHISTORY AFTER carol msgid=" + two.Tags["msgid"] + " 10")
	if got := batchLines(phone, "chathistory"); len(got) != 0 {
		t.Errorf("CHATHISTORY AFTER carol msgid=%s: %s, want none", two.Tags["msgid"], texts(got))
	}
}

// TestMultilineOwnCopyIsTheBatch: the user's other multiline client gets
// what the user sent as the batch it came as, as the echo does, even a
// batch of one line, and its concat pieces joined as sent.
func TestMultilineOwnCopyIsTheBatch(t *testing.T) {
	alice, bob, _, phone := multilineStack(t)

	alice.send("BATCH +ml draft/multiline bob")
	alice.send("@batch=ml PRIVMSG bob :just one")
	alice.send("BATCH -ml")
	bob.expectFrom("PRIVMSG", "alice", "just one")
	open := phone.expect("", func(m *irc.Message) bool {
		return m.Command == "BATCH" || m.Command == "PRIVMSG"
	})
	if open.Command != "BATCH" || open.Param(1) != "draft/multiline" {
		t.Fatalf("phone got %q, want the batch alice sent", open.String())
	}
	m := phone.expect("PRIVMSG", nil)
	if m.Tags["batch"] != open.Param(0)[1:] || m.Trailing() != "just one" {
		t.Errorf("phone got %q in the batch, want \"just one\"", m.String())
	}
	phone.expect("BATCH", func(m *irc.Message) bool { return m.Param(0) == "-"+open.Param(0)[1:] })
}
