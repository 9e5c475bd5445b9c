package ircd

import (
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

var labelCaps = []string{"batch", "labeled-response", "message-tags", "server-time"}

// checkLabeledBatch checks that got is one labeled-response batch labeled
// label around lines with the given commands, and returns them.
func checkLabeledBatch(t *testing.T, got []*irc.Message, label string, cmds ...string) []*irc.Message {
	t.Helper()
	if len(got) != len(cmds)+2 {
		t.Fatalf("got %v, want a batch of %v", msgStrings(got), cmds)
	}
	start, end := got[0], got[len(got)-1]
	if start.Command != "BATCH" || start.Param(1) != "labeled-response" || start.Tags["label"] != label || !strings.HasPrefix(start.Param(0), "+") {
		t.Fatalf("got %q, want BATCH +ref labeled-response labeled %s", start, label)
	}
	ref := start.Param(0)[1:]
	checkMsg(t, end, w("BATCH", "-"+ref))
	inner := got[1 : len(got)-1]
	for i, m := range inner {
		if m.Command != cmds[i] || m.Tags["batch"] != ref {
			t.Fatalf("line %d: got %q, want %s in batch %s", i, m, cmds[i], ref)
		}
		if _, ok := m.Tags["label"]; ok {
			t.Fatalf("line %d: got %q, want no label inside the batch", i, m)
		}
	}
	return inner
}

// A labeled command gets its label on its one reply, on a batch around
// several, or on an ACK when there is none.
func TestLabeledResponse(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, _, _ := register(t, addr, b, "me", append(labelCaps, "echo-message")...)
	noEcho, _, _ := register(t, addr, b, "me", labelCaps...)
	plain, _, _ := register(t, addr, b, "me", "batch", "message-tags")

	single := []struct {
		cl   *tclient
		line string
		want want
	}{
		{c, "@label=a1 PING x", w("PONG", testServer, "x")},
		{c, "@label=a2 PONG x", w("ACK")},
		{c, "@label=a3 PRIVMSG ann :hi", w("PRIVMSG", "ann", "hi")}, // the echo
		{noEcho, "@label=a4 PRIVMSG ann :hi", w("ACK")},
		{c, "@label=a5 JOIN #nowhere", w(irc.ERR_NOSUCHCHANNEL, "me", "#nowhere", "No such channel")},
		{c, "@label=a6 FOO", w(irc.ERR_UNKNOWNCOMMAND, "me", "FOO", "Unknown command")},
		{c, "@label=a7;+other=x AWAY :gone", w(irc.RPL_NOWAWAY, "me", "You have been marked as being away")},
	}
	for _, tc := range single {
		tc.cl.send(t, tc.line)
		got := tc.cl.sync(t)
		checkMsgs(t, got, []want{tc.want})
		label := irc.MustParseMessage(tc.line).Tags["label"]
		if got[0].Tags["label"] != label {
			t.Fatalf("%s: got %q, want label %s", tc.line, got[0], label)
		}
	}

	c.send(t, "@label=b1 LUSERS")
	checkLabeledBatch(t, c.sync(t), "b1", irc.RPL_LUSERCLIENT, irc.RPL_LUSERCHANNELS, irc.RPL_LUSERME, rplLocalUsers, rplGlobalUsers)
	c.send(t, "@label=b2 WHOIS tom")
	checkLabeledBatch(t, c.sync(t), "b2", irc.RPL_WHOISUSER, irc.RPL_WHOISCHANNELS, irc.RPL_WHOISSERVER, irc.RPL_AWAY, irc.RPL_WHOISIDLE, irc.RPL_ENDOFWHOIS)

	// Not negotiated, too long or empty: no label, no ACK.
	for _, tc := range []struct {
		cl   *tclient
		line string
		want []want
	}{
		{plain, "@label=c1 PING y", []want{w("PONG", testServer, "y")}},
		{plain, "@label=c2 PONG y", nil},
		{c, "@label=" + strings.Repeat("x", 65) + " PONG y", nil},
		{c, "@label= PONG y", nil},
	} {
		tc.cl.send(t, tc.line)
		got := tc.cl.sync(t)
		checkMsgs(t, got, tc.want)
		for _, m := range got {
			if _, ok := m.Tags["label"]; ok {
				t.Fatalf("%s: got %q, want no label", tc.line, m)
			}
		}
	}
}

// An async WHOIS gets its labeled batch when the backend answers; lines of
// other commands meanwhile are not in it.
func TestLabeledAsyncWhois(t *testing.T) {
	t.Parallel()
	b := newBackend()
	asks := make(chan whoisAsk, 4)
	b.async = func(fc *fakeConn, nick string, answer func([]string)) { asks <- whoisAsk{fc, nick, answer} }
	addr, _ := startServer(t, testConfig(), b)
	c, _, _ := register(t, addr, b, "me", labelCaps...)
	c.send(t, "@label=w1 WHOIS tom")
	var a whoisAsk
	select {
	case a = <-asks:
	case <-time.After(5 * time.Second):
		t.Fatal("WhoisAsync not called")
	}
	c.send(t, "@label=w2 PING z")
	got := c.sync(t)
	checkMsgs(t, got, []want{w("PONG", testServer, "z")})
	if got[0].Tags["label"] != "w2" {
		t.Fatalf("got %q, want label w2", got[0])
	}
	a.answer([]string{"extra line"})
	inner := checkLabeledBatch(t, c.sync(t), "w1", irc.RPL_WHOISUSER, irc.RPL_WHOISCHANNELS, irc.RPL_WHOISSERVER, irc.RPL_AWAY, rplWhoisSpecial, irc.RPL_WHOISIDLE, irc.RPL_ENDOFWHOIS)
	if inner[4].Trailing() != "extra line" {
		t.Fatalf("got %q, want the backend's line", inner[4])
	}
}

// A labeled CHATHISTORY's chathistory batch carries the label itself; its
// FAIL, and a JOIN waiting for its read marker, are labeled whole when the
// answer comes.
func TestLabeledHistory(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", append(labelCaps, "draft/chathistory", "draft/read-marker")...)
	e.fh.set(func() { e.fh.msgs = convo(t); e.fh.hold = true })

	c.send(t, "@label=h1 CHATHISTORY LATEST tom * 10")
	e.query(t)
	checkMsgs(t, c.sync(t), nil)
	e.fh.release()
	got := c.sync(t)
	checkHistoryBatch(t, got, "tom", convo(t), []string{"m1", "m2", "m3"})
	if got[0].Tags["label"] != "h1" {
		t.Fatalf("got %q, want label h1 on the batch", got[0])
	}

	c.send(t, "@label=h2 CHATHISTORY LATEST tom * -1")
	got = c.sync(t)
	checkMsgs(t, got, []want{w("FAIL", "CHATHISTORY", "INVALID_PARAMS", "LATEST", "-1", "Invalid limit")})
	if got[0].Tags["label"] != "h2" {
		t.Fatalf("got %q, want label h2", got[0])
	}

	e.fh.set(func() { e.fh.hold = true })
	c.send(t, "@label=h3 MARKREAD ann")
	e.asked(t)
	e.ft.fire()
	got = c.sync(t)
	checkMsgs(t, got, []want{w("FAIL", "MARKREAD", "INTERNAL_ERROR", "ann", "The read timestamp could not be retrieved")})
	if got[0].Tags["label"] != "h3" {
		t.Fatalf("got %q, want label h3", got[0])
	}
	e.fh.release()

	e.fh.set(func() { e.fh.hold = true })
	c.send(t, "@label=h4 JOIN #other")
	e.asked(t)
	checkMsgs(t, c.sync(t), nil) // the whole reply waits
	e.fh.release()
	checkLabeledBatch(t, c.sync(t), "h4", "JOIN", irc.RPL_NAMREPLY, "MARKREAD", irc.RPL_ENDOFNAMES)
}

// A labeled message to oneself: the reply is the echo (echo-message) or an
// ACK; the delivery, a side effect, comes after it and never carries the
// label.
func TestLabeledSelfMessage(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	for _, tc := range []struct {
		caps []string
		want []string // each line: command and label
	}{
		{labelCaps, []string{"ACK s1", "PRIVMSG "}},
		{append(labelCaps, "echo-message"), []string{"PRIVMSG s1", "PRIVMSG "}}, // the echo, then the delivery
	} {
		c, _, _ := register(t, addr, b, "me", tc.caps...)
		c.send(t, "@label=s1 PRIVMSG me :note to self")
		var got []string
		for _, m := range c.sync(t) {
			got = append(got, m.Command+" "+m.Tags["label"])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("caps %v: got %q, want %q", tc.caps, got, tc.want)
		}
	}
}

// A labeled line refused before it runs (not UTF-8, too long, or of no
// multiline batch open) gets its refusal labeled, as any reply: a client
// that waits for every label it sent is not left waiting.
func TestLabeledRefusedLine(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, _, _ := register(t, addr, b, "me", append(labelCaps, "draft/multiline")...)
	for _, tc := range []struct {
		line string
		want want
	}{
		{"@label=r1 PRIVMSG ann :\xff\xfe", w("FAIL", "PRIVMSG", "INVALID_UTF8", "?")},
		{"@label=r2 PRIVMSG ann :" + strings.Repeat("x", 600), w(errInputTooLong, "me", "Input line was too long")},
		{"@label=r3;batch=none PRIVMSG ann :hi", w("FAIL", "BATCH", "MULTILINE_INVALID", "?")},
		{"@label=r4;batch=none PRIVMSG ann :\xff", w("FAIL", "PRIVMSG", "INVALID_UTF8", "?")},
		{"@label=r5;+big=" + strings.Repeat("z", maxClientTagsLen) + " PRIVMSG ann :hi", w(errInputTooLong, "me", "Input line was too long")},
	} {
		c.send(t, tc.line)
		got := c.sync(t)
		checkMsgs(t, got, []want{tc.want})
		if label := irc.ParseTags(tc.line[1:strings.IndexByte(tc.line, ' ')])["label"]; got[0].Tags["label"] != label {
			t.Errorf("%.40q: got %q, want label %s", tc.line, got[0], label)
		}
	}
}
