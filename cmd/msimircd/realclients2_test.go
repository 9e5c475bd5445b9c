package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// Several real IRC clients attached to one user at once: irssi (in tmux)
// and weechat-headless as the same nick with the same password, each
// naming itself (soju's user/client convention), and a raw connection with
// draft/chathistory.

// TestIrssiAndWeeChatTogether: irssi and WeeChat attach to one persistent
// user of the embedded network at once and both see the conversation:
// what Tom says to either, and what either types to Tom as the user's own
// message in the other. WeeChat (3.8 has no draft/chathistory) leaves;
// while it is away its buddy bob writes and irssi chats with Tom; back
// under the same client name, WeeChat gets exactly what it missed
// replayed. A raw client with draft/chathistory, attached as well, fetches
// the conversations with CHATHISTORY LATEST, and a last IM from bob shows
// in all three clients at once.
func TestIrssiAndWeeChatTogether(t *testing.T) {
	needPrograms(t, "irssi, tmux or weechat-headless not installed: apt-get install irssi tmux weechat-headless weechat-plugins",
		"irssi", "tmux", "weechat-headless")
	const password = "ivy-secret"
	dir := t.TempDir()
	accounts := writeFile(t, dir, "accounts.txt", "bob@example.com:BobPw1\n")
	ircd := startProc(t, "msimircd", binary(t, "."), "-state", filepath.Join(dir, "state"), "-listen", "127.0.0.1:0",
		"-msim-listen", "127.0.0.1:0", "-msim-account-file", accounts, "-metrics-listen", "127.0.0.1:0")
	// Logged in this order.
	msimAddr := ircd.waitLog(msimAtRE)[1]
	metricsAddr := ircd.waitLog(metricsOnRE)[1]
	ircAddr := ircd.waitLog(ircOnRE)[1]
	bob := msimDial(t, msimAddr, "bob@example.com", "BobPw1")
	imsOf(bob) // read, so that his link never stalls

	// irssi comes first: it starts ivy's session.
	irssi := startIrssi(t, ircAddr, "ivy", "ivy/irssi", password)
	irssi.send("/connect msim")
	irssi.see("the control channel joined", "&ivy.log", `-!- ivy \[[^]]+\] has joined &ivy`)
	irssi.see("the account logged in", "&ivy.log", `<@root> Logged in to MSIM as ivy`)
	irssi.see("Tom voiced", "&ivy.log", `ServerMode/&ivy \[\+v tom\] by `)

	// WeeChat attaches to the running session: it is given the same world.
	wee := startWeeChatAs(t, "weechat", ircAddr, "ivy", "ivy/weechat", password)
	wee.see("the control channel joined", "irc.msim.&ivy.weechatlog", `-->\tivy \([^)]*\) \([^)]+\) has joined &ivy`)
	wee.see("the account logged in", "irc.msim.&ivy.weechatlog", `@root\tLogged in to MSIM as ivy`)
	irssi.send("/names &ivy")
	irssi.see("NAMES with root opped and Tom voiced", "&ivy.log", `\[@root\] \[\+tom\] \[ ivy\]`)
	wee.send("/names &ivy")
	wee.see("NAMES with root opped and Tom voiced", "irc.msim.&ivy.weechatlog", `Nicks &ivy: \[@root \+tom ivy\]`)

	// What irssi says to Tom, and his answer, show in both.
	irssi.send("/msg tom hi")
	irssi.see("Tom's answer", "tom.log", `<tom> Hi! I'm Tom`)
	wee.see("Tom's answer to irssi", "irc.msim.tom.weechatlog", `\ttom\tHi! I'm Tom`)
	wee.see("irssi's hi as ivy's own", "irc.msim.tom.weechatlog", `(?m)\tivy\thi$`)

	// What WeeChat says to Tom, and his answer, show in both.
	wee.send("/msg tom from weechat")
	wee.see("Tom's answer", "irc.msim.tom.weechatlog", `\ttom\tYou said: from weechat`)
	irssi.see("WeeChat's message as ivy's own", "tom.log", `(?m)<ivy> from weechat$`)
	irssi.see("Tom's answer to WeeChat", "tom.log", `<tom> You said: from weechat`)

	// A buddy added in one client shows in both.
	irssi.send("/msg &ivy add bob")
	irssi.see("bob in the channel", "&ivy.log", `-!- bob \[[^]]+\] has joined &ivy`)
	wee.see("bob in the channel", "irc.msim.&ivy.weechatlog", `-->\tbob \([^)]*\) \([^)]+\) has joined &ivy`)

	// WeeChat leaves; irssi stays. Once msimircd has closed the
	// connection (one IRC connection left), the session has been told,
	// before anything that follows, so WeeChat's position is what it saw.
	wee.send("/quit gone for a while")
	wee.waitExit()
	waitConnections(t, metricsAddr, 1)

	// While WeeChat is away: bob writes, and irssi chats with Tom.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ivyUID := lookupUID(t, bob, "ivy")
	if err := bob.SendIM(ctx, ivyUID, "sent while WeeChat was away"); err != nil {
		t.Fatal(err)
	}
	irssi.see("bob's IM", "bob.log", `<bob> sent while WeeChat was away`)
	irssi.send("/msg tom said while WeeChat was away")
	irssi.see("Tom's answer", "tom.log", `<tom> You said: said while WeeChat was away`)

	// WeeChat comes back under the same client name, with a fresh home
	// and logs: it is given what it missed, and only that, with the
	// original times (it has server-time: no date prefix).
	wee2 := startWeeChatAs(t, "weechat again", ircAddr, "ivy", "ivy/weechat", password)
	wee2.see("the control channel joined", "irc.msim.&ivy.weechatlog", `-->\tivy \([^)]*\) \([^)]+\) has joined &ivy`)
	wee2.see("bob's IM replayed", "irc.msim.bob.weechatlog", `(?m)\tbob\tsent while WeeChat was away$`)
	wee2.see("irssi's message replayed as ivy's own", "irc.msim.tom.weechatlog", `(?m)\tivy\tsaid while WeeChat was away$`)
	wee2.see("Tom's answer replayed", "irc.msim.tom.weechatlog", `(?m)\ttom\tYou said: said while WeeChat was away$`)
	// The replay of a conversation comes in order, so it is complete now.
	wee2.never("what it had seen, replayed", "irc.msim.tom.weechatlog", `(?m)\tivy\thi$|Hi! I'm Tom|from weechat`)

	// A client with draft/chathistory, attached too, fetches the
	// conversations.
	raw := dialIRC(t, ircAddr, "ivy", password, "draft/chathistory", "batch", "server-time", "message-tags")
	checkHistory(t, raw, "tom", []historyLine{
		{"ivy", "hi"},
		{"tom", "Hi! I'm Tom"},
		{"ivy", "from weechat"},
		{"tom", "You said: from weechat"},
		{"ivy", "said while WeeChat was away"},
		{"tom", "You said: said while WeeChat was away"},
	})
	checkHistory(t, raw, "bob", []historyLine{{"bob", "sent while WeeChat was away"}})

	// Three clients attached at once: an IM from bob shows in each.
	if err := bob.SendIM(ctx, ivyUID, "to all three of you"); err != nil {
		t.Fatal(err)
	}
	raw.wait("bob's last IM", imFrom("bob", "to all three of you"))
	irssi.see("bob's last IM", "bob.log", `<bob> to all three of you`)
	wee2.see("bob's last IM", "irc.msim.bob.weechatlog", `\tbob\tto all three of you`)

	wee2.send("/quit bye")
	wee2.waitExit()
	irssi.send("/quit bye")
	irssi.tm.waitExit()
}

// metricsOnRE matches msimircd's line naming its metrics listener.
var metricsOnRE = regexp.MustCompile(`metrics on http://(127\.0\.0\.1:\d+)/metrics`)

// waitConnections polls msimircd's metrics until it has n IRC
// connections open.
func waitConnections(t *testing.T, metricsAddr string, n float64) {
	t.Helper()
	var got float64
	if !eventually(func() bool {
		got = scrapeMetrics(t, metricsAddr)["msimircd_irc_connections"]
		return got == n
	}) {
		t.Fatalf("msimircd_irc_connections: got %v, want %v within %v", got, n, clientTimeout)
	}
}

// historyLine is one IM of a conversation: who sent it, and its text.
type historyLine struct{ from, text string }

// checkHistory asks for the latest messages with buddy through
// CHATHISTORY and checks they are want, in order, in a chathistory batch,
// each with a msgid and a time.
func checkHistory(t *testing.T, c *ircClient, buddy string, want []historyLine) {
	t.Helper()
	c.send("CHATHISTORY LATEST " + buddy + " * 10")
	start := c.wait("the chathistory batch of "+buddy, func(m *irc.Message) bool {
		return m.Command == "BATCH" || m.Command == "FAIL"
	})
	if start.Command == "FAIL" || len(start.Params) < 3 || start.Params[1] != "chathistory" || !strings.EqualFold(start.Params[2], buddy) {
		t.Fatalf("CHATHISTORY LATEST %s: got %v, want BATCH +ref chathistory %s", buddy, start, buddy)
	}
	ref := strings.TrimPrefix(start.Params[0], "+")
	var got []historyLine
	for {
		m := c.wait("the history of "+buddy, func(m *irc.Message) bool {
			return m.Tags["batch"] == ref || m.Command == "BATCH" && m.Param(0) == "-"+ref
		})
		if m.Command == "BATCH" {
			break
		}
		if m.Command != "PRIVMSG" {
			t.Errorf("history of %s: got %v, want only PRIVMSGs", buddy, m)
			continue
		}
		if m.Tags["msgid"] == "" || m.Tags["time"] == "" {
			t.Errorf("history of %s: %q has msgid %q and time %q, want both", buddy, m.Trailing(), m.Tags["msgid"], m.Tags["time"])
		}
		to := buddy
		if m.Name == buddy {
			to = "ivy"
		}
		if m.Param(0) != to {
			t.Errorf("history of %s: %q from %s is to %s, want to %s", buddy, m.Trailing(), m.Name, m.Param(0), to)
		}
		got = append(got, historyLine{m.Name, m.Trailing()})
	}
	if len(got) != len(want) {
		t.Fatalf("CHATHISTORY LATEST %s * 10: got %q, want %q", buddy, got, want)
	}
	for i := range want {
		// Tom's greeting goes on after its start.
		if got[i].from != want[i].from || !strings.HasPrefix(got[i].text, want[i].text) {
			t.Errorf("CHATHISTORY LATEST %s, message %d: got %q from %s, want %q from %s", buddy, i+1, got[i].text, got[i].from, want[i].text, want[i].from)
		}
	}
}

// realClient is a real IRC client the test types commands into and whose
// log files it reads.
type realClient struct {
	t    *testing.T
	name string
	logs string       // the folder of its log files
	send func(string) // types a command
}

// see waits until the client's log file (a glob in its log folder) has a
// line matching the regular expression want.
func (c *realClient) see(what, log, want string) {
	c.t.Helper()
	waitClientLog(c.t, c.name+": "+what, filepath.Join(c.logs, log), regexp.MustCompile(want))
}

// never fails the test if the client's log file matches the regular
// expression bad.
func (c *realClient) never(what, log, bad string) {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.logs, log))
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	if m := regexp.MustCompile(bad).Find(b); m != nil {
		c.t.Errorf("%s: %s: %s has %q, want no line matching `%s`", c.name, what, log, m, bad)
	}
}

// newRealClient shows the client's logs if the test fails.
func newRealClient(t *testing.T, name, logs string, send func(string)) *realClient {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the logs of %s:", name)
			dumpLogs(t, logs)
		}
	})
	return &realClient{t: t, name: name, logs: logs, send: send}
}

// irssiClient is irssi in tmux.
type irssiClient struct {
	*realClient
	tm *tmuxSession
}

// startIrssi runs irssi in tmux with the server msim at addr (not yet
// connected), as nick with the user name user and the password password
// ("" = none), logging every window to all.log and each channel and query
// to its own file.
func startIrssi(t *testing.T, addr, nick, user, password string) *irssiClient {
	t.Helper()
	home := t.TempDir()
	logs := filepath.Join(home, "logs")
	if err := os.Mkdir(logs, 0o700); err != nil { // irssi makes autolog's folders, not a log's
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	pass := ""
	if password != "" {
		pass = fmt.Sprintf("password = %q; ", password)
	}
	writeFile(t, home, "config", fmt.Sprintf(`servers = (
  { address = %q; chatnet = "msim"; port = %q; %suse_tls = "no"; autoconnect = "no"; }
);
chatnets = { msim = { type = "IRC"; }; };
logs = { %q = { auto_open = "yes"; level = "ALL"; }; };
settings = {
  core = { nick = %q; user_name = %q; real_name = "Ivy"; settings_autosave = "no"; };
  "irc/core" = { cmd_queue_speed = "0"; };
  "fe-common/core" = { autolog = "yes"; autolog_path = %q; autolog_level = "ALL"; };
};
`, host, port, pass, filepath.Join(logs, "all.log"), nick, user, filepath.Join(logs, "$0.log")))
	tm := startTmux(t, "irssi", "--home="+home, "-n", nick)
	tm.waitPane("irssi's prompt", "[(status)]")
	return &irssiClient{realClient: newRealClient(t, "irssi", logs, tm.send), tm: tm}
}

// weechatClient is a weechat-headless.
type weechatClient struct {
	*realClient
	wc *weechat
}

// startWeeChatAs runs weechat-headless with a new home, connected to the
// server msim at addr as nick with the user name user and the password
// password; name tells its logs apart in a failure.
func startWeeChatAs(t *testing.T, name, addr, nick, user, password string) *weechatClient {
	t.Helper()
	home := t.TempDir()
	server := fmt.Sprintf("/server add msim %s -nicks=%s -username=%s -realname=Ivy -password=%s %s",
		strings.Replace(addr, ":", "/", 1), nick, user, password, weechatServerOptions(t))
	wc := startWeeChat(t, home, "/set logger.file.flush_delay 0;"+server+";/connect msim")
	return &weechatClient{realClient: newRealClient(t, name, filepath.Join(home, "logs"), wc.send), wc: wc}
}

func (w *weechatClient) waitExit() {
	w.t.Helper()
	w.wc.waitExit()
}
