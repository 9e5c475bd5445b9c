package ircd

import (
	"bufio"
	"bytes"
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
