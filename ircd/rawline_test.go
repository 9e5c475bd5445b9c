package ircd

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/allocs"
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
	c.SetPresence("buddy001", "gone", true)
	c.caps["away-notify"] = true
	c.SetPresence("buddy002", "out", true)
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

// queueLines queues n JOIN lines of distinct buddies (the commonest line
// of a login's burst) and returns them as the client should send them.
func queueLines(c *Client, from, n int) []string {
	var want []string
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; i < from+n; i++ {
		nick := fmt.Sprintf("buddy%05d", i)
		c.emitLine(nick, nick, "msim.1000000", "JOIN", "&bitlbee")
		want = append(want, ":"+nick+"!"+nick+"@msim.1000000 JOIN &bitlbee")
	}
	return want
}

// TestFullChunksKeptUntilWritten: a chunk that fills up while the writer
// holds a batch of its lines, or while lines of it wait in the queue, is
// not reused before those lines are written, however many chunks fill up
// meanwhile.
func TestFullChunksKeptUntilWritten(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	c.giveBack(c.take())
	perChunk := lineChunkSize / len(":buddy00000!buddy00000@msim.1000000 JOIN &bitlbee\r\n")
	check := func(step string, batch []entry, want []string) {
		t.Helper()
		if got := entryLines(batch); !slices.Equal(got, want) {
			t.Fatalf("%s: the batch's lines changed before they were written (%d lines, %d differ)", step, len(got), countDiff(got, want))
		}
	}

	want1 := queueLines(c, 0, perChunk/2)
	batch1 := c.take() // being written
	want2 := queueLines(c, perChunk, 3*perChunk)
	check("chunks filled while a batch is written", batch1, want1)
	c.giveBack(batch1)
	batch2 := c.take()
	want3 := queueLines(c, 10*perChunk, 3*perChunk)
	check("chunks filled while the next batch, queued meanwhile, is written", batch2, want2)
	c.giveBack(batch2)
	batch3 := c.take()
	queueLines(c, 20*perChunk, 3*perChunk)
	check("and the next", batch3, want3)
	c.giveBack(batch3)
}

// countDiff is how many of got and want differ, place by place.
func countDiff(got, want []string) int {
	n := max(len(got), len(want)) - min(len(got), len(want))
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			n++
		}
	}
	return n
}

// TestBurstReusesChunks: a long burst of lines written while more are
// queued goes through a few chunks, taken again once their lines are
// written, rather than a new chunk for every lineChunkSize bytes.
func TestBurstReusesChunks(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops some of what it is given in a race build")
	}
	c, done := fuzzClient(t)
	defer done()
	c.giveBack(c.take())
	perChunk := lineChunkSize / len(":buddy00000!buddy00000@msim.1000000 JOIN &bitlbee\r\n")
	seen := map[*lineChunk]bool{} // every chunk is the current one a while
	for i := range 50 {
		// The writer writes a batch while the burst queues two chunks'
		// worth of lines.
		batch := c.take()
		for j := range 8 {
			queueLines(c, (8*i+j)*perChunk/4, perChunk/4)
			seen[c.qc] = true
		}
		c.giveBack(batch)
	}
	if len(seen) > 8 {
		t.Errorf("a burst of 100 chunks' worth of lines used %d chunks, want a few", len(seen))
	}
}

// TestBurstReusesQueueArrays: a connection whose writer stops and starts
// again during a burst of lines (it empties the queue faster than the
// burst fills it, as at a login) takes the arrays that earlier batches and
// stops let go, rather than growing new ones from nothing each time; so
// does one whose writer stops after every few lines (an IM at a time).
func TestBurstReusesQueueArrays(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops some of what it is given in a race build")
	}
	c, done := fuzzClient(t)
	defer done()
	nicks := make([]string, 200)
	for i := range nicks {
		nicks[i] = fmt.Sprintf("buddy%05d", i)
	}
	lines := func(n int) func() {
		return func() {
			c.mu.Lock()
			for _, nick := range nicks[:n] {
				c.emitLine(nick, nick, "msim.1000000", "JOIN", "&bitlbee")
			}
			c.mu.Unlock()
			c.giveBack(c.take())
			c.qmu.Lock()
			c.letGo() // the writer stops
			c.qmu.Unlock()
		}
	}
	for _, tc := range []struct {
		name string
		n    int
	}{{"a burst of 200 lines", 200}, {"3 lines", 3}} {
		burst := lines(tc.n)
		burst()
		// What is left: the pointers the pools keep an array by, the list
		// of full chunks. A collection empties the pools, and with them
		// one round's arrays and chunks: the quietest of a few rounds
		// counts.
		n := bytesPerRun(20, burst)
		for range 4 {
			n = min(n, bytesPerRun(20, burst))
		}
		if n > 256 {
			t.Errorf("%s after another: %d bytes allocated, want a few small objects' worth", tc.name, n)
		}
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.q != nil || c.spare != nil || c.qc != nil || c.full != nil || c.taken != nil {
		t.Errorf("a stopped writer's connection keeps a queue array or a chunk")
	}
}

// bytesPerRun is the bytes f allocates, on average over runs calls.
func bytesPerRun(runs int, f func()) uint64 {
	return allocs.Bytes(func() {
		for range runs {
			f()
		}
	}) / uint64(runs)
}
