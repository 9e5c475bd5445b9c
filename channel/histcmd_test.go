package channel_test

import (
	"strings"
	"testing"
)

// TestHistoryCountMustBeANumber: the history command's count is a whole
// number or refused: "5x" is not taken as 5.
func TestHistoryCountMustBeANumber(t *testing.T) {
	stk, g := historyGateway(t)
	msimUser(t, stk, "bob")
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.add("&al", "bob")
	desk.send("PRIVMSG bob :hi")
	for _, n := range []string{"5x", "2.5", "1e3"} {
		if got := desk.command("&al", "history bob "+n, "").Trailing(); !strings.Contains(got, "is not a number of messages") {
			t.Fatalf("history bob %s: got %q, want the usage", n, got)
		}
	}
	desk.command("&al", "history bob 5", "The last 1 message with bob")
}

// TestChathistoryOfAControlChannelIsEmpty: CHATHISTORY on the control
// channel the client is in gets an empty batch, not INVALID_TARGET.
func TestChathistoryOfAControlChannelIsEmpty(t *testing.T) {
	_, g := historyGateway(t)
	desk := dial(t, g.ircAddr, "al", "al/desk:al-irc", historyCaps...)
	desk.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	desk.send("CHATHISTORY LATEST &al * 10")
	if got := batchLines(desk, "chathistory"); len(got) != 0 {
		t.Errorf("CHATHISTORY LATEST &al: %v, want none", got)
	}
}
