package ircd

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

func TestSplitText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 30) // 150 bytes
	tests := []struct {
		name string
		text string
		max  int
		want []string
	}{
		{"short", "hello", 10, []string{"hello"}},
		{"exact", "0123456789", 10, []string{"0123456789"}},
		{"empty", "", 10, nil},
		{"word boundary", "aaaa bbbb cccc", 10, []string{"aaaa bbbb ", "cccc"}},
		{"no space: hard cut", "abcdefghijkl", 5, []string{"abcde", "fghij", "kl"}},
		{"early space: no tiny piece", "T10 " + strings.Repeat("x", 26), 10, []string{"T10 xxxxxx", "xxxxxxxxxx", "xxxxxxxxxx"}},
		{"space past half kept", "abcdef ghijklmn", 10, []string{"abcdef ", "ghijklmn"}},
		{"multi-byte kept whole", "ééééé", 5, []string{"éé", "éé", "é"}},
		{"emoji", "😀😀😀", 6, []string{"😀", "😀", "😀"}},
		{"lines", "one\ntwo\r\nthree\rfour", 10, []string{"one", "two", "three", "four"}},
		{"blank lines dropped", "a\n\n\nb\n", 10, []string{"a", "b"}},
		{"NUL replaced", "a\x00b", 10, []string{"a\uFFFDb"}},
		{"invalid UTF-8 replaced", "a\xffb", 10, []string{"a\uFFFDb"}},
		{"action short", "\x01ACTION waves\x01", 40, []string{"\x01ACTION waves\x01"}},
		{"action split", "\x01ACTION aaaa bbbb cccc\x01", 19, []string{"\x01ACTION aaaa bbbb \x01", "\x01ACTION cccc\x01"}},
		{"action multi-line", "\x01ACTION one\ntwo\x01", 40, []string{"\x01ACTION one\x01", "\x01ACTION two\x01"}},
		{"action unterminated", "\x01ACTION waves", 40, []string{"\x01ACTION waves\x01"}},
		{"ctcp without args", "\x01VERSION\x01", 40, []string{"\x01VERSION\x01"}},
		// A line cut in pieces: each carries the formatting open at its
		// start and closes it at its end; the last ends as the line does.
		{"bold across cuts", "\x02aaaa bbbb cccc\x02", 10, []string{"\x02aaaa \x02", "\x02bbbb \x02", "\x02cccc\x02"}},
		{"bold left open", "x \x02aaaa bbbb", 10, []string{"x \x02aaaa \x02", "\x02bbbb"}},
		{"styles combined", "\x1d\x1fab\x1f cdefgh ijk", 10, []string{"\x1d\x1fab\x1f \x1d", "\x1dcdefgh \x1d", "\x1dijk"}},
		{"reset ends them", "\x02abc\x0f defghij klm", 10, []string{"\x02abc\x0f ", "defghij ", "klm"}},
		{"colour reopened in two digits", "\x034red red red red", 10, []string{"\x034red \x03", "\x0304red \x03", "\x0304red red"}},
		{"colour with background", "\x034,5ab cdefgh", 12, []string{"\x034,5ab \x03", "\x0304,05cdefgh"}},
		{"no cut inside a colour code", "abcdefgh\x0304,05x", 10, []string{"abcdefgh", "\x0304,05x"}},
		{"comma after a reopened colour", "\x034abcdefg,5", 10, []string{"\x034abcdefg\x03", "\x0304\x02\x02,5"}},
		{"codes end with the line", "\x02one\ntwo", 10, []string{"\x02one", "two"}},
		{"action bold across cuts", "\x01ACTION \x02aaaa bbbb\x02\x01", 17, []string{"\x01ACTION \x02aaaa \x02\x01", "\x01ACTION \x02bbbb\x02\x01"}},
		{"long text", long, 40, []string{
			"word word word word word word word word ",
			"word word word word word word word word ",
			"word word word word word word word word ",
			"word word word word word word ",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := splitText(tc.text, tc.max)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for _, p := range got {
				if len(p) > tc.max || !utf8.ValidString(p) || strings.ContainsAny(p, "\r\n\x00") {
					t.Fatalf("bad piece %q (max %d)", p, tc.max)
				}
			}
		})
	}
}

// Long deliveries arrive as several valid lines of at most 512 bytes whose
// texts concatenate back to the original.
func TestDeliverSplitsOnTheWire(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me", "server-time", "message-tags")
	words := strings.Repeat("Grüße aus Köln 😀 ", 100)
	solid := strings.Repeat("ж", 700)
	tests := []struct {
		name   string
		d      Delivery
		joined string // what the pieces concatenate to
		action bool
	}{
		{"words", Delivery{From: "tom", Text: words}, words, false},
		{"no spaces", Delivery{From: "tom", Target: "&bitlbee", Text: solid}, solid, false},
		{"action", Delivery{From: "tom", Text: "\x01ACTION " + words + "\x01"}, words, true},
		{"multi-line", Delivery{From: "tom", Text: "first\nsecond\n" + solid}, "firstsecond" + solid, false},
		{"tags", Delivery{From: "tom", Text: solid, Tags: irc.Tags{"+typing": "done"}}, solid, false},
	}
	for _, tc := range tests {
		c.keep, c.raw = true, nil
		fc.c.Deliver(tc.d)
		got := c.sync(t)
		if len(got) < 2 {
			t.Fatalf("%s: got %d messages, want the text split", tc.name, len(got))
		}
		var joined strings.Builder
		for i, m := range got {
			raw := strings.TrimRight(c.raw[i], "\r\n")
			body := raw
			if raw[0] == '@' {
				body = raw[strings.IndexByte(raw, ' ')+1:]
			}
			if len(body)+2 > 512 {
				t.Fatalf("%s: got a %d-byte line, want <= 512", tc.name, len(body)+2)
			}
			text := m.Trailing()
			if !utf8.ValidString(text) {
				t.Fatalf("%s: piece %q is not UTF-8", tc.name, text)
			}
			if tc.action {
				if !strings.HasPrefix(text, "\x01ACTION ") || !strings.HasSuffix(text, "\x01") {
					t.Fatalf("%s: piece %q lost its ACTION framing", tc.name, text)
				}
				text = strings.TrimSuffix(strings.TrimPrefix(text, "\x01ACTION "), "\x01")
			}
			if _, ok := m.Tags["time"]; !ok {
				t.Fatalf("%s: piece %q has no time tag", tc.name, m)
			}
			if tc.d.Tags != nil && m.Tags["+typing"] != "done" {
				t.Fatalf("%s: piece %q lost its tags", tc.name, m)
			}
			joined.WriteString(text)
		}
		if joined.String() != tc.joined {
			t.Fatalf("%s: pieces join to %q, want %q", tc.name, joined.String(), tc.joined)
		}
	}
}
