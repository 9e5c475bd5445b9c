package ircd

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"gopkg.in/irc.v4"
)

// TestWriteLineMatchesString: the writer renders a message byte for byte as
// irc.Message.String does, and lineLen (used to tell which lines a failed
// write took whole) is its length.
func TestWriteLineMatchesString(t *testing.T) {
	t.Parallel()
	full := &irc.Prefix{Name: "tom", User: "tom", Host: "msim"}
	tests := []struct {
		name string
		m    *irc.Message
	}{
		{"privmsg", msg(full, "PRIVMSG", "me", "hello there")},
		{"one word", msg(full, "PRIVMSG", "me", "hello")},
		{"empty trailing", msg(full, "PRIVMSG", "me", "")},
		{"colon first", msg(full, "PRIVMSG", "me", ":)")},
		{"colon inside", msg(full, "PRIVMSG", "me", "a:b")},
		{"server prefix", msg(&irc.Prefix{Name: "irc.test"}, "001", "me", "Welcome")},
		{"name and host", msg(&irc.Prefix{Name: "n", Host: "h"}, "MODE", "&ch", "+v", "bob")},
		{"name and user", msg(&irc.Prefix{Name: "n", User: "u"}, "NICK", "new")},
		{"no prefix", msg(nil, "PING", "tok")},
		{"empty prefix name", msg(&irc.Prefix{User: "u", Host: "h"}, "PONG", "x")},
		{"no params", msg(nil, "QUIT")},
		{"many params", msg(nil, "005", "me", "A=1", "B", "C=x", "are supported by this server")},
		{"tag", &irc.Message{Tags: irc.Tags{"time": "2026-01-02T03:04:05.000Z"}, Prefix: full, Command: "PRIVMSG", Params: []string{"me", "hi you"}}},
		{"empty tags", &irc.Message{Tags: irc.Tags{}, Prefix: full, Command: "PRIVMSG", Params: []string{"me", "hi"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			bw := bufio.NewWriter(&buf)
			writeLine(bw, tc.m)
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			if got, want := buf.String(), tc.m.String(); got != want {
				t.Errorf("writeLine: got %q, want %q", got, want)
			}
			if got, want := lineLen(tc.m), len(tc.m.String()); got != want {
				t.Errorf("lineLen: got %d, want %d", got, want)
			}
		})
	}
}

// libraryParse is irc.ParseMessage with its panics turned into errors.
func libraryParse(line string) (m *irc.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, errors.New("panic")
		}
	}()
	return irc.ParseMessage(line)
}

// sameMessage compares two parsed lines; a nil and an empty tag map are
// the same.
func sameMessage(a, b *irc.Message) bool {
	if a.Command != b.Command || len(a.Params) != len(b.Params) || len(a.Tags) != len(b.Tags) {
		return false
	}
	if (a.Params == nil) != (b.Params == nil) || (a.Prefix == nil) != (b.Prefix == nil) {
		return false
	}
	if a.Prefix != nil && *a.Prefix != *b.Prefix {
		return false
	}
	for i := range a.Params {
		if a.Params[i] != b.Params[i] {
			return false
		}
	}
	for k, v := range a.Tags {
		if w, ok := b.Tags[k]; !ok || w != v {
			return false
		}
	}
	return true
}

var parseSeeds = []string{
	"PRIVMSG tom :hello there",
	"privmsg tom hello",
	":me!u@h PRIVMSG tom :hi",
	":me@h!x NICK new",
	":me!u NICK new",
	"@+typing=active;time=x TAGMSG tom",
	"@+typing=active :me!u@h TAGMSG tom",
	"@a=b",
	"@a=b ",
	":prefixonly",
	":p ",
	"",
	"   ",
	"CMD  a   b  :  trailing  ",
	"CMD a :",
	"CMD :",
	"CMD a b c d e f g h i j k l m n o p q r s",
	"PING :tok\r\n",
	"PASS  a:b",
	":x PRIVMSG t ::)",
}

// TestParseLineMatchesLibrary: ircd's parser reads every line as
// irc.ParseMessage does, errors included (FuzzParseLine tries more).
func TestParseLineMatchesLibrary(t *testing.T) {
	t.Parallel()
	for _, line := range parseSeeds {
		checkParse(t, line)
	}
}

func checkParse(t *testing.T, line string) {
	t.Helper()
	got, gotErr := parseLine(line)
	want, wantErr := libraryParse(line)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("parseLine(%q): got error %v, want %v", line, gotErr, wantErr)
	}
	if gotErr == nil && !sameMessage(got, want) {
		t.Fatalf("parseLine(%q): got %#v (prefix %+v), want %#v (prefix %+v)", line, got, got.Prefix, want, want.Prefix)
	}
}
