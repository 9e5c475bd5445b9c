package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Real IRC clients against the msimircd binary: Debian's irssi (in tmux)
// and weechat-headless (driven through its fifo plugin). Each one connects
// to a msimircd on the embedded network, sees its control channel with
// root and Tom, chats with Tom, asks WHOIS, goes away and quits; what the
// client showed is read from the client's own log files.

// TestIrssi drives irssi in a detached tmux session: the commands are typed
// with tmux send-keys, and irssi logs every window to one file and each
// channel and query to its own (autolog).
func TestIrssi(t *testing.T) {
	needPrograms(t, "irssi not installed: apt-get install irssi tmux", "irssi", "tmux")
	ircd, addr := startDemo(t)
	home := t.TempDir()
	logs := filepath.Join(home, "logs")
	if err := os.Mkdir(logs, 0o700); err != nil { // irssi makes autolog's folders, not a log's
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, home, "config", fmt.Sprintf(`servers = (
  { address = %q; chatnet = "msim"; port = %q; use_tls = "no"; autoconnect = "no"; }
);
chatnets = { msim = { type = "IRC"; }; };
logs = { %q = { auto_open = "yes"; level = "ALL"; }; };
settings = {
  core = { nick = "ivy"; user_name = "ivy"; real_name = "Ivy"; settings_autosave = "no"; };
  "irc/core" = { cmd_queue_speed = "0"; };
  "fe-common/core" = { autolog = "yes"; autolog_path = %q; autolog_level = "ALL"; };
};
`, host, port, filepath.Join(logs, "all.log"), filepath.Join(logs, "$0.log")))

	tm := startTmux(t, "irssi", "--home="+home, "-n", "ivy")
	tm.waitPane("irssi's prompt", "[(status)]")
	steps := []clientStep{
		{"the control channel joined", "/connect msim", "&ivy.log", `-!- ivy \[ivy@127\.0\.0\.1\] has joined &ivy`},
		{"root's welcome", "", "&ivy.log", `<@root> Welcome to msimircd`},
		{"Tom in the channel", "", "&ivy.log", `-!- tom \[tom@msim\.6221\] has joined &ivy`},
		{"Tom voiced", "", "&ivy.log", `ServerMode/&ivy \[\+v tom\] by `},
		{"NAMES with root opped and Tom voiced", "/names &ivy", "&ivy.log", `\[@root\] \[\+tom\] \[ ivy\]`},
		{"Tom's answer in the query window", "/msg tom hi", "tom.log", `<tom> Hi! I'm Tom`},
		{"Tom's echo in the query window", "/msg tom how are you", "tom.log", `<tom> You said: how are you`},
		{"WHOIS tom", "/whois tom", "all.log", `ircname  : Tom`},
		{"WHOIS tom's MSIM info", "", "all.log", `: User name: tom \(uid 6221, account ivy\+`},
		{"the end of WHOIS", "", "all.log", `End of WHOIS`},
		{"306 for /away", "/away gone", "all.log", `You have been marked as being away`},
		{"irssi quitting with the message", "/quit bye", "all.log", `Disconnecting from server 127\.0\.0\.1: \[bye\]`},
	}
	runClientSteps(t, tm.send, logs, steps)
	tm.waitExit()
	quitSeen(t, ircd, addr, "ivy")
}

// TestWeeChat runs weechat-headless with a home of its own, the IRC,
// logger and fifo plugins only, and the server added on the command line;
// the commands are written to its FIFO, and its logger plugin writes each
// buffer's lines to a file at once.
func TestWeeChat(t *testing.T) {
	needPrograms(t, "weechat-headless not installed: apt-get install weechat-headless weechat-plugins", "weechat-headless")
	ircd, addr := startDemo(t)
	home := t.TempDir()
	logs := filepath.Join(home, "logs")
	server := fmt.Sprintf("/server add msim %s -nicks=wendy -username=wendy -realname=Wendy %s",
		strings.Replace(addr, ":", "/", 1), weechatServerOptions(t))
	wc := startWeeChat(t, home, "/set logger.file.flush_delay 0;"+server+";/connect msim")

	steps := []clientStep{
		{"the control channel joined", "", "irc.msim.&wendy.weechatlog", `-->\twendy \(Wendy\) \(wendy@127\.0\.0\.1\) has joined &wendy`},
		{"root's welcome", "", "irc.msim.&wendy.weechatlog", `@root\tWelcome to msimircd`},
		{"Tom in the channel", "", "irc.msim.&wendy.weechatlog", `-->\ttom \(Tom\) \(tom@msim\.6221\) has joined &wendy`},
		{"Tom voiced", "", "irc.msim.&wendy.weechatlog", `Mode &wendy \[\+v tom\] by `},
		{"NAMES with root opped and Tom voiced", "/names &wendy", "irc.msim.&wendy.weechatlog", `Nicks &wendy: \[@root \+tom wendy\]`},
		{"Tom's answer in the query buffer", "/msg tom hi", "irc.msim.tom.weechatlog", `\ttom\tHi! I'm Tom`},
		{"Tom's echo in the query buffer", "/msg tom how are you", "irc.msim.tom.weechatlog", `\ttom\tYou said: how are you`},
		{"WHOIS tom", "/whois tom", "irc.*.weechatlog", `\[tom\] \(tom@msim\.6221\): Tom`},
		{"WHOIS tom's MSIM info", "", "irc.*.weechatlog", `\[tom\] User name: tom \(uid 6221, account wendy\+`},
		{"the end of WHOIS", "", "irc.*.weechatlog", `\[tom\] End of /WHOIS list`},
		{"306 for /away", "/away gone", "irc.*.weechatlog", `You have been marked as being away`},
		{"Tom on the notify list (MONITOR, which gives his mask)", "/notify add tom msim", "irc.*.weechatlog", `notify: tom \(tom@msim\.6221\) is connected`},
	}
	runClientSteps(t, wc.send, logs, steps)
	wc.send("/quit bye")
	wc.waitExit()
	quitSeen(t, ircd, addr, "wendy")
}

// needPrograms skips the test when one of the programs is missing, with
// how to install them; in CI (CI=true), which installs them, it fails.
func needPrograms(t *testing.T, install string, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s (CI installs it: see .ci/run)", install)
			}
			t.Skip(install)
		}
	}
}

// startDemo runs msimircd with no config: the embedded network, where a
// nick without a password gets an MSIM account named after it and Tom as
// its buddy.
func startDemo(t *testing.T) (*proc, string) {
	t.Helper()
	p := startProc(t, "msimircd", binary(t, "."), "-state", t.TempDir(), "-listen", "127.0.0.1:0")
	return p, p.waitLog(ircOnRE)[1]
}

// quitSeen checks that msimircd saw nick's client leave (the bridge logged
// its MSIM account out) and that it still serves others.
func quitSeen(t *testing.T, ircd *proc, addr, nick string) {
	t.Helper()
	ircd.waitLog(regexp.MustCompile(`msg="logged out".*email=` + nick + `\+`))
	other, m := ircRegister(t, addr, "other", "")
	if m.Command != "001" {
		t.Fatalf("a client after %s quit: got %s %q, want 001", nick, m.Command, m.Trailing())
	}
	other.loggedIn("&other")
}

// clientStep is a command typed into a real client ("" for none) and the
// line that one of the client's log files (a glob in its log folder) must
// then show: a regular expression matched against the whole file.
type clientStep struct {
	what, command, log, want string
}

// clientTimeout bounds each step's wait for the client's log.
const clientTimeout = 15 * time.Second

// runClientSteps types each step's command with send and waits for its
// line; a failure shows the client's logs.
func runClientSteps(t *testing.T, send func(string), logs string, steps []clientStep) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, logs)
		}
	})
	for _, s := range steps {
		if s.command != "" {
			send(s.command)
		}
		waitClientLog(t, s.what, filepath.Join(logs, s.log), regexp.MustCompile(s.want))
	}
}

// waitClientLog polls the files matching glob until one of them matches
// re, failing the test after clientTimeout.
func waitClientLog(t *testing.T, what, glob string, re *regexp.Regexp) {
	t.Helper()
	var readErr error
	found := eventually(func() bool {
		files, _ := filepath.Glob(glob) // the glob is well-formed: the steps' are
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				readErr = err
				continue
			}
			if re.Match(b) {
				return true
			}
		}
		return false
	})
	if !found {
		why := ""
		if readErr != nil {
			why = fmt.Sprintf(" (%v)", readErr)
		}
		t.Fatalf("%s: no line matching `%s` in %s after %v%s", what, re, filepath.Base(glob), clientTimeout, why)
	}
}

// eventually calls done every 50 ms until it reports true, for at most
// clientTimeout; it reports whether done did.
func eventually(done func() bool) bool {
	deadline := time.Now().Add(clientTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// dumpLogs logs the files of the client's log folder.
func dumpLogs(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Logf("%s: %v", f, err)
			continue
		}
		t.Logf("client log %s:\n%s", filepath.Base(f), b)
	}
}

// tmuxSession is a program running in the session "test" of a tmux server
// of the test's own: a child process of the test (tmux -D), on a socket of
// its own, without a config file.
type tmuxSession struct {
	t      *testing.T
	socket string
}

// startTmux runs program with args in a new tmux server until the test
// ends.
func startTmux(t *testing.T, program string, args ...string) *tmuxSession {
	t.Helper()
	// A folder of its own, outside t.TempDir: a socket's path is short.
	dir, err := os.MkdirTemp("", "tmux-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tm := &tmuxSession{t: t, socket: filepath.Join(dir, "sock")}
	startProcEnv(t, "tmux", tmuxEnv, "tmux", "-S", tm.socket, "-f", "/dev/null", "-D")
	t.Cleanup(func() { // before startProc's kill -9: let the server end its panes (SIGHUP)
		if t.Failed() {
			if out, err := tm.tmux("capture-pane", "-p", "-t", "test"); err == nil {
				t.Logf("%s's screen:\n%s", program, out)
			}
		}
		_, _ = tm.tmux("kill-server")
	})
	// A client that finds no server starts one of its own: wait for ours.
	if !eventually(func() bool { _, err := os.Stat(tm.socket); return err == nil }) {
		t.Fatalf("tmux -D made no socket %s within %v", tm.socket, clientTimeout)
	}
	cmd := append([]string{"new-session", "-d", "-s", "test", "-x", "160", "-y", "50", "--", program}, args...)
	if out, err := tm.tmux(cmd...); err != nil {
		t.Fatalf("tmux new-session %s: %v\n%s", program, err, out)
	}
	return tm
}

// tmuxEnv is added to tmux's environment: a terminal it knows, whatever
// the test's is (none in CI).
var tmuxEnv = []string{"TERM=xterm-256color"}

// tmux runs a tmux command on the session's server.
func (tm *tmuxSession) tmux(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-S", tm.socket, "-f", "/dev/null"}, args...)...)
	cmd.Env = append(os.Environ(), tmuxEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// send types line and Enter.
func (tm *tmuxSession) send(line string) {
	tm.t.Helper()
	if out, err := tm.tmux("send-keys", "-t", "test", "-l", line); err != nil {
		tm.t.Fatalf("tmux send-keys %q: %v\n%s", line, err, out)
	}
	if out, err := tm.tmux("send-keys", "-t", "test", "Enter"); err != nil {
		tm.t.Fatalf("tmux send-keys Enter: %v\n%s", err, out)
	}
}

// waitPane polls the screen until it shows text.
func (tm *tmuxSession) waitPane(what, text string) {
	tm.t.Helper()
	var screen string
	if !eventually(func() bool {
		screen, _ = tm.tmux("capture-pane", "-p", "-t", "test")
		return strings.Contains(screen, text)
	}) {
		tm.t.Fatalf("%s: the screen never showed %q:\n%s", what, text, screen)
	}
}

// waitExit waits for the program to end, which ends its session.
func (tm *tmuxSession) waitExit() {
	tm.t.Helper()
	if !eventually(func() bool { _, err := tm.tmux("has-session", "-t", "test"); return err != nil }) {
		tm.t.Fatalf("the program in tmux did not exit within %v", clientTimeout)
	}
}

// weechat is a running weechat-headless.
type weechat struct {
	*proc
	fifo string
}

// startWeeChat runs weechat-headless in home until the test ends, running
// commands (separated by ";") once it has started, and waits for its FIFO.
func startWeeChat(t *testing.T, home, commands string) *weechat {
	t.Helper()
	p := startProc(t, "weechat-headless", "weechat-headless", "--dir", home, "--plugins", "irc,logger,fifo", "--no-script", "--run-command", commands)
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(home, "weechat.log")); err == nil && t.Failed() {
			t.Logf("weechat.log:\n%s", b)
		}
	})
	// The fifo plugin's pipe: weechat_fifo_PID in the runtime folder.
	w := &weechat{proc: p, fifo: filepath.Join(home, "weechat_fifo_"+strconv.Itoa(p.cmd.Process.Pid))}
	exited := false
	if !eventually(func() bool {
		select {
		case <-p.done:
			exited = true
			return true
		default:
		}
		_, err := os.Stat(w.fifo)
		return err == nil
	}) || exited {
		t.Fatalf("weechat-headless made no FIFO %s (exited: %v; is weechat-plugins, which holds the fifo plugin, installed?)", w.fifo, exited)
	}
	return w
}

// send runs command on the server buffer, through the FIFO.
func (w *weechat) send(command string) {
	w.t.Helper()
	// Non-blocking: if weechat no longer reads the FIFO, the open fails
	// instead of hanging.
	f, err := os.OpenFile(w.fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		w.t.Fatalf("open weechat's FIFO for %q: %v", command, err)
	}
	defer f.Close()
	if _, err := f.WriteString("irc.server.msim *" + command + "\n"); err != nil {
		w.t.Fatalf("write %q to weechat's FIFO: %v", command, err)
	}
}

// waitExit waits for weechat to end by itself, and reaps it.
func (w *weechat) waitExit() {
	w.t.Helper()
	select {
	case <-w.done:
	case <-time.After(clientTimeout):
		w.t.Fatalf("weechat-headless did not exit within %v", clientTimeout)
	}
	if err := w.cmd.Wait(); err != nil {
		w.t.Errorf("weechat-headless exited with %v", err)
	}
}

// weechatServerOptions are the /server add options for a plain-text
// connection without anti-flood delays, in the names of the installed
// WeeChat: 4.0 renamed ssl to tls (and made it the default) and merged
// the two anti-flood options into one counted in milliseconds.
func weechatServerOptions(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("weechat-headless", "--version").Output()
	if err != nil {
		t.Fatalf("weechat-headless --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		t.Fatalf("weechat-headless --version: got %q, want a version like 3.8", v)
	}
	if major >= 4 {
		return "-notls -anti_flood=0"
	}
	return "-nossl -anti_flood_prio_high=0 -anti_flood_prio_low=0"
}
