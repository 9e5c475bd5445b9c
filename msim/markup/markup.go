// Package markup owns the text format of MSIM instant-message bodies (the
// msg field of bm 1 and bm 121, spec §5): converting the HTML-like markup
// to plain text (ToPlain), plain text to markup for sending (FromPlain, and
// FromSpans for text in the bold, italic and underline styles), the smiley
// table, and the typing and zap control bodies (Classify, ParseZap).
//
// It knows nothing about IRC, and of the wire codec only its value
// escaping (§2.1): callers unescape the msg value before ToPlain and
// escape FromPlain's result afterwards, or have it escaped as it is
// written (AppendFromPlainEscaped, AppendFromSpansEscaped).
// The package holds no mutable state; every function is safe to call from
// any goroutine.
//
// The central guarantee is that for every valid UTF-8 string s without
// the characters XML cannot carry (the C0 controls other than tab, LF and
// CR, and U+FFFE and U+FFFF), ToPlain(FromPlain(s)) == s. FromPlain sends
// those as visible symbols (see FromPlain): receivers parse a body as XML.
package markup

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// The wrapping FromPlain puts around each line, as the official client does.
const (
	lineOpen  = "<p><f f='Times' h='16'>"
	lineClose = "</f></p>"
)

// The tags FromPlain writes that hold a '/', escaped for the wire (§2.1:
// '/' as "/1", '\' as "/2"); lineOpen holds none.
const (
	lineCloseEscaped  = "</1f></1p>"
	styleCloseEscaped = "</1f>"
	smileyEndEscaped  = `"/1>`
)

// ToPlain renders an MSIM markup body as plain text (spec §5.1):
//
//   - character data is kept in document order, with &amp; &lt; &gt; &quot;
//     &apos; and numeric character references decoded (XML semantics; any
//     other "&" is kept literally);
//   - <i n=X/> becomes the smiley symbol for X (Symbol), or nothing when n
//     is missing or empty;
//   - <a h=URL> becomes URL followed by any enclosed text;
//   - every <p> starts a new line ("\n"), except a first <p> that comes
//     before any output;
//   - all other tags contribute only their content; CDATA sections are kept
//     verbatim; comments and processing instructions are dropped.
//
// Bare text without tags is accepted. A body whose tag structure is broken
// (a tag cut off by the end of input, a stray "<", an end tag that does not
// close the innermost open element, an element left open, a DOCTYPE or a
// bogus "<!" declaration) is returned unchanged, as Pidgin shows an
// unparsable body. ToPlain never panics.
func ToPlain(markup string) string {
	if strings.IndexByte(markup, '<') < 0 {
		// Bare text: no tags to tokenize, only references to decode.
		if strings.IndexByte(markup, '&') < 0 {
			return markup
		}
		var b strings.Builder
		b.Grow(len(markup))
		decodeText(&b, markup)
		return b.String()
	}
	// Fast path for the one-paragraph form FromPlain and the official
	// client send, when the text holds no tag: the tokenizer would find
	// just this text between the wrapper's tags.
	if inner, ok := strings.CutPrefix(markup, lineOpen); ok {
		if inner, ok = strings.CutSuffix(inner, lineClose); ok && strings.IndexByte(inner, '<') < 0 {
			if strings.IndexByte(inner, '&') < 0 {
				return inner
			}
			var b strings.Builder
			b.Grow(len(inner))
			decodeText(&b, inner)
			return b.String()
		}
	}
	if s, ok := toPlain(markup, nil); ok {
		return s
	}
	return markup
}

// toPlain walks markup with the html tokenizer; ok is false when the input
// is not well-formed enough to trust (see ToPlain).
//
// Text is taken from the tokenizer's Raw bytes and decoded here, not through
// Text(): Text() applies HTML rules that would lose information (it turns
// "\r" into "\n" and decodes HTML-only entities and the Windows-1252 numeric
// quirks), while MSIM markup is XML.
//
// With marks non-nil, it also appends where the style in effect changes:
// the offset in plain and the style from there on.
func toPlain(markup string, marks *[]styleMark) (plain string, ok bool) {
	z := html.NewTokenizer(strings.NewReader(markup))
	z.AllowCDATA(true)

	var (
		b        strings.Builder
		stackArr [8]string
		open     = stackArr[:0] // names of the open elements, innermost last
		styleArr [8]Style
		styles   = styleArr[:0] // the style inside each open element
		consumed int            // input bytes covered by complete tokens
		seenP    bool
	)
	b.Grow(len(markup))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		raw := z.Raw() // before any other accessor: they rewrite the buffer
		consumed += len(raw)
		switch tt {
		case html.TextToken:
			if bytes.HasPrefix(raw, []byte("<![CDATA[")) {
				if !bytes.HasSuffix(raw, []byte("]]>")) || len(raw) < len("<![CDATA[]]>") {
					return "", false // unterminated CDATA section
				}
				b.Write(raw[len("<![CDATA[") : len(raw)-len("]]>")])
				continue
			}
			if bytes.IndexByte(raw, '<') >= 0 {
				return "", false // a "<" that starts no tag
			}
			decodeText(&b, string(raw))
		case html.StartTagToken, html.SelfClosingTagToken:
			z.NextIsNotRawText() // <title>, <script>… are ordinary elements here
			name, hasAttr := z.TagName()
			if tt == html.StartTagToken {
				open = append(open, tagName(name))
				st := styleOf(styles)
				if marks != nil && len(name) == 1 && name[0] == 'f' {
					st |= parseStyle(attr(z, hasAttr, 's'))
					if st != styleOf(styles) {
						*marks = append(*marks, styleMark{b.Len(), st})
					}
				}
				styles = append(styles, st)
			}
			if len(name) != 1 {
				continue
			}
			switch name[0] {
			case 'p':
				// Only a first <p> at the very start opens no new line.
				if seenP || b.Len() > 0 {
					b.WriteByte('\n')
				}
				seenP = true
			case 'i':
				if n := attr(z, hasAttr, 'n'); len(n) != 0 {
					writeSymbol(&b, n)
				}
			case 'a':
				b.Write(attr(z, hasAttr, 'h'))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(open) == 0 || open[len(open)-1] != string(name) {
				return "", false
			}
			open = open[:len(open)-1]
			st := styles[len(styles)-1]
			styles = styles[:len(styles)-1]
			if marks != nil && st != styleOf(styles) {
				*marks = append(*marks, styleMark{b.Len(), styleOf(styles)})
			}
		case html.CommentToken:
			if !isComment(raw) {
				return "", false
			}
		default: // DoctypeToken
			return "", false
		}
	}
	if z.Err() != io.EOF || consumed != len(markup) || len(open) != 0 {
		return "", false
	}
	return b.String(), true
}

// tagName returns name as a string, without allocating for the tags MSIM
// uses.
func tagName(name []byte) string {
	switch string(name) {
	case "p":
		return "p"
	case "f":
		return "f"
	case "c":
		return "c"
	case "b":
		return "b"
	case "i":
		return "i"
	case "a":
		return "a"
	}
	return string(name)
}

// attr returns the value of the single-letter attribute key of the current
// tag, or nil when it is absent. The tokenizer decodes the value. The result
// is valid until the next call to z.Next.
func attr(z *html.Tokenizer, more bool, key byte) []byte {
	for more {
		var k, v []byte
		k, v, more = z.TagAttr()
		if len(k) == 1 && k[0] == key {
			return v
		}
	}
	return nil
}

// isComment reports whether raw, a CommentToken's text, is something an
// XML parser accepts and drops: a terminated <!--comment--> or <?PI?>.
// "</>", "<!x>" and "</ x>" are also CommentTokens and are not.
func isComment(raw []byte) bool {
	switch {
	case bytes.HasPrefix(raw, []byte("<!--")):
		return len(raw) >= len("<!---->") && bytes.HasSuffix(raw, []byte("-->"))
	case bytes.HasPrefix(raw, []byte("<?")):
		return len(raw) >= len("<??>") && bytes.HasSuffix(raw, []byte("?>"))
	}
	return false
}

// decodeText appends s to b with XML character references decoded: the five
// predefined entities and &#N; / &#xN;. A "&" that starts no valid reference
// is kept literally. &#0; decodes to NUL (XML forbids it, but a body from
// another client may hold it).
func decodeText(b *strings.Builder, s string) {
	for {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			return
		}
		b.WriteString(s[:i])
		s = s[i:]
		r, n := decodeRef(s)
		if n == 0 {
			b.WriteByte('&')
			s = s[1:]
			continue
		}
		b.WriteRune(r)
		s = s[n:]
	}
}

// decodeRef decodes the character reference at the start of s (which starts
// with '&'). It returns the rune and the reference's length, or n == 0.
func decodeRef(s string) (r rune, n int) {
	if len(s) >= 3 && s[1] == '#' {
		i, base := 2, rune(10)
		if s[2] == 'x' || s[2] == 'X' {
			i, base = 3, 16
		}
		start := i
		for ; i < len(s); i++ {
			d := digitVal(s[i], base)
			if d < 0 {
				break
			}
			r = r*base + d
			if r > utf8.MaxRune {
				return 0, 0
			}
		}
		if i == start || i >= len(s) || s[i] != ';' || !utf8.ValidRune(r) {
			return 0, 0
		}
		return r, i + 1
	}
	for _, e := range [...]struct {
		name string
		r    rune
	}{{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}} {
		if strings.HasPrefix(s, e.name) {
			return e.r, len(e.name)
		}
	}
	return 0, 0
}

func digitVal(c byte, base rune) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case base == 16 && 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case base == 16 && 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// FromPlain converts plain text to markup for sending (spec §5.2). Each line
// (split on "\n") becomes one <p><f f='Times' h='16'>…</f></p> paragraph, so
// ToPlain restores the line breaks. Within a line, text is scanned left to
// right; at each position the outgoing smiley symbols are tried longest
// first (only each name's first symbol, see Outgoing) and emitted as
// <i n="name"/>; otherwise "&", "<" and ">" are escaped, and "\r" is
// written as &#13; so that XML parsers and the html tokenizer cannot
// normalise it away. The result is XML for valid UTF-8 input, as receivers
// parse it (spec §5.1: a body that is not XML is shown as raw markup): a
// C0 control other than tab, LF and CR, which XML 1.0 cannot carry even as
// a reference (IRC's bold and colour codes, NUL), is sent as its visible
// symbol (U+2400 + c: ␂ for \x02), and U+FFFE and U+FFFF as U+FFFD. Every
// other byte is copied unchanged.
func FromPlain(plain string) string {
	return string(AppendFromPlain(make([]byte, 0, len(lineOpen)+len(plain)+len(plain)/4+len(lineClose)), plain))
}

// AppendFromPlain appends FromPlain(plain) to b.
func AppendFromPlain(b []byte, plain string) []byte {
	b = append(b, lineOpen...)
	b = appendPlain(b, plain, 0, false)
	return append(b, lineClose...)
}

// AppendFromPlainEscaped appends FromPlain(plain) escaped as an MSIM field
// value (§2.1: '/' as "/1", '\' as "/2") to b, in one pass: the msg value
// of an IM as it goes on the wire.
func AppendFromPlainEscaped(b []byte, plain string) []byte {
	b = append(b, lineOpen...)
	b = appendPlain(b, plain, 0, true)
	return append(b, lineCloseEscaped...)
}

// appendPlain appends plain as FromPlain converts it, inside a paragraph
// whose line wrapper is open, and, for style != 0, inside <f s='style'>
// too: at each line break the style's <f> is closed with the paragraph and
// opened again in the next one. With esc, what it appends is escaped as a
// field value (§2.1).
func appendPlain(b []byte, plain string, style Style, esc bool) []byte {
	spec, lineEnd, styleEnd, smileyEnd := &special, lineClose, "</f>", `"/>`
	if esc {
		spec, lineEnd, styleEnd, smileyEnd = &specialEscaped, lineCloseEscaped, styleCloseEscaped, smileyEndEscaped
	}
	run := 0 // start of the bytes not yet written
	for i := 0; i < len(plain); {
		c := plain[i]
		if !spec[c] {
			i++
			continue
		}
		b = append(b, plain[run:i]...)
		if smileyStart[c] {
			if sym, name := matchSmiley(plain[i:]); sym != "" {
				b = append(b, `<i n="`...)
				b = append(b, name...)
				b = append(b, smileyEnd...)
				i += len(sym)
				run = i
				continue
			}
		}
		switch c {
		case '\n':
			if style != 0 {
				b = append(b, styleEnd...)
			}
			b = append(b, lineEnd...)
			b = append(b, lineOpen...)
			if style != 0 {
				b = appendStyleOpen(b, style)
			}
		case '/': // special only with esc
			b = append(b, "/1"...)
		case '\\':
			b = append(b, "/2"...)
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '\r':
			b = append(b, "&#13;"...)
		case 0xEF: // U+FFFE and U+FFFF start so; other characters pass
			if strings.HasPrefix(plain[i:], "\uFFFE") || strings.HasPrefix(plain[i:], "\uFFFF") {
				b = append(b, "\uFFFD"...)
				i += len("\uFFFD")
				run = i
				continue
			}
			b = append(b, c)
		default:
			if c < 0x20 { // a control XML cannot carry: its symbol, U+2400 + c
				b = append(b, 0xE2, 0x90, 0x80|c)
			} else { // a smiley's first byte that starts no smiley here
				b = append(b, c)
			}
		}
		i++
		run = i
	}
	return append(b, plain[run:]...)
}

// special marks the bytes FromPlain cannot copy as they are: those it
// escapes here (the C0 controls but tab, the first byte of U+FFFE and
// U+FFFF) and, added by the smiley table's init, the first bytes of
// outgoing smiley symbols.
var special = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = c != '\t'
	}
	for _, c := range "&<>" {
		t[c] = true
	}
	t[0xEF] = true
	return t
}()

// specialEscaped is special with the bytes the wire escapes, '/' and '\'
// (set by the smiley table's init, once special is complete).
var specialEscaped [256]bool
