package channel

import (
	"strings"
	"unicode/utf8"
)

// storable is text as the store keeps it (history, held and queued IMs):
// valid UTF-8 without NUL, which every engine holds (PostgreSQL's text
// refuses both, so the store refuses them everywhere). A NUL is dropped
// and each run of invalid bytes becomes one U+FFFD.
func storable(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// fromMSIM makes text that came from the MSIM side (an IM, a status text, a
// profile field, a name, an alert) safe to show on IRC: no control
// character reaches the client, so a buddy cannot send raw CTCP (a DCC
// offer, VERSION), colour or formatting codes, or a bell. Each control
// character becomes its visible Unicode picture (␁ for \x01), a tab
// becomes a space, and line breaks stay for ircd to split on. The ACTION
// framing that the bridge itself makes from /me and zaps is added after
// this, never taken from the other side.
func fromMSIM(s string) string {
	if !hasControl(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r':
			b.WriteRune(r)
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20:
			b.WriteRune(0x2400 + r) // U+2400 CONTROL PICTURES: ␀ ␁ … ␟
		case r == 0x7f:
			b.WriteRune('\u2421') // ␡
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// fromMSIMLine is fromMSIM for text shown on one line (an away message, a
// real name, a WHOIS field): line breaks become spaces.
func fromMSIMLine(s string) string {
	s = fromMSIM(s)
	if strings.ContainsAny(s, "\r\n") {
		s = strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
	}
	return s
}

// hasControl reports whether s holds a control byte other than a line
// break. Text almost never does: it looks at eight bytes at a time, and
// byte by byte only at eight that may (a line break among them, say).
func hasControl(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		below := (x - 0x20*ones) &^ x & highs // some byte < 0x20 (or none)
		y := x ^ 0x7f*ones
		del := (y - ones) &^ y & highs // some byte == 0x7f (or none)
		if below|del != 0 && controlIn(s[i:i+8]) {
			return true
		}
	}
	return controlIn(s[i:])
}

// controlIn is hasControl byte by byte.
func controlIn(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\n' && c != '\r') || c == 0x7f {
			return true
		}
	}
	return false
}
