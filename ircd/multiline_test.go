package ircd

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/internal/promtest"
)

var multilineCaps = []string{"batch", "draft/multiline", "echo-message", "message-tags", "server-time", "labeled-response"}

// batchOf checks that msgs are one multiline batch from nick to target
// and returns its opening line and the lines inside it.
func batchOf(t *testing.T, msgs []*irc.Message, nick, target string) (*irc.Message, []*irc.Message) {
	t.Helper()
	if len(msgs) < 3 {
		t.Fatalf("got %v, want a multiline batch", msgStrings(msgs))
	}
	open, end := msgs[0], msgs[len(msgs)-1]
	if open.Command != "BATCH" || open.Param(1) != "draft/multiline" || open.Param(2) != target || open.Name != nick ||
		!strings.HasPrefix(open.Param(0), "+") {
		t.Fatalf("batch start %q, want BATCH +ref draft/multiline %s from %s", open, target, nick)
	}
	ref := open.Param(0)[1:]
	if end.Command != "BATCH" || end.Param(0) != "-"+ref {
		t.Fatalf("batch end %q, want BATCH -%s", end, ref)
	}
	inner := msgs[1 : len(msgs)-1]
	for _, m := range inner {
		if m.Tags["batch"] != ref || m.Param(0) != target || m.Name != nick {
			t.Fatalf("line %q: want batch=%s, to %s from %s", m, ref, target, nick)
		}
		if _, ok := m.Tags["msgid"]; ok {
			t.Errorf("line %q: the msgid goes on the batch start only", m)
		}
	}
	return open, inner
}

// linesOf returns the texts of lines, a "+" before those that carry
// draft/multiline-concat.
func linesOf(lines []*irc.Message) []string {
	var out []string
	for _, m := range lines {
		s := m.Trailing()
		if _, ok := m.Tags["draft/multiline-concat"]; ok {
			s = "+" + s
		}
		out = append(out, s)
	}
	return out
}

// TestMultilineFromClient: a client's multiline batch reaches the backend
// as one message with its line breaks (concat lines joined without one),
// and comes back to it as one batch with one msgid (that message split
// again); a labeled batch gets
// its label on the echo's batch start, and no ACK for the BATCH lines.
func TestMultilineFromClient(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me", multilineCaps...)
	c.send(t,
		"@label=L1;+draft/reply=x;+bad!name=y BATCH +a draft/multiline ann", // a tag no client may name so is dropped
		"@batch=a PRIVMSG ann hello",
		"@batch=a PRIVMSG ann :",
		"@batch=a privmsg ANN :how is ",
		"@batch=a;draft/multiline-concat PRIVMSG ann :everyone?",
		"BATCH -a")
	got := c.sync(t)
	if evs := fc.drain(); len(evs) != 1 || evs[0] != "message PRIVMSG ann hello\n\nhow is everyone? tags=+draft/reply=x" {
		t.Errorf("backend got %q, want one message with the lines and the batch's client tag", evs)
	}
	open, lines := batchOf(t, got, "me", "ann")
	if open.Tags["label"] != "L1" || open.Tags["msgid"] == "" || open.Tags["time"] == "" || open.Tags["+draft/reply"] != "x" {
		t.Errorf("echo batch start %q: want the label, a msgid, a time and the client tag", open)
	}
	if _, ok := open.Tags["+bad!name"]; ok {
		t.Errorf("echo batch start %q: want no tag with an invalid name", open)
	}
	// The echo is the message as the backend took it, split again.
	if want := []string{"hello", "", "how is everyone?"}; fmt.Sprint(linesOf(lines)) != fmt.Sprint(want) {
		t.Errorf("echo lines %q, want %q", linesOf(lines), want)
	}

	// A message to oneself: the echo, then the delivery, both batches.
	c.send(t, "BATCH +b draft/multiline me", "@batch=b PRIVMSG me :one", "@batch=b PRIVMSG me :two", "BATCH -b")
	got = c.sync(t)
	if len(got) != 8 {
		t.Fatalf("to oneself: got %v, want two batches of two lines", msgStrings(got))
	}
	batchOf(t, got[:4], "me", "me")
	batchOf(t, got[4:], "me", "me")
}

// TestMultilineRefused: a malformed batch (one without a target too), or
// one over the limits, gets the FAIL BATCH code the spec gives and nothing
// of it is sent.
func TestMultilineRefused(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	many := func(n int, line string) []string {
		out := []string{"BATCH +x draft/multiline ann"}
		for range n {
			out = append(out, "@batch=x PRIVMSG ann :"+line)
		}
		return append(out, "BATCH -x")
	}
	long := strings.Repeat("y", 400)
	for _, tc := range []struct {
		name  string
		caps  []string
		send  []string
		fails []string // the FAIL's code and parameters, the text left out
	}{
		{"target", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG tom :hi", "@batch=x PRIVMSG ann :hi", "BATCH -x"},
			[]string{"MULTILINE_INVALID_TARGET ann tom"}},
		{"max lines", multilineCaps, many(MultilineMaxLines+1, "z"), []string{"MULTILINE_MAX_LINES " + strconv.Itoa(MultilineMaxLines)}},
		{"max bytes", multilineCaps, many(MultilineMaxBytes/len(long)+1, long), []string{"MULTILINE_MAX_BYTES " + strconv.Itoa(MultilineMaxBytes)}},
		{"concat blank", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :a ", "@batch=x;draft/multiline-concat PRIVMSG ann :", "BATCH -x"},
			[]string{"MULTILINE_INVALID"}},
		{"blank only", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :", "@batch=x PRIVMSG ann : ", "BATCH -x"},
			[]string{"MULTILINE_INVALID"}},
		{"empty", multilineCaps, []string{"BATCH +x draft/multiline ann", "BATCH -x"}, []string{"MULTILINE_INVALID"}},
		{"mixed", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :a", "@batch=x NOTICE ann :b", "BATCH -x"},
			[]string{"MULTILINE_INVALID"}},
		{"tagmsg", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x TAGMSG ann", "BATCH -x"}, []string{"MULTILINE_INVALID"}},
		{"unknown batch", multilineCaps, []string{"@batch=q PRIVMSG ann :a", "BATCH -q", "BATCH q"},
			[]string{"MULTILINE_INVALID", "MULTILINE_INVALID", "MULTILINE_INVALID"}},
		{"no target", multilineCaps, []string{"BATCH +x draft/multiline", "@batch=x PRIVMSG ann :a", "BATCH -x"},
			[]string{"MULTILINE_INVALID", "MULTILINE_INVALID", "MULTILINE_INVALID"}},
		{"empty target", multilineCaps, []string{"BATCH +x draft/multiline :", "@batch=x PRIVMSG ann :a", "BATCH -x"},
			[]string{"MULTILINE_INVALID", "MULTILINE_INVALID", "MULTILINE_INVALID"}},
		{"no target, one open", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :a", "BATCH +y draft/multiline",
			"@batch=x PRIVMSG ann :b", "BATCH -x"}, []string{"MULTILINE_INVALID", "MULTILINE_INVALID", "MULTILINE_INVALID", "MULTILINE_INVALID"}},
		{"action, then text", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :\x01ACTION waves\x01", "@batch=x PRIVMSG ann :and smiles", "BATCH -x"},
			[]string{"MULTILINE_INVALID"}},
		{"text, then action", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :hi", "@batch=x PRIVMSG ann :\x01ACTION waves\x01", "BATCH -x"},
			[]string{"MULTILINE_INVALID"}},
		{"other type", multilineCaps, []string{"BATCH +x chathistory ann"}, []string{"MULTILINE_INVALID"}},
		{"two at once", multilineCaps, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :a", "BATCH +y draft/multiline ann",
			"@batch=y PRIVMSG ann :b", "BATCH -y", "BATCH -x"}, []string{"MULTILINE_INVALID", "MULTILINE_INVALID", "MULTILINE_INVALID"}},
		{"without the capability", []string{"batch", "echo-message"}, []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :a", "BATCH -x"},
			[]string{"MULTILINE_INVALID", "MULTILINE_INVALID", "MULTILINE_INVALID"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, fc, _ := register(t, addr, b, "me", tc.caps...)
			c.send(t, tc.send...)
			var fails []string
			for _, m := range c.sync(t) {
				if m.Command != "FAIL" || m.Param(0) != "BATCH" {
					t.Errorf("unexpected %q", m)
					continue
				}
				fails = append(fails, strings.Join(m.Params[1:len(m.Params)-1], " "))
			}
			if fmt.Sprint(fails) != fmt.Sprint(tc.fails) {
				t.Errorf("FAIL BATCH %q, want %q", fails, tc.fails)
			}
			if evs := fc.drain(); len(evs) != 0 {
				t.Errorf("backend got %q, want nothing", evs)
			}
		})
	}
}

// TestMultilineFloodExempt: a batch's lines take no flood-control token,
// so a pasted batch goes at once; the BATCH lines still do.
func TestMultilineFloodExempt(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Metrics = reg
	cfg.FloodRate, cfg.FloodBurst = 1, 10
	b := newBackend()
	addr, _ := startServer(t, cfg, b)
	c, fc, _ := register(t, addr, b, "me", "batch", "draft/multiline")
	send := []string{"BATCH +x draft/multiline ann"}
	for i := range MultilineMaxLines {
		send = append(send, fmt.Sprintf("@batch=x PRIVMSG ann :line %d", i))
	}
	c.send(t, append(send, "BATCH -x")...)
	c.sync(t)
	if got := promtest.Value(t, reg, "msimircd_irc_flood_delays_total"); got != 0 {
		t.Errorf("flood delays: got %v, want none for a batch's lines", got)
	}
	if evs := fc.drain(); len(evs) != 1 || strings.Count(evs[0], "\n") != MultilineMaxLines-1 {
		t.Errorf("backend got %d events, want one message of %d lines", len(evs), MultilineMaxLines)
	}
}

// TestMultilineDelivery: a text with line breaks, or too long for a line,
// goes to a multiline client as one batch (blank lines kept, a long line's
// pieces after the first marked concat, the msgid on the batch start), in
// a chathistory batch too; a client without the capability gets the lines
// as before.
func TestMultilineDelivery(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	ml, mfc, _ := register(t, addr, b, "me", multilineCaps...)
	plain, pfc, _ := register(t, addr, b, "me", "message-tags", "batch")
	long := strings.Repeat("word ", 120) // 600 bytes: two lines
	text := "one\n\n" + long
	when := time.Date(2007, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, fc := range []*fakeConn{mfc, pfc} {
		fc.c.Deliver(Delivery{From: "ann", Text: text, MsgID: "m1", Time: when})
		fc.c.Deliver(Delivery{From: "ann", Text: "short", MsgID: "m2"})
		fc.c.Deliver(Delivery{From: "ann", Text: "\x01ACTION waves\nagain\x01", MsgID: "m3"})
	}

	got := ml.sync(t)
	if len(got) < 3 {
		t.Fatalf("got %v", msgStrings(got))
	}
	n := len(got) - 3 // the batch, then "short" and the two action lines
	open, lines := batchOf(t, got[:n], "ann", "me")
	if open.Tags["msgid"] != "m1" || open.Tags["time"] != "2007-06-01T12:00:00.000Z" {
		t.Errorf("batch start %q: want msgid m1 and the time", open)
	}
	ls := linesOf(lines)
	if len(ls) != 4 || ls[0] != "one" || ls[1] != "" || strings.HasPrefix(ls[2], "+") || !strings.HasPrefix(ls[3], "+") ||
		ls[2]+ls[3][1:] != long {
		t.Errorf("lines %q: want one, a blank line, and the long line in two pieces", ls)
	}
	for _, m := range lines {
		if m.Tags["time"] != "2007-06-01T12:00:00.000Z" {
			t.Errorf("line %q without the time", m)
		}
	}
	checkMsgs(t, got[n:], []want{w("PRIVMSG", "me", "short"), w("PRIVMSG", "me", "\x01ACTION waves\x01"), w("PRIVMSG", "me", "\x01ACTION again\x01")})

	got = plain.sync(t)
	if len(got) != 6 || got[0].Trailing() != "one" || got[0].Tags["msgid"] != "m1" || got[1].Tags["msgid"] != "" ||
		got[1].Trailing()+got[2].Trailing() != long {
		t.Errorf("without multiline: got %v, want one, then the long line in two, no blank line", msgStrings(got))
	}

	// History: the multiline batch inside the chathistory batch.
	mfc.c.DeliverHistory("ann", []Delivery{{From: "ann", Text: "a\nb", MsgID: "h1", Time: when}})
	got = ml.sync(t)
	if len(got) != 6 || got[0].Param(1) != "chathistory" || got[1].Tags["batch"] != got[0].Param(0)[1:] {
		t.Fatalf("history: got %v, want a multiline batch inside the chathistory one", msgStrings(got))
	}
	if _, lines := batchOf(t, got[1:5], "ann", "me"); fmt.Sprint(linesOf(lines)) != "[a b]" {
		t.Errorf("history lines %q", linesOf(lines))
	}
}

// TestMultilineFloodStrayLines: only the lines a multiline batch takes are
// free of flood control; lines tagged with a batch that is not open, or
// that was refused, cost a token as any other line.
func TestMultilineFloodStrayLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		open []string
	}{
		{"no batch open", nil},
		{"refused batch", []string{"BATCH +x draft/multiline ann", "@batch=x PRIVMSG tom :wrong target"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			cfg := testConfig()
			cfg.Metrics = reg
			// 12 lines at 5 a second after a burst of 2: the 10 past the
			// burst each wait for a token unless the server took over
			// 200 ms for the line before (a machine busy with other tests
			// under -race took over 50 ms for a few); a batch's lines
			// never wait. Half of them waiting tells the two apart.
			cfg.FloodRate, cfg.FloodBurst = 5, 2
			const lines, wantDelays = 12, 6
			b := newBackend()
			addr, _ := startServer(t, cfg, b)
			c, _, _ := register(t, addr, b, "me", "batch", "draft/multiline")
			send := tc.open
			for i := range lines {
				send = append(send, fmt.Sprintf("@batch=x PRIVMSG ann :line %d", i))
			}
			c.send(t, send...)
			c.sync(t)
			got := promtest.Value(t, reg, "msimircd_irc_flood_delays_total")
			if got < wantDelays {
				t.Errorf("flood delays: got %v, want at least %d for %d lines outside a batch", got, wantDelays, lines)
			}
		})
	}
}

// TestMultilineLabelTwoOpen: a labeled batch dropped because another was
// opened before its end still gets its labeled reply, a FAIL, as does the
// second; an unlabeled one gets its FAIL outside the second's reply.
func TestMultilineLabelTwoOpen(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me", multilineCaps...)
	c.send(t, "@label=L1 BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :a",
		"@label=L2 BATCH +y draft/multiline ann", "@batch=y PRIVMSG ann :b", "BATCH -y", "BATCH -x")
	labels := map[string]string{}
	for _, m := range c.sync(t) {
		if l, ok := m.Tags["label"]; ok {
			labels[l] = m.Command + " " + m.Param(0) + " " + m.Param(1)
		}
	}
	for _, l := range []string{"L1", "L2"} {
		if labels[l] != "FAIL BATCH MULTILINE_INVALID" {
			t.Errorf("reply labeled %s: got %q, want FAIL BATCH MULTILINE_INVALID", l, labels[l])
		}
	}

	// A batch without a label gets its FAIL apart too, not inside the
	// labeled reply of the BATCH that dropped it.
	c.send(t, "BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :a", "@label=L3 BATCH +y draft/multiline ann", "BATCH -y")
	got := c.sync(t)
	checkMsgs(t, got, []want{w("FAIL", "BATCH", "MULTILINE_INVALID", "?"), w("FAIL", "BATCH", "MULTILINE_INVALID", "?")})
	if _, ok := got[0].Tags["label"]; ok || got[1].Tags["label"] != "L3" {
		t.Errorf("got %v, want the open batch's FAIL unlabeled, then L3's", msgStrings(got))
	}
	if evs := fc.drain(); len(evs) != 0 {
		t.Errorf("backend got %q, want nothing", evs)
	}
}

// TestMultilineLabeledHistory: a multiline batch inside a labeled
// CHATHISTORY's chathistory batch ends inside it (its BATCH end carries the
// chathistory batch's reference, as its start does), and the chathistory
// batch carries the label itself, as it does without a multiline message.
func TestMultilineLabeledHistory(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", append(labelCaps, "draft/chathistory", "draft/multiline")...)
	e.fh.set(func() { e.fh.msgs = []HistoryMessage{{Delivery{From: "tom", Text: "a\nb", MsgID: "m1"}}} })
	c.send(t, "@label=h1 CHATHISTORY LATEST tom * 10")
	got := c.sync(t)
	if len(got) != 6 || got[0].Param(1) != "chathistory" || got[0].Tags["label"] != "h1" {
		t.Fatalf("got %v, want the labeled chathistory batch around one multiline batch", msgStrings(got))
	}
	ch := got[0].Param(0)[1:]
	open, end := got[1], got[4]
	if open.Tags["batch"] != ch || end.Tags["batch"] != ch {
		t.Errorf("multiline batch start %q and end %q: want both tagged batch=%s", open, end, ch)
	}
	if _, lines := batchOf(t, got[1:5], "tom", "me"); fmt.Sprint(linesOf(lines)) != "[a b]" {
		t.Errorf("lines %q, want [a b]", linesOf(lines))
	}
}

// TestMultilineFallbackMsgID: a multiline message sent to a client
// without draft/multiline (the lines, blank ones left out) carries its
// msgid on the first line only, as the multiline spec's fallback asks, and
// the id is the one its batch carries to a multiline client, as the echo
// to a client without multiline carries it; the time and client-only
// tags are on every line.
func TestMultilineFallbackMsgID(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	ml, mfc, _ := register(t, addr, b, "me", multilineCaps...)
	plain, pfc, _ := register(t, addr, b, "me", "message-tags", "server-time", "echo-message")
	long := strings.Repeat("word ", 120) // two lines
	when := time.Date(2007, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, from, to string
		d              Delivery
	}{
		{"from a buddy", "ann", "me", Delivery{From: "ann", Text: "hello\n\nhow is " + long, MsgID: "m1", Time: when, Tags: irc.Tags{"+draft/reply": "x"}}},
		{"own, from another client", "me", "ann", Delivery{Self: true, Target: "ann", Text: "hello\n\nhow is " + long, MsgID: "m2", Time: when, Tags: irc.Tags{"+draft/reply": "x"}}},
	} {
		mfc.c.Deliver(tc.d)
		open, _ := batchOf(t, ml.sync(t), tc.from, tc.to)
		if open.Tags["msgid"] != tc.d.MsgID {
			t.Errorf("%s: batch start %q, want msgid %s", tc.name, open, tc.d.MsgID)
		}
		pfc.c.Deliver(tc.d)
		got := plain.sync(t)
		if len(got) != 3 {
			t.Fatalf("%s: got %v, want three lines", tc.name, msgStrings(got))
		}
		for i, m := range got {
			id, has := m.Tags["msgid"]
			if i == 0 && id != tc.d.MsgID || i > 0 && has {
				t.Errorf("%s: line %d %q: got msgid %q, want %s on the first line only", tc.name, i, m, id, tc.d.MsgID)
			}
			if m.Tags["time"] != "2007-06-01T12:00:00.000Z" || m.Tags["+draft/reply"] != "x" {
				t.Errorf("%s: line %d %q: want the time and the client tag", tc.name, i, m)
			}
		}
	}

	// The echo of a long message to a client without multiline is split
	// the same way: its id on the first line only.
	plain.send(t, "PRIVMSG ann :"+strings.Repeat("y", 490))
	got := plain.sync(t)
	if len(got) != 2 || got[0].Tags["msgid"] == "" || got[1].Tags["msgid"] != "" {
		t.Errorf("echo: got %v, want two lines, the msgid on the first only", msgStrings(got))
	}
}

// TestMultilineOneLineEcho: a multiline batch of one short line comes
// back to its sender as a multiline batch, as it was sent (the label on
// the batch start), not as a plain PRIVMSG; so does its delivery to
// oneself. A plain PRIVMSG is still echoed plain.
func TestMultilineOneLineEcho(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me", multilineCaps...)
	c.send(t, "@label=L1 BATCH +a draft/multiline ann", "@batch=a PRIVMSG ann :hello", "BATCH -a")
	open, lines := batchOf(t, c.sync(t), "me", "ann")
	if open.Tags["label"] != "L1" || open.Tags["msgid"] == "" || fmt.Sprint(linesOf(lines)) != "[hello]" {
		t.Errorf("echo: batch start %q, lines %q, want the label, a msgid and the one line", open, linesOf(lines))
	}
	if evs := fc.drain(); len(evs) != 1 || evs[0] != "message PRIVMSG ann hello" {
		t.Errorf("backend got %q, want the one message", evs)
	}

	c.send(t, "BATCH +b draft/multiline me", "@batch=b NOTICE me :hi", "BATCH -b")
	got := c.sync(t)
	if len(got) != 6 {
		t.Fatalf("to oneself: got %v, want two batches of one line", msgStrings(got))
	}
	batchOf(t, got[:3], "me", "me")
	batchOf(t, got[3:], "me", "me")

	c.send(t, "@label=L2 PRIVMSG ann :plain")
	checkMsgs(t, c.sync(t), []want{w("PRIVMSG", "ann", "plain")})
}

// TestMultilineLabeledEnd: when the BATCH that ends a labeled batch has a
// label of its own, the batch's reply (its echo, or its FAIL) still
// carries the opening BATCH's label, and the closing one gets its ACK:
// each label is answered once.
func TestMultilineLabeledEnd(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, _, _ := register(t, addr, b, "me", multilineCaps...)
	for _, tc := range []struct {
		name, line string
		want       string // the command the opening label gets
	}{
		{"sent", "@batch=a PRIVMSG ann :hello", "BATCH"},
		{"refused", "@batch=a PRIVMSG ann :", "FAIL"},
	} {
		c.send(t, "@label=L1 BATCH +a draft/multiline ann", tc.line, "@label=L2 BATCH -a")
		labels := map[string][]string{}
		for _, m := range c.sync(t) {
			if l, ok := m.Tags["label"]; ok {
				labels[l] = append(labels[l], m.Command)
			}
		}
		if fmt.Sprint(labels["L1"]) != "["+tc.want+"]" || fmt.Sprint(labels["L2"]) != "[ACK]" {
			t.Errorf("%s: labels %v, want L1 on %s and L2 on an ACK", tc.name, labels, tc.want)
		}
	}
}

// TestMultilineCTCPAction: an action whose text spans a batch's lines
// (\x01ACTION on the first, the closing \x01, if any, at the very end) is
// one action: the backend gets it whole, and the echo (with or without
// message-tags, server-time and labeled-response) is not a multiline
// batch but an action on every line, each framed once, no \x01 left
// over.
func TestMultilineCTCPAction(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	for _, caps := range [][]string{multilineCaps, {"batch", "draft/multiline", "echo-message"}} {
		c, fc, _ := register(t, addr, b, "me", caps...)
		for _, tc := range []struct{ last, want string }{
			{"and smiles\x01", "\x01ACTION waves\nand smiles\x01"},
			{"and smiles", "\x01ACTION waves\nand smiles"},
		} {
			c.send(t, "BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :\x01ACTION waves", "@batch=x PRIVMSG ann :"+tc.last, "BATCH -x")
			got := c.sync(t)
			if evs := fc.drain(); len(evs) != 1 || evs[0] != "message PRIVMSG ann "+tc.want {
				t.Errorf("backend got %q, want the action whole", evs)
			}
			checkMsgs(t, got, []want{w("PRIVMSG", "ann", "\x01ACTION waves\x01"), w("PRIVMSG", "ann", "\x01ACTION and smiles\x01")})
		}
	}
}

// TestMultilineOwnCopy: the user's multiline message, delivered to
// another of their clients with the Input's Lines, reaches a multiline
// client as the same batch as the sender's echo (the same lines, the same
// concat tags), a batch of one short line too, even where that client's
// longer line would have split the text elsewhere; a client without
// multiline gets the text's lines as before.
func TestMultilineOwnCopy(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	// The sender's ident is long, so its lines are shorter than the
	// other client's.
	a := dial(t, addr)
	a.send(t, "CAP LS 302", "CAP REQ :"+strings.Join(multilineCaps, " "))
	expect(t, a, "CAP")
	if m := expect(t, a, "CAP"); m.Param(1) != "ACK" {
		t.Fatalf("got %q, want ACK", m)
	}
	a.send(t, "CAP END", "NICK me", "USER "+strings.Repeat("i", UserLen)+" 0 * :R")
	a.readUntil(t, irc.RPL_ENDOFMOTD)
	fa := b.conn(t, a)
	a.sync(t)
	other, fo, _ := register(t, addr, b, "me", multilineCaps...)
	plain, fp, _ := register(t, addr, b, "me", "message-tags", "batch")

	long := strings.Repeat("word ", 98)
	for _, tc := range []struct {
		name  string
		lines []string // the batch's PRIVMSG lines, after "@batch=x"
		text  string   // the message's text
	}{
		{"one short line", []string{" PRIVMSG ann :hello"}, "hello"},
		{"lines, a blank one, a long one, concat", []string{
			" PRIVMSG ann :hello", " PRIVMSG ann :", " PRIVMSG ann :" + long,
			" PRIVMSG ann :how is ", ";draft/multiline-concat PRIVMSG ann :everyone?",
		}, "hello\n\n" + long + "\nhow is everyone?"},
	} {
		send := []string{"BATCH +x draft/multiline ann"}
		for _, l := range tc.lines {
			send = append(send, "@batch=x"+l)
		}
		a.send(t, append(send, "BATCH -x")...)
		echoOpen, echo := batchOf(t, a.sync(t), "me", "ann")
		in := fa.lastInput()
		if in.Text != tc.text {
			t.Fatalf("%s: backend got %q, want %q", tc.name, in.Text, tc.text)
		}
		d := Delivery{Self: true, Target: "ann", Text: in.Text, Lines: in.Lines, MsgID: in.MsgID, Time: in.Time}
		fo.c.Deliver(d)
		open, lines := batchOf(t, other.sync(t), "me", "ann")
		if got, want := linesOf(lines), linesOf(echo); !slices.Equal(got, want) {
			t.Errorf("%s: other client got lines %q, want the echo's %q", tc.name, got, want)
		}
		if open.Tags["msgid"] != echoOpen.Tags["msgid"] || open.Tags["time"] != echoOpen.Tags["time"] {
			t.Errorf("%s: other client's batch start %q, want the echo's msgid and time (%q)", tc.name, open, echoOpen)
		}
		fp.c.Deliver(d)
		var joined []string
		for _, m := range plain.sync(t) {
			if m.Command != "PRIVMSG" {
				t.Fatalf("%s: without multiline got %q, want PRIVMSG lines", tc.name, m)
			}
			joined = append(joined, m.Trailing())
		}
		if got := strings.Join(joined, ""); got != strings.ReplaceAll(tc.text, "\n", "") {
			t.Errorf("%s: without multiline got %q, want the text's lines", tc.name, joined)
		}
	}
}

// TestFitBatch: a Delivery's Lines are used only when they are a batch's
// lines of its Text, and a line too long is cut further, its pieces after
// the first marked concat.
func TestFitBatch(t *testing.T) {
	t.Parallel()
	l := func(text string, concat bool) BatchLine { return BatchLine{Text: text, Concat: concat} }
	tests := []struct {
		name  string
		lines []BatchLine
		text  string
		max   int
		want  []BatchLine // nil: not used
	}{
		{"one line", []BatchLine{l("hi", false)}, "hi", 10, []BatchLine{l("hi", false)}},
		{"lines, blank, concat", []BatchLine{l("a", false), l("", false), l("b ", false), l("c", true)}, "a\n\nb c", 10,
			[]BatchLine{l("a", false), l("", false), l("b ", false), l("c", true)}},
		{"too long: cut further", []BatchLine{l("x", false), l("aaaa bbbb cc", false), l("d", true)}, "x\naaaa bbbb ccd", 6,
			[]BatchLine{l("x", false), l("aaaa ", false), l("bbbb ", true), l("cc", true), l("d", true)}},
		{"no lines", nil, "hi", 10, nil},
		{"other text", []BatchLine{l("hi", false)}, "[#c] <me> hi", 50, nil},
		{"text longer", []BatchLine{l("hi", false)}, "hi there", 50, nil},
		{"concat where text breaks", []BatchLine{l("a", false), l("b", true)}, "a\nb", 10, nil},
		{"break where text joins", []BatchLine{l("a", false), l("b", false)}, "ab", 10, nil},
		{"concat first", []BatchLine{l("a", true)}, "a", 10, nil},
		{"concat blank", []BatchLine{l("a", false), l("", true)}, "a", 10, nil},
		{"line break in a line", []BatchLine{l("a\nb", false)}, "a\nb", 10, nil},
		{"NUL in a line", []BatchLine{l("a\x00", false)}, "a\x00", 10, nil},
		{"invalid UTF-8", []BatchLine{l("a\xff", false)}, "a\xff", 10, nil},
		{"CTCP", []BatchLine{l("\x01ACTION x\x01", false)}, "\x01ACTION x\x01", 50, nil},
		{"blank only", []BatchLine{l(" ", false), l("", false)}, " \n", 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := fitBatch(tc.lines, tc.text, tc.max)
			if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tc.want, tc.want != nil)
			}
		})
	}
}

// TestMultilineRefusedLine: a line of a batch refused before it is run
// (not UTF-8, too long) drops the batch, labeled with the batch's label:
// nothing of the message is sent, not the rest of it without that line.
func TestMultilineRefusedLine(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	for _, tc := range []struct {
		name string
		line string
		want want
	}{
		{"not UTF-8", "@batch=x PRIVMSG ann :\xff", w("FAIL", "PRIVMSG", "INVALID_UTF8", "?")},
		{"too long", "@batch=x PRIVMSG ann :" + strings.Repeat("y", 600), w(errInputTooLong, "me", "?")},
		{"tags too long", "@batch=x;+big=" + strings.Repeat("z", maxClientTagsLen) + " PRIVMSG ann :two", w(errInputTooLong, "me", "?")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, fc, _ := register(t, addr, b, "me", multilineCaps...)
			c.send(t, "@label=m1 BATCH +x draft/multiline ann", "@batch=x PRIVMSG ann :one", tc.line, "@batch=x PRIVMSG ann :three", "BATCH -x")
			got := c.sync(t)
			checkMsgs(t, got, []want{tc.want, w("FAIL", "BATCH", "MULTILINE_INVALID", "?")})
			if got[1].Tags["label"] != "m1" {
				t.Errorf("got %q, want the batch's label m1", got[1])
			}
			if evs := fc.drain(); len(evs) != 0 {
				t.Errorf("backend got %q, want nothing", evs)
			}
		})
	}
}
