package ircd

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

// TestDeliverRawSameLine: a delivery deliverRaw encodes is the line lines
// builds for it (tags compared as a set: a message's tags had no order),
// with or without message-tags and server-time, in a batch or not, and
// anything deliverRaw leaves alone still goes lines' way.
func TestDeliverRawSameLine(t *testing.T) {
	at := time.Date(2026, 12, 4, 17, 23, 31, 123e6, time.UTC)
	tests := []struct {
		name string
		d    Delivery
		o    compose
		raw  func(tags, time bool) bool // deliverRaw encodes it
	}{
		{"IM", Delivery{Command: "PRIVMSG", From: "bud", Text: "hello there", MsgID: "m1", Time: at}, compose{}, always},
		{"no command", Delivery{From: "bud", Text: "one-word", MsgID: "m1", Time: at}, compose{}, always},
		{"notice", Delivery{Command: "NOTICE", From: "bud", Text: "hi", Time: at}, compose{}, always},
		{"colon first", Delivery{From: "bud", Text: ":)", Time: at}, compose{}, always},
		{"in a batch, past", Delivery{From: "bud", Text: "then", MsgID: "m2", Time: at}, compose{ref: "h1", past: true}, withTime},
		{"UTF-8", Delivery{From: "bud", Text: "héllo ☃", Time: at}, compose{}, always},
		{"no msgid", Delivery{From: "bud", Text: "x y"}, compose{}, always},
		{"two lines", Delivery{From: "bud", Text: "a\nb", Time: at}, compose{}, never},
		{"CR", Delivery{From: "bud", Text: "a\rb", Time: at}, compose{}, never},
		{"NUL", Delivery{From: "bud", Text: "a\x00b", Time: at}, compose{}, never},
		{"invalid UTF-8", Delivery{From: "bud", Text: "a\xffb", Time: at}, compose{}, never},
		{"long", Delivery{From: "bud", Text: strings.Repeat("word ", 120), Time: at}, compose{}, never},
		{"CTCP", Delivery{From: "bud", Text: "\x01ACTION waves\x01", Time: at}, compose{}, never},
		{"empty", Delivery{From: "bud", Text: ""}, compose{}, never},
		{"client tags", Delivery{From: "bud", Text: "hi", Tags: irc.Tags{"+typing": "active"}}, compose{}, withoutTags},
		{"odd msgid", Delivery{From: "bud", Text: "hi", MsgID: "a b;c"}, compose{}, withoutTags},
		{"unknown sender", Delivery{From: "stranger", Text: "hi"}, compose{}, never},
		{"server", Delivery{Text: "hi"}, compose{}, never},
		{"to a channel", Delivery{From: "bud", Target: "&bitlbee", Text: "hi"}, compose{}, never},
		{"own message", Delivery{From: "bud", Target: "bud", Self: true, Text: "hi"}, compose{}, never},
		{"TAGMSG", Delivery{Command: "TAGMSG", From: "bud"}, compose{}, never},
		{"CHATHISTORY", Delivery{From: "bud", Text: "hi", Time: at}, compose{raw: true, past: true, ref: "h2"}, never},
	}
	for _, caps := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c, stop := fuzzClient(t)
				defer stop()
				c.caps["message-tags"], c.caps["server-time"] = caps[0], caps[1]
				addBud(t, c)
				c.mu.Lock()
				defer c.mu.Unlock()
				want, _ := c.lines(tc.d, tc.o)
				ok, done := c.deliverRaw(tc.d, tc.o)
				if want := tc.raw(caps[0], caps[1]); done != want {
					t.Fatalf("caps %v: deliverRaw took it: %v, want %v", caps, done, want)
				}
				if !done {
					if c.queued() != 0 {
						t.Errorf("caps %v: left to lines, but %d queued", caps, c.queued())
					}
					return
				}
				if !ok {
					t.Fatalf("caps %v: not queued", caps)
				}
				batch := c.take()
				defer c.giveBack(batch)
				if len(batch) != 1 || batch[0].raw == nil || len(want) != 1 {
					t.Fatalf("caps %v: got %q, want one encoded line like %q", caps, entryLines(batch), want)
				}
				got, err := irc.ParseMessage(string(batch[0].raw))
				if err != nil {
					t.Fatalf("caps %v: %q: %v", caps, batch[0].raw, err)
				}
				w := want[0]
				now := tc.d.Time.IsZero() && caps[1] // each way read the clock: the times may differ by a millisecond
				if now {
					at, err := time.Parse(timeFormat, got.Tags["time"])
					if err != nil || time.Since(at).Abs() > time.Minute {
						t.Errorf("caps %v: time tag %q, want the time now", caps, got.Tags["time"])
					}
					delete(got.Tags, "time")
					w.Tags = maps.Clone(w.Tags)
					delete(w.Tags, "time")
				}
				if got.Prefix.String() != w.Prefix.String() || got.Command != w.Command || !slices.Equal(got.Params, w.Params) ||
					!maps.Equal(got.Tags, w.Tags) && (len(got.Tags) > 0 || len(w.Tags) > 0) {
					t.Errorf("caps %v:\n got %q\nwant %q", caps, batch[0].raw, w.String())
				}
				if !now && len(w.Tags) <= 1 && string(batch[0].raw) != w.String() {
					t.Errorf("caps %v: bytes\n got %q\nwant %q", caps, batch[0].raw, w.String())
				}
			})
		}
	}
}

func always(bool, bool) bool        { return true }
func never(bool, bool) bool         { return false }
func withTime(_, time bool) bool    { return time }  // else a date prefix
func withoutTags(tags, _ bool) bool { return !tags } // else the odd tags are written

// TestDeliverRawReportsSent: the encoded line carries the delivery's Sent
// callback: true once it is written, false when it never is.
func TestDeliverRawReportsSent(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	addBud(t, c)
	var got []bool
	d := Delivery{From: "bud", Text: "hi", Sent: func(ok bool) { got = append(got, ok) }}
	if !c.Deliver(d) {
		t.Fatal("Deliver: false")
	}
	for _, written := range []int{1, 0} {
		got = nil
		if written == 0 && !c.Deliver(d) {
			t.Fatal("Deliver: false")
		}
		batch := c.take()
		if len(batch) != 1 || batch[0].raw == nil {
			t.Fatalf("queued %q, want one encoded line", entryLines(batch))
		}
		reportWritten(batch, written)
		c.giveBack(batch)
		if want := []bool{written == 1}; !slices.Equal(got, want) {
			t.Errorf("%d written: Sent got %v, want %v", written, got, want)
		}
	}
}

// plainLineBytewise is plainLine as it was written first, byte by byte:
// the reference its word-at-a-time loop must agree with.
func plainLineBytewise(text string, budget int) bool {
	if text == "" || len(text) > budget || text[0] == '\x01' {
		return false
	}
	for i := 0; i < len(text); i++ {
		switch b := text[i]; {
		case b == 0 || b == '\r' || b == '\n':
			return false
		case b >= utf8.RuneSelf:
			return utf8.ValidString(text[i:]) && !strings.ContainsAny(text[i:], "\x00\r\n")
		}
	}
	return true
}

// plainLineSeeds are texts for plainLine: each of the bytes it refuses
// (and their neighbours) at every place of a word and of the tail,
// non-ASCII text valid and not.
var plainLineSeeds = func() []string {
	out := []string{"", "a", "\x01ACTION waves\x01", "hello there", "h\u00e9llo", "caf\xe9 au lait", "\xff", strings.Repeat("x", 600)}
	for _, b := range []byte{0, '\r', '\n', 0x01, 0x0b, 0x0c, 0x0e, 0x7f, 0x80, 0xc3, 0xff, ' ', '0', 'J', 'M'} {
		for n := 1; n <= 20; n++ {
			for at := range n {
				s := []byte(strings.Repeat("a", n))
				s[at] = b
				out = append(out, string(s))
			}
		}
	}
	return out
}()

// TestPlainLineMatchesBytewise: plainLine, eight bytes at a time, says
// what the byte-by-byte check says of every seed, within budgets that
// take it and that do not.
func TestPlainLineMatchesBytewise(t *testing.T) {
	for _, s := range plainLineSeeds {
		for _, budget := range []int{len(s), len(s) - 1, 510} {
			if got, want := plainLine(s, budget), plainLineBytewise(s, budget); got != want {
				t.Errorf("plainLine(%q, %d): got %v, want %v", s, budget, got, want)
			}
		}
	}
}

// FuzzPlainLine: plainLine agrees with the byte-by-byte check.
func FuzzPlainLine(f *testing.F) {
	for _, s := range plainLineSeeds[:60] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := plainLine(s, 510), plainLineBytewise(s, 510); got != want {
			t.Fatalf("plainLine(%q): got %v, want %v", s, got, want)
		}
	})
}
