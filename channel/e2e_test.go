package channel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim"
)

var allCaps = []string{"server-time", "message-tags", "away-notify", "multi-prefix"}

// login connects an IRC user to the stack and waits for its control channel.
func login(t *testing.T, st *stack, nick string, caps ...string) *ircClient {
	t.Helper()
	c := dial(t, st.ircAddr, nick, "pw-"+nick, caps...)
	c.joinedControl("&" + nick)
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	c.sync()
	return c
}

// buddiesStack starts a stack with alice and bob logged in, each on the
// other's list.
func buddiesStack(t *testing.T) (alice, bob *ircClient) {
	t.Helper()
	st := startStack(t)
	alice = login(t, st, "alice", allCaps...)
	bob = login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	bob.add("&bob", "alice")
	alice.sync()
	return alice, bob
}

func TestTomGreetsAndEchoes(t *testing.T) {
	st := startStack(t)
	c := dial(t, st.ircAddr, "alice", "", allCaps...)
	// The control channel is part of the welcome: a NAMES sent right after
	// 001 is answered after the channel's JOIN, NAMES and root's greeting.
	c.send("NAMES &alice")
	join := c.expect("JOIN", func(m *irc.Message) bool { return m.Name == "alice" })
	if join.Param(0) != "&alice" {
		t.Fatalf("joined %q, want &alice", join.Param(0))
	}
	var names []string
	for {
		m := c.expect("", func(m *irc.Message) bool { return m.Command == "353" || m.Command == "366" })
		if m.Command == "366" {
			break
		}
		names = append(names, strings.Fields(m.Trailing())...)
	}
	if !contains(names, "@root") || !contains(names, "alice") {
		t.Fatalf("NAMES: got %v, want @root and alice", names)
	}
	c.expectFrom("PRIVMSG", "root", "Welcome to msimircd")
	// Then, in whichever order: the answer to the client's own NAMES, and
	// Tom joining, voiced, when the MSIM login completes.
	c.expectAll(func(m *irc.Message) bool {
		return m.Command == "353" && contains(strings.Fields(m.Trailing()), "@root")
	},
		isCmd("JOIN", "tom"), isMode("+v", "tom"), saysRoot("Logged in to MSIM"))
	c.send("PRIVMSG tom :hi")
	first := c.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "tom" && m.Param(0) == "alice" })
	if strings.ContainsAny(first.Trailing(), "<>") || first.Trailing() == "" {
		t.Errorf("Tom's greeting is not plain text: %q", first.Trailing())
	}
	c.send("PRIVMSG tom :second <b>message</b> & more")
	echo := c.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "tom" })
	if !strings.Contains(echo.Trailing(), "second <b>message</b> & more") {
		t.Errorf("Tom's echo: got %q, want it to contain the text", echo.Trailing())
	}
}

// TestTwoUsersChat: two IRC users add each other by nick and exchange IMs,
// including text that looks like MSIM framing or markup.
func TestTwoUsersChat(t *testing.T) {
	alice, bob := buddiesStack(t)
	if n := alice.names("&alice"); !contains(n, "+bob") {
		t.Fatalf("alice's NAMES: got %v, want +bob", n)
	}

	for _, text := range []string{
		"hello bob",
		`\final\ and \\backslashes\\ and /1 slashes/2`,
		"<b>not bold</b> &amp; <i n=\"happy\"/> :) ;-) :-)",
		"\x1cfs|pipe=equals", // a control character arrives as its picture, ␜
		"ünïcödé ☃ 日本語",
	} {
		alice.sendf("PRIVMSG bob :%s", text)
		got := bob.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "alice" })
		if want := strings.ReplaceAll(text, "\x1c", "␜"); got.Trailing() != want {
			t.Errorf("bob got %q, want %q", got.Trailing(), want)
		}
	}
	// Addressing a buddy in the control channel sends an IM too.
	bob.send("PRIVMSG &bob :alice: hi from the channel")
	if got := alice.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" }); got.Trailing() != "hi from the channel" || got.Param(0) != "alice" {
		t.Errorf("alice got %v, want a private 'hi from the channel'", got)
	}
	// /me is sent as "/me …" and arrives as an action.
	alice.send("PRIVMSG bob :\x01ACTION waves\x01")
	if got := bob.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "alice" }); got.Trailing() != "\x01ACTION waves\x01" {
		t.Errorf("action: got %q", got.Trailing())
	}
}

func TestPresenceMapping(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	alice.sync()

	// Away: devoiced and AWAY with the text.
	bob.send("AWAY :gone fishing")
	alice.expectAll(isMode("-v", "bob"), isAway("bob", "gone fishing"))
	alice.send("WHO &alice")
	who := alice.expect("352", func(m *irc.Message) bool { return m.Param(5) == "bob" })
	if !strings.HasPrefix(who.Param(6), "G") {
		t.Errorf("WHO flags for away bob: got %q, want G…", who.Param(6))
	}
	alice.send("WHOIS bob")
	if m := alice.expect("301", nil); m.Trailing() != "gone fishing" {
		t.Errorf("RPL_AWAY: got %q", m.Trailing())
	}
	// Idle: still away, with its text.
	bob.command("&bob", "status idle in a meeting", "idle")
	alice.expect("AWAY", func(m *irc.Message) bool { return m.Name == "bob" && m.Trailing() == "in a meeting" })
	// Back online: voiced, not away.
	bob.send("AWAY")
	alice.expectAll(isMode("+v", "bob"), isAway("bob", ""))
	// Invisible looks offline: bob leaves the channel.
	bob.command("&bob", "status invisible", "invisible")
	alice.expect("PART", func(m *irc.Message) bool { return m.Name == "bob" })
	bob.command("&bob", "status online", "online")
	alice.expectAll(isCmd("JOIN", "bob"), isMode("+v", "bob"))
	// Offline: bob quits IRC, his MSIM session logs out, he leaves.
	bob.send("QUIT :bye")
	alice.expect("PART", func(m *irc.Message) bool { return m.Name == "bob" })
	// show_offline keeps him in the channel, unvoiced and away.
	alice.command("&alice", "set show_offline true", "show_offline = true")
	alice.expect("JOIN", func(m *irc.Message) bool { return m.Name == "bob" })
	if n := alice.names("&alice"); !contains(n, "bob") {
		t.Errorf("NAMES with show_offline: got %v, want bob without voice", n)
	}
	// He comes back: voiced.
	login(t, st, "bob", allCaps...)
	alice.expect("MODE", func(m *irc.Message) bool { return m.Param(1) == "+v" && m.Param(2) == "bob" })
}

func TestTypingAndZaps(t *testing.T) {
	alice, bob := buddiesStack(t)
	bob.sync()

	alice.send("@+typing=active TAGMSG bob")
	m := bob.expect("TAGMSG", func(m *irc.Message) bool { return m.Name == "alice" })
	if m.Tags["+typing"] != "active" {
		t.Errorf("bob got typing %q, want active", m.Tags["+typing"])
	}
	alice.send("@+typing=done TAGMSG bob")
	m = bob.expect("TAGMSG", func(m *irc.Message) bool { return m.Name == "alice" })
	if m.Tags["+typing"] != "done" {
		t.Errorf("bob got typing %q, want done", m.Tags["+typing"])
	}
	bob.send("@+typing=active TAGMSG alice")
	if m := alice.expect("TAGMSG", func(m *irc.Message) bool { return m.Name == "bob" }); m.Tags["+typing"] != "active" {
		t.Errorf("alice got typing %q", m.Tags["+typing"])
	}

	alice.command("&alice", "zap bob hug", "Sent bob a zap: Hug")
	if m := bob.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "alice" }); m.Trailing() != "\x01ACTION sends you a zap: Hug!\x01" {
		t.Errorf("zap: got %q", m.Trailing())
	}
	alice.command("&alice", "zap bob nonsense", "Unknown zap")
	alice.command("&alice", "zap nobody", "No buddy is called")
}

func TestOfflineMessageKeepsItsTime(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", "server-time")
	alice.add("&alice", "bob")
	bob.send("QUIT")
	alice.expect("PART", func(m *irc.Message) bool { return m.Name == "bob" })
	sent := time.Now()
	alice.send("PRIVMSG bob :while you were out")
	alice.stored()
	time.Sleep(1100 * time.Millisecond) // let the original second pass, so the date is visibly old

	// With server-time, the original time is the tag.
	bob = dial(t, st.ircAddr, "bob", "pw-bob", "server-time")
	// Bob is seen online before he leaves again: the bridge shows a
	// buddy's latest presence, so an online and an offline handled
	// together would show nothing to PART.
	alice.expect("JOIN", func(m *irc.Message) bool { return m.Prefix != nil && m.Name == "bob" })
	m := bob.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "alice" })
	if m.Trailing() != "while you were out" {
		t.Errorf("offline message: got %q", m.Trailing())
	}
	ts, err := time.Parse("2006-01-02T15:04:05.000Z", m.Tags["time"])
	if err != nil || ts.Sub(sent.Truncate(time.Second)) > time.Second || sent.Sub(ts) > time.Second {
		t.Errorf("time tag %q (%v): want about %v", m.Tags["time"], err, sent.UTC())
	}
	bob.send("QUIT")
	alice.expect("PART", func(m *irc.Message) bool { return m.Name == "bob" })

	// Without server-time, a time prefix.
	alice.send("PRIVMSG bob :second one")
	alice.stored()
	bob = dial(t, st.ircAddr, "bob", "pw-bob")
	m = bob.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "alice" })
	if !strings.HasPrefix(m.Trailing(), "["+time.Now().UTC().Format("2006-01-02")) || !strings.HasSuffix(m.Trailing(), " UTC] second one") {
		t.Errorf("offline message without server-time: got %q", m.Trailing())
	}
}

func TestWhoisTom(t *testing.T) {
	st := startStack(t)
	c := login(t, st, "alice")
	c.command("&alice", "info tom", "tom is online")
	c.sync()
	c.send("WHOIS tom")
	var info []string
	for {
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Command == "318" {
			break
		}
		info = append(info, m.Trailing())
	}
	all := strings.Join(info, "\n")
	for _, want := range []string{"Display name: Tom", "User name: tom", "Headline: :-)", "Now playing: Sherwood - The Only Song", "Avatar: http", "Friends: ", "Last login: 20"} {
		if !strings.Contains(all, want) {
			t.Errorf("WHOIS tom lacks %q; got:\n%s", want, all)
		}
	}
}

func TestControlCommands(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	_ = bob
	ch := "&alice"
	for _, tc := range []struct{ line, want string }{
		{"help", "Commands: account, add, allow, blist, block, connect, disconnect, drop, help, history, identify, info, log, register, remove, rename, save, set, status, yes, zap"},
		{"help add", "add <user name|e-mail>"},
		{"help nope", "No command"},
		{"frobnicate", "Unknown command"},
		{"add", "Usage: add"},
		{"add nosuchuser", "No MSIM user is called"},
		{"add bob@msimircd.local", "Added bob"},
		{"remove", "Usage: remove"},
		{"remove nobody", "No buddy is called"},
		{"info", "Usage: info"},
		{"rename", "Usage: rename"},
		{"rename bob 9bad", "not a valid nick"},
		{"rename bob tom", "taken"},
		{"rename bob root", "taken"},
		{"rename bob alice", "taken"},
		{"block", "Usage: block"},
		{"block nobody", "No buddy is called"},
		{"allow", "Usage: allow"},
		{"allow nobody", "No buddy is called"},
		{"info nobody", "No buddy is called"},
		{"  status   ", "alice@msimircd.local is online"},
		{"set away_devoice false", "away_devoice = false"},
		{"set away_devoice true", "away_devoice = true"},
		{"set show_offline", "show_offline = false"},
		{"rename bob bobby", "bob is now known as bobby"},
		{"status", "alice@msimircd.local is online"},
		{"status sleeping", "Unknown status"},
		{"status away out to lunch", "away: out to lunch"},
		{"status online", "now online"},
		{"set", "away_devoice = true"},
		{"set nope", "Unknown setting"},
		{"set typing maybe", "takes true or false"},
		{"set typing false", "typing = false"},
		{"set typing", "typing = false"},
		{"zap", "Usage: zap"},
		{"block bobby", "Blocked bobby"},
		{"allow bobby", "Unblocked bobby"},
		{"add bob", "Added bob"},
		{"remove bobby", "Removed bobby"},
		{"connect", "already connected"},
		{"disconnect", "Disconnected alice@msimircd.local"},
		{"disconnect", "not connected"},
		{"info tom", "not connected"},
		{"connect", "Connecting to MSIM"},
	} {
		alice.command(ch, tc.line, tc.want)
	}
	alice.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	// The rename stuck across the reconnect: bob is still bobby.
	alice.command(ch, "add bob", "as bobby")
	// Commands sent privately to the service get private replies.
	alice.send("PRIVMSG root :help status")
	if m := alice.expectFrom("PRIVMSG", "root", "status [online"); m.Param(0) != "alice" {
		t.Errorf("private reply went to %q", m.Param(0))
	}
}

func TestBlockedBuddyLeaves(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	alice.send("PRIVMSG &alice :block bob")
	alice.expectAll(saysRoot("Blocked bob"), isCmd("PART", "bob"))
	// alice looks offline to bob, and bob's messages no longer reach her;
	// bob is not told (MSIM drops them).
	bob.command("&bob", "add alice", "Added alice")
	bob.sync()
	if n := bob.names("&bob"); contains(n, "+alice") || contains(n, "alice") {
		t.Errorf("bob sees alice in %v although she blocked him", n)
	}
	bob.send("PRIVMSG alice :are you there?")
	bob.sync()
	alice.send("PRIVMSG tom :ping")
	alice.expect("PRIVMSG", func(m *irc.Message) bool {
		if m.Name == "bob" {
			t.Errorf("alice got a message from blocked bob: %q", m.Trailing())
		}
		return m.Name == "tom"
	})
}

// TestRemoveKeepsTheBlock: remove on a blocked buddy says they are off
// the list already and leaves the block in place (MSIM's remove would lift
// it): their IMs are still dropped.
func TestRemoveKeepsTheBlock(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	bob.add("&bob", "alice")
	alice.command("&alice", "block bob", "Blocked bob")
	if m := alice.command("&alice", "remove bob", ""); !strings.Contains(m.Trailing(), "bob is blocked") {
		t.Errorf("remove bob: got %q, want to be told bob is blocked", m.Trailing())
	}
	bob.send("PRIVMSG alice :still blocked?")
	bob.stored() // the server has handled bob's IM to alice
	alice.send("PRIVMSG tom :ping")
	alice.expect("PRIVMSG", func(m *irc.Message) bool {
		if m.Name == "bob" {
			t.Errorf("alice got a message from blocked bob: %q", m.Trailing())
		}
		return m.Name == "tom"
	})
	alice.command("&alice", "info bob", "bob is")
	alice.expectFrom("PRIVMSG", "root", "Blocked: yes")
}

// TestBlockedBuddyPresenceUnknown: once blocked, a buddy's presence no
// longer comes (the block ends the subscription): blist and info say
// blocked rather than the last status seen, which goes stale.
func TestBlockedBuddyPresenceUnknown(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	carol := login(t, st, "carol", allCaps...)
	alice.add("&alice", "bob")
	carol.add("&carol", "bob")
	alice.command("&alice", "block bob", "Blocked bob")
	bob.send("AWAY :gone fishing")
	carol.expect("AWAY", isAway("bob", "gone fishing")) // the server has sent bob's presence
	if m := alice.command("&alice", "blist all", "bob ("); !strings.HasSuffix(m.Trailing(), ": blocked") {
		t.Errorf("blist all: got %q, want bob blocked", m.Trailing())
	}
	alice.expectFrom("PRIVMSG", "root", "(1 online, 0 away, 1 offline)")
	if m := alice.command("&alice", "info bob", "bob is"); strings.Contains(m.Trailing(), "online") {
		t.Errorf("info bob: got %q, want no stale status", m.Trailing())
	}
}

// TestAllowStrangerNotOnList: allow on a stranger who wrote and was
// blocked takes them off the block list only; the reply says so, not that
// they are on the buddy list again.
func TestAllowStrangerNotOnList(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	bob.add("&bob", "alice")
	bob.send("PRIVMSG alice :hi, you don't know me")
	alice.expectFrom("PRIVMSG", "bob", "you don't know me")
	alice.command("&alice", "block bob", "Blocked bob")
	if m := alice.command("&alice", "allow bob", "Unblocked bob"); m.Trailing() != "Unblocked bob. Type add bob to put them on your list." {
		t.Errorf("allow bob: got %q, want to be told to add bob", m.Trailing())
	}
	alice.command("&alice", "blist all", "1 buddy (")
}

// TestAllowHelp: help allow says what allow does: a buddy that was
// blocked goes back on the list by itself, without an add.
func TestAllowHelp(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	alice.command("&alice", "block bob", "Blocked bob")
	alice.command("&alice", "allow bob", "Unblocked bob; they are on your buddy list again.")
	if m := alice.command("&alice", "help allow", "allow <nick>"); strings.Contains(m.Trailing(), "add them again") || !strings.Contains(m.Trailing(), "goes back on your list") {
		t.Errorf("help allow: got %q, want a blocked buddy said to go back on the list", m.Trailing())
	}
}

// TestLinkDropQueuesAndReconnects cuts the MSIM connection and keeps it down:
// the channel says so, buddies leave, messages typed meanwhile are queued
// (the user is told), refused once the queue is full, and delivered after
// the reconnect.
func TestLinkDropQueuesAndReconnects(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	alice.send("PRIVMSG tom :hello")
	alice.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "tom" })

	st.proxy.setDown(true)
	if n := st.proxy.cut(); n != 1 {
		t.Fatalf("cut %d MSIM connections, want 1", n)
	}
	alice.expectAll(saysRoot("Lost the MSIM connection"), isCmd("PART", "tom"))
	alice.expectFrom("PRIVMSG", "root", "Cannot connect to MSIM") // the retry fails while down
	for i := 1; i <= 3; i++ {
		alice.sendf("PRIVMSG tom :queued %d", i)
		if m := alice.expect("NOTICE", isCmd("NOTICE", "tom")); !strings.Contains(m.Trailing(), fmt.Sprintf("queued (%d waiting)", i)) {
			t.Fatalf("queue notice: got %q", m.Trailing())
		}
	}
	alice.send("PRIVMSG tom :one too many")
	if m := alice.expect("NOTICE", isCmd("NOTICE", "tom")); !strings.Contains(m.Trailing(), "NOT sent") {
		t.Fatalf("full queue: got %q, want NOT sent", m.Trailing())
	}
	st.proxy.setDown(false)
	alice.expectAll(saysRoot("Logged in to MSIM"), isCmd("JOIN", "tom"), saysRoot("sent 3 queued"))
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf("queued %d", i)
		m := alice.expect("PRIVMSG", isCmd("PRIVMSG", "tom"))
		if !strings.Contains(m.Trailing(), want) {
			t.Errorf("Tom's echo %d: got %q, want it to contain %q (in order)", i, m.Trailing(), want)
		}
	}
}

func TestQueueWhileDisconnected(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	alice.command("&alice", "disconnect", "Disconnected")
	alice.send("PRIVMSG tom :nobody home")
	if m := alice.expect("NOTICE", func(m *irc.Message) bool { return m.Name == "tom" }); !strings.Contains(m.Trailing(), "NOT sent") {
		t.Errorf("send while disconnected: got %q, want a NOT sent notice", m.Trailing())
	}
}

func TestStrangerMessageArrives(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	if _, err := st.msrv.AddAccount("dave@example.com", "davepw", "dave"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dave, err := msim.Dial(ctx, msim.ClientConfig{Addr: st.proxy.addr(), Email: "dave@example.com", Password: "davepw"})
	if err != nil {
		t.Fatal(err)
	}
	defer dave.Close()
	p, err := dave.LookupUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := dave.SendIM(ctx, p.UID, "hi, you don't know me"); err != nil {
		t.Fatal(err)
	}
	if err := dave.SendIM(ctx, p.UID, "/me waves"); err != nil {
		t.Fatal(err)
	}
	m := alice.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "dave" })
	if m.Trailing() != "hi, you don't know me" {
		t.Errorf("got %q", m.Trailing())
	}
	if m := alice.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "dave" }); m.Trailing() != "\x01ACTION waves\x01" {
		t.Errorf("incoming /me: got %q", m.Trailing())
	}
	// A long, multi-line IM arrives whole, in several valid lines.
	long := strings.Repeat("word ", 150) + "end\nsecond line ünï"
	if err := dave.SendIM(ctx, p.UID, long); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for {
		m := alice.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "dave" })
		if n := wireLen(m); n > 512 {
			t.Errorf("line of %d bytes", n)
		}
		parts = append(parts, m.Trailing())
		if strings.HasSuffix(m.Trailing(), "ünï") {
			break
		}
	}
	if len(parts) < 3 || parts[len(parts)-1] != "second line ünï" ||
		strings.Join(strings.Fields(strings.Join(parts[:len(parts)-1], " ")), " ") != strings.TrimSpace(strings.Repeat("word ", 150)+"end") {
		t.Errorf("long message came as %d parts: %q", len(parts), parts)
	}
	// The reply goes back to dave.
	alice.send("PRIVMSG dave :who are you?")
	for ev := range dave.Events() {
		if im, ok := ev.(msim.IMEvent); ok {
			if im.Text != "who are you?" {
				t.Errorf("dave got %q", im.Text)
			}
			break
		}
	}
}

// TestHeldIMsArriveAtReconnect: IMs that reached an account after its IRC
// client left are shown, with their time, when the user comes back.
func TestHeldIMsArriveAtReconnect(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", "server-time")
	alice.quit()
	waitLeft(t, st.bridge, "demo/alice@msimircd.local")
	at := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	st.bridge.Hold("demo/alice@msimircd.local", "alice@msimircd.local", msim.IMEvent{From: 6221, Text: "held for you", Time: at})
	alice = dial(t, st.ircAddr, "alice", "pw-alice", "server-time")
	m := alice.expect("PRIVMSG", isCmd("PRIVMSG", "tom"))
	if m.Trailing() != "held for you" || m.Tags["time"] != "2026-11-23T08:00:00.000Z" {
		t.Errorf("held IM: got %q at %q", m.Trailing(), m.Tags["time"])
	}
}

// waitLeft waits until the gateway has let go of user's IRC connection:
// the session hears of a close on its own goroutine, and a connection that
// came before it did would be a second client of the session.
func waitLeft(t *testing.T, b *channel.Bridge, user string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); b.Attached(user) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s's connection is still attached", user)
		}
	}
}

// TestQueueSurvivesReconnect: messages still queued when the IRC client
// leaves stay queued; when it comes back it is told, and they are sent as
// soon as the account logs in.
func TestQueueSurvivesReconnect(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	st.proxy.setDown(true)
	st.proxy.cut()
	alice.expectFrom("PRIVMSG", "root", "Lost the MSIM connection")
	alice.send("PRIVMSG tom :stuck in the queue")
	alice.expect("NOTICE", isCmd("NOTICE", "tom"))
	alice.quit()
	waitLeft(t, st.bridge, "demo/alice@msimircd.local")
	st.proxy.setDown(false)
	alice = dial(t, st.ircAddr, "alice", "pw-alice", allCaps...)
	alice.expectFrom("PRIVMSG", "root", "1 message you typed while the MSIM link was down is still queued")
	alice.expectAll(saysRoot("sent 1 queued message"), isCmd("PRIVMSG", "tom")) // Tom answers it
}

// TestAwayKeepsVoice: with away_devoice off, an away buddy keeps the voice
// and is only marked away.
func TestAwayKeepsVoice(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	bob := login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	alice.command("&alice", "set away_devoice false", "away_devoice = false")
	bob.send("AWAY :lunch")
	alice.expect("AWAY", isAway("bob", "lunch"))
	for _, m := range alice.sync() {
		if m.Command == "MODE" {
			t.Errorf("got %v; want no mode change", m)
		}
	}
	if n := alice.names("&alice"); !contains(n, "+bob") {
		t.Errorf("NAMES: got %v, want +bob", n)
	}
}

// TestRenameToAnyValidNick: rename takes any nick its reply describes
// (underscores anywhere included), not only those the bridge would make
// from a user name.
func TestRenameToAnyValidNick(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	old := "tom"
	for _, nn := range []string{"tom_", "_tom", "t__m", "[tom]"} {
		if m := alice.command("&alice", "rename "+old+" "+nn, ""); m.Trailing() != old+" is now known as "+nn+"." {
			t.Errorf("rename %s %s: got %q", old, nn, m.Trailing())
			continue
		}
		old = nn
	}
	alice.command("&alice", "rename "+old+" 9tom", "is not a valid nick")
}

// TestRenameSurvivesReconnect: a renamed buddy keeps the new nick when the
// IRC user comes back.
func TestRenameSurvivesReconnect(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	login(t, st, "bob", allCaps...)
	alice.add("&alice", "bob")
	alice.command("&alice", "rename bob bobby", "bob is now known as bobby")
	alice.send("QUIT")
	alice.expect("ERROR", nil)
	alice = login(t, st, "alice", allCaps...)
	if n := alice.names("&alice"); !contains(n, "+bobby") || contains(n, "+bob") {
		t.Errorf("NAMES after reconnect: got %v, want +bobby", n)
	}
}
