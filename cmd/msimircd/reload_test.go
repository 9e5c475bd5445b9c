package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/testcert"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"
)

// TestDiffConfig: which changed keys a reload applies and which need a
// restart.
func TestDiffConfig(t *testing.T) {
	base := Defaults()
	base.IRC.TLS = []TLSEntry{{Listen: "127.0.0.1:6697", Cert: "a.pem", Key: "a.key"}}
	base.Users = []UserEntry{{Name: "alice", Password: "pw", Accounts: []AccountEntry{{Email: "alice@example.com", Password: "A1"}}}}
	demo := Defaults()
	for _, tc := range []struct {
		name          string
		started, last Config // last: the base when zero
		edit          func(c *Config)
		live, restart []string
	}{
		{name: "nothing", started: base, edit: func(*Config) {}},
		{name: "motd", started: base, edit: func(c *Config) { c.IRC.MOTD = []string{"new"} }, live: []string{"irc.motd"}},
		{name: "flood", started: base, edit: func(c *Config) { c.IRC.FloodRate, c.IRC.FloodBurst = 1, 2 }, live: []string{"irc.flood_rate", "irc.flood_burst"}},
		{name: "log", started: base, edit: func(c *Config) { c.Log.Level, c.Log.Format = "debug", "json" }, live: []string{"log.level", "log.format"}},
		{name: "user added", started: base, edit: func(c *Config) {
			c.Users = append(slices.Clone(c.Users), UserEntry{Name: "bob", Accounts: []AccountEntry{{Email: "bob@example.com", Password: "B1"}}})
		}, live: []string{"user"}},
		{name: "account password", started: base, edit: func(c *Config) {
			c.Users = []UserEntry{{Name: "alice", Password: "pw", Accounts: []AccountEntry{{Email: "alice@example.com", Password: "A2"}}}}
		}, live: []string{"user"}},
		{name: "server password with users", started: base, edit: func(c *Config) { c.IRC.Password = "x" }, live: []string{"irc.password"}},
		{name: "server password on the demo network", started: demo, edit: func(c *Config) { c.IRC.Password = "x" }, restart: []string{"irc.password"}},
		{name: "users on the demo network", started: demo, edit: func(c *Config) { c.Users = base.Users }, restart: []string{"user"}},
		{name: "TLS files", started: base, edit: func(c *Config) {
			c.IRC.TLS = []TLSEntry{{Listen: "127.0.0.1:6697", Cert: "b.pem", Key: "b.key"}}
		}, live: []string{"irc.tls[1].cert", "irc.tls[1].key"}},
		{name: "TLS address", started: base, edit: func(c *Config) { c.IRC.TLS = []TLSEntry{{Listen: "127.0.0.1:7000", Cert: "a.pem", Key: "a.key"}} },
			restart: []string{"irc.tls[1].listen"}},
		{name: "TLS listener added", started: base, edit: func(c *Config) { c.IRC.TLS = append(slices.Clone(c.IRC.TLS), TLSEntry{Listen: ":7000"}) },
			restart: []string{"irc.tls"}},
		{name: "restart keys", started: base, edit: func(c *Config) {
			c.IRC.Listen = []string{"127.0.0.1:7000"}
			c.IRC.ServerName = "other"
			c.MSIM.EmbeddedAddr = "127.0.0.1:1863"
			c.MSIM.ReconnectMax = Duration{time.Hour}
			c.Store.DSN = "other.db"
			c.Store.StateDir = "/elsewhere"
		}, restart: []string{"irc.listen", "irc.server_name", "msim.embedded_listen", "msim.reconnect_max", "store.state_dir", "store.dsn"}},
		{name: "accounts file content", started: base, edit: func(c *Config) { c.MSIM.fileAccounts = []string{"x@example.com:X1"} }, restart: []string{"msim.accounts_file"}},
		{name: "applied before", started: base, last: func() Config { c := base; c.IRC.MOTD = []string{"new"}; c.IRC.Network = "other"; return c }(),
			edit: func(c *Config) { c.IRC.MOTD = []string{"new"}; c.IRC.Network = "other" }, restart: []string{"irc.network"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := tc.started
			tc.edit(&next)
			last := tc.last
			if last.IRC.ServerName == "" {
				last = tc.started
			}
			d := diffConfig(tc.started, last, next)
			if !slices.Equal(d.live, tc.live) {
				t.Errorf("live: got %q, want %q", d.live, tc.live)
			}
			if !slices.Equal(d.restart, tc.restart) {
				t.Errorf("restart: got %q, want %q", d.restart, tc.restart)
			}
		})
	}
}

// reloading is a gateway built from a config file, serving, and its
// reloader.
type reloading struct {
	r    *reloader
	irc  string // the first IRC listener
	tls  string // the first TLS listener, if any
	log  *logrus.Logger
	hook *logtest.Hook
}

// startReloading builds and runs the gateway of the config file at path
// (its listeners on ports of their choosing) until the test ends.
func startReloading(t *testing.T, path string) *reloading {
	t.Helper()
	file, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return startReloadingAs(t, path, file, file, file)
}

// startReloadingAs is startReloading with the config in effect running
// (the file with the command line's overrides), the gateway built from
// built.
func startReloadingAs(t *testing.T, path string, file, running, built Config) *reloading {
	t.Helper()
	l, hook := logtest.NewNullLogger()
	g, err := build(context.Background(), built, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	rl := &reloading{r: newReloader(g, path, file, running), log: l, hook: hook}
	for _, ln := range g.ircLns {
		if _, ok := ln.(interface{ Certificate() *tls.Certificate }); ok && rl.tls == "" {
			rl.tls = ln.Addr().String()
		} else if rl.irc == "" {
			rl.irc = ln.Addr().String()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan listening, 1)
	go func() { done <- g.run(ctx, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		g.close()
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	return rl
}

// logged reports whether an entry at level whose message contains msg and
// whose fields hold every one of fields was logged.
func (rl *reloading) logged(level logrus.Level, msg string, fields logrus.Fields) bool {
	return slices.ContainsFunc(rl.hook.AllEntries(), func(e *logrus.Entry) bool {
		if e.Level != level || !strings.Contains(e.Message, msg) {
			return false
		}
		for k, v := range fields {
			if fmt.Sprint(e.Data[k]) != fmt.Sprint(v) {
				return false
			}
		}
		return true
	})
}

// reloadConfig is a config on the embedded network, with listeners on
// ports of their choosing, and users.
func reloadConfig(extra string, users ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[irc]\nlisten = [\"127.0.0.1:0\"]\n%s\n", extra)
	for _, u := range users {
		fmt.Fprintf(&b, "[[user]]\nname = %q\npassword = \"irc-%s\"\n\n  [[user.account]]\n  email = \"%s@example.com\"\n  password = \"Msim-%s\"\n\n", u, u, u, u)
	}
	return b.String()
}

// chatter is an IRC user chatting with Tom who records everything they
// are sent.
type chatter struct {
	*ircClient
	nick  string
	got   []*irc.Message
	texts []string // said to Tom
}

func connectChatter(t *testing.T, addr, nick string) *chatter {
	t.Helper()
	c := &chatter{nick: nick}
	c.ircClient = dialIRC(t, addr, nick, "irc-"+nick)
	c.seen = func(m *irc.Message) { c.got = append(c.got, m) }
	c.wait(nick+"'s login", said("&"+nick, "Logged in"))
	// Tom joins as the login completes, or is in NAMES already when the
	// account was online before the client came (always on).
	tom := func(m *irc.Message) bool {
		return (m.Command == "JOIN" && m.Name == "tom") ||
			(m.Command == "353" && slices.Contains(strings.Fields(m.Trailing()), "+tom"))
	}
	if !slices.ContainsFunc(c.got, tom) {
		c.wait("Tom", tom)
	}
	return c
}

// say sends text to Tom without waiting for his answer.
func (c *chatter) say(text string) {
	c.send("PRIVMSG tom :" + text)
	c.texts = append(c.texts, text)
}

// answered waits until Tom has answered the last thing said, then checks
// that he answered everything said once (his first answer is a greeting)
// and that nothing told the user of a lost connection, link or channel.
func (c *chatter) answered(t *testing.T) {
	t.Helper()
	last := c.texts[len(c.texts)-1]
	c.wait("Tom's answer to "+last, imFrom("tom", "You said: "+last))
	count := map[string]int{}
	greetings := 0
	for _, m := range c.got {
		switch {
		case m.Command == "PRIVMSG" && m.Name == "tom" && strings.HasPrefix(m.Trailing(), "Hi!"):
			greetings++
		case m.Command == "PRIVMSG" && m.Name == "tom":
			count[strings.TrimPrefix(m.Trailing(), "You said: ")]++
		case m.Command == "ERROR", m.Command == "PART", m.Command == "KICK",
			m.Name == "root" && (strings.Contains(m.Trailing(), "Lost") || strings.Contains(m.Trailing(), "configuration")):
			t.Errorf("%s: got %q, want nothing about the connection, link or channel", c.nick, m)
		}
	}
	if greetings > 1 {
		t.Errorf("%s: Tom greeted %d times, want once", c.nick, greetings)
	}
	logins := slices.IndexFunc(c.got, said("&"+c.nick, "Logged in"))
	if again := slices.IndexFunc(c.got[logins+1:], said("&"+c.nick, "Logged in")); again >= 0 {
		t.Errorf("%s: logged in to MSIM again (%q)", c.nick, c.got[logins+1+again])
	}
	for i, text := range c.texts {
		want := 1
		if i == 0 {
			want = 0 // greeted
		}
		if count[text] != want {
			t.Errorf("%s: Tom answered %q %d times, want %d", c.nick, text, count[text], want)
		}
	}
}

// refused checks that nick cannot log in with password pass.
func refused(t *testing.T, addr, nick, pass string) {
	t.Helper()
	_, m := ircRegister(t, addr, nick, pass)
	if m.Command != "464" && m.Command != "ERROR" {
		t.Errorf("%s: got %s %q, want a refusal", nick, m.Command, m.Trailing())
	}
}

// TestReloadAddsUser: a reload of a config that adds bob lets him log in
// and chat, while alice's chat with Tom goes on: she is not disconnected,
// her MSIM link stays, and Tom answers each of her IMs before, during and
// after the reload once. The new MOTD, flood limits and log level apply;
// changed keys that need a restart are named and not applied.
func TestReloadAddsUser(t *testing.T) {
	path := writeConfig(t, reloadConfig("", "alice"))
	rl := startReloading(t, path)
	alice := connectChatter(t, rl.irc, "alice")
	alice.say("hello")
	alice.say("before the reload")
	alice.answered(t)
	refused(t, rl.irc, "bob", "irc-bob")

	if err := os.WriteFile(path, []byte(reloadConfig("motd = [\"reloaded\"]\nflood_rate = 2.0\nflood_burst = 30\nnetwork = \"elsewhere\"\n[log]\nlevel = \"debug\"", "alice", "bob")), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rl.r.reload() }()
	for i := range 5 {
		alice.say(fmt.Sprintf("during the reload %d", i))
	}
	if err := <-done; err != nil {
		t.Fatalf("reload: %v", err)
	}
	alice.say("after the reload")
	alice.answered(t)

	bob := connectChatter(t, rl.irc, "bob")
	bob.say("hi Tom")
	bob.say("bob here")
	bob.answered(t)
	alice.say("after bob came")
	alice.answered(t)

	if !rl.logged(logrus.WarnLevel, "restarts", logrus.Fields{"key": "irc.network"}) {
		t.Error("no warning that irc.network needs a restart")
	}
	if rl.logged(logrus.WarnLevel, "restarts", logrus.Fields{"key": "irc.motd"}) {
		t.Error("irc.motd named as needing a restart")
	}
	if got := rl.log.GetLevel(); got != logrus.DebugLevel {
		t.Errorf("log level: got %v, want debug", got)
	}
	s, _ := ircRegister(t, rl.irc, "alice", "irc-alice") // replaces her first connection
	var motd []string
	s.wait(func(m *irc.Message) bool {
		if m.Command == "372" {
			motd = append(motd, m.Trailing())
		}
		return m.Command == "376" || m.Command == "422"
	})
	if want := []string{"- reloaded"}; !slices.Equal(motd, want) {
		t.Errorf("MOTD of a new connection: got %q, want %q", motd, want)
	}
	// The new welcome says 005 NETWORK as at start: restart keys stay.
}

// TestReloadRefusesBadConfig: a config that does not load is refused with
// an error naming its line and key; the running config stays: alice still
// chats, and bob, whom the broken file adds, cannot log in.
func TestReloadRefusesBadConfig(t *testing.T) {
	path := writeConfig(t, reloadConfig("", "alice"))
	rl := startReloading(t, path)
	alice := connectChatter(t, rl.irc, "alice")
	alice.say("hello")
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"syntax error", reloadConfig("motd = [\"unclosed\"", "alice", "bob"), []string{"line 4", "irc.motd"}},
		{"unknown key", reloadConfig("mtod = [\"typo\"]", "alice", "bob"), []string{"line 3", "mtod"}},
		{"invalid value", reloadConfig("flood_rate = -1.0", "alice", "bob"), []string{"line 3", "irc.flood_rate"}},
		{"duplicate user", reloadConfig("", "alice", "bob", "bob"), []string{"user[3].name", "duplicate"}},
	} {
		if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
			t.Fatal(err)
		}
		err := rl.r.reload()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: got error %v, want it to name %q", tc.name, err, w)
			}
		}
		if !rl.logged(logrus.ErrorLevel, "reload refused", nil) {
			t.Errorf("%s: the refusal was not logged", tc.name)
		}
		refused(t, rl.irc, "bob", "irc-bob")
		alice.say("still here after the " + tc.name)
		alice.answered(t)
	}
}

// TestReloadRemovesAndChangesUsers: a removed user is disconnected with a
// notice saying why; a user whose password changed must use the new one;
// the others stay.
func TestReloadRemovesAndChangesUsers(t *testing.T) {
	path := writeConfig(t, reloadConfig("", "alice", "bob", "carol"))
	rl := startReloading(t, path)
	alice := connectChatter(t, rl.irc, "alice")
	alice.say("hello")
	bob := connectChatter(t, rl.irc, "bob")
	carol := connectChatter(t, rl.irc, "carol")
	config := strings.Replace(reloadConfig("", "alice", "carol"), "irc-carol", "new-carol", 1)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.r.reload(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    *chatter
		want string
	}{
		{bob, "removed from the gateway's configuration"},
		{carol, "password was changed"},
	} {
		n := tc.c.wait("the notice", func(m *irc.Message) bool { return m.Command == "NOTICE" && m.Name == "root" })
		if !strings.Contains(n.Trailing(), tc.want) {
			t.Errorf("%s: got notice %q, want it to say %q", tc.c.nick, n.Trailing(), tc.want)
		}
		tc.c.wait("ERROR", func(m *irc.Message) bool { return m.Command == "ERROR" })
	}
	refused(t, rl.irc, "bob", "irc-bob")
	refused(t, rl.irc, "carol", "irc-carol")
	if _, m := ircRegister(t, rl.irc, "carol", "new-carol"); m.Command != "001" {
		t.Errorf("carol with her new password: got %s %q, want 001", m.Command, m.Trailing())
	}
	if !rl.logged(logrus.InfoLevel, "users changed", logrus.Fields{"removed": []string{"bob"}, "changed": []string{"carol"}}) {
		t.Error("the users' change was not logged")
	}
	alice.say("still chatting")
	alice.answered(t)
}

// TestReloadLogLevelFromCommandLine: -debug wins over the file's log
// level at a reload, as at start.
func TestReloadLogLevelFromCommandLine(t *testing.T) {
	path := writeConfig(t, reloadConfig("", "alice"))
	rl := startReloading(t, path)
	rl.log.SetLevel(logrus.DebugLevel)
	rl.r.running.Log.Level = "debug" // as -debug sets it
	if err := os.WriteFile(path, []byte(reloadConfig("[log]\nlevel = \"warn\"", "alice")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.r.reload(); err != nil {
		t.Fatal(err)
	}
	if got := rl.log.GetLevel(); got != logrus.DebugLevel {
		t.Errorf("log level: got %v, want debug (from the command line)", got)
	}
}

// serverCert returns the certificate a TLS client connecting to addr gets.
func serverCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificates
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	return nc.ConnectionState().PeerCertificates[0]
}

// TestReloadCertificate: a reload reads the TLS certificate files again,
// so new TLS connections get the renewed certificate; one that does not
// load is logged, naming its key, and the listener keeps its certificate.
func TestReloadCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testcert.Write(t, certFile, keyFile, 1001, "first")
	config := reloadConfig(fmt.Sprintf("[[irc.tls]]\nlisten = \"127.0.0.1:0\"\ncert = %q\nkey = %q\n", certFile, keyFile), "alice")
	path := writeConfig(t, config)
	rl := startReloading(t, path)
	check := func(step string, serial int64, subject string) {
		t.Helper()
		got := serverCert(t, rl.tls)
		if got.SerialNumber.Int64() != serial || got.Subject.CommonName != subject {
			t.Errorf("%s: got certificate %d %q, want %d %q", step, got.SerialNumber, got.Subject.CommonName, serial, subject)
		}
	}
	check("at start", 1001, "first")
	testcert.Write(t, certFile, keyFile, 2002, "renewed")
	check("renewed but not reloaded", 1001, "first")
	if err := rl.r.reload(); err != nil {
		t.Fatal(err)
	}
	check("after the reload", 2002, "renewed")
	if !rl.logged(logrus.InfoLevel, "TLS certificate loaded", logrus.Fields{"serial": "2002"}) {
		t.Error("the new certificate was not logged")
	}
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.r.reload(); err != nil {
		t.Fatalf("reload: got %v, want the config applied and the certificate's error logged", err)
	}
	check("after a bad certificate", 2002, "renewed")
	if !rl.logged(logrus.ErrorLevel, "does not load", logrus.Fields{"key": "irc.tls[1].cert"}) {
		t.Error("the bad certificate was not logged with its key")
	}
}

// TestReloadLogFormat: log.format applies at a reload.
func TestReloadLogFormat(t *testing.T) {
	path := writeConfig(t, reloadConfig("", "alice"))
	rl := startReloading(t, path)
	for _, tc := range []struct {
		format string
		json   bool
	}{{"json", true}, {"text", false}} {
		if err := os.WriteFile(path, []byte(reloadConfig(fmt.Sprintf("[log]\nformat = %q", tc.format), "alice")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := rl.r.reload(); err != nil {
			t.Fatal(err)
		}
		if _, ok := rl.log.Formatter.(*logrus.JSONFormatter); ok != tc.json {
			t.Errorf("format %s: got formatter %T", tc.format, rl.log.Formatter)
		}
	}
}

// TestReloadKeepsPasswordsOffLoopback: with the IRC listener moved off
// loopback by -listen, a reloaded config file must give every user a
// password too, as at start, though the file's own listener is on
// loopback: one that takes alice's away is refused, and she still needs it.
func TestReloadKeepsPasswordsOffLoopback(t *testing.T) {
	path := writeConfig(t, reloadConfig("", "alice"))
	o, err := parseOptions([]string{"-config", path, "-state", t.TempDir(), "-listen", "0.0.0.0:6667"}, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	built := o.cfg
	built.IRC.Listen = []string{"127.0.0.1:0"} // the test listens on loopback only
	rl := startReloadingAs(t, path, o.fileCfg, o.cfg, built)
	open := strings.Replace(reloadConfig("", "alice"), "password = \"irc-alice\"\n", "", 1)
	if err := os.WriteFile(path, []byte(open), 0o600); err != nil {
		t.Fatal(err)
	}
	err = rl.r.reload()
	if err == nil || !strings.Contains(err.Error(), "user[1].password") || !strings.Contains(err.Error(), "not on loopback") {
		t.Fatalf("reload: got %v, want a refusal naming user[1].password", err)
	}
	refused(t, rl.irc, "alice", "")
}

// TestReloadKeepsOpenRegistrationGated: with registration open and the IRC
// listener moved off loopback by -listen, a reloaded config file that
// takes irc.password away is refused (irc.password applies at once with
// [[user]]s, registration only at a restart), though the file's own
// listener is on loopback: a nick nobody has still needs the password.
func TestReloadKeepsOpenRegistrationGated(t *testing.T) {
	path := writeConfig(t, reloadConfig("registration = \"open\"\npassword = \"server-pw\"", "alice"))
	o, err := parseOptions([]string{"-config", path, "-state", t.TempDir(), "-listen", "0.0.0.0:6667"}, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	built := o.cfg
	built.IRC.Listen = []string{"127.0.0.1:0"} // the test listens on loopback only
	rl := startReloadingAs(t, path, o.fileCfg, o.cfg, built)
	if err := os.WriteFile(path, []byte(reloadConfig("", "alice")), 0o600); err != nil {
		t.Fatal(err)
	}
	err = rl.r.reload()
	if err == nil || !strings.Contains(err.Error(), "irc.registration") || !strings.Contains(err.Error(), "irc.password") {
		t.Fatalf("reload: got %v, want a refusal naming irc.registration and irc.password", err)
	}
	refused(t, rl.irc, "nina", "")
	// A file that closes registration as it drops irc.password is refused
	// too (the registration in effect stays open until a restart), and
	// told so, not told to close what it closes.
	if err := os.WriteFile(path, []byte(reloadConfig("registration = \"closed\"", "alice")), 0o600); err != nil {
		t.Fatal(err)
	}
	err = rl.r.reload()
	if err == nil || !strings.Contains(err.Error(), "until a restart") || !strings.Contains(err.Error(), "irc.password") ||
		strings.Contains(err.Error(), `or irc.registration = "closed"`) {
		t.Fatalf("reload of a file closing registration: got %v, want a refusal saying registration stays open until a restart and irc.password is needed until then", err)
	}
	refused(t, rl.irc, "nina", "")
}
