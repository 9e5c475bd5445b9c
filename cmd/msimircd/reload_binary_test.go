package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"gopkg.in/irc.v4"
)

// TestBinaryReload runs msimircd as a binary with the user alice in its
// config, chatting with Tom. A config file that does not parse, sent with
// kill -HUP, is refused with its error in the log: bob, whom it adds,
// cannot log in. Then bob is added for real and kill -HUP sent while
// alice sends IMs: bob logs in with his password and chats, and alice's
// connection saw no disconnect, her MSIM link stayed up, and Tom answered
// each of her IMs before, during and after the reloads once. Last, bob is
// removed and kill -HUP sent: he is disconnected with a notice saying why.
func TestBinaryReload(t *testing.T) {
	bin := binary(t, ".")
	dir := t.TempDir()
	config := writeFile(t, dir, "msimircd.toml", reloadConfig("", "alice"))
	p := startProc(t, "msimircd", bin, "-state", t.TempDir(), "-config", config, "-listen", "127.0.0.1:0")
	ircAddr := p.waitLog(ircOnRE)[1]
	hup := func(text string) {
		t.Helper()
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	alice := connectChatter(t, ircAddr, "alice")
	alice.say("hello")
	alice.say("before the reloads")
	alice.answered(t)

	hup(reloadConfig("motd = [\"broken", "alice", "bob"))
	alice.say("during the refused reload")
	refusal := p.waitLog(regexp.MustCompile(`.*reload refused.*`))[0]
	if !strings.Contains(refusal, "line 3") || !strings.Contains(refusal, "irc.motd") {
		t.Errorf("the refusal's log line names no line or key: %s", refusal)
	}
	refused(t, ircAddr, "bob", "irc-bob")
	alice.say("after the refused reload")
	alice.answered(t)

	hup(reloadConfig("", "alice", "bob"))
	for i := range 5 {
		alice.say(fmt.Sprintf("during the reload %d", i))
	}
	p.waitLog(regexp.MustCompile(`msg="reload: users changed".*added="?\[bob\]`))
	p.waitLog(regexp.MustCompile(`msg="config reloaded"`))
	alice.say("after the reload")
	bob := connectChatter(t, ircAddr, "bob")
	bob.say("hi Tom")
	bob.say("bob here")
	bob.answered(t)
	alice.say("after bob came")
	alice.answered(t)

	hup(reloadConfig("", "alice"))
	n := bob.wait("the notice", func(m *irc.Message) bool { return m.Command == "NOTICE" && m.Name == "root" })
	if !strings.Contains(n.Trailing(), "removed from the gateway's configuration") {
		t.Errorf("bob: got notice %q, want it to say why he is disconnected", n.Trailing())
	}
	bob.wait("ERROR", func(m *irc.Message) bool { return m.Command == "ERROR" })
	p.waitLog(regexp.MustCompile(`msg="config reloaded"`))
	refused(t, ircAddr, "bob", "irc-bob")
	alice.say("after bob left")
	alice.answered(t)
}
