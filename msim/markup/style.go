package markup

import (
	"strconv"
	"strings"
)

// Style is the style bits of a <f s='N'> tag (spec §5): any mix of Bold,
// Italic and Underline.
type Style uint8

// The style bits MSIM's markup has.
const (
	Bold      Style = 1 << iota // s=1
	Italic                      // s=2
	Underline                   // s=4

	allStyles = Bold | Italic | Underline
)

// Span is a run of plain text in one style.
type Span struct {
	Text  string
	Style Style
}

// FromSpans converts styled plain text to markup for sending: FromPlain's
// paragraphs, smileys and escaping, with each span of a style other than 0
// inside the line's wrapper as <f s='N'>…</f>, N being its bits together
// (3 for bold italic). Styles do not nest in the output: each span carries
// all of its bits, so every <f> closes before the next span starts, and a
// line break inside a styled span closes it with its paragraph and opens
// it again in the next. Spans of style 0 alone give FromPlain of their
// text. The result is XML whenever FromPlain's is.
func FromSpans(spans []Span) string {
	n := len(lineOpen) + len(lineClose)
	for _, sp := range spans {
		n += len(sp.Text) + len(sp.Text)/4 + len("<f s='7'></f>")
	}
	return string(AppendFromSpans(make([]byte, 0, n), spans))
}

// AppendFromSpans appends FromSpans(spans) to b.
func AppendFromSpans(b []byte, spans []Span) []byte {
	return appendSpans(b, spans, false)
}

// AppendFromSpansEscaped appends FromSpans(spans) escaped as an MSIM field
// value (§2.1: '/' as "/1", '\' as "/2") to b, in one pass.
func AppendFromSpansEscaped(b []byte, spans []Span) []byte {
	return appendSpans(b, spans, true)
}

// appendSpans appends FromSpans(spans) to b, escaped as a field value
// with esc.
func appendSpans(b []byte, spans []Span, esc bool) []byte {
	lineEnd, styleEnd := lineClose, "</f>"
	if esc {
		lineEnd, styleEnd = lineCloseEscaped, styleCloseEscaped
	}
	b = append(b, lineOpen...)
	for _, sp := range spans {
		st := sp.Style & allStyles
		if sp.Text == "" {
			continue
		}
		if st == 0 {
			b = appendPlain(b, sp.Text, 0, esc)
			continue
		}
		b = appendStyleOpen(b, st)
		b = appendPlain(b, sp.Text, st, esc)
		b = append(b, styleEnd...)
	}
	return append(b, lineEnd...)
}

func appendStyleOpen(b []byte, st Style) []byte {
	b = append(b, "<f s='"...)
	b = strconv.AppendUint(b, uint64(st), 10)
	return append(b, "'>"...)
}

// styleMark is where the style changes in toPlain's output.
type styleMark struct {
	at    int // offset in the plain text
	style Style
}

// styleOf is the style inside the innermost of the open elements whose
// styles are given, or 0 outside all.
func styleOf(styles []Style) Style {
	if len(styles) == 0 {
		return 0
	}
	return styles[len(styles)-1]
}

// parseStyle reads an s attribute as Pidgin does: its leading decimal
// digits (none: 0), of which only the bits MSIM defines count.
func parseStyle(v []byte) Style {
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			break
		}
		n = (n*10 + int(c-'0')) & 0xFFFF // the low bits are all that count
	}
	return Style(n) & allStyles
}

// ToSpans renders an MSIM markup body as ToPlain does, as spans of text in
// the styles of the <f s='N'> elements around it. A nested <f> adds its
// bits to those of the elements around it (it cannot take a style away);
// a self-closing <f/> styles nothing. The line break a <p> starts has the
// style of the elements around the <p>, so a styled line closed with its
// paragraph gives an unstyled "\n". The texts of the spans joined are
// ToPlain(markup); adjacent spans differ in style and none is empty. A
// body ToPlain shows unchanged is one unstyled span, and an empty body no
// span.
func ToSpans(markup string) []Span {
	if !Styled(markup) {
		if p := ToPlain(markup); p != "" {
			return []Span{{Text: p}}
		}
		return nil
	}
	var marks []styleMark
	plain, ok := toPlain(markup, &marks)
	if !ok {
		return []Span{{Text: markup}}
	}
	var spans []Span
	at, cur := 0, Style(0)
	add := func(end int, st Style) {
		if end > at {
			if n := len(spans); n > 0 && spans[n-1].Style == cur {
				spans[n-1].Text = plain[at-len(spans[n-1].Text) : end]
			} else {
				spans = append(spans, Span{Text: plain[at:end], Style: cur})
			}
			at = end
		}
		cur = st
	}
	for _, m := range marks {
		add(m.at, m.style)
	}
	add(len(plain), 0)
	return spans
}

// Styled reports whether markup may hold a styled span: whether some <f>
// tag in it may have an s attribute with a value. It is cheap (one pass),
// and without false negatives: a body for which it is false gives ToSpans
// one unstyled span. Names are matched in any case, as ToSpans reads them
// (<F S='1'> is bold). It looks, after the first "<f" followed by white
// space or "/" (a tag f with attributes), for an "s" that follows white
// space, "/" or a quote (where an attribute name can start) and comes
// before "=" (after optional white space).
func Styled(markup string) bool {
	at := -1
	for i := 0; i+2 < len(markup); i++ {
		k := strings.IndexByte(markup[i:len(markup)-2], '<')
		if k < 0 {
			break
		}
		i += k
		if markup[i+1]|0x20 == 'f' && (isSpace(markup[i+2]) || markup[i+2] == '/') {
			at = i + 2
			break
		}
	}
	if at < 0 {
		return false
	}
	// From each "=" back over white space to the name it ends: an "s"
	// after at, where a name can start.
	for k := at + 2; k < len(markup); k++ {
		e := strings.IndexByte(markup[k:], '=')
		if e < 0 {
			break
		}
		k += e
		j := k - 1
		for j > at && isSpace(markup[j]) {
			j--
		}
		if j <= at || markup[j]|0x20 != 's' {
			continue
		}
		switch c := markup[j-1]; {
		case isSpace(c), c == '/', c == '\'', c == '"':
			return true
		}
	}
	return false
}

// isSpace reports whether c is white space as the tokenizer takes it
// between a tag's name and attributes.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' }
