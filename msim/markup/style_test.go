package markup

import "testing"

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
