package markup

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFromSpans(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spans []Span
		want  string
	}{
		{"plain only", []Span{{"hi ", 0}, {"there :)", 0}}, FromPlain("hi there :)")},
		{"none", nil, FromPlain("")},
		{"bold", []Span{{"a ", 0}, {"b", Bold}, {" c", 0}},
			wrap("a <f s='1'>b</f> c")},
		{"bold italic", []Span{{"x", Bold | Italic}}, wrap("<f s='3'>x</f>")},
		{"all three", []Span{{"x", Bold | Italic | Underline}}, wrap("<f s='7'>x</f>")},
		{"unknown bits dropped", []Span{{"x", 0xF8 | Italic}}, wrap("<f s='2'>x</f>")},
		{"escaped and smiley", []Span{{"<a> & :)", Underline}},
			wrap(`<f s='4'>&lt;a&gt; &amp; <i n="happy"/></f>`)},
		{"line break", []Span{{"one\ntwo", Bold}, {" three", 0}},
			wrap("<f s='1'>one</f>", "<f s='1'>two</f> three")},
		{"empty spans skipped", []Span{{"", Bold}, {"a", 0}, {"", Italic}}, wrap("a")},
		{"slashes", []Span{{"a/b\\", Bold}, {"\\ :)/\n/", Italic | Underline}, {"/x\\", 0}},
			wrap(`<f s='1'>a/b\</f><f s='6'>\ <i n="happy"/>/</f>`, `<f s='6'>/</f>/x\`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := FromSpans(tc.spans)
			if got != tc.want {
				t.Errorf("FromSpans(%q) = %q, want %q", tc.spans, got, tc.want)
			}
			if err := wellFormed(got); err != nil {
				t.Errorf("FromSpans(%q) = %q: not XML: %v", tc.spans, got, err)
			}
			if esc, want := string(AppendFromSpansEscaped(nil, tc.spans)), wireEscape(tc.want); esc != want {
				t.Errorf("AppendFromSpansEscaped(%q) = %q, want %q", tc.spans, esc, want)
			}
		})
	}
}

// TestFromSpansControls: a control character in styled text is sent as
// its visible symbol, as FromPlain sends it, so the body stays XML.
func TestFromSpansControls(t *testing.T) {
	t.Parallel()
	m := FromSpans([]Span{{"a\x01b\x07", Bold}, {"\x1b\x00\uffff", 0}})
	if err := wellFormed(m); err != nil {
		t.Fatalf("FromSpans = %q: not XML: %v", m, err)
	}
	if got, want := ToPlain(m), "a\u2401b\u2407\u241b\u2400\ufffd"; got != want {
		t.Errorf("ToPlain(FromSpans) = %q, want %q", got, want)
	}
}

func TestToSpans(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []Span
	}{
		{"empty", "", nil},
		{"bare", "hi &amp; bye", []Span{{"hi & bye", 0}}},
		{"official unstyled", "<p><f f='Times' h='16'><c v='black'>hi</c></f></p>", []Span{{"hi", 0}}},
		{"bold", "<p><f f='Times' h='16' s='1'>hi</f></p>", []Span{{"hi", Bold}}},
		{"nested adds bits", "<f s='1'>a<f s='2'>b<f s='4'>c</f></f>d</f>e",
			[]Span{{"a", Bold}, {"b", Bold | Italic}, {"c", Bold | Italic | Underline}, {"d", Bold}, {"e", 0}}},
		{"combined bits", `<f s="3">x</f>`, []Span{{"x", Bold | Italic}}},
		{"spaces around =", "<f s = '4'>x</f>", []Span{{"x", Underline}}},
		{"unknown bits", "<f s='9'>x</f>", []Span{{"x", Bold}}},
		{"not a number", "<f s='bold'>x</f>", []Span{{"x", 0}}},
		{"same style merges", "<f s='1'>a</f><f s='1'>b</f>", []Span{{"ab", Bold}}},
		{"self-closing f", "a<f s='1'/>b", []Span{{"ab", 0}}},
		{"paragraphs", "<p><f s='1'>one</f></p><p><f s='1'>two</f></p>", []Span{{"one", Bold}, {"\n", 0}, {"two", Bold}}},
		{"break between styles", "<p><f s='1'>one</f></p><p>two</p>", []Span{{"one", Bold}, {"\ntwo", 0}}},
		{"smiley and link", `<f s='2'>hi <i n="happy"/> <a h='http://x'/></f>`, []Span{{"hi :) http://x", Italic}}},
		{"broken shown as is", "<f s='1'>x", []Span{{"<f s='1'>x", 0}}},
		{"s on another tag", "<c s='1'>x</c>", []Span{{"x", 0}}},
		{"empty styled", "<f s='1'></f>x", []Span{{"x", 0}}},
		// Tag and attribute names in any case, as an HTML-minded client
		// may write them, the tokenizer reading them in lower case.
		{"upper-case names", "<P><F F='Arial' H='13' S='1'>bold &amp; <I N=\"happy\"/> ok</F></P>",
			[]Span{{"bold & :) ok", Bold}}},
		{"upper-case s", "<p><f f='Times' h='16' S='2'>hi</f></p>", []Span{{"hi", Italic}}},
		{"upper-case f", "<p><F f='Times' h='16' s='4'>hi</F></p>", []Span{{"hi", Underline}}},
		{"s after a slash", "<f/s='1'>x</f>", []Span{{"x", Bold}}},
		{"s after a quote", "<f f='Times's='1'>x</f>", []Span{{"x", Bold}}},
		{"s after a form feed", "<f\fs='1'>x</f>", []Span{{"x", Bold}}},
		{"> in a quoted value", "<f f='a>b' s='1'>x</f>", []Span{{"x", Bold}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ToSpans(tc.in)
			if !slices.Equal(got, tc.want) {
				t.Errorf("ToSpans(%q) = %q, want %q", tc.in, got, tc.want)
			}
			var joined strings.Builder
			for _, sp := range got {
				joined.WriteString(sp.Text)
			}
			if p := ToPlain(tc.in); joined.String() != p {
				t.Errorf("ToSpans(%q) joined = %q, ToPlain gives %q", tc.in, joined.String(), p)
			}
		})
	}
}

// FuzzSpans: styled text sent by FromSpans is XML and comes back from
// ToSpans with the same text in the same styles, and ToSpans of any body
// joins to ToPlain's text.
func FuzzSpans(f *testing.F) {
	f.Add("a", uint8(0), "b :)", uint8(1), "c\nd", uint8(6))
	f.Add("<x>&", uint8(7), "", uint8(2), "\x02\x00\r", uint8(4))
	f.Add("<f s='1'>x</f>", uint8(3), ";-)", uint8(3), " ", uint8(0))
	f.Add("<P><F F='Arial' H='13' S='1'>", uint8(0), "bold", uint8(0), "</F></P>", uint8(0))
	f.Add("<f f='a>b'/s='1'>", uint8(0), "x", uint8(0), "</f>", uint8(0))
	f.Fuzz(func(t *testing.T, a string, sa uint8, b string, sb uint8, c string, sc uint8) {
		in := []Span{{a, Style(sa)}, {b, Style(sb)}, {c, Style(sc)}}
		var joined strings.Builder
		for _, sp := range ToSpans(a + b + c) {
			if sp.Text == "" {
				t.Fatalf("ToSpans(%q) has an empty span", a+b+c)
			}
			joined.WriteString(sp.Text)
		}
		if p := ToPlain(a + b + c); joined.String() != p {
			t.Fatalf("ToSpans(%q) joined = %q, ToPlain gives %q", a+b+c, joined.String(), p)
		}
		if !Styled(a + b + c) {
			var marks []styleMark
			if _, ok := toPlain(a+b+c, &marks); ok && slices.ContainsFunc(marks, func(m styleMark) bool { return m.style != 0 }) {
				t.Fatalf("Styled(%q) = false, but it has styles %v", a+b+c, marks)
			}
		}
		m := FromSpans(in)
		if got, want := string(AppendFromSpansEscaped([]byte("x/"), in)), "x/"+wireEscape(m); got != want {
			t.Fatalf("AppendFromSpansEscaped(%q): got %q, want %q", in, got, want)
		}
		if !utf8.ValidString(a) || !utf8.ValidString(b) || !utf8.ValidString(c) {
			return
		}
		if err := wellFormed(m); err != nil {
			t.Fatalf("FromSpans(%q) = %q: not XML: %v", in, m, err)
		}
		if got, want := styleOfBytes(ToSpans(m)), styleOfBytes(normalSpans(in)); got != want {
			t.Fatalf("ToSpans(FromSpans(%q)) = %q via %q, want %q", in, got, m, want)
		}
	})
}

// styleOfBytes is the text of spans with, after each byte but a line
// break, the digit of its style: a line break is unstyled text.
func styleOfBytes(spans []Span) string {
	var b strings.Builder
	for _, sp := range spans {
		for i := 0; i < len(sp.Text); i++ {
			b.WriteByte(sp.Text[i])
			if sp.Text[i] != '\n' {
				b.WriteByte('0' + byte(sp.Style))
			}
		}
	}
	return b.String()
}

// normalSpans is spans as ToSpans gives them back after FromSpans: the
// characters XML cannot carry as their symbols, only the defined bits,
// no empty span, adjacent spans of one style merged.
func normalSpans(spans []Span) []Span {
	var out []Span
	for _, sp := range spans {
		sp.Text, sp.Style = xmlText(sp.Text), sp.Style&allStyles
		if sp.Text == "" {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Style == sp.Style {
			out[n-1].Text += sp.Text
			continue
		}
		out = append(out, sp)
	}
	return out
}

// styledWalk is Styled as a walk over every byte: what Styled's searches
// must match.
func styledWalk(markup string) bool {
	at := -1
	for i := 0; i+2 < len(markup); i++ {
		if markup[i] == '<' && markup[i+1]|0x20 == 'f' && (isSpace(markup[i+2]) || markup[i+2] == '/') {
			at = i + 2
			break
		}
	}
	if at < 0 {
		return false
	}
	for j := at + 1; j < len(markup); j++ {
		if markup[j]|0x20 != 's' {
			continue
		}
		switch c := markup[j-1]; {
		case isSpace(c), c == '/', c == '\'', c == '"':
		default:
			continue
		}
		k := j + 1
		for k < len(markup) && isSpace(markup[k]) {
			k++
		}
		if k < len(markup) && markup[k] == '=' {
			return true
		}
	}
	return false
}

// TestStyledMatchesWalk: Styled answers as a walk over every byte does,
// for bodies made of the bytes it looks at, in every order.
func TestStyledMatchesWalk(t *testing.T) {
	t.Parallel()
	const alphabet = "<fFsS= \t\n/'\"x>"
	rng := rand.New(rand.NewPCG(5, 7))
	styled := 0
	for range 200000 {
		b := make([]byte, rng.IntN(16))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		s := string(b)
		want := styledWalk(s)
		if got := Styled(s); got != want {
			t.Fatalf("Styled(%q): got %v, want %v", s, got, want)
		}
		if want {
			styled++
		}
	}
	for _, s := range []string{FromPlain("hello there"), FromSpans([]Span{{Text: "bold", Style: Bold}}), "<f s='1'>x</f>", "<F\tS = \"2\">"} {
		if got, want := Styled(s), styledWalk(s); got != want {
			t.Errorf("Styled(%q): got %v, want %v", s, got, want)
		}
	}
	if styled == 0 {
		t.Error("no styled body among those tried")
	}
}

func BenchmarkStyled(b *testing.B) {
	m := FromPlain("Hello there, how are you doing today? Want to get lunch at noon & talk about the plan for next week?")
	for b.Loop() {
		_ = Styled(m)
	}
}
