package channel

import (
	"encoding/xml"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

func TestFromMSIMNeutralisesControls(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello", "hello"},
		{"\x01DCC SEND evil.exe 2130706433 26999 1000\x01", "␁DCC SEND evil.exe 2130706433 26999 1000␁"},
		{"\x01VERSION\x01", "␁VERSION␁"},
		{"\x01ACTION waves\x01", "␁ACTION waves␁"},
		{"\x0304red\x03 \x02bold\x02 \x1fu\x1f \x1di\x1d \x16r\x16 \x0f\x11\x1e\x04", "␃04red␃ ␂bold␂ ␟u␟ ␝i␝ ␖r␖ ␏␑␞␄"},
		{"bell\x07 del\x7f tab\tend", "bell␇ del␡ tab end"},
		{"two\nlines\r\n", "two\nlines\r\n"},
		{"ünïcödé ☃", "ünïcödé ☃"},
	} {
		if got := fromMSIM(tc.in); got != tc.want {
			t.Errorf("fromMSIM(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := fromMSIMLine("away\r\nfor\x01 lunch"); got != "away for␁ lunch" {
		t.Errorf("fromMSIMLine: got %q", got)
	}
}

func FuzzFromMSIM(f *testing.F) {
	f.Add("\x01DCC SEND x 1 2 3\x01")
	f.Add("plain")
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{fromMSIM(s), fromMSIMLine(s)} {
			for i := 0; i < len(out); i++ {
				if c := out[i]; (c < 0x20 && c != '\n' && c != '\r') || c == 0x7f {
					t.Fatalf("fromMSIM(%q) = %q keeps control byte %#x", s, out, c)
				}
			}
		}
		if strings.ContainsAny(fromMSIMLine(s), "\r\n") {
			t.Fatalf("fromMSIMLine(%q) keeps a line break", s)
		}
	})
}

// FuzzHasControl: looking at eight bytes at a time finds what looking at
// each byte does.
func FuzzHasControl(f *testing.F) {
	for _, s := range []string{"", "plain text of some length", "a\nb\r\nc", "\x01", "12345678\x7f", "1234567\x1f", "\u00ff\u00e9\x80\x9f", "line\tbreak after eight"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := hasControl(s), controlIn(s); got != want {
			t.Fatalf("hasControl(%q) = %v, want %v", s, got, want)
		}
	})
}

// BenchmarkHasControl: an IM's text, checked for control characters as it
// comes from MSIM.
func BenchmarkHasControl(b *testing.B) {
	s := "Hello there, how are you doing today? Want to get lunch at noon, the usual place by the river?"
	for b.Loop() {
		if hasControl(s) {
			b.Fatal("control found")
		}
	}
}

func TestMSIMTextDropsFormatting(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello", "hello"},
		{"\x02bold\x02 \x1ditalic\x1d \x1funder\x1f \x1estrike\x1e \x11mono\x11 \x16rev\x16 end\x0f", "bold italic under strike mono rev end"},
		{"\x034red\x03 \x0304,12on blue\x03 \x0399 100\x03", "red on blue  100"},
		{"\x03,5 comma stays", ",5 comma stays"},
		{"\x034, and a comma", ", and a comma"},
		{"\x03123", "3"}, // two digits at most
		{"\x04ff0000red\x04 \x04FF0000,00FF00both\x04", "red both"},
		{"bell\x07 stays for the markup", "bell\x07 stays for the markup"},
		{"trailing \x03", "trailing "},
		{"ünï\x02cödé\x02", "ünïcödé"},
	} {
		if got := msimText(tc.in); got != tc.want {
			t.Errorf("msimText(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// ircFormatting is IRC's formatting codes, as msimText drops them.
const ircFormatting = "\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f"

// FuzzMSIMText: no formatting code is left, and nothing but the codes and
// their colour numbers is dropped: the rest stays, in order.
func FuzzMSIMText(f *testing.F) {
	f.Add("\x02bold\x02 \x0304,12red\x03 \x04ff0000,00ff00hex\x04 \x1fu\x0f")
	f.Add("plain, 12 and ff")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ircd.HasFormatting(s), strings.ContainsAny(s, ircFormatting); got != want {
			t.Fatalf("ircd.HasFormatting(%q) = %v, want %v", s, got, want)
		}
		out := msimText(s)
		if strings.ContainsAny(out, ircFormatting) {
			t.Fatalf("msimText(%q) = %q keeps a formatting code", s, out)
		}
		// What a colour's numbers could be made of is left out of the
		// comparison; every other byte must be there, in order.
		keep := func(s string) string {
			var b []byte
			for i := 0; i < len(s); i++ {
				if !strings.ContainsRune(ircFormatting+",0123456789abcdefABCDEF", rune(s[i])) {
					b = append(b, s[i])
				}
			}
			return string(b)
		}
		if a, b := keep(out), keep(s); a != b {
			t.Fatalf("msimText(%q) = %q: dropped more than codes (%q against %q)", s, out, a, b)
		}
	})
}

// TestFormattingAloneNotSent: an IM or action of IRC formatting codes
// alone would reach MSIM empty (an action as an empty "/me"): it is not
// sent, and the user is told. An IM of spaces holds no code: it is sent
// as typed, as before.
func TestFormattingAloneNotSent(t *testing.T) {
	for _, tc := range []struct {
		name, typed, out string
		sent             bool
	}{
		{"codes", "\x03\x0f", "\x03\x0f", false},
		{"an action of codes", "\x01ACTION \x0f\x01", "/me \x0f", false},
		{"spaces", "   ", "   ", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			cl := &fakeMSIM{}
			r.a.client, r.a.state = cl, linkUp
			bd := r.s.newBuddy(r.a, 7, "bob", "")
			r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: tc.typed, MsgID: "m1", Time: time.Now()}, "PRIVMSG", tc.typed, tc.out)
			told := r.irc.said("NOT sent")
			switch {
			case tc.sent && (len(cl.sent) != 1 || len(told) != 0):
				t.Errorf("sent %q to MSIM and told the user %q; want it sent, nothing refused", cl.sent, told)
			case !tc.sent && (len(cl.sent) != 0 || len(told) != 1 || !strings.Contains(told[0], "formatting")):
				t.Errorf("sent %q to MSIM and told the user %q; want nothing sent, and that it held only formatting", cl.sent, told)
			}
		})
	}
}

func TestMSIMSpans(t *testing.T) {
	t.Parallel()
	const b, i, u = markup.Bold, markup.Italic, markup.Underline
	for _, tc := range []struct {
		in   string
		want []markup.Span // nil: not styled
	}{
		{"plain", nil},
		{"\x0304red\x03 \x1estrike\x1e", nil},
		{"\x02\x02empty bold", nil},
		{"a \x02bold\x02 c", []markup.Span{{Text: "a "}, {Text: "bold", Style: b}, {Text: " c"}}},
		{"\x02b\x1dbi\x1fbiu\x02iu\x0fplain", []markup.Span{
			{Text: "b", Style: b}, {Text: "bi", Style: b | i}, {Text: "biu", Style: b | i | u},
			{Text: "iu", Style: i | u}, {Text: "plain"}}},
		{"\x1dopen to the end", []markup.Span{{Text: "open to the end", Style: i}}},
		{"\x02a\x0304b\x03\x16c\x02", []markup.Span{{Text: "abc", Style: b}}},
		{"\x1f<x> & :)\x1f", []markup.Span{{Text: "<x> & :)", Style: u}}},
		{"\x02a\x07\x02", []markup.Span{{Text: "a\x07", Style: b}}},
		{"\x02a\nb\x02c", []markup.Span{{Text: "a", Style: b}, {Text: "\nb"}, {Text: "c", Style: b}}},
	} {
		got, ok := msimSpans(tc.in)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("msimSpans(%q): got %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

// TestStyledIMToMSIM: bold, italic and underline typed on IRC reach MSIM
// as <f s='N'> styles, sent or queued; text without them as before.
func TestStyledIMToMSIM(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{}
	r.a.client, r.a.state = cl, linkUp
	bd := r.s.newBuddy(r.a, 7, "bob", "")
	for _, typed := range []string{"\x02hi\x02 \x1dyou\x0f :)", "plain \x0304red"} {
		r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: typed, Time: time.Now()}, "PRIVMSG", typed, typed)
	}
	want := []string{
		markup.FromSpans([]markup.Span{{Text: "hi", Style: markup.Bold}, {Text: " "}, {Text: "you", Style: markup.Italic}, {Text: " :)"}}),
		"plain red",
	}
	if !slices.Equal(cl.sent, want) {
		t.Errorf("sent %q, want %q", cl.sent, want)
	}
	if err := wellFormedXML(cl.sent[0]); err != nil {
		t.Errorf("%q: not XML: %v", cl.sent[0], err)
	}
}

// wellFormedXML parses an IM body as receivers do: as the content of one
// element.
func wellFormedXML(body string) error {
	d := xml.NewDecoder(strings.NewReader("<root>" + body + "</root>"))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// TestIMTextStyles: an IM's styles reach IRC as IRC's codes, toggled where
// the style changes and closed at each line break and at the end; a code
// or other control character in the buddy's text is still its picture.
func TestIMTextStyles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       string
		act        bool
	}{
		{"unstyled", "<p><f f='Times' h='16'>a\x02b</f></p>", "a\u2402b", false},
		{"bold", "<p><f f='Times' h='16' s='1'>hi</f></p>", "\x02hi\x02", false},
		{"nested", "a<f s='1'>b<f s='6'>c</f>d</f>", "a\x02b\x1d\x1fc\x1d\x1fd\x02", false},
		{"injection", "<f s='4'>\x02\x03" + "4red\x0f\x01VERSION\x01</f>",
			"\x1f\u2402\u24034red\u240f\u2401VERSION\u2401\x1f", false},
		{"paragraphs", "<p><f s='2'>one</f></p><p><f s='2'>two\r\nthree</f></p>",
			"\x1done\x1d\n\x1dtwo\x1d\r\n\x1dthree\x1d", false},
		{"action", "<f s='1'>/me</f> waves", "waves", true},
		{"action styled", "/me <f s='1'>waves</f>", "\x02waves\x02", true},
		{"action tab", "/me\t<f s='1'>waves</f>", "\x02waves\x02", true},
		{"style s=0", "<f s='0'>\x07</f>", "\u2407", false},
		{"broken", "<f s='1'>x", "<f s='1'>x", false},
	} {
		ev := msim.IMEvent{From: 7, Text: markup.ToPlain(tc.body), Markup: tc.body}
		got, act := imText(ev)
		if got != tc.want || act != tc.act {
			t.Errorf("%s: imText(%q) = %q, %v; want %q, %v", tc.name, tc.body, got, act, tc.want, tc.act)
		}
	}
}

// FuzzIRCStyles: text typed on IRC, sent to MSIM and shown back on IRC,
// keeps its visible text (IRC's other codes dropped, controls as their
// pictures) and the style of every character, and its markup is XML.
func FuzzIRCStyles(f *testing.F) {
	f.Add("a \x02b\x1dc\x0f d\x1fe")
	f.Add("\x02\x0304,12x\x03\x16\x07\n\x1fy :) <&>")
	f.Add("/me \x1dwaves")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\r") {
			return // IRC carries neither in a message
		}
		spans, ok := msimSpans(s)
		if !ok {
			return
		}
		var words strings.Builder
		for _, sp := range spans {
			words.WriteString(sp.Text)
		}
		if words.String() != msimText(s) {
			t.Fatalf("%q: styled text %q, want msimText's %q", s, words.String(), msimText(s))
		}
		body := markup.FromSpans(spans)
		if err := wellFormedXML(body); err != nil {
			t.Fatalf("%q: markup %q is not XML: %v", s, body, err)
		}
		got, act := imText(msim.IMEvent{Text: markup.ToPlain(body), Markup: body})
		want := styledRunes(ircShown(s))
		if act { // without "/me " and its styles: four characters, a digit each
			want = want[8:]
		}
		if a, b := styledRunes(got), want; a != b {
			t.Fatalf("%q: came back as %q (%s), want %s", s, got, a, b)
		}
	})
}

// ircShown is s without the formatting codes that are not bold, italic,
// underline or reset, as msimText drops them (FuzzMSIMText checks how):
// what is left is what styledRunes reads.
func ircShown(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		n := ircd.FormatCodeLen(s[i:])
		if n == 0 || strings.IndexByte("\x02\x0f\x1d\x1f", s[i]) >= 0 {
			b.WriteByte(s[i])
			n = 1
		}
		i += n
	}
	return b.String()
}

// styledRunes renders IRC text as each visible character (a control as
// its picture) and the styles it is shown in (a line break, which takes no
// style, without), as an IRC client reads the codes.
func styledRunes(s string) string {
	var (
		b  strings.Builder
		st markup.Style
	)
	for _, r := range s {
		switch r {
		case 0x02:
			st ^= markup.Bold
		case 0x1d:
			st ^= markup.Italic
		case 0x1f:
			st ^= markup.Underline
		case 0x0f:
			st = 0
		case '\n':
			st = 0 // the line ends, and its codes with it
			b.WriteRune(r)
		default:
			b.WriteString(fromMSIM(string(r))) // another control: its picture
			b.WriteByte('0' + byte(st))
		}
	}
	return b.String()
}
