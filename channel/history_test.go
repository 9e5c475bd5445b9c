package channel_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

var historyCaps = []string{"server-time", "message-tags", "batch", "echo-message", "draft/chathistory", "draft/read-marker"}

// historyGateway runs a gateway with history, a store and user al (and her
// MSIM account) always on, on the stack's MSIM server.
func historyGateway(t *testing.T, opts ...func(*channel.Config)) (*stack, *gateway) {
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
	g := startGatewayIRC(t, stk.msimAddr, dir, st, icfg, append([]func(*channel.Config){func(c *channel.Config) {
		c.History, c.AlwaysOn = true, true
	}}, opts...)...)
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
	waitLeft(t, g.bridge, "al")

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

// TestHistorySurvivesARestart: the history is in the store: after the
// gateway restarts on the same database, CHATHISTORY shows the
// conversation from before, with the same msgids.
func TestHistorySurvivesARestart(t *testing.T) {
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("al@example.com", "alpw", "al"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "msimircd.db")
	key := make([]byte, 32)
	open := func() store.Store {
		st, err := store.Open(context.Background(), "sqlite", path, key)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	users := []channel.StaticUser{{Name: "al", Password: "al-irc",
		Accounts: []channel.Account{{Email: "al@example.com", Password: "alpw", Channel: "&al", AutoConnect: true}}}}
	icfg := testIRCConfig()
	icfg.History = true
	start := func(st store.Store) *gateway {
		return startGatewayIRC(t, stk.msimAddr, channel.WithStore(st, &channel.StaticDirectory{Users: users}, ""), st, icfg,
			func(c *channel.Config) { c.History = true })
	}
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")

	st1 := open()
	g1 := start(st1)
	al := dial(t, g1.ircAddr, "al", "al-irc", historyCaps...)
	al.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	sendIMs(t, bob, alUID, "before the restart")
	live := al.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
	al.send("PRIVMSG bob :my answer")
	echo := al.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "al" && m.Param(0) == "bob" })
	al.quit()
	g1.stop()
	if err := st1.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := open()
	t.Cleanup(func() { st2.Close() })
	g2 := start(st2)
	al = dial(t, g2.ircAddr, "al", "al-irc", historyCaps...)
	al.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	al.send("CHATHISTORY LATEST bob * 10")
	hist := batchLines(al, "chathistory")
	if got := texts(hist); got != "before the restart|my answer" {
		t.Fatalf("CHATHISTORY after the restart: got %q", got)
	}
	if hist[0].Tags["msgid"] != live.Tags["msgid"] || hist[1].Tags["msgid"] != echo.Tags["msgid"] {
		t.Errorf("msgids after the restart: %q, %q; want %q, %q", hist[0].Tags["msgid"], hist[1].Tags["msgid"], live.Tags["msgid"], echo.Tags["msgid"])
	}
	if hist[1].Tags["time"] != echo.Tags["time"] {
		t.Errorf("my answer's time: %q in the history, %q in the echo", hist[1].Tags["time"], echo.Tags["time"])
	}
	// Bob is not on al's list: MARKREAD finds him as CHATHISTORY did.
	al.send("MARKREAD bob timestamp=" + echo.Tags["time"])
	if r := al.expect("MARKREAD", nil); r.Param(1) != "timestamp="+echo.Tags["time"] {
		t.Errorf("MARKREAD bob after the restart: got %v, want the marker set", r)
	}
}

// TestReadMarkerSync: a read marker one client sets is stored and sent to
// the user's other clients with draft/read-marker; an older one changes
// nothing, and a client asks for it with MARKREAD <nick>.
func TestReadMarkerSync(t *testing.T) {
	stk, g := historyGateway(t)
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	tablet := dial(t, g.ircAddr, "al", "al/tablet:al-irc", historyCaps...)
	tablet.joinedControl("&al")
	sendIMs(t, bob, alUID, "read me")
	m := desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
	ts := m.Tags["time"]
	desk.send("MARKREAD bob timestamp=" + ts)
	if r := desk.expect("MARKREAD", nil); r.Param(1) != "timestamp="+ts {
		t.Errorf("MARKREAD reply: got %v", r)
	}
	if r := tablet.expect("MARKREAD", nil); r.Param(0) != "bob" || r.Param(1) != "timestamp="+ts {
		t.Errorf("the tablet got %v, want MARKREAD bob timestamp=%s", r, ts)
	}
	desk.send("MARKREAD bob timestamp=2020-01-01T00:00:00.000Z") // older: kept
	if r := desk.expect("MARKREAD", nil); r.Param(1) != "timestamp="+ts {
		t.Errorf("an older marker: got %v, want the stored %s", r, ts)
	}
	tablet.send("MARKREAD bob")
	if r := tablet.expect("MARKREAD", nil); r.Param(1) != "timestamp="+ts {
		t.Errorf("MARKREAD bob query: got %v", r)
	}
}

// TestHistoryQueriesCounted: each way of reading the history counts in
// msimircd_history_queries_total under its kind.
func TestHistoryQueriesCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	stk, g := historyGateway(t, func(c *channel.Config) { c.Metrics = reg })
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	phone := dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")
	phone.quit()
	sendIMs(t, bob, alUID, "hello")
	desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
	desk.send("CHATHISTORY LATEST bob * 10")
	batchLines(desk, "chathistory")
	desk.send("CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
	batchLines(desk, "draft/chathistory-targets")
	desk.send("MARKREAD bob")
	desk.expect("MARKREAD", nil)
	desk.command("&al", "history bob", "The last 1 message with bob")
	phone = dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...) // replayed to
	phone.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
	for _, kind := range []string{"chathistory", "targets", "read_marker", "command", "replay"} {
		if got := promtest.Value(t, reg, "msimircd_history_queries_total", "kind", kind); got < 1 {
			t.Errorf("history queries of kind %s: got %v, want at least 1", kind, got)
		}
	}
}

// TestRefusedIMNotInHistory: an IM the bridge refused ("Message NOT sent")
// is not kept in the history as sent; one that went out is.
func TestRefusedIMNotInHistory(t *testing.T) {
	stk, g := historyGateway(t)
	msimUser(t, stk, "bob")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	desk.send("PRIVMSG bob :went out")
	desk.command("&al", "disconnect", "Disconnected al@example.com")
	desk.send("PRIVMSG bob :never sent")
	desk.expectFrom("NOTICE", "bob", "Message NOT sent")
	desk.send("PRIVMSG &al :history bob")
	m := desk.expectFrom("PRIVMSG", "root", "")
	for !strings.Contains(m.Trailing(), "No messages with bob") && !strings.Contains(m.Trailing(), "The last") {
		m = desk.expectFrom("PRIVMSG", "root", "")
	}
	all := m.Trailing()
	for _, x := range desk.sync() {
		all += "\n" + x.Trailing()
	}
	if strings.Contains(all, "never sent") || !strings.Contains(all, "went out") {
		t.Errorf("the history, want the IM that went out and not the refused one:\n%s", all)
	}
}

// waitAttached waits until user has at most n connections attached.
func waitAttached(t *testing.T, b *channel.Bridge, user string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); b.Attached(user) > n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s has more than %d connections attached", user, n)
		}
	}
}

// waitPositionSaved waits until client's position is in the store.
func waitPositionSaved(t *testing.T, st store.Store, user, client string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		_, found, err := st.ClientPosition(context.Background(), user, client)
		if err != nil {
			t.Fatal(err)
		}
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's position of %s not saved", user, client)
		}
	}
}

// replayUser is historyGateway, always on or not, and its store.
func replayUser(t *testing.T, alwaysOn bool) (*stack, *gateway, store.Store) {
	var st store.Store
	stk, g := historyGateway(t, func(c *channel.Config) { st, c.AlwaysOn = c.Store, alwaysOn })
	return stk, g, st
}

// TestReplayWhenTheClientStartsTheSession: a client whose connection
// starts the user's session (always on off, no other client) is replayed
// what it missed once the account's login makes its buddies known, before
// the IMs that came while the account was offline.
func TestReplayWhenTheClientStartsTheSession(t *testing.T) {
	stk, g, _ := replayUser(t, false)
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")

	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	phone := dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")
	phone.quit()
	waitAttached(t, g.bridge, "al", 1)
	sendIMs(t, bob, alUID, "while the phone was away")
	desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
	desk.quit()
	waitLeft(t, g.bridge, "al")
	waitOnline(t, stk.msrv, alUID, false)
	sendIMs(t, bob, alUID, "while al was offline") // stored by MSIM, newer than the history

	phone = dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	phone.expect("PRIVMSG", func(m *irc.Message) bool {
		return m.Name == "bob" && strings.Contains(m.Trailing(), "while the phone was away")
	})
	phone.expect("PRIVMSG", func(m *irc.Message) bool { // after what it missed
		return m.Name == "bob" && strings.Contains(m.Trailing(), "while al was offline")
	})
}

// TestReplayShowsTheLatest: a client that missed more than a replay reads
// is replayed the latest ReplayPerBuddy of each conversation, told how
// many earlier ones were left out and that more was missed: a
// conversation whose only IM came last is there too.
func TestReplayShowsTheLatest(t *testing.T) {
	const pages = 10 // one replay reads at most this many of the store's pages
	t.Run("more than a replay reads", func(t *testing.T) { replayLatest(t, pages*store.MaxHistoryLimit+100, true) })
	t.Run("more than a page", func(t *testing.T) { replayLatest(t, store.MaxHistoryLimit+100, false) })
}

// replayLatest has bob write n IMs and carol one while the phone is away,
// and checks its replay: bob's latest, carol's one, how many of bob's were
// left out, and whether more was missed than the replay read.
func replayLatest(t *testing.T, n int, wantMore bool) {
	stk, g, st := replayUser(t, true)
	bob := msimUser(t, stk, "bob")
	carol := msimUser(t, stk, "carol")
	bobUID := lookupUID(t, bob, "bob")
	carolUID := lookupUID(t, carol, "carol")

	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	desk.add("&al", "carol")
	phone := dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")
	phone.quit()
	waitAttached(t, g.bridge, "al", 1)
	// The position is saved off the session (a worker reads "everything
	// recorded so far"): the history written below is written straight
	// to the store, so it must come after that read, or the phone would
	// be placed past it and replayed nothing.
	waitPositionSaved(t, st, "al", "phone")

	base := time.Now().Add(-time.Hour)
	var batch []store.HistoryAppend
	for i := range n {
		batch = append(batch, store.HistoryAppend{User: "al", Entry: store.HistoryEntry{MsgID: fmt.Sprintf("bob-%d", i),
			Time: base.Add(time.Duration(i) * time.Millisecond), Account: "al@example.com", Buddy: bobUID, Kind: "im", Text: fmt.Sprintf("bob %d", i)}})
	}
	batch = append(batch, store.HistoryAppend{User: "al", Entry: store.HistoryEntry{MsgID: "carol-0",
		Time: base.Add(10 * time.Second), Account: "al@example.com", Buddy: carolUID, Kind: "im", Text: "latest from carol"}})
	for _, r := range st.AppendHistoryBatch(context.Background(), batch, nil) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}

	// The replay reads up to ten pages of the store: under -race on a
	// busy machine that takes more than the 5 s the harness waits for a
	// line. Carol's conversation, begun last, is replayed last.
	phone = dial(t, g.ircAddr, "al", "al/phone:al-irc", allCaps...)
	phone.joinedControl("&al")
	phone.patience = time.Minute
	var got []*irc.Message
	for {
		m, err := phone.next()
		if err != nil {
			t.Fatalf("waiting for the replay of carol's IM: %v", err)
		}
		got = append(got, m)
		if m.Command == "PRIVMSG" && m.Name == "carol" {
			break
		}
	}
	phone.patience = 0
	got = append(got, phone.sync()...)
	var bobs []string
	carols, told, more := 0, "", false
	for _, m := range got {
		switch {
		case m.Command == "PRIVMSG" && m.Name == "bob":
			bobs = append(bobs, m.Trailing())
		case m.Command == "PRIVMSG" && m.Name == "carol" && m.Trailing() == "latest from carol":
			carols++
		case m.Command == "NOTICE" && strings.Contains(m.Trailing(), "left out of the replay"):
			told = m.Trailing()
		case m.Command == "NOTICE" && strings.Contains(m.Trailing(), "More was missed than one replay reads"):
			more = true
		}
	}
	per := channel.DefaultReplayPerBuddy
	if len(bobs) != per || bobs[0] != fmt.Sprintf("bob %d", n-per) || bobs[per-1] != fmt.Sprintf("bob %d", n-1) {
		t.Errorf("bob's replay: %d messages (%q … %q), want bob %d to bob %d", len(bobs), first(bobs), last(bobs), n-per, n-1)
	}
	if carols != 1 {
		t.Errorf("carol's only IM replayed %d times, want once", carols)
	}
	read := n // bob's read: all, or the latest the pages hold beside carol's one
	if wantMore {
		read = 10*store.MaxHistoryLimit - 1
	}
	if want := fmt.Sprintf("%d earlier messages with bob left out", read-per); !strings.Contains(told, want) {
		t.Errorf("notice %q, want %q", told, want)
	}
	if more != wantMore {
		t.Errorf("told that more was missed than the replay read: %v, want %v", more, wantMore)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}
