package channel_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// appendEntries stores al's entries with buddy uid, one per text, at the
// times given.
func appendEntries(t *testing.T, st store.Store, uid msim.UID, msgids []string, at []time.Time) {
	t.Helper()
	var batch []store.HistoryAppend
	for i, id := range msgids {
		batch = append(batch, store.HistoryAppend{User: "al", Entry: store.HistoryEntry{MsgID: id, Time: at[i],
			Account: "al@example.com", Buddy: uid, Kind: "im", Text: id}})
	}
	for _, r := range st.AppendHistoryBatch(context.Background(), batch, nil) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}

// TestHistoryTargetsCountedFromTheFirst: CHATHISTORY TARGETS counts its
// limit from its first timestamp, as BETWEEN does: forwards, the oldest
// conversations; backwards, the newest.
func TestHistoryTargetsCountedFromTheFirst(t *testing.T) {
	stk, g, st := replayUser(t, true)
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	base := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, nick := range []string{"bob", "carol", "dave"} {
		cl := msimUser(t, stk, nick)
		uid := lookupUID(t, cl, nick)
		desk.add("&al", nick)
		appendEntries(t, st, uid, []string{nick + "-0"}, []time.Time{base.Add(time.Duration(i) * time.Minute)})
	}
	targets := func(line string) string { return targetsOf(desk, line) }
	if got := targets("CHATHISTORY TARGETS timestamp=2023-01-01T00:00:00.000Z timestamp=2025-01-01T00:00:00.000Z 2"); got != "bob carol" {
		t.Errorf("TARGETS forwards, limit 2: got %q, want the oldest two, %q", got, "bob carol")
	}
	if got := targets("CHATHISTORY TARGETS timestamp=2025-01-01T00:00:00.000Z timestamp=2023-01-01T00:00:00.000Z 2"); got != "carol dave" {
		t.Errorf("TARGETS backwards, limit 2: got %q, want the newest two, %q", got, "carol dave")
	}
}

// TestHistoryMsgIDRefsSameTime: a msgid reference is that message, not its
// time: messages that share its time (offline IMs, stamped to the second)
// are before or after it in the history's order, not left out.
func TestHistoryMsgIDRefsSameTime(t *testing.T) {
	stk, g, st := replayUser(t, true)
	bob := msimUser(t, stk, "bob")
	bobUID := lookupUID(t, bob, "bob")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	appendEntries(t, st, bobUID, []string{"m0", "m1", "m2", "m3"}, []time.Time{at, at, at, at})
	query := func(line string) string {
		desk.send(line)
		var ids []string
		for _, m := range batchLines(desk, "chathistory") {
			ids = append(ids, m.Tags["msgid"])
		}
		return strings.Join(ids, " ")
	}
	for _, c := range []struct{ line, want string }{
		{"CHATHISTORY BEFORE bob msgid=m2 10", "m0 m1"},
		{"CHATHISTORY BEFORE bob msgid=m3 1", "m2"},
		{"CHATHISTORY AFTER bob msgid=m1 10", "m2 m3"},
		{"CHATHISTORY LATEST bob msgid=m1 10", "m2 m3"},
		{"CHATHISTORY BETWEEN bob msgid=m0 msgid=m3 10", "m1 m2"},
		{"CHATHISTORY BETWEEN bob msgid=m3 msgid=m0 1", "m2"},
		{"CHATHISTORY AROUND bob msgid=m2 3", "m1 m2 m3"},
		{"CHATHISTORY AROUND bob msgid=m2 1", "m2"},
		{"CHATHISTORY AROUND bob msgid=m2 2", "m1 m2"},
		{"CHATHISTORY AROUND bob msgid=m0 3", "m0 m1 m2"},
		{"CHATHISTORY BEFORE bob timestamp=2024-01-01T12:00:00.000Z 10", ""},
		{"CHATHISTORY AFTER bob timestamp=2024-01-01T11:59:59.999Z 10", "m0 m1 m2 m3"},
	} {
		if got := query(c.line); got != c.want {
			t.Errorf("%s: got %q, want %q", c.line, got, c.want)
		}
	}
}

// TestHistoryMsgIDRefNotKept: a reference to a msgid of the gateway's that
// the history does not hold (left out while the store was behind, or
// pruned) stands where its time does, so a client paging by it goes on.
func TestHistoryMsgIDRefNotKept(t *testing.T) {
	stk, g, st := replayUser(t, true)
	bob := msimUser(t, stk, "bob")
	bobUID := lookupUID(t, bob, "bob")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	at := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	appendEntries(t, st, bobUID, []string{"m0", "m1", "m2"}, []time.Time{at, at.Add(time.Second), at.Add(3 * time.Second)})
	missing := ircd.NewMsgIDAt(at.Add(2 * time.Second)) // between m1 and m2, never stored
	for _, c := range []struct{ line, want string }{
		{"CHATHISTORY BEFORE bob msgid=" + missing + " 10", "m0 m1"},
		{"CHATHISTORY AFTER bob msgid=" + missing + " 10", "m2"},
	} {
		desk.send(c.line)
		var ids []string
		for _, m := range batchLines(desk, "chathistory") {
			ids = append(ids, m.Tags["msgid"])
		}
		if got := strings.Join(ids, " "); got != c.want {
			t.Errorf("%s: got %q, want %q", c.line, got, c.want)
		}
	}
}

// TestHistoryTargetsByTheirLatest: TARGETS matches a conversation's latest
// message: one whose latest is past the bounds is not listed, even with
// earlier messages within them (nor with one of those as its latest).
func TestHistoryTargetsByTheirLatest(t *testing.T) {
	stk, g, st := replayUser(t, true)
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	base := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	uids := map[string]msim.UID{}
	for _, nick := range []string{"bob", "carol"} {
		uids[nick] = lookupUID(t, msimUser(t, stk, nick), nick)
		desk.add("&al", nick)
	}
	appendEntries(t, st, uids["bob"], []string{"bob-0", "bob-1"}, []time.Time{base, base.Add(5 * time.Minute)})
	appendEntries(t, st, uids["carol"], []string{"carol-0"}, []time.Time{base.Add(2 * time.Minute)})
	desk.send("CHATHISTORY TARGETS timestamp=2024-01-01T12:03:00.000Z timestamp=2023-01-01T00:00:00.000Z 10")
	var got []string
	for _, m := range batchLines(desk, "draft/chathistory-targets") {
		got = append(got, m.Param(1)+" "+m.Param(2))
	}
	if want := "carol 2024-01-01T12:02:00.000Z"; strings.Join(got, ",") != want {
		t.Errorf("TARGETS before 12:03: got %q, want only %q (bob's latest is at 12:05)", got, want)
	}
}

// TestOwnActionInAControlChannel: "bob: /me waves" in a control channel
// reaches bob as an action and is kept as one; the user's other clients
// are shown it as one too, as the history shows it, not as the text typed.
func TestOwnActionInAControlChannel(t *testing.T) {
	ownActionShown(t, "PRIVMSG &al :bob: /me waves")
}

// TestFormattingStaysOnIRC: IRC's formatting codes in an IM reach the MSIM
// buddy as the words alone, while the user's other clients and the
// history have the message as typed.
func TestFormattingStaysOnIRC(t *testing.T) {
	bob, desk, phone := deskAndPhone(t)
	const typed = "\x02bold\x02 and \x0304,12red on blue\x03 \x1funderlined\x1f"
	desk.send("PRIVMSG bob :" + typed)
	if live := phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "al" && m.Param(0) == "bob" }); live.Trailing() != typed {
		t.Errorf("the phone was shown %q, want %q", live.Trailing(), typed)
	}
	phone.send("CHATHISTORY LATEST bob * 10")
	if hist := batchLines(phone, "chathistory"); len(hist) != 1 || hist[0].Trailing() != typed {
		t.Errorf("history %v, want the message as typed", hist)
	}
	for ev := range bob.Events() {
		if im, ok := ev.(msim.IMEvent); ok {
			if want := "bold and red on blue underlined"; im.Text != want {
				t.Errorf("bob got %q, want %q", im.Text, want)
			}
			break
		}
	}
}

// TestHistoryTargetsNotOnTheList: TARGETS lists a conversation with
// someone the session does not know (not on the list, written to before
// a restart), by the nick they get when their profile names them, which
// CHATHISTORY then reads; its limit counts the conversations it lists.
func TestHistoryTargetsNotOnTheList(t *testing.T) {
	stk, g, st := replayUser(t, true)
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	base := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	bobUID := lookupUID(t, msimUser(t, stk, "bob"), "bob")
	desk.add("&al", "bob")
	carolUID := lookupUID(t, msimUser(t, stk, "carol"), "carol") // not on the list
	appendEntries(t, st, bobUID, []string{"bob-0"}, []time.Time{base})
	appendEntries(t, st, carolUID, []string{"carol-0"}, []time.Time{base.Add(time.Minute)})
	targets := func(line string) string { return targetsOf(desk, line) }
	if got := targets("CHATHISTORY TARGETS timestamp=2025-01-01T00:00:00.000Z timestamp=2023-01-01T00:00:00.000Z 1"); got != "carol" {
		t.Errorf("TARGETS backwards, limit 1: got %q, want %q", got, "carol")
	}
	if got := targets("CHATHISTORY TARGETS timestamp=2023-01-01T00:00:00.000Z timestamp=2025-01-01T00:00:00.000Z 10"); got != "bob carol" {
		t.Errorf("TARGETS: got %q, want %q", got, "bob carol")
	}
	desk.send("CHATHISTORY LATEST carol * 10")
	if got := batchLines(desk, "chathistory"); len(got) != 1 || got[0].Tags["msgid"] != "carol-0" {
		t.Errorf("CHATHISTORY LATEST carol: %v, want carol-0", got)
	}
}

// TestOwnActionInAQuery: "/me waves" typed as text in a query with bob
// (not as a CTCP ACTION) reaches bob as an action and is kept as one; the
// user's other clients are shown it as one too, as in a control channel.
func TestOwnActionInAQuery(t *testing.T) { ownActionShown(t, "PRIVMSG bob :/me waves") }

// ownActionShown has the desk send line, a /me to bob, and checks that the
// phone is shown an action, as the history keeps it, under one msgid.
func ownActionShown(t *testing.T, line string) {
	_, desk, phone := deskAndPhone(t)
	desk.send(line)
	live := phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "al" && m.Param(0) == "bob" })
	phone.send("CHATHISTORY LATEST bob * 10")
	hist := batchLines(phone, "chathistory")
	if len(hist) != 1 || hist[0].Tags["msgid"] != live.Tags["msgid"] {
		t.Fatalf("history %v, want the one message shown live (%v)", hist, live)
	}
	if want := "\x01ACTION waves\x01"; live.Trailing() != want || hist[0].Trailing() != want {
		t.Errorf("shown live as %q, in the history as %q; want both %q", live.Trailing(), hist[0].Trailing(), want)
	}
}

// deskAndPhone starts al with bob on the list, and two clients of al's
// with chathistory: the desk, which added bob, and the phone.
func deskAndPhone(t *testing.T) (bob *msim.Client, desk, phone *ircClient) {
	t.Helper()
	stk, g := historyGateway(t)
	bob = msimUser(t, stk, "bob")
	desk = dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	phone = dial(t, g.ircAddr, "al", "al/phone:al-irc", historyCaps...)
	phone.joinedControl("&al")
	return bob, desk, phone
}

// targetsOf sends a CHATHISTORY TARGETS line from c and returns the
// conversations its batch names, in order, separated by spaces.
func targetsOf(c *ircClient, line string) string {
	c.send(line)
	var names []string
	for _, m := range batchLines(c, "draft/chathistory-targets") {
		names = append(names, m.Param(1))
	}
	return strings.Join(names, " ")
}

// appendsHeldStore is a store whose history appends wait until someone
// reads the conversations (HistoryTargets, once read) or the writer is
// hurried by a reader waiting for it (HurryHistory).
type appendsHeldStore struct {
	store.Store
	release chan struct{}
	once    sync.Once
}

func (s *appendsHeldStore) free() { s.once.Do(func() { close(s.release) }) }

func (s *appendsHeldStore) AppendHistoryBatch(ctx context.Context, batch []store.HistoryAppend, res []store.HistoryResult) []store.HistoryResult {
	<-s.release
	return s.Store.AppendHistoryBatch(ctx, batch, res)
}

func (s *appendsHeldStore) HurryHistory() { s.free() }

func (s *appendsHeldStore) HistoryTargets(ctx context.Context, user string, after, before time.Time, limit int, oldest bool) ([]store.HistoryTarget, error) {
	ts, err := s.Store.HistoryTargets(ctx, user, after, before, limit, oldest)
	s.free()
	return ts, err
}

// TestHistoryTargetsAfterWhatWasRecorded: an IM from bob, shown to the
// desk, and CHATHISTORY TARGETS right after: TARGETS lists bob, though
// the IM was still on its way to the store when TARGETS was asked.
func TestHistoryTargetsAfterWhatWasRecorded(t *testing.T) {
	var held *appendsHeldStore
	stk, g := historyGateway(t, func(c *channel.Config) {
		held = &appendsHeldStore{Store: c.Store, release: make(chan struct{})}
		c.Store = held
	})
	t.Cleanup(held.free) // before the gateway stops
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	sendIMs(t, bob, alUID, "just now")
	desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" && m.Trailing() == "just now" })
	if got := targetsOf(desk, "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10"); got != "bob" {
		t.Errorf("TARGETS: got %q, want %q", got, "bob")
	}
}
