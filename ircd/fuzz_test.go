package ircd

import (
	"net"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

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
	"CAP REQ :batch draft/multiline echo-message message-tags labeled-response\r@label=l BATCH +a draft/multiline ann\r" +
		"@batch=a PRIVMSG ann :x \r@batch=a;draft/multiline-concat PRIVMSG ann :y\r@batch=a PRIVMSG ann :\rBATCH -a",
	"MONITOR + tom,ann,nobody\rMONITOR L\rMONITOR S",
	"CAP REQ setname\rSETNAME :new name",
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
	c.nick, c.user, c.connecting = "me", "u", true
	markWelcomed(c)
	if err := stdWorld(c); err != nil {
		t.Fatal(err)
	}
	c.handler = nopHandler{}
	return c, func() { c.cancel(); _ = a.Close(); _ = b.Close() }
}

// markWelcomed marks c welcomed, as accept does once the welcome burst
// and the lines held are queued, for a client made without registering.
func markWelcomed(c *Client) {
	c.welcomed = true
	c.burstQueued.Store(true)
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
			body := s
			if s[0] == '@' {
				_, body, _ = strings.Cut(s, " ")
			}
			if len(body)+len("\r\n") > 512 {
				t.Fatalf("reply %q to %q is longer than 512 bytes", s, line)
			}
		}
	})
}

// FuzzMultilinePieces checks the lines of a multiline batch sent to a
// client: none over the budget or holding CR, LF or NUL, concat never on a
// blank line nor the first, and joined back (a line break before each
// line but concat ones) they give the text with its line breaks made LF.
func FuzzMultilinePieces(f *testing.F) {
	f.Add("one\n\ntwo", 10)
	f.Add("a long line of several words\r\nand\rmore", 8)
	f.Add("\x01ACTION x\x01", 50)
	f.Add("\xff\x00é", 4)
	f.Fuzz(func(t *testing.T, text string, max int) {
		if max < 4 || max > 600 {
			return
		}
		pieces, ok := multilinePieces(text, max)
		if !ok {
			return
		}
		got := joinBatchLines(t, pieces, max, text)
		want := strings.ToValidUTF8(text, "\uFFFD")
		want = strings.NewReplacer("\x00", "\uFFFD", "\r\n", "\n", "\r", "\n").Replace(want)
		if got != want {
			t.Fatalf("pieces of %q join to %q, want %q", text, got, want)
		}
	})
}

// FuzzFitBatch checks the lines fitBatch gives a multiline client for a
// Delivery's Lines (lines: "|"-separated, "+" first marking concat): none
// over max bytes, each one valid line, no concat on the first or a blank
// one, and, joined as a batch's lines are, the text.
func FuzzFitBatch(f *testing.F) {
	f.Add("hello||a long line of words|+concat", "hello\n\na long line of wordsconcat", 8)
	f.Add("one", "one", 50)
	f.Add("+a|\x01x", "a\n\x01x", 4)
	f.Add("é\x0312,3x|b", "é\x0312,3x\nb", 5)
	f.Fuzz(func(t *testing.T, enc, text string, max int) {
		if max < 4 || max > 600 {
			return
		}
		var lines []BatchLine
		for l := range strings.SplitSeq(enc, "|") {
			c, concat := strings.CutPrefix(l, "+")
			lines = append(lines, BatchLine{Text: c, Concat: concat})
		}
		out, ok := fitBatch(lines, text, max)
		if !ok {
			return
		}
		if got := joinBatchLines(t, out, max, enc); got != text {
			t.Fatalf("lines of %q join to %q, want %q", enc, got, text)
		}
	})
}

// joinBatchLines checks the lines of a multiline batch made of from: none
// over max bytes, each one valid line, no concat on the first or a blank
// one; and returns them joined as a client joins a batch's lines.
func joinBatchLines(t *testing.T, lines []BatchLine, max int, from string) string {
	t.Helper()
	var b strings.Builder
	for i, p := range lines {
		if len(p.Text) > max || strings.ContainsAny(p.Text, "\r\n\x00") || !utf8.ValidString(p.Text) {
			t.Fatalf("line %q of %q: over %d bytes, or not one valid line", p.Text, from, max)
		}
		if p.Concat && (i == 0 || p.Text == "") {
			t.Fatalf("line %d of %q: concat on the first or a blank line", i, from)
		}
		if i > 0 && !p.Concat {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	return b.String()
}

// FuzzSplitText checks the lines Deliver splits a text into: none over the
// budget or holding CR, LF or NUL, and each, read from no formatting as a
// client reads a line, shows its text in the formatting it had in its
// line of the text: the pieces of a line cut in several carry the codes
// open where they start.
func FuzzSplitText(f *testing.F) {
	f.Add("\x02bold "+strings.Repeat("word ", 30), 80)
	f.Add("\x034,12colour \x1dand italic "+strings.Repeat("x", 100)+",5 \x0f\x02b", 64)
	f.Add("\x04FF00AA"+strings.Repeat("é", 80)+"\n\x1fline two "+strings.Repeat("y ", 50), 70)
	f.Fuzz(func(t *testing.T, text string, max int) {
		if max < 64 || max > 600 || strings.HasPrefix(text, "\x01") {
			return
		}
		var want, got []shownByte
		norm := strings.ToValidUTF8(text, "\uFFFD")
		norm = strings.NewReplacer("\x00", "\uFFFD", "\r\n", "\n", "\r", "\n").Replace(norm)
		for line := range strings.SplitSeq(norm, "\n") {
			want = appendShown(want, line)
		}
		for _, p := range splitText(text, max) {
			if len(p) > max || strings.ContainsAny(p, "\r\n\x00") || !utf8.ValidString(p) {
				t.Fatalf("piece %q of %q: over %d bytes, or not one valid line", p, text, max)
			}
			got = appendShown(got, p)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pieces of %q (max %d) show %v, want %v", text, max, got, want)
		}
	})
}

// shownByte is a byte of text as a client shows it: with its formatting.
type shownByte struct {
	b byte
	f format
}

// appendShown appends the bytes line shows, read from no formatting, to
// out; colour numbers are compared in two digits.
func appendShown(out []shownByte, line string) []shownByte {
	var f format
	for i := 0; i < len(line); i++ {
		c := line[i]
		if strings.IndexByte(formatCodes, c) < 0 {
			g := f
			g.fg, g.bg = twoDigits(g.fg), twoDigits(g.bg)
			out = append(out, shownByte{c, g})
			continue
		}
		n := 1
		if c == 0x03 {
			n += codeLen(line[i+1:], isDecimal, 2)
		} else if c == 0x04 {
			n += codeLen(line[i+1:], isHex, 6)
		}
		f.scan(line[i : i+n])
		i += n - 1
	}
	return out
}
