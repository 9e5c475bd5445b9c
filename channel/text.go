package channel

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
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

// ircStyled renders styled text from MSIM for IRC: each span's text made
// safe as fromMSIM makes it, with IRC's bold (\x02), italic (\x1d) and
// underline (\x1f) toggled on and off around it. Every style is closed
// before each line break (an IRC line's codes end with it) and opened
// again after it, and all are closed at the end, so the only codes in the
// result are these, where the markup put them. ok is false when no span
// is styled: fromMSIM of the text is all IRC needs.
func ircStyled(spans []markup.Span) (text string, ok bool) {
	var (
		b  strings.Builder
		on markup.Style // the styles open in b
	)
	for _, sp := range spans {
		ok = ok || sp.Style != 0
		rest := fromMSIM(sp.Text)
		for rest != "" {
			line := rest
			if i := strings.IndexAny(rest, "\r\n"); i >= 0 {
				line = rest[:i]
			}
			if line != "" {
				writeToggles(&b, on^sp.Style)
				on = sp.Style
				b.WriteString(line)
			}
			rest = rest[len(line):]
			if rest != "" { // a line break
				writeToggles(&b, on)
				on = 0
				b.WriteByte(rest[0])
				rest = rest[1:]
			}
		}
	}
	writeToggles(&b, on)
	if !ok {
		return "", false
	}
	return b.String(), true
}

// writeToggles writes IRC's codes that toggle the styles st.
func writeToggles(b *strings.Builder, st markup.Style) {
	if st&markup.Bold != 0 {
		b.WriteByte(0x02)
	}
	if st&markup.Italic != 0 {
		b.WriteByte(0x1d)
	}
	if st&markup.Underline != 0 {
		b.WriteByte(0x1f)
	}
}

// dropPrefix is spans without the first n bytes of their text.
func dropPrefix(spans []markup.Span, n int) []markup.Span {
	for len(spans) > 0 && n > 0 {
		if len(spans[0].Text) > n {
			spans[0].Text = spans[0].Text[n:]
			break
		}
		n -= len(spans[0].Text)
		spans = spans[1:]
	}
	return spans
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

// msimText is text typed on IRC as plain text for MSIM: IRC's formatting
// codes (bold, italic, underline, strike-through, monospace, reverse,
// reset, and colours with their numbers) are dropped, and the words stay.
// Text with bold, italic or underline goes as styled text (msimSpans). Any other control
// character is left for the markup to send as its visible symbol.
func msimText(s string) string {
	if !ircd.HasFormatting(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		n := ircd.FormatCodeLen(s[i:])
		if n == 0 {
			b.WriteByte(s[i])
			n = 1
		}
		i += n
	}
	return b.String()
}

// msimSpans is text typed on IRC as styled text for MSIM, when it holds
// any of the styles both sides have: bold (\x02), italic (\x1d) and
// underline (\x1f), each a toggle, all ended by reset (\x0f) and by the
// end of a line (in a message of several lines). The other
// formatting codes are dropped as msimText drops them, and the rest of the
// text is kept as it is, for the markup to send. ok is false when no text
// is styled: then msimText is all MSIM gets.
func msimSpans(s string) (spans []markup.Span, ok bool) {
	if !strings.ContainsAny(s, "\x02\x1d\x1f") {
		return nil, false
	}
	var (
		b     strings.Builder
		style markup.Style
	)
	flush := func() {
		if b.Len() == 0 {
			return
		}
		ok = ok || style != 0
		if n := len(spans); n > 0 && spans[n-1].Style == style {
			spans[n-1].Text += b.String()
		} else {
			spans = append(spans, markup.Span{Text: b.String(), Style: style})
		}
		b.Reset()
	}
	set := func(st markup.Style) {
		if st != style {
			flush()
			style = st
		}
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case 0x02:
			set(style ^ markup.Bold)
		case 0x1d:
			set(style ^ markup.Italic)
		case 0x1f:
			set(style ^ markup.Underline)
		case 0x0f:
			set(0)
		case '\n': // a line of several (draft/multiline): its codes end with it
			set(0)
		}
		n := ircd.FormatCodeLen(s[i:])
		if n == 0 {
			b.WriteByte(s[i])
			n = 1
		}
		i += n
	}
	flush()
	if !ok {
		return nil, false
	}
	return spans, true
}

// sendIRCText sends out, text typed on IRC, to uid: styled when it holds
// IRC's bold, italic or underline (msimSpans), with out kept as the IM's
// text should the link lose it; as plain text (msimText) otherwise.
func sendIRCText(ctx context.Context, cl MSIMClient, uid msim.UID, out string) error {
	return sendIRCTextAs(ctx, cl, uid, out, ircd.HasFormatting(out))
}

// sendIRCTextAs is sendIRCText for out whose scan for IRC's formatting
// codes (ircd.HasFormatting) the caller has done: formatted is its
// answer.
func sendIRCTextAs(ctx context.Context, cl MSIMClient, uid msim.UID, out string, formatted bool) error {
	if !formatted { // as typed: the scans below would find nothing
		return cl.SendIM(ctx, uid, out)
	}
	if spans, ok := msimSpans(out); ok {
		return cl.SendStyledIM(ctx, uid, out, spans)
	}
	return cl.SendIM(ctx, uid, msimText(out))
}
