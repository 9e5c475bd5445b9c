package channel_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// unreadHistoryNote is what the user is told of history entries left out.
const unreadHistoryNote = "of your history could not be read"

// unreadHistoryRig runs a gateway with history on a SQLite store, user al
// always on with two clients, desk (chathistory) and phone (without), and
// bob. Bob writes "one"; the phone leaves; bob writes "two", "three" and
// "four", which the desk sees live; then the history row of "three" is
// corrupted behind the store's back (a value that does not convert). The
// phone is left out, for the test to attach it again.
func unreadHistoryRig(t *testing.T) (g *gateway, desk *ircClient) {
	t.Helper()
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "msimircd.db")
	st, err := store.Open(context.Background(), "sqlite", path, make([]byte, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := channel.WithStore(st, &channel.StaticDirectory{Users: []channel.StaticUser{{Name: "al", Password: "al-irc",
		Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}}, "")
	icfg := testIRCConfig()
	icfg.History = true
	g = startGatewayIRC(t, stk.msimAddr, dir, st, icfg, func(c *channel.Config) { c.History, c.AlwaysOn = true, true })
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")

	desk = dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	phone := dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")
	sendIMs(t, bob, alUID, "one")
	desk.imFrom("bob", "one")
	phone.imFrom("bob", "one")
	phone.quit()
	sendIMs(t, bob, alUID, "two", "three", "four")
	desk.imFrom("bob", "four")
	// All four are in the store once CHATHISTORY shows them.
	if batch, _ := chathistory(t, desk, "LATEST bob * 10"); texts(batch) != "one|two|three|four" {
		t.Fatalf("CHATHISTORY LATEST bob before the damage: got %q, want one to four", texts(batch))
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if res, err := raw.Exec(`UPDATE history SET outgoing = 'maybe' WHERE text = 'three'`); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("corrupted %d history rows, want 1", n)
	}
	return g, desk
}

// chathistory sends CHATHISTORY args and returns the batch's messages; a
// FAIL instead fails the test. told: the note of unreadable history came
// meanwhile.
func chathistory(t *testing.T, c *ircClient, args string) (batch []*irc.Message, told bool) {
	t.Helper()
	c.send("CHATHISTORY " + args)
	m := c.expect("", func(m *irc.Message) bool {
		told = told || isUnreadNote(m)
		return m.Command == "FAIL" || m.Command == "BATCH" && strings.HasPrefix(m.Param(0), "+") && m.Param(1) == "chathistory"
	})
	if m.Command == "FAIL" {
		t.Fatalf("CHATHISTORY %s: %v", args, m)
	}
	ref := strings.TrimPrefix(m.Param(0), "+")
	for {
		m := c.expect("", nil)
		told = told || isUnreadNote(m)
		if m.Command == "BATCH" && m.Param(0) == "-"+ref {
			return batch, told
		}
		if m.Tags["batch"] == ref {
			batch = append(batch, m)
		}
	}
}

// isUnreadNote reports whether m tells of unreadable history.
func isUnreadNote(m *irc.Message) bool {
	return m.Command == "NOTICE" && m.Name == "root" && strings.Contains(m.Trailing(), unreadHistoryNote)
}

// noUnreadNote fails the test if c was told of unreadable history among
// what it received before a sync.
func noUnreadNote(t *testing.T, c *ircClient, when string) {
	t.Helper()
	for _, m := range c.sync() {
		if isUnreadNote(m) {
			t.Errorf("%s: told again: %v", when, m)
		}
	}
}

// TestUnreadableHistoryRowLeftOutOfTheReplay: a history row that cannot
// be read is left out of the replay of a client without chathistory,
// which gets the others, and the user is told once; CHATHISTORY then
// gives the others too, and tells nothing again.
func TestUnreadableHistoryRowLeftOutOfTheReplay(t *testing.T) {
	g, desk := unreadHistoryRig(t)
	phone := dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")
	var replayed []string
	told := false
	for !told || len(replayed) == 0 || replayed[len(replayed)-1] != "four" {
		switch m := phone.expect("", nil); {
		case isUnreadNote(m):
			told = true
		case m.Command == "PRIVMSG" && m.Name == "bob":
			replayed = append(replayed, m.Trailing())
		}
	}
	if got, want := strings.Join(replayed, "|"), "two|four"; got != want {
		t.Errorf("replay to the phone: got %q, want %q", got, want)
	}
	desk.expect("NOTICE", isUnreadNote)
	noUnreadNote(t, phone, "after the replay")

	batch, told := chathistory(t, desk, "LATEST bob * 10")
	if got, want := texts(batch), "one|two|four"; got != want {
		t.Errorf("CHATHISTORY LATEST bob: got %q, want %q", got, want)
	}
	if told {
		t.Errorf("told again with CHATHISTORY")
	}
	noUnreadNote(t, desk, "after CHATHISTORY")
	noUnreadNote(t, phone, "after CHATHISTORY")
}

// TestUnreadableHistoryRowLeftOutOfChathistory: a history row that cannot
// be read is left out of CHATHISTORY, which gives the others, and the
// user is told once; the history command then shows the others too, and
// tells nothing again.
func TestUnreadableHistoryRowLeftOutOfChathistory(t *testing.T) {
	_, desk := unreadHistoryRig(t)
	batch, told := chathistory(t, desk, "LATEST bob * 10")
	if got, want := texts(batch), "one|two|four"; got != want {
		t.Errorf("CHATHISTORY LATEST bob: got %q, want %q", got, want)
	}
	if !told {
		desk.expect("NOTICE", isUnreadNote)
	}

	if m := desk.command("&al", "history bob 10", "with bob"); !strings.Contains(m.Trailing(), "The last 3 messages with bob") {
		t.Errorf("history bob: got %q, want the 3 that read", m.Trailing())
	}
	for _, want := range []string{"<bob> one", "<bob> two", "<bob> four"} {
		if got := desk.expectFrom("PRIVMSG", "root", "").Trailing(); !strings.HasSuffix(got, want) {
			t.Errorf("history bob: got %q, want %q", got, want)
		}
	}
	noUnreadNote(t, desk, "after the history command")
}
