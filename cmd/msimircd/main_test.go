package main

import (
	"bufio"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// TestBinary runs msimircd with no config as a subprocess, chats with Tom
// over IRC, sends SIGTERM and checks that it exits cleanly.
func TestBinary(t *testing.T) {
	bin := binary(t, ".")
	cmd := exec.Command(bin, "-state", t.TempDir(), "-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	addrRE := regexp.MustCompile(`IRC on (127\.0\.0\.1:\d+)`)
	var addr string
	var log []string
	timeout := time.After(20 * time.Second)
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("msimircd exited early:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			if m := addrRE.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-timeout:
			t.Fatalf("no listening address logged:\n%s", strings.Join(log, "\n"))
		}
	}

	w, r, wait := ircUser(t, addr, "carol")
	wait(func(m *irc.Message) bool { return m.Command == "JOIN" && m.Param(0) == "&carol" })
	wait(func(m *irc.Message) bool { return m.Command == "366" })
	wait(func(m *irc.Message) bool { return m.Command == "JOIN" && m.Name == "tom" }) // when the MSIM login completes
	_ = w.Write("PRIVMSG tom :hello Tom")
	reply := wait(func(m *irc.Message) bool { return m.Command == "PRIVMSG" && m.Name == "tom" })
	if reply.Trailing() == "" {
		t.Error("Tom's reply is empty")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The client is told: ERROR (or a QUIT) before the socket closes.
	sawGoodbye := false
	for {
		m, err := r.ReadMessage()
		if err != nil {
			break
		}
		if m.Command == "ERROR" || m.Command == "QUIT" {
			sawGoodbye = true
		}
	}
	if !sawGoodbye {
		t.Error("the client got no ERROR or QUIT at shutdown")
	}
	// Read the log to its end (the process exited), then reap it.
	exited := time.After(15 * time.Second)
drain:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break drain
			}
			log = append(log, l)
		case <-exited:
			t.Fatal("msimircd did not exit after SIGTERM")
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("msimircd exited with %v", err)
	}
	all := strings.Join(log, "\n")
	if !strings.Contains(all, "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", all)
	}
	// The MSIM account was logged out (the embedded server saw it leave).
	if !regexp.MustCompile(`msg="logged out".*email=carol[+@]`).MatchString(all) {
		t.Errorf("no MSIM logout of carol in the log:\n%s", all)
	}
}

// ircUser connects to addr and registers as nick; wait reads until pred
// accepts a message (the connection's deadline bounds it).
func ircUser(t *testing.T, addr, nick string) (w *irc.Writer, r *irc.Reader, wait func(func(*irc.Message) bool) *irc.Message) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	r = irc.NewReader(nc)
	w = irc.NewWriter(nc)
	_ = w.Write("NICK " + nick)
	_ = w.Write("USER " + nick + " 0 * :" + nick)
	wait = func(pred func(*irc.Message) bool) *irc.Message {
		t.Helper()
		for {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if pred(m) {
				return m
			}
		}
	}
	return w, r, wait
}
