package channel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/msim/markup"
)

// TestStylesBothWays: bold, italic and underline typed on IRC reach the
// buddy as MSIM styles and come out on the other side's IRC as the same
// styles, each closed where it ends; only the codes the bridge writes
// from real styles arrive, any other control character as its picture.
func TestStylesBothWays(t *testing.T) {
	alice, bob := buddiesStack(t)

	for _, tc := range []struct{ typed, want string }{
		{"a \x02b\x1dc\x0f d\x1fe", "a \x02b\x1dc\x02\x1d d\x1fe\x1f"},
		{"\x02bold to the end", "\x02bold to the end\x02"},
		{"\x0304red\x03 \x1estruck\x1e", "red struck"},
		{"\x1d<i> & :) \x07\x1d", "\x1d<i> & :) \u2407\x1d"},
		{"\x01ACTION \x02waves\x02\x01", "\x01ACTION \x02waves\x02\x01"},
	} {
		alice.sendf("PRIVMSG bob :%s", tc.typed)
		got := bob.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "alice" })
		if got.Trailing() != tc.want {
			t.Errorf("typed %q: bob got %q, want %q", tc.typed, got.Trailing(), tc.want)
		}
	}
}

// TestStyledIMHistory: a styled IM is kept in the history as it was shown
// live, so a replay shows its styles too.
func TestStyledIMHistory(t *testing.T) {
	stk, g := historyGateway(t)
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spans := []markup.Span{{Text: "/me "}, {Text: "waves\x1b", Style: markup.Bold}, {Text: " hi\nthere", Style: markup.Underline}}
	if err := bob.SendStyledIM(ctx, alUID, "", spans); err != nil {
		t.Fatal(err)
	}
	tomBarrier(t, bob)
	// The two lines come as two actions (no draft/multiline here), each
	// with its styles closed.
	const want = "\x01ACTION \x02waves\u241b\x02\x1f hi\x1f\x01|\x01ACTION \x1fthere\x1f\x01"
	var live []*irc.Message
	for range 2 {
		live = append(live, desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" }))
	}
	if got := texts(live); got != want {
		t.Errorf("live: got %q, want %q", got, want)
	}
	desk.send("CHATHISTORY LATEST bob * 10")
	if got := texts(batchLines(desk, "chathistory")); got != want {
		t.Errorf("CHATHISTORY LATEST bob: got %q, want %q as live", got, want)
	}
}

// TestLongStyledIM: an IM too long for one IRC line comes in several, each
// in the styles of its part of the IM: those open where it starts are
// opened again, and closed at its end.
func TestLongStyledIM(t *testing.T) {
	stk, g := historyGateway(t)
	bob := msimUser(t, stk, "bob")
	alUID := lookupUID(t, bob, "al")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bold := strings.Repeat("bold words ", 60) // 660 bytes: two lines
	spans := []markup.Span{{Text: "plain "}, {Text: bold, Style: markup.Bold}, {Text: "end", Style: markup.Italic}}
	if err := bob.SendStyledIM(ctx, alUID, "", spans); err != nil {
		t.Fatal(err)
	}
	var lines []string
	var joined strings.Builder
	for !strings.HasSuffix(joined.String(), "end\x1d") {
		m := desk.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "bob" })
		lines = append(lines, m.Trailing())
		joined.WriteString(m.Trailing())
	}
	if len(lines) < 2 {
		t.Fatalf("got %q, want the IM in several lines", lines)
	}
	for i, l := range lines {
		if i > 0 && !strings.HasPrefix(l, "\x02") {
			t.Errorf("line %d %q: does not open bold again", i+1, l)
		}
		if i < len(lines)-1 && !strings.HasSuffix(l, "\x02") {
			t.Errorf("line %d %q: does not close bold", i+1, l)
		}
	}
	// Without the codes added at the cuts, the lines join to the IM.
	if got, want := strings.ReplaceAll(joined.String(), "\x02", ""), "plain "+bold+"\x1dend\x1d"; got != want {
		t.Errorf("lines join to %q, want %q", got, want)
	}
}
