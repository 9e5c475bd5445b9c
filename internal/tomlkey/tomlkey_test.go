package tomlkey

import (
	"strings"
	"testing"
)

func TestCode(t *testing.T) {
	in := "a = 'x # y' # comment\n" +
		"b = \"q\\\" # r\" # c\n" +
		"m = '''\n[[user]] # inside\n'''\n" +
		"[irc] # t\n" +
		"\"quoted\" = 1\n"
	want := []string{"a = 'x # y' ", "b = \"q\\\" # r\" ", "m = '''", "", "", "[irc] ", "\"quoted\" = 1", ""}
	got := Code([]byte(in))
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
	if h := Header(got[5]); h != "[irc]" {
		t.Errorf("header: got %q", h)
	}
	if k := Key(got[6]); k != "quoted" {
		t.Errorf("key: got %q", k)
	}
}

func TestLine(t *testing.T) {
	data := []byte("listen = 'a' # [metrics]\n" +
		"metrics . \"listen\" = 'b'\n" +
		"[cluster]\n" +
		"node = '''\n" +
		"nats = 1\n" +
		"'''\n" +
		"nats = 2\n" +
		"[[user]]\n" +
		"[[user.account]]\n" +
		"email = 'x'\n" +
		"[limits]\n")
	for _, tc := range []struct {
		table, name string
		want        int
	}{
		{"", "listen", 1},
		{"metrics", "listen", 2},  // dotted from the top level
		{"cluster", "nats", 7},    // not the line inside the multi-line string
		{"cluster", "missing", 3}, // the table's header
		{"user.account", "email", 10},
		{"", "limits", 11}, // a table itself
		{"nowhere", "x", 0},
	} {
		if got := Line(data, tc.table, tc.name); got != tc.want {
			t.Errorf("Line(%q, %q): got %d, want %d", tc.table, tc.name, got, tc.want)
		}
	}
}

// FuzzCode: whatever a file holds, Code gives one line for each of the
// file's, and each is a part of that line with its comment and the text of
// its multi-line strings and values left out; nothing panics.
func FuzzCode(f *testing.F) {
	f.Add("a = 'x # y' # comment\nm = '''\n[[user]]\n'''\n[irc]\n")
	f.Add("motd = [\"\"\"\nx = \\\"\"\"\n[log]\ncolour = 1 \"\"\"]\n")
	f.Add("motd = [\n  \"a = b\",\n  [1], # ]\n  { c = [\n'''\n]''',\n] }]\n[irc]\n")
	f.Fuzz(func(t *testing.T, text string) {
		lines := strings.Split(text, "\n")
		got := Code([]byte(text))
		if len(got) != len(lines) {
			t.Fatalf("%d lines of %d", len(got), len(lines))
		}
		for i, code := range got {
			if len(code) > len(lines[i]) {
				t.Fatalf("line %d: %q is longer than %q", i+1, code, lines[i])
			}
			_, _ = Header(code), Key(code)
		}
	})
}

// TestLineMultiLineValues: the lines of an array or inline table that
// goes on over several lines are part of one value, not keys or headers,
// even where a string in it reads like one.
func TestLineMultiLineValues(t *testing.T) {
	data := []byte("[irc]\n" +
		"motd = [\n" +
		"  \"listen = here\",\n" +
		"  [\"nested\"], # a comment ]\n" +
		"  '''\n" +
		"]''',\n" +
		"]\n" +
		"listen = [ { a = [\n" +
		"  1 ] },\n" +
		"]\n" +
		"network = 'x'\n")
	for _, tc := range []struct {
		table, name string
		want        int
	}{
		{"irc", "listen", 8},
		{"irc", "network", 11},
		{"irc", "motd", 2},
		{"", "irc", 1},
	} {
		if got := Line(data, tc.table, tc.name); got != tc.want {
			t.Errorf("Line(%q, %q): got %d, want %d", tc.table, tc.name, got, tc.want)
		}
	}
	for i, code := range Code(data) {
		if h := Header(code); h != "" && i != 0 {
			t.Errorf("line %d (%q): got header %q, want none", i+1, code, h)
		}
	}
}
