package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/histproc"
	"gopkg.in/irc.v4"
)

// Helpers of the tests that run the real binaries.

// bins holds the binaries built for this test run, by package directory.
var bins struct {
	mu    sync.Mutex
	dir   string
	built map[string]string
}

// TestMain points XDG_STATE_HOME at a temporary directory, so that a test
// which forgets to give a state directory still never writes to the
// user's home; the tests give one each (-state, or Store.StateDir), or
// none to a Config that serve then keeps in memory.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == histproc.Arg {
		// A gateway started by a test runs its history writer as this
		// test binary, as the real binary does (main).
		os.Exit(histproc.Serve(os.Stdin, os.Stdout, os.Stderr))
	}
	state, err := os.MkdirTemp("", "msimircd-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_STATE_HOME", state)
	code := m.Run()
	os.RemoveAll(state)
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// binary builds the command in pkg (a directory relative to this package)
// once per test run and returns its path.
func binary(t *testing.T, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bins.mu.Lock()
	defer bins.mu.Unlock()
	if p, ok := bins.built[pkg]; ok {
		return p
	}
	if bins.dir == "" {
		d, err := os.MkdirTemp("", "msimircd-bins-")
		if err != nil {
			t.Fatal(err)
		}
		bins.dir, bins.built = d, map[string]string{}
	}
	abs, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(bins.dir, filepath.Base(abs))
	if out, err := exec.Command("go", "build", "-o", p, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	bins.built[pkg] = p
	return p
}

// proc is a running binary whose log (stderr) the test reads.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when stderr ends (the process exited)

	mu     sync.Mutex
	log    []string
	pos    int           // lines before pos were searched by waitLog
	notify chan struct{} // a line came
}

// startProc runs bin with args until the test ends; a failed test shows
// its log.
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, nil, bin, args...)
}

// startProcEnv is startProc with env added to the test's environment.
func startProcEnv(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	return startProcIn(t, name, env, nil, bin, args...)
}

// startProcIn is startProcEnv with stdin as the process's standard input
// (nil: none).
func startProcIn(t *testing.T, name string, env []string, stdin *os.File, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: exec.Command(bin, args...), done: make(chan struct{}), notify: make(chan struct{}, 1)}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	if stdin != nil {
		p.cmd.Stdin = stdin
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			select {
			case p.notify <- struct{}{}:
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stderr) // a line too long: keep the pipe flowing
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s's log:\n%s", name, strings.Join(p.log, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// waitLog returns the submatches of the first line from here on that re
// matches; it fails the test if the process exits or nothing matches soon.
func (p *proc) waitLog(re *regexp.Regexp) []string {
	p.t.Helper()
	return p.waitLogs(re)[0]
}

// waitLogs waits for a line from here on matching each of res, in any
// order (lines logged by different goroutines come in either order), and
// returns their submatches; the next wait starts after the last of them.
func (p *proc) waitLogs(res ...*regexp.Regexp) [][]string {
	p.t.Helper()
	timeout := time.After(30 * time.Second)
	found := make([][]string, len(res))
	left, start, end := len(res), p.pos, p.pos
	for {
		p.mu.Lock()
		for i := start; i < len(p.log) && left > 0; i++ {
			for j, re := range res {
				if found[j] != nil {
					continue
				}
				if m := re.FindStringSubmatch(p.log[i]); m != nil {
					found[j], end = m, i+1
					left--
					break
				}
			}
		}
		start = len(p.log)
		if left == 0 {
			p.pos = end
			p.mu.Unlock()
			return found
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-p.done:
			p.mu.Lock()
			exited := start >= len(p.log)
			p.mu.Unlock()
			if exited {
				p.t.Fatalf("%s exited without logging %v", p.name, missing(res, found))
			}
		case <-timeout:
			p.t.Fatalf("%s logged nothing matching %v", p.name, missing(res, found))
		}
	}
}

// missing is the expressions of res that found has no match for.
func missing(res []*regexp.Regexp, found [][]string) []*regexp.Regexp {
	var left []*regexp.Regexp
	for i, re := range res {
		if found[i] == nil {
			left = append(left, re)
		}
	}
	return left
}

// lines returns the log so far.
func (p *proc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// kill ends the process with SIGKILL (kill -9) and reaps it; killing an
// ended process does nothing.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.cmd.Wait()
}

var (
	ircOnRE      = regexp.MustCompile(`IRC on (127\.0\.0\.1:\d+)`)
	msimAtRE     = regexp.MustCompile(`MSIM clients can log in at (127\.0\.0\.1:\d+)`)
	msimdReadyRE = regexp.MustCompile(`msimd serving.*listen="?(127\.0\.0\.1:\d+)`)
)

// writeFile writes a file of the test's temporary directory.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ircClient is a registered IRC connection; every message it reads passes
// through seen (when set).
type ircClient struct {
	t    *testing.T
	nc   net.Conn
	r    *irc.Reader
	w    *irc.Writer
	seen func(*irc.Message)
}

// dialIRC connects to addr as nick with PASS pass, asks for caps (server-
// time…) and waits for 001.
func dialIRC(t *testing.T, addr, nick, pass string, caps ...string) *ircClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &ircClient{t: t, nc: nc, r: irc.NewReader(nc), w: irc.NewWriter(nc)}
	if len(caps) > 0 {
		c.send("CAP REQ :" + strings.Join(caps, " "))
	}
	c.send("PASS " + pass)
	c.send("NICK " + nick)
	c.send("USER " + nick + " 0 * :" + nick)
	if len(caps) > 0 {
		m := c.wait("CAP ACK", func(m *irc.Message) bool { return m.Command == "CAP" })
		if m.Param(1) != "ACK" {
			t.Fatalf("CAP REQ %v: got %v, want ACK", caps, m.Params)
		}
		c.send("CAP END")
	}
	c.wait("001", func(m *irc.Message) bool { return m.Command == "001" })
	return c
}

func (c *ircClient) send(line string) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.w.Write(line); err != nil {
		c.t.Fatalf("write %q: %v", line, err)
	}
}

// wait reads until pred accepts a message and returns it; what names it
// in the failure.
func (c *ircClient) wait(what string, pred func(*irc.Message) bool) *irc.Message {
	c.t.Helper()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		m, err := c.r.ReadMessage()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if c.seen != nil {
			c.seen(m)
		}
		if pred(m) {
			return m
		}
	}
}

// said matches the bridge's messages in the channel ch containing text.
func said(ch, text string) func(*irc.Message) bool {
	return func(m *irc.Message) bool {
		return (m.Command == "PRIVMSG" || m.Command == "NOTICE") && m.Param(0) == ch && strings.Contains(m.Trailing(), text)
	}
}

// imFrom matches an IM from nick with exactly text.
func imFrom(nick, text string) func(*irc.Message) bool {
	return func(m *irc.Message) bool { return m.Command == "PRIVMSG" && m.Name == nick && m.Trailing() == text }
}
