package ircd

import (
	"iter"
	"strings"
	"unicode/utf8"
)

// IRC's formatting codes: the toggles (bold, italic, underline,
// strike-through, monospace, reverse), reset, and the colours, with their
// numbers (\x03, two decimal digits a side) or hex (\x04, six a side).
const (
	formatToggles = "\x02\x1d\x1f\x1e\x11\x16"
	formatCodes   = formatToggles + "\x0f\x03\x04"
)

// isFormatCode marks the bytes of formatCodes.
var isFormatCode = func() (t [256]bool) {
	for i := range len(formatCodes) {
		t[formatCodes[i]] = true
	}
	return t
}()

// HasFormatting reports whether s holds any of IRC's formatting codes:
// strings.ContainsAny with them, without building their set again for
// every message.
func HasFormatting(s string) bool {
	for i := 0; i < len(s); i++ {
		if isFormatCode[s[i]] {
			return true
		}
	}
	return false
}

// format is the formatting in effect at a point of an IRC line, as a
// client reads the codes before it: each line starts with none.
type format struct {
	toggles uint8  // bit i: formatToggles[i] is on
	fg, bg  string // the \x03 colours' numbers, "" for none
	hfg     string // the \x04 colours' hex, "" for none
	hbg     string
}

// scan moves f over s, a run of text not cut inside a colour code.
func (f *format) scan(s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0x0f:
			*f = format{}
		case 0x03, 0x04:
			fg, bg := &f.fg, &f.bg
			if c == 0x04 {
				fg, bg = &f.hfg, &f.hbg
			}
			l := colourLen(s[i:])
			if l == 0 { // alone, it ends both colours
				*fg, *bg = "", ""
				continue
			}
			code := s[i+1 : i+1+l]
			if fc, bc, ok := strings.Cut(code, ","); ok {
				*fg, *bg = fc, bc
			} else {
				*fg = code
			}
			i += l
		default:
			if t := strings.IndexByte(formatToggles, c); t >= 0 {
				f.toggles ^= 1 << t
			}
		}
	}
}

// open is the codes that turn f on at the start of a line whose text
// goes on with next (0 at the end): the colours, then the toggles. After
// a colour code that the next byte would extend, a bold toggled on and
// off again keeps it apart.
func (f format) open(next byte) string {
	var b strings.Builder
	extends := false
	if f.fg != "" {
		b.WriteByte(0x03)
		b.WriteString(twoDigits(f.fg))
		if f.bg != "" {
			b.WriteByte(',')
			b.WriteString(twoDigits(f.bg))
		}
		extends = next == ',' && f.bg == ""
	}
	if f.hfg != "" {
		b.WriteByte(0x04)
		b.WriteString(f.hfg)
		if f.hbg != "" {
			b.WriteByte(',')
			b.WriteString(f.hbg)
		}
		extends = next == ',' || isHex(next)
	}
	for t := range len(formatToggles) {
		if f.toggles&(1<<t) != 0 {
			b.WriteByte(formatToggles[t])
			extends = false
		}
	}
	if extends {
		b.WriteString("\x02\x02")
	}
	return b.String()
}

// close is the codes that turn f off: its toggles again, then the
// colours' codes alone.
func (f format) close() string {
	var b strings.Builder
	for t := range len(formatToggles) {
		if f.toggles&(1<<t) != 0 {
			b.WriteByte(formatToggles[t])
		}
	}
	if f.fg != "" {
		b.WriteByte(0x03)
	}
	if f.hfg != "" {
		b.WriteByte(0x04)
	}
	return b.String()
}

// closeRoom bounds len(f.close()) for any point of line: one byte for
// each kind of code it holds that close writes. It scans line once for each
// kind of code, with strings.IndexByte, each scan stopping at the first such
// code: these scans are much quicker than one pass byte by byte through a
// table such as HasFormatting's (BenchmarkCloseRoom).
func closeRoom(line string) int {
	n := 0
	for i := range len(formatToggles) + 2 {
		if strings.IndexByte(line, (formatToggles + "\x03\x04")[i]) >= 0 {
			n++
		}
	}
	return n
}

// twoDigits is a colour number in two digits, so that text with a digit
// after it is not read as part of it.
func twoDigits(n string) string {
	if len(n) == 1 {
		return "0" + n
	}
	return n
}

// FormatCodeLen is the length of the IRC formatting code s starts with
// (its control byte, and a colour's numbers), or 0 when s starts with
// none.
func FormatCodeLen(s string) int {
	if s == "" {
		return 0
	}
	switch s[0] {
	case 0x02, 0x0f, 0x11, 0x16, 0x1d, 0x1e, 0x1f:
		return 1
	case 0x03, 0x04:
		return 1 + colourLen(s)
	}
	return 0
}

// colourLen is the length of the numbers of the colour code s starts
// with (its control byte: 0x03, two decimal digits a colour; 0x04, six
// hexadecimal).
func colourLen(s string) int {
	if s[0] == 0x04 {
		return codeLen(s[1:], isHex, 6)
	}
	return codeLen(s[1:], isDecimal, 2)
}

// codeLen is the length of a colour code's numbers after its control
// byte: a foreground of up to n digits, then, after a comma, a background
// of up to n (the comma is text when no digit follows it).
func codeLen(s string, digit func(byte) bool, n int) int {
	fg := 0
	for fg < len(s) && fg < n && digit(s[fg]) {
		fg++
	}
	if fg == 0 || fg == len(s) || s[fg] != ',' {
		return fg
	}
	bg := 0
	for rest := s[fg+1:]; bg < len(rest) && bg < n && digit(rest[bg]); {
		bg++
	}
	if bg == 0 {
		return fg
	}
	return fg + 1 + bg
}

func isDecimal(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDecimal(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// cutFormatted yields the pieces of one line as cutLine does, each of
// them, when the line is cut, with the formatting in effect at its start
// opened before its text and closed after it: a client shows each piece
// as a line of its own, whose codes start from none, as the line's part
// was shown. The last piece ends as the line does. Under a budget too
// small for the codes (a few dozen bytes, never a real line's), a piece
// may be longer than max.
func cutFormatted(line string, max int) iter.Seq[string] {
	if len(line) <= max || !HasFormatting(line) {
		return cutLine(line, max)
	}
	reserve := closeRoom(line)
	return func(yield func(string) bool) {
		var f format
		for first := true; line != ""; first = false {
			open := ""
			if !first {
				open = f.open(line[0])
			}
			if len(open)+len(line) <= max {
				yield(open + line)
				return
			}
			room := max - len(open) - reserve
			if room < utf8.UTFMax {
				room = utf8.UTFMax
			}
			piece := line[:cutPoint(line, room)]
			line = line[len(piece):]
			f.scan(piece)
			if !yield(open + piece + f.close()) {
				return
			}
		}
	}
}
