package ircd

import (
	"net"
	"testing"

	"gopkg.in/irc.v4"
)

var fuzzSeeds = []string{
	"PRIVMSG #chan :hello there",
	"@+typing=active;+draft/reply=abc TAGMSG tom",
	":nick!user@host PRIVMSG tom :\x01ACTION waves\x01",
	"@a=b ",
	"@",
	":",
	": ",
	"CAP LS 302",
	"CAP REQ :server-time echo-message -batch",
	"AUTHENTICATE PLAIN",
	"AUTHENTICATE AGFsaWNlAHNlY3JldA==",
	"NICK tom",
	"USER u 0 * :Real Name",
	"MODE &bitlbee +vvv-o a b c d",
	"JOIN #a,#b,&bitlbee",
	"WHO &bitlbee",
	"WHOIS irc.test tom",
	"PING a\rPING b",
	"PRIVMSG ann :\xff\xfe",
	"PRIVMSG ann :a\x00b",
	"@tag=\\:\\s\\\\ PRIVMSG ann :esc",
	"QUIT :bye",
}

// FuzzParseLine checks that parseLine never panics and that what it accepts
// survives a round trip through irc.Message.String.
func FuzzParseLine(f *testing.F) {
	for _, s := range append(fuzzSeeds, parseSeeds...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		checkParse(t, line) // as irc.ParseMessage reads it
		m, err := parseLine(line)
		if err != nil {
			return
		}
		if m.Prefix == nil || m.Command == "" {
			t.Fatalf("parseLine(%q) gave %#v", line, m)
		}
		_ = m.String()
	})
}

// fuzzClient is a registered client with the standard world, with no
// goroutines: lines go straight to handleLine and replies pile up in out.
func fuzzClient(t testing.TB) (*Client, func()) {
	log, _ := testLog()
	srv := NewServer(testConfig(), newBackend(), log)
	a, b := net.Pipe()
	c := newClient(t.Context(), srv, a)
	c.noWriter = true // the test takes the queue itself
	c.nick, c.user, c.welcomed, c.connecting = "me", "u", true, true
	if err := stdWorld(c); err != nil {
		t.Fatal(err)
	}
	c.handler = nopHandler{}
	return c, func() { c.cancel(); _ = a.Close(); _ = b.Close() }
}

type nopHandler struct{}

func (nopHandler) Message(Input)        {}
func (nopHandler) Join(string)          {}
func (nopHandler) Part(string, string)  {}
func (nopHandler) Away(string)          {}
func (nopHandler) Nick(string)          {}
func (nopHandler) Closed(reason string) {}

// FuzzHandleLine feeds arbitrary lines to a registered client's line
// handler: nothing may panic, and every reply must be a valid IRC line.
func FuzzHandleLine(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s + "\r\n"))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, done := fuzzClient(t)
		defer done()
		c.handleLine(line)
		for _, s := range entryLines(c.take()) {
			if len(s) == 0 {
				t.Fatalf("empty reply to %q", line)
			}
			for i := 0; i < len(s); i++ {
				if s[i] == '\r' || s[i] == '\n' || s[i] == 0 {
					t.Fatalf("reply %q to %q holds CR, LF or NUL", s, line)
				}
			}
			if _, err := irc.ParseMessage(s); err != nil {
				t.Fatalf("reply %q to %q does not parse: %v", s, line, err)
			}
		}
	})
}
