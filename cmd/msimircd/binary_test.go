package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/internal/imtest"
	"github.com/msimircd/msimircd/msim"
)

// TestBinaryOfflineBacklog: msimircd, run as a binary with its embedded
// network open to MSIM clients, keeps 1,000 offline IMs of 60 KB for an IRC
// user (the offline byte caps raised in its config) and shows every one of
// them exactly once, in order, although the user reads only part of the
// backlog on each connection before quitting.
func TestBinaryOfflineBacklog(t *testing.T) {
	const n, size, perConn = 1000, 60_000, 150
	bin := binary(t, ".")
	dir := t.TempDir()
	accounts := writeFile(t, dir, "accounts.txt", "dave@example.com:DavePw1\n")
	config := writeFile(t, dir, "msimircd.toml", fmt.Sprintf("[msim]\noffline_bytes_per_recipient = %d\noffline_bytes_per_sender = %d\n", 2*n*size, 2*n*size))
	p := startProc(t, "msimircd", bin, "-state", t.TempDir(), "-config", config, "-listen", "127.0.0.1:0", "-msim-listen", "127.0.0.1:0", "-msim-account-file", accounts)
	msimAddr := p.waitLog(msimAtRE)[1]
	ircAddr := p.waitLog(ircOnRE)[1]

	// alice's account exists once she has logged in with a password.
	alice := dialIRC(t, ircAddr, "alice", "pw-alice")
	alice.wait("alice's login", said("&alice", "Logged in"))
	alice.send("QUIT")
	alice.wait("ERROR", func(m *irc.Message) bool { return m.Command == "ERROR" })
	alice.nc.Close()

	dave := msimDial(t, msimAddr, "dave@example.com", "DavePw1")
	uid := lookupUID(t, dave, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	text := func(i int) string { return fmt.Sprintf("im %04d ", i) + strings.Repeat("x", size-8) }
	for i := range n {
		if err := dave.SendIM(ctx, uid, text(i)); err != nil {
			t.Fatalf("IM %d: %v", i, err)
		}
	}
	if errs := errorsUntilTom(t, dave); errs != "" {
		t.Fatalf("the server refused offline IMs: %s", errs)
	}

	next, conns := 0, 0
	for next < n {
		if conns++; conns > 12 {
			t.Fatalf("after %d connections only %d of %d IMs arrived", conns-1, next, n)
		}
		c := dialIRC(t, ircAddr, "alice", "pw-alice", "server-time") // the IMs' times as tags, not in the text
		got := imtest.ReadIMs(t, c.nc, c.r, "dave", perConn, size, imtest.CutIsError)
		c.send("QUIT")
		rest := imtest.ReadIMs(t, c.nc, c.r, "dave", n, size, imtest.CutIsError) // what was written before the ERROR
		c.nc.Close()
		for _, im := range append(got, rest...) {
			if im != text(next) {
				t.Fatalf("connection %d: got IM %.8q, want %.8q (every IM once, in order)", conns, im, text(next))
			}
			next++
		}
	}
	if conns < 3 {
		t.Errorf("the backlog arrived over %d connections; the test means to spread it over several", conns)
	}
}

// imsOf forwards the texts of the IMs cl receives until its link ends.
func imsOf(cl *msim.Client) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		for ev := range cl.Events() {
			if im, ok := ev.(msim.IMEvent); ok {
				ch <- im.Text
			}
		}
	}()
	return ch
}

// receive reads ims until text comes, and returns everything read.
func receive(t *testing.T, ims <-chan string, text string) []string {
	t.Helper()
	var got []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case im, ok := <-ims:
			if !ok {
				t.Fatalf("the MSIM link ended before %q came (got %q)", text, got)
			}
			got = append(got, im)
			if im == text {
				return got
			}
		case <-timeout:
			t.Fatalf("%q did not come (got %q)", text, got)
		}
	}
}

// tally is what the IRC client was told about its IMs to a buddy.
type tally struct {
	buddy      string
	mayBeLost  map[string]bool // "may not have arrived", by the IM's text
	queued     int             // "your message is queued" notices
	notSent    []string
	moreUnsure bool // "More IMs … may not have arrived"
}

const (
	mayBeLostPrefix = "The MSIM link was lost just after this was sent; it may not have arrived: "
	queuedText      = "your message is queued"
)

func (ta *tally) seen(m *irc.Message) {
	switch {
	case m.Command == "NOTICE" && m.Name == ta.buddy && strings.HasPrefix(m.Trailing(), mayBeLostPrefix):
		ta.mayBeLost[strings.TrimPrefix(m.Trailing(), mayBeLostPrefix)] = true
	case m.Command == "NOTICE" && m.Name == ta.buddy && strings.Contains(m.Trailing(), queuedText):
		ta.queued++
	case m.Command == "NOTICE" && m.Name == ta.buddy && strings.HasPrefix(m.Trailing(), "Message NOT sent"):
		ta.notSent = append(ta.notSent, m.Trailing())
	case strings.Contains(m.Trailing(), "More IMs sent in the last seconds before the link was lost"):
		ta.moreUnsure = true
	}
}

// TestBinaryMSIMKilled runs msimd and msimircd as binaries. msimd is killed
// (kill -9) just after the IRC user sends a few IMs: the user is told by
// text which IMs may not have arrived, and that those typed while the link
// is down are queued. Restarted on its port and data file, msimd gets
// msimircd back, the queue is sent, and the buddy receives every IM not
// named as possibly lost, each once. Then msimircd is killed and restarted:
// the IRC user connects again and chats both ways. (What msimircd keeps
// across its own kill is TestBinaryRestartSendsQueuedIMs's subject.)
func TestBinaryMSIMKilled(t *testing.T) {
	ircdBin, msimdBin := binary(t, "."), binary(t, "../msimd")
	dir := t.TempDir()
	md, msimAddr, data, accounts, config := startUpstream(t, msimdBin, dir)
	state := t.TempDir()
	ircd := startProc(t, "msimircd", ircdBin, "-state", state, "-config", config, "-listen", "127.0.0.1:0")
	ircAddr := ircd.waitLog(ircOnRE)[1]

	ta := &tally{buddy: "bob", mayBeLost: map[string]bool{}}
	alice := dialIRC(t, ircAddr, "alice", "irc-pw")
	alice.seen = ta.seen
	alice.wait("alice's login", said("&alice", "Logged in"))

	bob := msimDial(t, msimAddr, "bob@example.com", "BobPw1")
	bobIMs := imsOf(bob)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bob.SendIM(ctx, lookupUID(t, bob, "alice"), "hi alice"); err != nil {
		t.Fatal(err)
	}
	alice.wait("bob's IM", imFrom("bob", "hi alice"))

	var sent []string
	say := func(text string) {
		alice.send("PRIVMSG bob :" + text)
		sent = append(sent, text)
	}
	say("hello bob")
	received := receive(t, bobIMs, "hello bob")
	for i := 1; i <= 5; i++ {
		say(fmt.Sprintf("just before the kill %d", i))
	}
	md.kill()
	for im := range bobIMs { // to the end of bob's link
		received = append(received, im)
	}
	alice.wait("the link loss", said("&alice", "Lost the MSIM connection"))
	queuedBefore := ta.queued
	for i := 1; i <= 3; i++ {
		say(fmt.Sprintf("while msimd is down %d", i))
	}
	// The control channel's answer comes after the notices for those IMs.
	alice.send("PRIVMSG &alice :status")
	alice.wait("the status", said("&alice", "alice@example.com is"))
	// At least those: IMs typed just before the kill that the bridge took
	// after it saw the link go are queued too.
	if got := ta.queued - queuedBefore; got < 3 {
		t.Errorf("IMs typed while the link was down: got %d queued notices, want at least 3", got)
	}

	md = startProc(t, "msimd", msimdBin, "-listen", msimAddr, "-data", data, "-account-file", accounts)
	md.waitLog(msimdReadyRE)
	bob = msimDial(t, msimAddr, "bob@example.com", "BobPw1")
	bobIMs = imsOf(bob)
	alice.wait("the queue sent", said("&alice", "The MSIM link is back"))
	say("after msimd's restart")
	received = append(received, receive(t, bobIMs, "after msimd's restart")...)

	if len(ta.notSent) > 0 || ta.moreUnsure {
		t.Errorf("the user was told of IMs not sent %q or not named (%v); want each IM sent, queued or named", ta.notSent, ta.moreUnsure)
	}
	count := map[string]int{}
	for _, im := range received {
		count[im]++
	}
	for _, im := range sent {
		switch n := count[im]; {
		case n > 1:
			t.Errorf("bob got %q %d times, want once", im, n)
		case n == 0 && !ta.mayBeLost[im]:
			t.Errorf("bob never got %q, and the IRC user was not told it may not have arrived", im)
		}
		delete(count, im)
	}
	if len(count) > 0 {
		t.Errorf("bob got IMs nobody sent: %v", count)
	}
	t.Logf("IMs named as possibly lost: %d of %d", len(ta.mayBeLost), len(sent))

	// msimircd killed and restarted on its port: the IRC user connects
	// again and chats both ways.
	ircd.kill()
	alice.nc.Close()
	ircd = startProc(t, "msimircd", ircdBin, "-state", state, "-config", config, "-listen", ircAddr)
	ircd.waitLog(ircOnRE)
	alice = dialIRC(t, ircAddr, "alice", "irc-pw")
	alice.wait("alice's login", said("&alice", "Logged in"))
	if err := bob.SendIM(ctx, lookupUID(t, bob, "alice"), "after msimircd's restart"); err != nil {
		t.Fatal(err)
	}
	alice.wait("bob's IM", imFrom("bob", "after msimircd's restart"))
	alice.send("PRIVMSG bob :glad to be back")
	receive(t, bobIMs, "glad to be back")
}

// startUpstream runs msimd with the accounts of alice and bob (its data and
// accounts files in dir) and writes a config in which msimircd's user alice
// uses it as her upstream MSIM server.
func startUpstream(t *testing.T, msimdBin, dir string) (md *proc, msimAddr, data, accounts, config string) {
	t.Helper()
	accounts = writeFile(t, dir, "accounts.txt", "alice@example.com:AlicePw1\nbob@example.com:BobPw1\n")
	data = filepath.Join(dir, "msim.db")
	md = startProc(t, "msimd", msimdBin, "-listen", "127.0.0.1:0", "-data", data, "-account-file", accounts)
	msimAddr = md.waitLog(msimdReadyRE)[1]
	config = writeFile(t, dir, "msimircd.toml", fmt.Sprintf(`[msim]
server = %q
reconnect_min = "50ms"
reconnect_max = "200ms"

[[user]]
name = "alice"
password = "irc-pw"

  [[user.account]]
  email = "alice@example.com"
  password = "AlicePw1"
`, msimAddr))
	return md, msimAddr, data, accounts, config
}
