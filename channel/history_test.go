package channel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim"
)

var historyCaps = []string{"server-time", "message-tags", "batch", "echo-message", "draft/chathistory", "draft/read-marker"}

// historyGateway runs a gateway with history, a store and user al (and her
// MSIM account) always on, on the stack's MSIM server.
func historyGateway(t *testing.T) (*stack, *gateway) {
	t.Helper()
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	dir := channel.WithStore(st, &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "al", Password: "al-irc",
		Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}}, "")
	icfg := testIRCConfig()
	icfg.History = true
	g := startGatewayIRC(t, stk.msimAddr, dir, st, icfg, func(c *channel.Config) {
		c.History, c.AlwaysOn = true, true
	})
	return stk, g
}

// sendIMs has cl send each text to uid, then waits until the server has
// handled them.
func sendIMs(t *testing.T, cl *msim.Client, uid msim.UID, texts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, text := range texts {
		if err := cl.SendIM(ctx, uid, text); err != nil {
			t.Fatal(err)
		}
	}
	tomBarrier(t, cl)
}

// batchLines reads one batch of type typ and returns its messages.
func batchLines(c *ircClient, typ string) []*irc.Message {
	start := c.expect("BATCH", func(m *irc.Message) bool { return strings.HasPrefix(m.Param(0), "+") && m.Param(1) == typ })
	ref := strings.TrimPrefix(start.Param(0), "+")
	var got []*irc.Message
	for {
		m := c.expect("", nil)
		if m.Command == "BATCH" && m.Param(0) == "-"+ref {
			return got
		}
		if m.Tags["batch"] == ref {
			got = append(got, m)
		}
	}
}

func texts(ms []*irc.Message) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Trailing())
	}
	return strings.Join(out, "|")
}

// TestSeveralClientsAndHistory is the bouncer's end-to-end story: two
// clients of one user see an incoming IM with one msgid; one leaves, the
// other goes on; both leave and a buddy sends three IMs; the first comes
// back with chathistory, gets the three (held for it) and finds the whole
// conversation with CHATHISTORY LATEST under the same msgids, and marks it
// read; the second comes back without chathistory and is replayed what it
// missed since it left, by its own position (soju's rule: read markers do
// not decide the replay), once.
func TestSeveralClientsAndHistory(t *testing.T) {
	stk, g := historyGateway(t)
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")

	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	phone := dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")

	sendIMs(t, bob, alUID, "one")
	d1 := desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
	p1 := phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
	if d1.Tags["msgid"] == "" || d1.Tags["msgid"] != p1.Tags["msgid"] {
		t.Errorf("msgid of one IM in two clients: %q and %q, want one, set", d1.Tags["msgid"], p1.Tags["msgid"])
	}
	desk.send("PRIVMSG bob :two")
	desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "al" && m.Param(0) == "bob" }) // echo
	phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "al" && m.Param(0) == "bob" })
	phone.quit()
	sendIMs(t, bob, alUID, "three")
	desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" && m.Trailing() == "three" })
	desk.quit()

	sendIMs(t, bob, alUID, "four", "five", "six")

	desk = dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.joinedControl("&al")
	held := map[string]string{}
	for len(held) < 3 {
		m := desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
		held[m.Trailing()] = m.Tags["msgid"]
	}
	desk.send("CHATHISTORY LATEST bob * 10")
	hist := batchLines(desk, "chathistory")
	if got, want := texts(hist), "one|two|three|four|five|six"; got != want {
		t.Fatalf("CHATHISTORY LATEST bob: got %q, want %q", got, want)
	}
	if hist[0].Tags["msgid"] != d1.Tags["msgid"] || hist[1].Name != "al" || hist[1].Param(0) != "bob" {
		t.Errorf("history: one's msgid %q (live %q), two from %s to %s; want the same msgid, and two al's own", hist[0].Tags["msgid"], d1.Tags["msgid"], hist[1].Name, hist[1].Param(0))
	}
	for _, m := range hist[3:] {
		if held[m.Trailing()] != m.Tags["msgid"] {
			t.Errorf("%q: msgid %q in the history, %q when shown; want one", m.Trailing(), m.Tags["msgid"], held[m.Trailing()])
		}
	}
	last := hist[5].Tags["time"]
	desk.send("MARKREAD bob timestamp=" + last)
	if m := desk.expect("MARKREAD", nil); m.Param(1) != "timestamp="+last {
		t.Errorf("MARKREAD reply: got %v, want timestamp=%s", m, last)
	}

	phone = dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")
	var replayed []string
	for len(replayed) < 4 {
		m := phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
		replayed = append(replayed, m.Trailing())
	}
	if got, want := strings.Join(replayed, "|"), "three|four|five|six"; got != want {
		t.Errorf("replay to the phone: got %q, want %q (what came since it left)", got, want)
	}
	for _, m := range phone.sync() {
		if m.Command == "PRIVMSG" && m.Name == "bob" {
			t.Errorf("replayed twice: %v", m)
		}
	}
	phone.command("&al", "history bob 3", "The last 3 messages with bob")
}
