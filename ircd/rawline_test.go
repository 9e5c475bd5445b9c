package ircd

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// FuzzRawLine: a line encoded into the queue's chunk (appendRawLine) is
// byte for byte what writeLine writes for the same message, and
// rawLineLen is its length.
func FuzzRawLine(f *testing.F) {
	f.Add("bud", "bud", "msim.1", "JOIN", "&bitlbee", "", "", 1)
	f.Add("irc.test", "", "", "MODE", "&bitlbee", "+v", "bud", 3)
	f.Add("bud", "u1", "", "AWAY", "gone fishing", "", "", 1)
	f.Add("bud", "", "h", "QUIT", "", "", "", 1)
	f.Add("", "", "", "PING", ":x", "", "", 1)
	f.Add("bud", "bud", "msim.1", "AWAY", "", "", "", 0)
	f.Fuzz(func(t *testing.T, name, user, host, cmd, p1, p2, p3 string, n int) {
		params := []string{p1, p2, p3}[:max(0, min(n, 3))]
		var p *irc.Prefix
		if name != "" {
			p = &irc.Prefix{Name: name, User: user, Host: host}
		}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		writeLine(bw, msg(p, cmd, params...))
		_ = bw.Flush()
		got := appendRawLine([]byte("x"), name, user, host, cmd, params)
		if string(got[1:]) != buf.String() {
			t.Fatalf("appendRawLine: got %q, want %q", got[1:], buf.String())
		}
		if n := rawLineLen(name, user, host, cmd, params); n != buf.Len() {
			t.Fatalf("rawLineLen: got %d, want %d", n, buf.Len())
		}
	})
}

// TestRawLinesAcrossChunks: a burst of encoded lines larger than a chunk
// is queued whole and in order, the chunks in turn; once written, the
// chunk is emptied and reused.
func TestRawLinesAcrossChunks(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	c.giveBack(c.take())
	const n = 300
	var want []string
	for i := range n {
		nick := fmt.Sprintf("buddy%03d", i)
		host := fmt.Sprintf("msim.%d", 1000000+i)
		if err := c.AddUser(User{Nick: nick, User: nick, Host: host, RealName: "x"}); err != nil {
			t.Fatal(err)
		}
		c.JoinUser("&bitlbee", nick, true)
		want = append(want, ":"+nick+"!"+nick+"@"+host+" JOIN &bitlbee", ":"+testServer+" MODE &bitlbee +v "+nick)
	}
	if size := len(strings.Join(want, "\r\n")); size <= 2*lineChunkSize {
		t.Fatalf("the burst is %d bytes, want more than two chunks (%d)", size, 2*lineChunkSize)
	}
	batch := c.take()
	if got := entryLines(batch); !slices.Equal(got, want) {
		t.Fatalf("got %d lines, want %d in order; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	last := c.qc
	c.giveBack(batch)
	if c.qc != last || len(c.qc.b) != 0 || cap(c.qc.b) != lineChunkSize {
		t.Fatalf("after the batch: got the chunk %p with %d of %d bytes, want %p emptied for reuse", c.qc, len(c.qc.b), cap(c.qc.b), last)
	}
	c.PartUser("&bitlbee", "buddy000", "bye now")
	c.SetAway("buddy001", "gone")
	c.caps["away-notify"] = true
	c.SetAway("buddy002", "out")
	c.SetVoice("&bitlbee", "buddy003", false)
	c.SetOp("&bitlbee", "buddy003", true)
	c.SetOp("&bitlbee", "buddy003", false)
	if err := c.RenameUser("buddy004", "bud4"); err != nil {
		t.Fatal(err)
	}
	c.RemoveUser("bud4", "left")
	got := entryLines(c.take())
	want = []string{
		":buddy000!buddy000@msim.1000000 PART &bitlbee :bye now",
		":buddy002!buddy002@msim.1000002 AWAY out",
		":" + testServer + " MODE &bitlbee -v buddy003",
		":" + testServer + " MODE &bitlbee +o buddy003",
		":" + testServer + " MODE &bitlbee -o buddy003",
		":buddy004!buddy004@msim.1000004 NICK bud4",
		":bud4!buddy004@msim.1000004 QUIT left",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if &c.qc.b[0] != &last.b[0] {
		t.Errorf("the lines after the burst went to a new chunk, want the emptied one")
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRawLinesBeforeWelcome: a virtual user's lines sent before the
// welcome are held as messages and come out after it, in order.
func TestRawLinesBeforeWelcome(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	c.giveBack(c.take())
	c.welcomed = false
	if err := c.AddUser(User{Nick: "bud", User: "bud", Host: "msim.1"}); err != nil {
		t.Fatal(err)
	}
	c.JoinUser("&bitlbee", "bud", true)
	if c.queued() != 0 || len(c.held) != 2 || c.qc != nil {
		t.Fatalf("before the welcome: got %d queued, %d held, chunk %v; want 2 held", c.queued(), len(c.held), c.qc)
	}
	got := entryLines(c.dropHeld())
	want := []string{":bud!bud@msim.1 JOIN &bitlbee", ":" + testServer + " MODE &bitlbee +v bud"}
	if !slices.Equal(got, want) {
		t.Fatalf("held: got %q, want %q", got, want)
	}
}

// TestRawLinesOverSocket: a burst of a buddy list's JOIN and MODE lines,
// several chunks long, reaches the client whole and in order through the
// writer, which keeps no chunk once it has stopped.
func TestRawLinesOverSocket(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me")
	c.sync(t)
	const n = 300
	var want []string
	for i := range n {
		nick := fmt.Sprintf("buddy%03d", i)
		host := fmt.Sprintf("msim.%d", 1000000+i)
		if err := fc.c.AddUser(User{Nick: nick, User: nick, Host: host}); err != nil {
			t.Fatal(err)
		}
		fc.c.JoinUser("&bitlbee", nick, true)
		want = append(want, ":"+nick+"!"+nick+"@"+host+" JOIN &bitlbee", ":"+testServer+" MODE &bitlbee +v "+nick)
	}
	for i, w := range want {
		if got := c.read(t).String(); got != w {
			t.Fatalf("line %d: got %q, want %q", i, got, w)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fc.c.qmu.Lock()
		writing, chunk := fc.c.writing, fc.c.qc
		fc.c.qmu.Unlock()
		if !writing {
			if chunk != nil {
				t.Fatalf("the writer stopped holding a chunk of %d bytes, want none", cap(chunk.b))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer still runs 5s after the lines went out")
		}
		time.Sleep(time.Millisecond)
	}
}
