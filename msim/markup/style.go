package markup

import "strconv"

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
	b = append(b, lineOpen...)
	for _, sp := range spans {
		st := sp.Style & allStyles
		if sp.Text == "" {
			continue
		}
		if st == 0 {
			b = appendPlain(b, sp.Text, 0)
			continue
		}
		b = appendStyleOpen(b, st)
		b = appendPlain(b, sp.Text, st)
		b = append(b, "</f>"...)
	}
	return append(b, lineClose...)
}

func appendStyleOpen(b []byte, st Style) []byte {
	b = append(b, "<f s='"...)
	b = strconv.AppendUint(b, uint64(st), 10)
	return append(b, "'>"...)
}
