package markup

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// wrap is FromPlain's paragraph for one line of already-escaped markup.
func wrap(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(lineOpen + l + lineClose)
	}
	return b.String()
}

func TestToPlain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		// Spec §9 part 6.
		{"spec/colour", "<p><f f='Times' h='16'><c v='black'>hello world</c></f></p>", "hello world"},
		{"spec/entity and smiley", `<p><f f='Arial' h='13' s='1'>bold &amp; <i n="happy"/> ok</f></p>`, "bold & :) ok"},
		{"spec/link", "see <a h='http://example.com/a?b=1&amp;c=2'/> now", "see http://example.com/a?b=1&c=2 now"},
		{"spec/two paragraphs", `<p>5 &lt; 6</p><p><b v='rgb(255,0,0)'>line two</b> <i n="frog"/></p>`, "5 < 6\nline two **frog**"},
		{"spec/not xml", "not <xml", "not <xml"},

		// Empty and paragraph-only bodies.
		{"empty", "", ""},
		{"empty paragraph", "<p></p>", ""},
		{"self-closing paragraph", "<p/>", ""},
		{"two empty paragraphs", "<p></p><p></p>", "\n"},
		{"three self-closing paragraphs", "<p/><p/><p/>", "\n\n"},
		{"empty wrapped line", wrap(""), ""},
		{"leading empty line", wrap("", "x"), "\nx"},
		{"text before first paragraph", "a<p>b</p><p>c</p>", "a\nb\nc"},
		{"font block before paragraph", "<f>x</f><p>y</p>", "x\ny"},
		{"empty smiley before paragraph", "<i/><p>y</p>", "y"},
		{"nested paragraphs", "<p>a<p>b</p>c</p>", "a\nbc"},
		{"whitespace between paragraphs", "<p>a</p>\n<p>b</p>", "a\n\nb"},

		// Bare text.
		{"bare text", "hello", "hello"},
		{"bare text with entities", "a &amp; b &lt;3", "a & b <3"},
		{"bare ampersand", "AT&T", "AT&T"},
		{"bare less-than", "I <3 you", "I <3 you"},
		{"bare angle url", "see <http://x.com>", "see <http://x.com>"},

		// Nested, unknown and oddly named tags.
		{"deep nesting", "<p><f f='Times' h='16'><c v='black'><b v='white'>deep</b></c></f></p>", "deep"},
		{"unknown tags", "<p><blink>hi</blink> <x:y z='1'>there</x:y></p>", "hi there"},
		{"upper-case tags", "<P>x</p>", "x"},
		{"title is not raw text", "<title>a &amp; <b>b</b></title>", "a & b"},
		{"script is not raw text", "<script>x</script>", "x"},
		{"plaintext is not raw text", "<plaintext>x</plaintext>y", "xy"},
		{"textarea is not rcdata", "<textarea>&lt;</textarea>", "<"},
		{"font style bits", "<f s='7'>bold italic</f>", "bold italic"},

		// Malformed structure: the body is shown unchanged.
		{"unclosed element", "<p><f>hello", "<p><f>hello"},
		{"unterminated start tag", "<p><f f='Times'", "<p><f f='Times'"},
		{"unterminated tag after text", "hello <p", "hello <p"},
		{"unterminated end tag", "<p>x</p", "<p>x</p"},
		{"unterminated quote", "<p><f f='Times>x</f></p>", "<p><f f='Times>x</f></p>"},
		{"mismatched end tags", "<p><f>x</p></f>", "<p><f>x</p></f>"},
		{"stray end tag", "x</f>", "x</f>"},
		{"stray less-than in markup", "<p>1 < 2</p>", "<p>1 < 2</p>"},
		{"less-than at end", "<p>x</p><", "<p>x</p><"},
		{"empty end tag", "a</>b", "a</>b"},
		{"bogus declaration", "<!x>y", "<!x>y"},
		{"doctype", "<!DOCTYPE html>x", "<!DOCTYPE html>x"},
		{"unterminated comment", "a<!-- c", "a<!-- c"},
		{"unterminated cdata", "<p><![CDATA[abc</p>", "<p><![CDATA[abc</p>"},
		{"unquoted attribute ending in slash", "<i n=happy/>", "<i n=happy/>"},

		// Comments, processing instructions, CDATA.
		{"comment", "a<!-- c -->b", "ab"},
		{"empty comment", "a<!---->b", "ab"},
		{"processing instruction", "<?xml version='1.0'?>x", "x"},
		{"cdata", "<p><![CDATA[<b>&amp;</b>]]></p>", "<b>&amp;</b>"},

		// Entities.
		{"all five entities", "<p>&amp;&lt;&gt;&quot;&apos;</p>", `&<>"'`},
		{"numeric references", "<p>&#65;&#x42;&#X43;&#x1F600;&#0000068;</p>", "ABC😀D"},
		{"nul reference", "<p>a&#0;b</p>", "a\x00b"},
		{"cr reference", "<p>a&#13;b&#xd;</p>", "a\rb\r"},
		{"c1 reference is not windows-1252", "<p>&#128;&#x9F;</p>", "\u0080\u009f"},
		{"surrogate reference kept", "<p>&#xD800;</p>", "&#xD800;"},
		{"out of range reference kept", "<p>&#1114112;&#x110000;&#99999999999999999999;</p>", "&#1114112;&#x110000;&#99999999999999999999;"},
		{"empty references kept", "<p>&#;&#x;&;</p>", "&#;&#x;&;"},
		{"reference without semicolon kept", "<p>&#65 &amp &lt</p>", "&#65 &amp &lt"},
		{"html-only entity kept", "<p>&nbsp;&copy;&AMP;</p>", "&nbsp;&copy;&AMP;"},
		{"double escaped", "<p>&amp;amp;</p>", "&amp;"},
		{"ampersand at end", "<p>x&</p>", "x&"},

		// Raw bytes the html tokenizer's Text() would rewrite.
		{"raw crlf kept", "<p>a\r\nb\rc</p>", "a\r\nb\rc"},
		{"raw nul kept", "<p>a\x00b</p>", "a\x00b"},
		{"invalid utf-8 kept", "<p>\xff\xfe</p>", "\xff\xfe"},

		// Smileys.
		{"alternate name happi", `<i n="happi"/>`, ":)"},
		{"alternate name tongy", `<i n="tongy"/>`, ":P"},
		{"alternate name winc", `<i n="winc"/>`, ";)"},
		{"wink uses first symbol", `<i n="wink"/>`, ";-)"},
		{"bigsmile uses first symbol", `<i n="bigsmile"/>`, ":D"},
		{"devil", `<i n="devil"/>`, "}:)"},
		{"unknown name", `<i n="frog"/>`, "**frog**"},
		{"names are case-sensitive", `<i n="Happy"/>`, "**Happy**"},
		{"empty name", `<i n=""/>`, ""},
		{"missing name", `a<i/>b`, "ab"},
		{"other attributes only", `<i x="happy"/>`, ""},
		{"attribute key case folded", `<i N="happy"/>`, ":)"},
		{"open smiley element", `<i n="happy">x</i>`, ":)x"},
		{"single-quoted name", `<i n='kiss'/>`, ":x"},
		{"unquoted name", `<i n=heart />`, ":X"},
		{"spaced attribute", `<i  n = "mad"  />`, "X("},
		{"entity in name", `<i n="&amp;"/>`, "**&**"},

		// Links.
		{"self-closing link", `<a h='http://x'/>`, "http://x"},
		{"open link with text", `<a h="http://x">link</a>`, "http://xlink"},
		{"link without href", `<a>text</a>`, "text"},
		{"unquoted link", `<a h=http://x/y >t</a>`, "http://x/yt"},
		{"link entity in attribute", `<a h='a&amp;b&lt;'/>`, "a&b<"},
		{"link between text", `x<a h="u"/>y`, "xuy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ToPlain(tc.in); got != tc.want {
				t.Errorf("ToPlain(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFromPlain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		// Spec §9 part 7.
		{"spec/happy and ampersand", "hi :) & bye", `<p><f f='Times' h='16'>hi <i n="happy"/> &amp; bye</f></p>`},
		{"spec/laugh and wink", "a<b :)) ;-)", `<p><f f='Times' h='16'>a&lt;b <i n="laugh"/> <i n="wink"/></f></p>`},
		{"spec/no smiley inside escape", "x <) y", "<p><f f='Times' h='16'>x &lt;) y</f></p>"},
		{"spec/slash", "path C:/x", "<p><f f='Times' h='16'>path C:/x</f></p>"},

		{"empty", "", wrap("")},
		{"newline only", "\n", wrap("", "")},
		{"two lines", "a\nb", wrap("a", "b")},
		{"trailing newline", "a\n", wrap("a", "")},
		{"spaces kept", "  a  ", wrap("  a  ")},
		{"escapes", `<b>&amp;"'`, wrap(`&lt;b&gt;&amp;amp;"'`)},
		{"cr as a reference, nul as its symbol", "a\rb\x00c\r\n", wrap("a&#13;b\u2400c&#13;", "")},
		{"second happy symbol is text", ":-)", wrap(":-)")},
		{"second wink symbol is text", ";)", wrap(";)")},
		{"lower-case tongue is text", ":p", wrap(":p")},
		{"second bigsmile symbol is text", ":-D", wrap(":-D")},
		{"devil beats happy", "}:)", wrap(`<i n="devil"/>`)},
		{"laugh beats happy", ":))", wrap(`<i n="laugh"/>`)},
		{"adjacent smileys", ":)):)", wrap(`<i n="laugh"/><i n="happy"/>`)},
		{"happy then close paren", ":)))", wrap(`<i n="laugh"/>)`)},
		{"smileys around escapes", ":)&:)", wrap(`<i n="happy"/>&amp;<i n="happy"/>`)},
		{"case-sensitive symbols", ":X:x", wrap(`<i n="heart"/><i n="kiss"/>`)},
		{"mohawk and straight", "-::|B|", wrap(`<i n="mohawk"/><i n="straight"/><i n="upset"/>`)},
		{"smiley split by newline", ":\n)", wrap(":", ")")},
		{"utf-8 kept", "héllo 😀", wrap("héllo 😀")},
		{"c1 control kept", "\u0085", wrap("\u0085")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := FromPlain(tc.in); got != tc.want {
				t.Errorf("FromPlain(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// wellFormed reports why body, wrapped in a root element as the spec's
// receivers parse it (§5.1), is not well-formed XML 1.0, or nil.
func wellFormed(body string) error {
	d := xml.NewDecoder(strings.NewReader("<root>" + body + "</root>"))
	for {
		if _, err := d.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// xmlText is s with the characters XML cannot carry as FromPlain sends
// them: a C0 control (but tab, LF, CR) as its symbol, U+FFFE and U+FFFF
// as U+FFFD.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
			return 0x2400 + r
		case r == 0xFFFE || r == 0xFFFF:
			return utf8.RuneError
		}
		return r
	}, s)
}

// TestFromPlainIsXML: what FromPlain sends parses as XML, as every
// receiver following the spec (and Pidgin) parses it; a body that does not
// is shown to them as raw markup. XML 1.0 has no way to carry the C0
// control characters other than tab, LF and CR (not even as &#N;), nor
// U+FFFE and U+FFFF: IRC's bold and colour codes, say.
func TestFromPlainIsXML(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, plain string }{
		{"hi :) & bye <3", "hi :) & bye <3"},
		{"tab\tcr\r\nlf", "tab\tcr\r\nlf"},
		{"\x02bold\x02 and \x0304,02colour\x0f", "\u2402bold\u2402 and \u240304,02colour\u240f"},
		{"a\x00b", "a\u2400b"},
		{"bell\x07 \v\f\x1b\x1f", "bell\u2407 \u240b\u240c\u241b\u241f"},
		{"\ufffe\uffff\ufffd\uffef", "\ufffd\ufffd\ufffd\uffef"},
		{"\x7f\u0085", "\x7f\u0085"},
	}
	for _, tc := range tests {
		m := FromPlain(tc.in)
		if err := wellFormed(m); err != nil {
			t.Errorf("FromPlain(%q) = %q: not XML: %v", tc.in, m, err)
		}
		if got := ToPlain(m); got != tc.plain {
			t.Errorf("ToPlain(FromPlain(%q)) = %q, want %q", tc.in, got, tc.plain)
		}
	}
}

// TestFromPlainSmileys checks every row of the table against the outgoing
// set the spec asks for: each name's first symbol, no alternate names.
func TestFromPlainSmileys(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		":D": "bigsmile", "}:)": "devil", ":Z": "frazzled", "B)": "geek",
		"%)": "googles", ":E": "growl", ":))": "laugh", ":)": "happy",
		":X": "heart", "-:": "mohawk", "X(": "mad", "X)": "messed",
		"Q)": "nerd", ":G": "oops", "P)": "pirate", ":O": "scared",
		":{": "sidefrown", ":B": "sinister", ":,": "smirk", ":|": "straight",
		":P": "tongue", "B|": "upset", ";-)": "wink", ":[": "worried",
		":x": "kiss",
	}
	for _, s := range Smileys() {
		w := wrap(s.Symbol)
		if name, ok := want[s.Symbol]; ok {
			w = wrap(`<i n="` + name + `"/>`)
		}
		m := FromPlain(s.Symbol)
		if m != w {
			t.Errorf("FromPlain(%q) = %q, want %q", s.Symbol, m, w)
		}
		if back := ToPlain(m); back != s.Symbol {
			t.Errorf("ToPlain(FromPlain(%q)) = %q", s.Symbol, back)
		}
	}
	out := Outgoing()
	if len(out) != len(want) {
		t.Errorf("len(Outgoing()) = %d, want %d", len(out), len(want))
	}
	for i, s := range out {
		if want[s.Symbol] != s.Name {
			t.Errorf("Outgoing()[%d] = %v, want name %q", i, s, want[s.Symbol])
		}
		if i > 0 && len(s.Symbol) > len(out[i-1].Symbol) {
			t.Errorf("Outgoing()[%d] = %q is longer than its predecessor", i, s.Symbol)
		}
		if sym := Symbol(s.Name); sym != s.Symbol {
			t.Errorf("Symbol(%q) = %q, want %q", s.Name, sym, s.Symbol)
		}
	}
}

// roundTrips are plain texts that must survive FromPlain then ToPlain,
// including every input the fuzzer has reported. (The characters XML
// cannot carry come back as symbols: TestFromPlainIsXML.)
var roundTrips = []string{
	"",
	" ",
	"\n",
	"\n\n",
	"a\n\nb\n",
	"  leading and trailing  ",
	"&amp;",
	"&lt;b&gt;",
	"&#65;",
	"&#0;&#13;",
	"<b>bold</b>",
	"<p>",
	"</f></p>",
	"<![CDATA[x]]>",
	"<!-- c -->",
	"<i n=\"happy\"/>",
	":)):)",
	"}:)",
	":))",
	":-)",
	";)",
	";-)",
	":p:P",
	"x <) y",
	"a\r\nb",
	"\r",
	"\r\r\n\n",
	"\u0080\u0085\u009f",
	"\ufffd",
	"\u2028\u2029",
	"]]>",
	"<script>x</script>",
	"<plaintext>",
	"<title>&amp;</title>",
	"é😀中",
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range roundTrips {
		m := FromPlain(s)
		if got := ToPlain(m); got != s {
			t.Errorf("ToPlain(FromPlain(%q)) = %q via %q", s, got, m)
		}
	}
}

// TestToPlainFallbackIdempotent: a body shown unchanged stays unchanged.
func TestToPlainFallback(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"not <xml", "<p>", "<p>x", "</p>", "<", "<p><f", "<!DOCTYPE>"} {
		if got := ToPlain(in); got != in {
			t.Errorf("ToPlain(%q) = %q, want %q", in, got, in)
		}
	}
}

func FuzzMarkup(f *testing.F) {
	for _, s := range []string{
		"<p><f f='Times' h='16'><c v='black'>hello world</c></f></p>",
		`<p><f f='Arial' h='13' s='1'>bold &amp; <i n="happy"/> ok</f></p>`,
		"see <a h='http://example.com/a?b=1&amp;c=2'/> now",
		`<p>5 &lt; 6</p><p><b v='rgb(255,0,0)'>line two</b> <i n="frog"/></p>`,
		"not <xml",
		"hi :) & bye",
		"a<b :)) ;-)",
		"x <) y",
		"path C:/x",
		"<p><f f='Times' h='16'><c v='rgba(0, 0, 0, 255)'><b v='rgba(255, 255, 255, 0)'>hi</b></c></f></p>",
		"<![CDATA[a]]><!-- b --><?c?>",
		"&#x1F600;&#0;&#13;&#128;",
	} {
		f.Add(s)
	}
	for _, s := range roundTrips {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		plain := ToPlain(s) // must not panic
		if len(plain) > len(s)+len(s)/2*16 {
			// Only <i n=X/> and <a h=U/> expand, and not by this much.
			t.Fatalf("ToPlain(%q) grew to %d bytes", s, len(plain))
		}
		m := FromPlain(s)
		if got, want := string(AppendFromPlainEscaped([]byte("x/"), s)), "x/"+wireEscape(m); got != want {
			t.Fatalf("AppendFromPlainEscaped(%q): got %q, want %q", s, got, want)
		}
		if !utf8.ValidString(s) {
			return
		}
		if err := wellFormed(m); err != nil {
			t.Fatalf("FromPlain(%q) = %q: not XML: %v", s, m, err)
		}
		if got, want := ToPlain(m), xmlText(s); got != want {
			t.Fatalf("ToPlain(FromPlain(%q)) = %q via %q, want %q", s, got, m, want)
		}
	})
}

// wireEscape escapes s as the MSIM codec escapes a field value (§2.1).
var wireEscape = strings.NewReplacer("/", "/1", "\\", "/2").Replace

// TestFromPlainEscaped: the markup written escaped as it is converted is
// FromPlain's escaped afterwards, whatever the text holds: slashes and
// backslashes next to smileys, markup, line breaks and controls.
func TestFromPlainEscaped(t *testing.T) {
	for _, s := range append([]string{
		"", "plain", "a/b\\c", "\\", "/", "//\\\\", "</f></p>", "\\n", "https://example.com/a?b=1&c=2",
		":)/ B)\\ ;-)/:D", "line/\none\n\\two/\n", "\x02/\x00\\\r\t", "\uFFFE/\uFFFF\\ \xef/", "ünïcødé /\\ ☃",
		"<i n=\"happy\"/>", strings.Repeat("a/b\\c :) ", 500),
	}, roundTrips...) {
		if got, want := string(AppendFromPlainEscaped(nil, s)), wireEscape(FromPlain(s)); got != want {
			t.Errorf("AppendFromPlainEscaped(%q): got %q, want %q", s, got, want)
		}
	}
}

// im is a typical IM body (198 bytes) as the official client sends it.
const im = `<p><f f='Times' h='16'><c v='black'>hey! are you coming to the show ` +
	`tonight? doors open at 8 &amp; the opening band is great <i n="happy"/> ` +
	`text me when you get there, i'll be by the bar</c></f></p>`

// imPlain is a typical IM (200 bytes) typed on IRC.
const imPlain = "hey! are you coming to the show tonight? doors open at 8 & the " +
	"opening band is great :) text me when you get there, i'll be near the " +
	"bar on the left side <3 see you soon, bring some cash, ok? bye now!"

func BenchmarkToPlain(b *testing.B) {
	b.SetBytes(int64(len(im)))
	b.ReportAllocs()
	for b.Loop() {
		ToPlain(im)
	}
}

func BenchmarkFromPlain(b *testing.B) {
	b.SetBytes(int64(len(imPlain)))
	b.ReportAllocs()
	for b.Loop() {
		FromPlain(imPlain)
	}
}

// TestFastPathMatchesTokenizer: the one-paragraph fast path of ToPlain gives
// what the tokenizer path gives.
func TestFastPathMatchesTokenizer(t *testing.T) {
	for _, in := range []string{
		"hello", "a &amp; b &lt;c&gt; &#65;&#x42; &quot;q&quot; &apos;", "", "&unknown; & alone", "x > y",
		"\r\x00 tab\t", "ünïcödé ☃", "&#0;&#13;",
	} {
		m := lineOpen + in + lineClose
		want, ok := toPlain(m, nil)
		if !ok {
			t.Fatalf("%q: the tokenizer path rejects it", m)
		}
		if got := ToPlain(m); got != want {
			t.Errorf("ToPlain(%q) = %q, tokenizer gives %q", m, got, want)
		}
	}
}

func BenchmarkToPlainOwnForm(b *testing.B) {
	m := FromPlain("Hello there, how are you doing today? Want to get lunch at noon & talk about the plan for next week?")
	b.ReportAllocs()
	for b.Loop() {
		_ = ToPlain(m)
	}
}
