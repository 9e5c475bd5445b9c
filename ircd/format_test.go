package ircd

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// closeRoom counts the kinds of code in a line that close writes (each
// toggle, \x03, \x04; not the reset \x0f), each once however often it
// comes, and so bounds what close writes at any point of the line.
func TestCloseRoom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want int
	}{
		{"", 0},
		{"plain text", 0},
		{"\x0freset only\x0f", 0},
		{"\x02bold\x02 \x02again\x02", 1},
		{"\x034red\x03 \x04FF0000hex", 2},
		{"x\x02\x1d\x1f\x1e\x11\x16\x0f\x03\x04", 8},
		{"\x16 last byte: reverse\x1d", 2},
	} {
		if got := closeRoom(tc.line); got != tc.want {
			t.Errorf("closeRoom(%q) = %d, want %d", tc.line, got, tc.want)
		}
	}
	const alphabet = formatCodes + "ab,09 é"
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		line := string(b)
		kinds := map[byte]bool{}
		for i := range len(line) {
			if strings.IndexByte(formatToggles+"\x03\x04", line[i]) >= 0 {
				kinds[line[i]] = true
			}
		}
		want := len(kinds)
		room := closeRoom(line)
		if room != want {
			t.Fatalf("closeRoom(%q) = %d, want %d", line, room, want)
		}
		var f format
		for i := 0; i < len(line); {
			n := max(FormatCodeLen(line[i:]), 1)
			f.scan(line[i : i+n])
			i += n
			if c := f.close(); len(c) > room {
				t.Fatalf("closeRoom(%q) = %d, but close after %q is %q", line, room, line[:i], c)
			}
		}
	}
}

// BenchmarkCloseRoom measures closeRoom over long formatted lines, as
// cutFormatted sees them: a few kinds of code, most bytes text, the code
// that comes last near the start or at the end.
func BenchmarkCloseRoom(b *testing.B) {
	text := strings.Repeat("It starts at eight, doors open at seven. ", 12)
	for _, bc := range []struct{ name, line string }{
		{"codes first", "\x02Hey\x02, are you \x0304coming\x03 to the \x1dshow\x1d tonight? " + text},
		{"code last", "Hey, are you coming to the show tonight? " + text + "\x1fsee you"},
		{"codes first, long", "\x02Hey\x02, are you \x0304coming\x03 to the \x1dshow\x1d tonight? " + strings.Repeat(text, 8)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.line)))
			for b.Loop() {
				closeRoom(bc.line)
			}
		})
	}
}
