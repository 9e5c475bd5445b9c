package tomlkey

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
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
		if got := Line(data, key(tc.table, tc.name)...); got != tc.want {
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
		if got := Line(data, key(tc.table, tc.name)...); got != tc.want {
			t.Errorf("Line(%q, %q): got %d, want %d", tc.table, tc.name, got, tc.want)
		}
	}
	for i, code := range Code(data) {
		if h := Header(code); h != "" && i != 0 {
			t.Errorf("line %d (%q): got header %q, want none", i+1, code, h)
		}
	}
}

// TestQuotedKeys: a quoted key part may hold '=', '.', spaces and quotes;
// the key is cut at the '=' after it, a '.' inside it does not split it,
// and a part that is not bare is shown quoted, as the TOML decoder shows
// keys (so "a.b" is not taken for the key b of table a).
func TestQuotedKeys(t *testing.T) {
	for _, tc := range []struct{ code, key, header string }{
		{`"a.b" = 1`, `"a.b"`, ""},
		{`'x=y' = 2`, `"x=y"`, ""},
		{`"a=b".c = 3`, `"a=b".c`, ""},
		{`"a b" . 'c"d' = 4`, `"a b"."c\"d"`, ""},
		{`"q\"=" = 5`, `"q\"="`, ""},
		{`"\x41" = 6`, "A", ""},
		{`plain = "x=y"`, "plain", ""},
		{`[ "a.b" . c ]`, "", `["a.b".c]`},
		{`[[ 'x y' ]]`, "", `[["x y"]]`},
		{`['a]']`, "", `["a]"]`},
		{`"unclosed = 1`, "", ""},
		{`a b = 1`, "", ""},
		{`= 1`, "", ""},
	} {
		if k := Key(tc.code); k != tc.key {
			t.Errorf("Key(%q): got %q, want %q", tc.code, k, tc.key)
		}
		if h := Header(tc.code); h != tc.header {
			t.Errorf("Header(%q): got %q, want %q", tc.code, h, tc.header)
		}
	}
	data := []byte("\"a.b\" = 1\n" +
		"'x=y' = 2\n" +
		"[a]\n" +
		"b = 3\n" +
		"[\"c.d\"]\n" +
		"e = 4\n")
	for _, tc := range []struct {
		key  []string
		want int
	}{
		{[]string{"a.b"}, 1},
		{[]string{"x=y"}, 2},
		{[]string{"x"}, 0},
		{[]string{"a", "b"}, 4},
		{[]string{"c.d", "e"}, 6},
		{[]string{"c", "d", "e"}, 0},
	} {
		if got := Line(data, tc.key...); got != tc.want {
			t.Errorf("Line(%q): got %d, want %d", tc.key, got, tc.want)
		}
	}
}

// FuzzKey: whatever a line holds, Key and Header do not panic, and a key
// or header they find reads back, through the TOML decoder's own quoting,
// as what they found.
func FuzzKey(f *testing.F) {
	f.Add(`"a.b" = 1`)
	f.Add(`'x=y'.c = 2`)
	f.Add(`[ "a.b" . c ]`)
	f.Add(`[[ 'x y' ]]`)
	f.Add(`"q\"\u00e9" = 5`)
	f.Fuzz(func(t *testing.T, line string) {
		for _, code := range Code([]byte(line)) {
			if k := Key(code); k != "" {
				if parts, rest, ok := cutKey(k); !ok || rest != "" || toml.Key(parts).String() != k {
					t.Fatalf("Key(%q) = %q does not read back", code, k)
				}
			}
			_ = Header(code)
		}
	})
}

// key is the parts of table (dotted) and name, as Line takes them.
func key(table, name string) []string {
	if table == "" {
		return []string{name}
	}
	return append(strings.Split(table, "."), name)
}
