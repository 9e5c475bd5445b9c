package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs msimd with args until the test ends.
func start(t *testing.T, args ...string) (addr string, logs *syncBuffer) {
	t.Helper()
	addr, logs, _ = startReload(t, args...)
	return addr, logs
}

// startReload is start with a channel that asks msimd to reload its
// account file, as SIGHUP does.
func startReload(t *testing.T, args ...string) (addr string, logs *syncBuffer, reload chan<- struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	rl := make(chan struct{})
	e := env{stdin: strings.NewReader(""), stderr: logs, ready: func(a string) { ready <- a }, reload: rl}
	go func() {
		done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), e)
	}()
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("msimd stopped: %v\n%s", err, logs)
	case <-time.After(5 * time.Second):
		t.Fatal("msimd did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("msimd: %v", err)
		}
	})
	return addr, logs, rl
}

// cli runs msimd to completion with stdin and returns its output and error.
func cli(stdin string, args ...string) (string, error) {
	var out syncBuffer
	err := run(context.Background(), args, env{stdin: strings.NewReader(stdin), stderr: &out})
	return out.String(), err
}

type conn struct {
	t   *testing.T
	nc  net.Conn
	dec *msim.Decoder
	key int
}

func (c *conn) next(match func(*msim.Message) bool) *msim.Message {
	c.t.Helper()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := c.dec.Decode()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if match(m) {
			return m
		}
	}
}

func (c *conn) send(m *msim.Message) {
	c.t.Helper()
	if _, err := c.nc.Write(msim.Encode(m)); err != nil {
		c.t.Fatal(err)
	}
}

// login logs in the way an MSIM client does and returns the lc 2 answer.
func login(t *testing.T, addr, email, pw string) (*conn, *msim.Message) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &conn{t: t, nc: nc, dec: msim.NewDecoder(nc)}
	lc := c.next(func(m *msim.Message) bool { return m.Is("lc") })
	nonce, err := lc.Base64("nc")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := msim.LoginResponse(nonce, email, msim.HashPassword(pw), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(msim.NewInt("login2", msim.LoginAlgorithm).Add("username", email).AddBase64("response", resp).
		AddInt("clientver", msim.ClientVersion).AddInt("reconn", 0).AddInt("status", 100).AddInt("id", 1))
	m := c.next(func(m *msim.Message) bool { return m.Is("lc") || m.Is("error") })
	c.key, _ = m.Int("sesskey")
	return c, m
}

func TestDemoAccountChatsWithTom(t *testing.T) {
	addr, logs := start(t, "-demo", "-debug", "-account", "alice@example.com:Secret1")
	c, m := login(t, addr, "alice@example.com", "Secret1")
	if nick, _ := m.Str("uniquenick"); !m.Is("lc") || nick != "alice" {
		t.Fatalf("login: got %v, want lc 2 with uniquenick alice", m)
	}
	c.next(func(m *msim.Message) bool { f, _ := m.Int("f"); return m.Is("bm") && f == 6221 })
	c.send(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", c.key).AddInt("t", 6221).AddInt("cv", 697).Add("msg", "hi Tom"))
	reply := c.next(func(m *msim.Message) bool {
		n, _ := m.TypeInt()
		f, _ := m.Int("f")
		return m.Is("bm") && n == 1 && f == 6221
	})
	if body, _ := reply.Str("msg"); !strings.Contains(body, "Tom") {
		t.Errorf("Tom said %q", body)
	}
	if _, m := login(t, addr, "alice@example.com", "wrong"); !m.Is("error") {
		t.Errorf("wrong password: got %v", m)
	}
	if s := logs.String(); strings.Contains(s, "Secret1") || strings.Contains(s, itoa(c.key)) {
		t.Errorf("the log shows a password or session key:\n%s", s)
	}
	if s := logs.String(); !strings.Contains(s, "-account puts a password on the command line") {
		t.Errorf("no warning that -account shows the password to other local users:\n%s", s)
	}
}

func TestAddUserThenServe(t *testing.T) {
	data := filepath.Join(t.TempDir(), "msim.db")
	logs, err := cli("", "-data", data, "adduser", "bob@example.com", "hunter2", "bobby")
	if err != nil {
		t.Fatalf("adduser: %v\n%s", err, logs)
	}
	if _, err := cli("", "adduser", "bob@example.com", "x"); err == nil {
		t.Error("adduser without -data succeeded")
	}
	if strings.Contains(logs, "hunter2") {
		t.Errorf("the log shows a password:\n%s", logs)
	}
	if !strings.Contains(logs, "other local users") {
		t.Errorf("no warning about the password on the command line:\n%s", logs)
	}
	addr, _ := start(t, "-data", data)
	if _, m := login(t, addr, "bob@example.com", "hunter2"); !m.Is("lc") || m.StrOr("uniquenick", "") != "bobby" {
		t.Errorf("login after adduser: got %v", m)
	}
}

func TestNonLoopbackWarning(t *testing.T) {
	addr, logs := start(t, "-listen", "0.0.0.0:0")
	_, port, _ := net.SplitHostPort(addr)
	nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The challenge arrives once the accept loop runs, after the warning.
	c := &conn{t: t, nc: nc, dec: msim.NewDecoder(nc)}
	c.next(func(m *msim.Message) bool { return m.Is("lc") })
	if !strings.Contains(logs.String(), "non-loopback") {
		t.Errorf("no warning for 0.0.0.0:\n%s", logs.String())
	}
}

func itoa(n int) string { return msim.UID(n).String() }
