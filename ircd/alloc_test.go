package ircd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

func TestMsgParams(t *testing.T) {
	p := &irc.Prefix{Name: "srv"}
	tests := []struct {
		name   string
		params []string
	}{
		{"none", nil},
		{"one", []string{"a"}},
		{"two", []string{"a", "b c"}},
		{"three", []string{"a", "b", "c"}},
		{"four", []string{"a", "b", "c", "d e"}},
		{"five", []string{"a", "b", "c", "d", "e f"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.params)
			m := msg(p, "CMD", in...)
			if m.Prefix != p || m.Command != "CMD" || !slices.Equal(m.Params, tc.params) {
				t.Fatalf("got %q, want :srv CMD %q", m, tc.params)
			}
			if tc.params == nil && m.Params != nil {
				t.Errorf("Params: got %#v, want nil", m.Params)
			}
			if len(in) > 0 {
				in[0] = "changed" // the caller's slice is not the message's
				if m.Params[0] != tc.params[0] {
					t.Errorf("Params[0] after the caller's change: got %q, want %q", m.Params[0], tc.params[0])
				}
				grown := append(m.Params, "x")
				grown[0] = "grown"
				if m.Params[0] != tc.params[0] {
					t.Errorf("Params[0] after an append: got %q, want %q", m.Params[0], tc.params[0])
				}
			}
		})
	}
}

// TestVoicedJoinAllocs: a buddy coming online and going (JoinUser voiced,
// then PartUser: JOIN, MODE +v and PART queued) allocates nothing once the
// queue has its chunk: the lines are encoded straight into it.
func TestVoicedJoinAllocs(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	addBud(t, c)
	allocs := testing.AllocsPerRun(200, func() {
		c.JoinUser("&bitlbee", "bud", true)
		c.PartUser("&bitlbee", "bud", "")
		c.giveBack(c.take())
	})
	if allocs > 0 {
		t.Errorf("JoinUser and PartUser: got %.1f allocations, want none", allocs)
	}
	c.JoinUser("&bitlbee", "bud", true)
	got := entryLines(c.take())
	want := []string{":bud!bud@msim.1 JOIN &bitlbee", ":" + testServer + " MODE &bitlbee +v bud"}
	if !slices.Equal(got, want) {
		t.Errorf("lines: got %q, want %q", got, want)
	}
}

// addBud gives c the virtual user bud (bud!bud@msim.1) and empties its
// queue of the lines that brought it.
func addBud(t testing.TB, c *Client) {
	t.Helper()
	if err := c.AddUser(User{Nick: "bud", User: "bud", Host: "msim.1"}); err != nil {
		t.Fatal(err)
	}
	c.giveBack(c.take())
}

// entryLines is the lines of es as written, without CRLF (an entry
// without a line left out).
func entryLines(es []entry) []string {
	var out []string
	for _, e := range es {
		switch {
		case e.raw != nil:
			out = append(out, string(e.raw))
		case e.m != nil:
			out = append(out, e.m.String())
		}
	}
	return out
}

// TestPrivmsgTargetsAllocs: a message's targets are walked, not split
// into a list first, and a NOTICE's errors, which are not sent, are not
// built: a NOTICE naming three missing nicks costs nothing. The limit on
// targets still holds.
func TestPrivmsgTargetsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build")
	}
	c, done := fuzzClient(t)
	defer done()
	m := &irc.Message{Command: "NOTICE", Params: []string{"nobody,nobody2,nobody3", "hi"}}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := testing.AllocsPerRun(200, func() { c.message(m, false) }); n > 0 {
		t.Errorf("NOTICE to three missing nicks: %.1f allocations, want none", n)
	}
	long := &irc.Message{Command: "NOTICE", Params: []string{strings.Repeat("a,", maxTargets) + "a", "hi"}}
	if e := c.message(long, false); e == nil || e.Code != irc.ERR_TOOMANYTARGETS {
		t.Errorf("%d targets: got %v, want %s", maxTargets+1, e, irc.ERR_TOOMANYTARGETS)
	}
	exact := &irc.Message{Command: "NOTICE", Params: []string{strings.TrimSuffix(strings.Repeat("a,", maxTargets), ","), "hi"}}
	if e := c.message(exact, false); e != nil {
		t.Errorf("%d targets: got %v, want none", maxTargets, e)
	}
}

// TestDeliverOneLineAllocs: an IM of one line to a client with
// message-tags and server-time is encoded straight into the queue's chunk,
// its msgid and time with it (deliverRaw): once the queue has its chunk it
// allocates nothing.
func TestDeliverOneLineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build")
	}
	c, done := fuzzClient(t)
	defer done()
	c.caps["message-tags"], c.caps["server-time"] = true, true
	addBud(t, c)
	d := Delivery{Command: "PRIVMSG", From: "bud", Text: "hello there", MsgID: "abc", Time: time.Unix(1e9, 0)}
	if n := testing.AllocsPerRun(200, func() {
		c.Deliver(d)
		c.giveBack(c.take())
	}); n > 0 {
		t.Errorf("Deliver of one line: %.1f allocations, want none", n)
	}
	c.Deliver(d)
	got := entryLines(c.take())
	if len(got) != 1 {
		t.Fatalf("lines: got %q, want one", got)
	}
	m, err := irc.ParseMessage(got[0])
	if err != nil || m.Tags["msgid"] != "abc" || m.Tags["time"] != "2001-09-09T01:46:40.000Z" || len(m.Tags) != 2 ||
		m.Prefix.String() != "bud!bud@msim.1" || m.Command != "PRIVMSG" || !slices.Equal(m.Params, []string{"me", "hello there"}) {
		t.Errorf("line: got %q, want the IM from bud with its msgid and time", got[0])
	}
}

// TestNumericAllocs: a numeric reply is encoded straight into the queue's
// chunk, so once the queue has its chunk it allocates nothing, and its
// line is the one the message it replaces would write, however many
// parameters it has. A labeled reply being collected still gets it as a
// message.
func TestNumericAllocs(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	c.giveBack(c.take())
	c.mu.Lock()
	defer c.mu.Unlock()
	if !raceEnabled {
		allocs := testing.AllocsPerRun(200, func() {
			c.numeric(irc.RPL_WHOISUSER, "bud", "bud", "msim.1", "*", "Bud Buddy")
			c.giveBack(c.take())
		})
		if allocs > 0 {
			t.Errorf("a numeric: got %.1f allocations, want none", allocs)
		}
	}
	many := make([]string, numericRoom+4)
	for i := range many {
		many[i] = fmt.Sprintf("TOKEN%d=x", i)
	}
	many[len(many)-1] = "are supported by this server"
	cases := [][]string{
		{irc.RPL_WHOISUSER, "bud", "bud", "msim.1", "*", "Bud Buddy"},
		{irc.RPL_ENDOFWHO, "&bitlbee", "End of WHO list"},
		{irc.RPL_NAMREPLY, "=", "&bitlbee", "@me +bud"},
		{irc.ERR_NOSUCHNICK, "nobody", ":colon"},
		{irc.RPL_UMODEIS, "+iw"},
		append([]string{irc.RPL_ISUPPORT}, many...),
	}
	var want []string
	for _, tc := range cases {
		c.numeric(tc[0], tc[1:]...)
		want = append(want, msg(c.serverPrefix(), tc[0], append([]string{c.nick}, tc[1:]...)...).String())
	}
	batch := c.take()
	if got := entryLines(batch); !slices.Equal(got, want) {
		t.Errorf("lines: got %q, want %q", got, want)
	}
	for i, e := range batch {
		if e.raw == nil {
			t.Errorf("line %d queued as a message, want encoded", i)
		}
	}
	c.giveBack(batch)
	rb := &replyBuf{label: "x"}
	c.capture = rb
	c.numeric(irc.RPL_UMODEIS, "+iw")
	c.capture = nil
	if len(rb.lines) != 1 || rb.lines[0].String() != ":"+testServer+" 221 me +iw" || c.queued() != 0 {
		t.Errorf("while a labeled reply is collected: got %q collected, %d queued; want the line collected", rb.lines, c.queued())
	}
}

// countingHandler counts the Message calls it gets, and when they come
// with the client's lock free.
type countingHandler struct {
	nopHandler
	c        *Client
	messages int
	locked   int
	last     Input
}

func (h *countingHandler) Message(in Input) {
	h.messages++
	if !h.c.mu.TryLock() {
		h.locked++
	} else {
		h.c.mu.Unlock()
	}
	h.last = in
}

// TestPrivmsgToHandlerAllocs: a PRIVMSG to a buddy reaches the handler
// after the client's lock is released, one Message call per target in
// order, and dispatching the parsed line allocates only its msgid: no
// closure per call, no list of calls.
func TestPrivmsgToHandlerAllocs(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	h := &countingHandler{c: c}
	c.handler = h
	for _, nick := range []string{"bud", "pal"} {
		if err := c.AddUser(User{Nick: nick, User: nick, Host: "msim.1"}); err != nil {
			t.Fatal(err)
		}
	}
	c.giveBack(c.take())
	m, err := parseLine("PRIVMSG bud,pal :hello there")
	if err != nil {
		t.Fatal(err)
	}
	c.dispatch(m)
	if h.messages != 2 || h.locked != 0 || h.last.Target != "pal" || h.last.Text != "hello there" {
		t.Fatalf("got %d Message calls (%d under the lock), the last %+v; want 2, none locked, the last to pal", h.messages, h.locked, h.last)
	}
	if raceEnabled {
		return
	}
	one, _ := parseLine("PRIVMSG bud :hello there")
	if n := testing.AllocsPerRun(200, func() { c.dispatch(one) }); n > 1 {
		t.Errorf("PRIVMSG to a buddy: %.1f allocations, want at most 1 (its msgid)", n)
	}
}

// TestWriterStopAllocs: a writer that writes a line and stops (the queue
// empty: its arrays and chunk go back to their pools, letGo) allocates
// nothing, nor does the next line's start taking them again.
func TestWriterStopAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build (sync.Pool drops at random under -race)")
	}
	c, done := fuzzClient(t)
	defer done()
	addBud(t, c)
	d := Delivery{From: "bud", Text: "hello there"}
	cycle := func(check func([]entry)) {
		c.Deliver(d)
		batch := c.take()
		check(batch)
		c.giveBack(batch)
		c.qmu.Lock()
		c.letGo()
		c.qmu.Unlock()
	}
	cycle(func(batch []entry) {
		if got, want := entryLines(batch), []string{":bud!bud@msim.1 PRIVMSG me :hello there"}; !slices.Equal(got, want) {
			t.Fatalf("lines: got %q, want %q", got, want)
		}
	})
	if n := testing.AllocsPerRun(200, func() { cycle(func([]entry) {}) }); n > 0 {
		t.Errorf("a line written and the writer stopped: %.1f allocations, want none", n)
	}
}
