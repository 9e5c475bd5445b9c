package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// TestBinaryRestartKeepsState: msimircd with its embedded network, killed
// with kill -9 and started again on the same state directory, still has
// what an IRC user built up and the IMs that came while they were away.
// alice renames her buddy bob and changes a setting, then quits; her
// account stays online (always on) and bob sends her three IMs, which the
// gateway holds in its database; msimircd is killed. After the restart alice finds bob
// under his new nick, her setting and her control channel, and the three
// IMs once each, in order, with the time they were sent. The gateway's
// database holds no password in clear.
func TestBinaryRestartKeepsState(t *testing.T) {
	bin := binary(t, ".")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	accounts := writeFile(t, dir, "accounts.txt", "bob@example.com:BobPw1\n")
	p := startProc(t, "msimircd", bin, "-state", state, "-listen", "127.0.0.1:0", "-msim-listen", "127.0.0.1:0", "-msim-account-file", accounts)
	msimAddr := p.waitLog(msimAtRE)[1]
	ircAddr := p.waitLog(ircOnRE)[1]

	bob := msimDial(t, msimAddr, "bob@example.com", "BobPw1")
	alice := dialIRC(t, ircAddr, "alice", "pw-alice", "server-time")
	alice.wait("alice's login", said("&alice", "Logged in"))
	alice.send("PRIVMSG &alice :add bob")
	alice.wait("bob in the channel", func(m *irc.Message) bool { return m.Command == "JOIN" && m.Name == "bob" && m.Param(0) == "&alice" })
	alice.send("PRIVMSG &alice :rename bob bobby")
	alice.wait("the rename", said("&alice", "bob is now known as bobby"))
	alice.send("PRIVMSG &alice :set typing false")
	alice.wait("the setting", said("&alice", "typing = false"))
	alice.send("QUIT")
	alice.wait("ERROR", func(m *irc.Message) bool { return m.Command == "ERROR" })
	alice.nc.Close()
	// Always on: alice's accounts stay online with no client attached, so
	// her session takes bob's IMs and holds them in the database.
	p.waitLog(regexp.MustCompile(`msg="the IRC client left; the MSIM accounts stay online".*user="?demo/alice@`))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uid := lookupUID(t, bob, "alice")
	sentFrom := time.Now().Add(-time.Second) // the server may keep whole seconds
	texts := []string{"first while you were away", "second while you were away", "third while you were away"}
	for _, text := range texts {
		if err := bob.SendIM(ctx, uid, text); err != nil {
			t.Fatal(err)
		}
	}
	if errs := errorsUntilTom(t, bob); errs != "" { // bob's IMs have been taken
		t.Fatalf("the server refused bob's IMs: %s", errs)
	}
	bob.Close()
	waitDatabase(t, state, texts) // held: committed before the kill
	// The history is appended by a process of its own (histproc), which
	// ends with the gateway, even one killed.
	writers := historyWriters(t, p.cmd.Process.Pid)
	if len(writers) != 1 {
		t.Errorf("history writer processes: got %v, want one", writers)
	}
	killedAt := time.Now()
	p.kill()
	for _, pid := range writers {
		waitExited(t, pid)
	}
	for _, l := range p.lines() {
		// (Raising the writer's priority needs RLIMIT_NICE 20, which a
		// test run by a user without it does not have: that is said once.)
		if strings.Contains(l, "history") && strings.Contains(l, "level=warn") && !strings.Contains(l, "cannot raise its priority") {
			t.Errorf("the gateway's log: %s", l)
		}
	}

	// The rename is in the database (so it is the file to search), and
	// no password is.
	checkDatabase(t, state, []string{"bobby"}, []string{"BobPw1", "pw-alice"})

	p = startProc(t, "msimircd", bin, "-state", state, "-listen", ircAddr, "-msim-listen", msimAddr, "-msim-account-file", accounts)
	p.waitLog(ircOnRE)
	if first := p.lines()[0]; !strings.Contains(first, "state in "+state) {
		t.Errorf("first log line after the restart: got %q, want it to name %s", first, state)
	}
	msimDial(t, msimAddr, "bob@example.com", "BobPw1") // bob online again, to be in NAMES
	var got []*irc.Message
	alice = dialIRC(t, ircAddr, "alice", "pw-alice", "server-time")
	alice.seen = func(m *irc.Message) {
		if m.Command == "PRIVMSG" && (m.Name == "bob" || m.Name == "bobby") {
			got = append(got, m)
		}
	}
	alice.wait("the control channel", func(m *irc.Message) bool { return m.Command == "JOIN" && m.Name == "alice" && m.Param(0) == "&alice" })
	alice.wait("alice's login", said("&alice", "Logged in"))
	for len(got) < len(texts) {
		alice.wait("bob's IMs", func(m *irc.Message) bool { return m.Command == "PRIVMSG" && (m.Name == "bob" || m.Name == "bobby") })
	}
	// bob's presence may come after his held IMs: ask until he is there,
	// under whichever nick.
	var nicks []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		alice.send("NAMES &alice")
		nicks = strings.Fields(alice.wait("NAMES", func(m *irc.Message) bool { return m.Command == "353" }).Trailing())
		if slices.ContainsFunc(nicks, func(n string) bool { n = strings.TrimLeft(n, "@+%"); return n == "bob" || n == "bobby" }) || time.Now().After(deadline) {
			break
		}
	}
	if !slices.ContainsFunc(nicks, func(n string) bool { return strings.TrimLeft(n, "@+%") == "bobby" }) {
		t.Errorf("NAMES &alice: got %q, want bobby among them (the rename kept)", nicks)
	}
	alice.send("PRIVMSG &alice :set typing")
	if m := alice.wait("the setting", said("&alice", "typing = ")); m.Trailing() != "typing = false" {
		t.Errorf("set typing: got %q, want typing = false (the setting kept)", m.Trailing())
	}

	if len(got) != len(texts) {
		t.Fatalf("got %d IMs from bob, want %d", len(got), len(texts))
	}
	var last time.Time
	for i, m := range got {
		if m.Name != "bobby" || m.Trailing() != texts[i] {
			t.Errorf("IM %d: got %q from %s, want %q from bobby", i+1, m.Trailing(), m.Name, texts[i])
		}
		stamp, err := time.Parse(time.RFC3339Nano, m.Tags["time"])
		if err != nil {
			t.Errorf("IM %d: time tag %q: %v; want the time it was sent", i+1, m.Tags["time"], err)
			continue
		}
		if stamp.Before(sentFrom) || stamp.After(killedAt) || stamp.Before(last) {
			t.Errorf("IM %d: time %v, want between %v and %v, not before the one before it (%v)", i+1, stamp, sentFrom, killedAt, last)
		}
		last = stamp
	}
}

// waitDatabase waits until the gateway's database on disk holds every
// string of want.
func waitDatabase(t *testing.T, state string, want []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, all := readDatabase(t, state)
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return bytes.Contains(all, []byte(w)) })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database never held %q", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkDatabase reads the gateway's SQLite database in the state directory
// as it is on disk (its write-ahead log included: after a kill -9 the
// latest commits are there) and checks that it contains every string of
// want and, byte-wise, none of never.
func checkDatabase(t *testing.T, state string, want, never []string) {
	t.Helper()
	files, all := readDatabase(t, state)
	for _, w := range want {
		if !bytes.Contains(all, []byte(w)) {
			t.Errorf("the database (%s) does not contain %q", strings.Join(files, ", "), w)
		}
	}
	for _, n := range never {
		if bytes.Contains(all, []byte(n)) {
			t.Errorf("the database (%s) contains the password %q in clear", strings.Join(files, ", "), n)
		}
	}
}

// readDatabase returns the names of the database's files in state (the
// file, its WAL and shared-memory index) and their contents together. The
// gateway's history process may still be closing the database, which
// folds the WAL into the file and removes both companions: a file gone
// between the listing and its reading starts the reading again.
func readDatabase(t *testing.T, state string) ([]string, []byte) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		files, err := filepath.Glob(filepath.Join(state, stateDBName+"*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no database in %s (%v)", state, err)
		}
		var all []byte
		whole := true
		for _, f := range files {
			b, err := os.ReadFile(f)
			if errors.Is(err, fs.ErrNotExist) && time.Now().Before(deadline) {
				whole = false
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		if whole {
			return files, all
		}
	}
}

// TestBinaryRestartSendsQueuedIMs: IMs alice types while msimircd's link to
// its upstream MSIM server (msimd) is down are queued in the gateway's
// database; msimircd is killed with kill -9 and started again, msimd comes
// back, and the buddy gets each of them once, in order, before what alice
// types next. The database holds no password in clear.
func TestBinaryRestartSendsQueuedIMs(t *testing.T) {
	ircdBin, msimdBin := binary(t, "."), binary(t, "../msimd")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	md, msimAddr, data, accounts, config := startUpstream(t, msimdBin, dir)
	ircd := startProc(t, "msimircd", ircdBin, "-state", state, "-config", config, "-listen", "127.0.0.1:0")
	ircAddr := ircd.waitLog(ircOnRE)[1]

	ta := &tally{buddy: "bob", mayBeLost: map[string]bool{}}
	alice := dialIRC(t, ircAddr, "alice", "irc-pw")
	alice.seen = ta.seen
	alice.wait("alice's login", said("&alice", "Logged in"))
	msimDial(t, msimAddr, "bob@example.com", "BobPw1")
	alice.send("PRIVMSG &alice :add bob")
	alice.wait("bob in the channel", func(m *irc.Message) bool { return m.Command == "JOIN" && m.Name == "bob" && m.Param(0) == "&alice" })

	md.kill()
	alice.wait("the link loss", said("&alice", "Lost the MSIM connection"))
	typed := []string{"typed while the link is down 1", "typed while the link is down 2", "typed while the link is down 3"}
	for _, text := range typed {
		alice.send("PRIVMSG bob :" + text)
	}
	// The control channel's answer comes after the notices for those IMs.
	alice.send("PRIVMSG &alice :status")
	alice.wait("the status", said("&alice", "alice@example.com is"))
	if ta.queued != len(typed) || len(ta.notSent) > 0 {
		t.Fatalf("IMs typed while the link was down: got %d queued notices and %q, want %d queued", ta.queued, ta.notSent, len(typed))
	}
	ircd.kill()
	alice.nc.Close()
	// The queued IMs and alice's MSIM account are in the database (so it
	// is the file to search), and no password is in clear.
	checkDatabase(t, state, append(slices.Clone(typed), "alice@example.com"), []string{"AlicePw1", "BobPw1", "irc-pw"})

	// msimircd comes back first, msimd after it.
	ircd = startProc(t, "msimircd", ircdBin, "-state", state, "-config", config, "-listen", ircAddr)
	ircd.waitLog(ircOnRE)
	md = startProc(t, "msimd", msimdBin, "-listen", msimAddr, "-data", data, "-account-file", accounts)
	md.waitLog(msimdReadyRE)
	bobIMs := imsOf(msimDial(t, msimAddr, "bob@example.com", "BobPw1"))
	alice = dialIRC(t, ircAddr, "alice", "irc-pw")
	alice.wait("alice's login", said("&alice", "Logged in"))
	const next = "typed after the restart"
	alice.send("PRIVMSG bob :" + next)
	if got, want := receive(t, bobIMs, next), append(slices.Clone(typed), next); !slices.Equal(got, want) {
		t.Errorf("bob got %q, want %q (each queued IM once, in order, before the next)", got, want)
	}
}

// TestBinaryAlwaysOnAfterRestart: carol registers her nick (which sets up
// her account on the embedded network) and quits; msimircd is killed with
// kill -9. Started again, it logs carol's account in to MSIM at once, with
// no IRC client connected; an IM bob sends then is held, and carol gets it
// when she connects with her password.
func TestBinaryAlwaysOnAfterRestart(t *testing.T) {
	bin := binary(t, ".")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	accounts := writeFile(t, dir, "accounts.txt", "bob@example.com:BobPw1\n")
	args := []string{"-state", state, "-listen", "127.0.0.1:0", "-msim-listen", "127.0.0.1:0", "-msim-account-file", accounts}
	p := startProc(t, "msimircd", bin, args...)
	msimAddr := p.waitLog(msimAtRE)[1]
	ircAddr := p.waitLog(ircOnRE)[1]

	carol, m := ircRegister(t, ircAddr, "carol", "")
	if m.Command != "001" {
		t.Fatalf("carol: got %v, want 001", m)
	}
	carol.loggedIn("&carol")
	_ = carol.w.Write("PRIVMSG root :register carol-pw")
	carol.wait(rootSays("is registered"))
	carol.loggedIn("&carol")
	_ = carol.w.Write("QUIT")
	carol.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })
	p.kill()

	p = startProc(t, "msimircd", bin, append(args[:2:2], "-listen", ircAddr, "-msim-listen", msimAddr, "-msim-account-file", accounts)...)
	// The embedded network's "logged in" may come before the bridge's
	// "always on" line: they are logged by different goroutines.
	p.waitLogs(regexp.MustCompile(`always on: logging in the accounts of 1 users`),
		regexp.MustCompile(`msg="logged in".*email="?carol@`)) // with no client connected

	bob := msimDial(t, msimAddr, "bob@example.com", "BobPw1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bob.SendIM(ctx, lookupUID(t, bob, "carol"), "sent while no client was attached"); err != nil {
		t.Fatal(err)
	}
	if errs := errorsUntilTom(t, bob); errs != "" {
		t.Fatalf("the server refused bob's IM: %s", errs)
	}
	c := dialIRC(t, ircAddr, "carol", "carol-pw")
	c.wait("the control channel", said("&carol", "Logged in to MSIM"))
	c.wait("bob's IM", func(m *irc.Message) bool { // dated: no server-time
		return m.Command == "PRIVMSG" && m.Name == "bob" && strings.HasSuffix(m.Trailing(), "UTC] sent while no client was attached")
	})
}
