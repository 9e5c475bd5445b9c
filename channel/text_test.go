package channel

import (
	"strings"
	"testing"
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
