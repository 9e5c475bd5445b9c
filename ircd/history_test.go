package ircd

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

var histCaps = []string{"batch", "server-time", "message-tags", "draft/chathistory"}

// convo is a conversation with tom as the backend might return it: newest
// first, which ircd puts in order.
func convo(t testing.TB) []HistoryMessage {
	at := ts(t, "2024-05-06T07:08:09.010Z")
	return []HistoryMessage{
		{Delivery{From: "tom", Text: "third one", Time: at.Add(2 * time.Second), MsgID: "m3"}},
		{Delivery{Self: true, Text: "second", Time: at.Add(time.Second), MsgID: "m2"}},
		{Delivery{Command: "TAGMSG", From: "tom", Time: at.Add(time.Second), MsgID: "t1", Tags: irc.Tags{"+typing": "active"}}},
		{Delivery{From: "tom", Text: "first", Time: at, MsgID: "m1"}},
	}
}

var convoLines = map[string]string{
	"m1": "tom!tom@msim PRIVMSG me first",
	"m2": "me!u@127.0.0.1 PRIVMSG tom second",
	"m3": "tom!tom@msim PRIVMSG me :third one",
}

// checkHistoryBatch checks a chathistory batch of target holding the
// messages ids, in that order, each with its time and msgid tags.
func checkHistoryBatch(t *testing.T, got []*irc.Message, target string, msgs []HistoryMessage, ids []string) {
	t.Helper()
	if len(got) != len(ids)+2 {
		t.Fatalf("got %v, want a batch of %v", msgStrings(got), ids)
	}
	start, end := got[0], got[len(got)-1]
	if start.Command != "BATCH" || len(start.Params) != 3 || start.Params[1] != "chathistory" || start.Params[2] != target || start.Params[0][0] != '+' {
		t.Fatalf("got batch start %q, want BATCH +ref chathistory %s", start, target)
	}
	ref := start.Params[0][1:]
	if end.Command != "BATCH" || end.Param(0) != "-"+ref {
		t.Fatalf("got batch end %q, want BATCH -%s", end, ref)
	}
	byID := map[string]HistoryMessage{}
	for _, m := range msgs {
		byID[m.MsgID] = m
	}
	for i, m := range got[1 : len(got)-1] {
		id := ids[i]
		if m.Tags["msgid"] != id {
			t.Fatalf("line %d %q: got msgid %q, want %q (order %v)", i, m, m.Tags["msgid"], id, ids)
		}
		if want := convoLines[id]; want != "" && target == "tom" && lineOf(m) != want {
			t.Fatalf("line %d: got %q, want %q", i, lineOf(m), want)
		}
		if m.Tags["batch"] != ref || m.Tags["time"] != formatTime(byID[id].Time) {
			t.Fatalf("line %d %q: got tags %v, want batch %s and time %s", i, m, m.Tags, ref, formatTime(byID[id].Time))
		}
	}
}

// Every subcommand reaches the backend as a HistoryQuery, and its answer
// comes back in a chathistory batch, oldest first, within the limit.
func TestChathistorySubcommands(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	e.fh.set(func() { e.fh.msgs = convo(t) })
	at := func(s string) HistoryRef { return HistoryRef{Time: ts(t, s)} }
	id := func(s string) HistoryRef { return HistoryRef{MsgID: s} }
	tests := []struct {
		line string
		want HistoryQuery
		ids  []string
	}{
		{"CHATHISTORY LATEST tom * 10", HistoryQuery{"LATEST", "tom", HistoryRef{}, HistoryRef{}, 10}, []string{"m1", "m2", "m3"}},
		{"CHATHISTORY latest TOM timestamp=2024-01-01T00:00:00.000Z 50", HistoryQuery{"LATEST", "tom", at("2024-01-01T00:00:00.000Z"), HistoryRef{}, 50}, []string{"m1", "m2", "m3"}},
		{"CHATHISTORY LATEST tom msgid=m1 2", HistoryQuery{"LATEST", "tom", id("m1"), HistoryRef{}, 2}, []string{"m2", "m3"}},
		{"CHATHISTORY BEFORE tom msgid=m9 2", HistoryQuery{"BEFORE", "tom", id("m9"), HistoryRef{}, 2}, []string{"m2", "m3"}},
		{"CHATHISTORY AFTER tom timestamp=2024-05-06T07:08:00.000Z 2", HistoryQuery{"AFTER", "tom", at("2024-05-06T07:08:00.000Z"), HistoryRef{}, 2}, []string{"m1", "m2"}},
		{"CHATHISTORY AROUND tom msgid=m2 1", HistoryQuery{"AROUND", "tom", id("m2"), HistoryRef{}, 1}, []string{"m2"}},
		{"CHATHISTORY BETWEEN tom timestamp=2024-05-06T07:00:00.000Z timestamp=2024-05-06T08:00:00.000Z 2",
			HistoryQuery{"BETWEEN", "tom", at("2024-05-06T07:00:00.000Z"), at("2024-05-06T08:00:00.000Z"), 2}, []string{"m1", "m2"}},
		{"CHATHISTORY BETWEEN tom timestamp=2024-05-06T08:00:00.000Z timestamp=2024-05-06T07:00:00.000Z 2",
			HistoryQuery{"BETWEEN", "tom", at("2024-05-06T08:00:00.000Z"), at("2024-05-06T07:00:00.000Z"), 2}, []string{"m2", "m3"}},
		{"CHATHISTORY BETWEEN tom msgid=m0 msgid=m9 5", HistoryQuery{"BETWEEN", "tom", id("m0"), id("m9"), 5}, []string{"m1", "m2", "m3"}},
		{"CHATHISTORY LATEST gone * 5", HistoryQuery{"LATEST", "gone", HistoryRef{}, HistoryRef{}, 5}, []string{"m1", "m2", "m3"}},
	}
	for _, tc := range tests {
		c.send(t, tc.line)
		got := c.sync(t)
		if q := e.query(t); q != tc.want {
			t.Fatalf("%s: backend got %+v, want %+v", tc.line, q, tc.want)
		}
		checkHistoryBatch(t, got, tc.want.Target, e.fh.msgs, tc.ids)
	}
}

// A channel's history shows each message to the channel, joined or not;
// an empty answer is an empty batch.
func TestChathistoryChannelAndEmpty(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	e.fh.set(func() {
		e.fh.msgs = []HistoryMessage{
			{Delivery{From: "ann", Target: "#other", Text: "in other", Time: at, MsgID: "c1"}},
			{Delivery{Self: true, Target: "#other", Text: "me too", Time: at.Add(time.Second), MsgID: "c2"}},
		}
	})
	c.send(t, "CHATHISTORY LATEST #OTHER * 10")
	got := c.sync(t)
	e.query(t)
	checkHistoryBatch(t, got, "#other", e.fh.msgs, []string{"c1", "c2"})
	if l1, l2 := lineOf(got[1]), lineOf(got[2]); l1 != "ann!ann@msim PRIVMSG #other :in other" || l2 != "me!u@127.0.0.1 PRIVMSG #other :me too" {
		t.Fatalf("got %q and %q, want the channel's messages", l1, l2)
	}
	e.fh.set(func() { e.fh.msgs = nil })
	c.send(t, "CHATHISTORY LATEST ann * 10")
	got = c.sync(t)
	e.query(t)
	checkHistoryBatch(t, got, "ann", nil, nil)
}

// A client without batch, server-time and message-tags gets the messages
// one by one, dated in the text.
func TestChathistoryPlainClient(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", "draft/chathistory")
	e.fh.set(func() { e.fh.msgs = convo(t) })
	c.send(t, "CHATHISTORY LATEST tom * 10")
	got := c.sync(t)
	e.query(t)
	want := []string{
		"tom!tom@msim PRIVMSG me :[2024-05-06 07:08:09 UTC] first",
		"me!u@127.0.0.1 PRIVMSG tom :[2024-05-06 07:08:10 UTC] second",
		"tom!tom@msim PRIVMSG me :[2024-05-06 07:08:11 UTC] third one",
	}
	var lines []string
	for _, m := range got {
		if len(m.Tags) != 0 {
			t.Fatalf("got tags on %q, want none", m)
		}
		lines = append(lines, lineOf(m))
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("got %q, want %q", lines, want)
	}
}

// Bad CHATHISTORY commands get the spec's FAIL codes, and never reach the
// backend.
func TestChathistoryFails(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	e.fh.set(func() { e.fh.msgs = convo(t) })
	fail := func(params ...string) []want { return []want{w("FAIL", append([]string{"CHATHISTORY"}, params...)...)} }
	tests := []struct {
		name string
		line string
		want []want
	}{
		{"no subcommand", "CHATHISTORY", []want{w(irc.ERR_NEEDMOREPARAMS, "me", "CHATHISTORY", "Not enough parameters")}},
		{"bad subcommand", "CHATHISTORY FOO tom * 10", fail("INVALID_PARAMS", "FOO", "Unknown command")},
		{"missing limit", "CHATHISTORY LATEST tom *", fail("INVALID_PARAMS", "LATEST", "Insufficient parameters")},
		{"missing target", "CHATHISTORY BEFORE", fail("INVALID_PARAMS", "BEFORE", "Insufficient parameters")},
		{"between one ref", "CHATHISTORY BETWEEN tom msgid=a 10", fail("INVALID_PARAMS", "BETWEEN", "Insufficient parameters")},
		{"targets missing", "CHATHISTORY TARGETS timestamp=2024-05-06T07:08:09.010Z 10", fail("INVALID_PARAMS", "TARGETS", "Insufficient parameters")},
		{"too many", "CHATHISTORY LATEST tom * 10 20", fail("INVALID_PARAMS", "LATEST", "Too many parameters")},
		{"bad timestamp", "CHATHISTORY BEFORE tom timestamp=yesterday 10", fail("INVALID_PARAMS", "BEFORE", "timestamp=yesterday", "Invalid timestamp")},
		{"timestamp no zone", "CHATHISTORY AFTER tom timestamp=2024-05-06T07:08:09 10", fail("INVALID_PARAMS", "AFTER", "timestamp=2024-05-06T07:08:09", "Invalid timestamp")},
		{"empty msgid", "CHATHISTORY BEFORE tom msgid= 10", fail("INVALID_PARAMS", "BEFORE", "msgid=", "Invalid msgid")},
		{"msgid with colon", "CHATHISTORY AROUND tom msgid=:x 10", fail("INVALID_PARAMS", "AROUND", "msgid=:x", "Invalid msgid")},
		{"star not latest", "CHATHISTORY BEFORE tom * 10", fail("INVALID_PARAMS", "BEFORE", "*", "Invalid message reference")},
		{"bare ref", "CHATHISTORY AFTER tom 12345 10", fail("INVALID_PARAMS", "AFTER", "12345", "Invalid message reference")},
		{"unknown ref type", "CHATHISTORY AFTER tom seq=5 10", fail("INVALID_PARAMS", "AFTER", "seq=5", "Invalid message reference")},
		{"targets msgid", "CHATHISTORY TARGETS msgid=a timestamp=2024-05-06T07:08:09.010Z 10", fail("INVALID_PARAMS", "TARGETS", "msgid=a", "Invalid timestamp")},
		{"limit negative", "CHATHISTORY LATEST tom * -5", fail("INVALID_PARAMS", "LATEST", "-5", "Invalid limit")},
		{"limit too big", "CHATHISTORY LATEST tom * 51", fail("INVALID_PARAMS", "LATEST", "51", "Invalid limit")},
		{"limit overflow", "CHATHISTORY LATEST tom * 99999999999999999999999", fail("INVALID_PARAMS", "LATEST", "99999999999999999999999", "Invalid limit")},
		{"limit word", "CHATHISTORY LATEST tom * ten", fail("INVALID_PARAMS", "LATEST", "ten", "Invalid limit")},
		{"limit with space", "CHATHISTORY LATEST tom * :1 0", fail("INVALID_PARAMS", "LATEST", "*", "Invalid limit")},
		{"unknown channel", "CHATHISTORY LATEST #nowhere * 10", fail("INVALID_TARGET", "LATEST", "#nowhere", "Messages could not be retrieved")},
		{"invalid nick", "CHATHISTORY LATEST 9lives * 10", fail("INVALID_TARGET", "LATEST", "9lives", "Messages could not be retrieved")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.send(t, tc.line)
			checkMsgs(t, c.sync(t), tc.want)
			select {
			case q := <-e.fh.queries:
				t.Fatalf("backend asked %+v, want no query", q)
			default:
			}
		})
	}
}

// A backend error is MESSAGE_ERROR, or INVALID_TARGET when it says so; no
// answer in time is MESSAGE_ERROR, and a late answer is dropped.
func TestChathistoryBackendFails(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	e.fh.set(func() { e.fh.msgs = convo(t) })
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"error", errors.New("database is down"), "MESSAGE_ERROR"},
		{"invalid target", fmt.Errorf("blocked: %w", ErrInvalidTarget), "INVALID_TARGET"},
	}
	for _, tc := range tests {
		e.fh.set(func() { e.fh.err = tc.err })
		c.send(t, "CHATHISTORY BEFORE tom timestamp=2024-05-06T07:08:09.010Z 10")
		checkMsgs(t, c.sync(t), []want{w("FAIL", "CHATHISTORY", tc.want, "BEFORE", "tom", "Messages could not be retrieved")})
		e.query(t)
	}
	e.fh.set(func() { e.fh.err, e.fh.hold = nil, true })
	c.send(t, "CHATHISTORY LATEST ann * 10")
	e.query(t)
	checkMsgs(t, c.sync(t), nil) // waiting for the backend
	if n := e.ft.fire(); n != 1 {
		t.Fatalf("got %d timers, want 1", n)
	}
	checkMsgs(t, c.sync(t), []want{w("FAIL", "CHATHISTORY", "MESSAGE_ERROR", "LATEST", "ann", "Messages could not be retrieved")})
	e.fh.release()
	checkMsgs(t, c.sync(t), nil)
}

// Replies come in the order asked: a quick answer waits for a slower one.
func TestChathistoryOrder(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	e.fh.set(func() { e.fh.msgs = convo(t) })
	e.fh.set(func() { e.fh.hold = true })
	c.send(t, "CHATHISTORY LATEST tom * 10")
	e.query(t)
	e.fh.set(func() { e.fh.hold = false })
	c.send(t, "MARKREAD tom")
	checkMsgs(t, c.sync(t), nil)
	e.fh.release()
	got := c.readN(t, 6)
	checkHistoryBatch(t, got[:5], "tom", e.fh.msgs, []string{"m1", "m2", "m3"})
	checkMsg(t, got[5], w("MARKREAD", "tom", "*"))
}

// TARGETS lists the conversations the backend names, oldest first, within
// the limit, in a draft/chathistory-targets batch.
func TestChathistoryTargets(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	e.fh.set(func() {
		e.fh.targets = []HistoryTarget{
			{"tom", at.Add(5 * time.Second)},
			{"bad nick", at},
			{"&bitlbee", at.Add(time.Second)},
			{"ann", at.Add(3 * time.Second)},
		}
	})
	tests := []struct {
		line string
		want TargetsQuery
		got  []string
	}{
		{"CHATHISTORY TARGETS timestamp=2024-05-06T00:00:00.000Z timestamp=2024-05-07T00:00:00.000Z 10",
			TargetsQuery{ts(t, "2024-05-06T00:00:00.000Z"), ts(t, "2024-05-07T00:00:00.000Z"), 10},
			[]string{"&bitlbee 2024-05-06T07:08:10.010Z", "ann 2024-05-06T07:08:12.010Z", "tom 2024-05-06T07:08:14.010Z"}},
		{"CHATHISTORY TARGETS timestamp=2024-05-06T00:00:00.000Z timestamp=2024-05-07T00:00:00.000Z 2",
			TargetsQuery{ts(t, "2024-05-06T00:00:00.000Z"), ts(t, "2024-05-07T00:00:00.000Z"), 2},
			[]string{"&bitlbee 2024-05-06T07:08:10.010Z", "ann 2024-05-06T07:08:12.010Z"}},
		{"CHATHISTORY TARGETS timestamp=2024-05-07T00:00:00.000Z timestamp=2024-05-06T00:00:00.000Z 2",
			TargetsQuery{ts(t, "2024-05-07T00:00:00.000Z"), ts(t, "2024-05-06T00:00:00.000Z"), 2},
			[]string{"ann 2024-05-06T07:08:12.010Z", "tom 2024-05-06T07:08:14.010Z"}},
	}
	for _, tc := range tests {
		c.send(t, tc.line)
		got := c.sync(t)
		select {
		case q := <-e.fh.tqs:
			if q != tc.want {
				t.Fatalf("backend got %+v, want %+v", q, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("HistoryTargets not called")
		}
		if len(got) != len(tc.got)+2 || got[0].Command != "BATCH" || got[0].Param(1) != "draft/chathistory-targets" {
			t.Fatalf("got %v, want a draft/chathistory-targets batch of %d", msgStrings(got), len(tc.got))
		}
		ref := got[0].Param(0)[1:]
		for i, m := range got[1 : len(got)-1] {
			checkMsg(t, m, w("CHATHISTORY", "TARGETS", "?", "?"))
			if s := m.Param(1) + " " + m.Param(2); s != tc.got[i] || m.Tags["batch"] != ref {
				t.Fatalf("line %d: got %q in batch %q, want %q in %q", i, s, m.Tags["batch"], tc.got[i], ref)
			}
		}
		checkMsg(t, got[len(got)-1], w("BATCH", "-"+ref))
	}
}

// The caps are offered with Config.History, the ISUPPORT tokens and the
// commands need a HistoryHandler too.
func TestHistoryAdvertised(t *testing.T) {
	t.Parallel()
	off := historyConfig()
	off.History = false
	tests := []struct {
		name        string
		cfg         Config
		handler     bool
		caps, isupp bool
	}{
		{"history and handler", historyConfig(), true, true, true},
		{"history without handler", historyConfig(), false, true, false},
		{"handler without history", off, true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := startHistory(t, tc.cfg, tc.handler)
			c := dial(t, e.addr)
			c.send(t, "CAP LS 302")
			ls := strings.Fields(expect(t, c, "CAP").Trailing())
			for _, cp := range []string{"draft/chathistory", "draft/read-marker", "labeled-response"} {
				want := tc.caps || cp == "labeled-response"
				if slices.Contains(ls, cp) != want {
					t.Fatalf("CAP LS %v: got %s %v, want %v", ls, cp, !want, want)
				}
			}
			c.send(t, "CAP REQ :draft/chathistory draft/read-marker")
			if got := expect(t, c, "CAP").Param(1); (got == "ACK") != tc.caps {
				t.Fatalf("got CAP %s, want ACK %v", got, tc.caps)
			}
			c.send(t, "CAP END", "NICK me", "USER u 0 * :R")
			var toks []string
			for _, m := range c.readUntil(t, irc.RPL_ENDOFMOTD) {
				if m.Command == irc.RPL_ISUPPORT {
					toks = append(toks, m.Params[1:len(m.Params)-1]...)
				}
			}
			for _, tok := range []string{"CHATHISTORY=50", "MSGREFTYPES=timestamp,msgid"} {
				if slices.Contains(toks, tok) != tc.isupp {
					t.Fatalf("ISUPPORT %v: got %s %v, want %v", toks, tok, !tc.isupp, tc.isupp)
				}
			}
			c.sync(t) // the world's lines
			c.send(t, "CHATHISTORY LATEST tom * 10", "MARKREAD tom")
			got := c.sync(t)
			if tc.isupp { // no history, no batch: only the marker
				checkMsgs(t, got, []want{w("MARKREAD", "tom", "*")})
				return
			}
			checkMsgs(t, got, []want{
				w(irc.ERR_UNKNOWNCOMMAND, "me", "CHATHISTORY", "Unknown command"),
				w(irc.ERR_UNKNOWNCOMMAND, "me", "MARKREAD", "Unknown command"),
			})
		})
	}
}

// Too many replies waiting for the backend: 263, and nothing asked.
func TestChathistoryTryAgain(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	e.fh.set(func() { e.fh.hold = true })
	for range maxAsyncInFlight {
		c.send(t, "CHATHISTORY LATEST tom * 10")
		e.query(t)
	}
	c.send(t, "CHATHISTORY LATEST tom * 10")
	checkMsgs(t, c.sync(t), []want{w(rplTryAgain, "me", "CHATHISTORY", "Please wait a while and try again.")})
	e.fh.release()
	for range maxAsyncInFlight {
		c.readUntil(t, "BATCH")
		c.readUntil(t, "BATCH")
	}
}

// A reply longer than the send queue has room for gives the messages
// that fit, counted from where the request counts (the newest for LATEST
// and BEFORE, the oldest for AFTER, the middle for AROUND), so that the
// client pages on from them; only a message that does not fit alone is
// MESSAGE_ERROR.
func TestChathistoryReplyFitsTheSendQ(t *testing.T) {
	t.Parallel()
	cfg := historyConfig()
	cfg.SendQ = 40
	e := startHistory(t, cfg, true)
	c, _ := e.client(t, "me", histCaps...)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	var msgs []HistoryMessage
	var ids []string
	for i := range 45 {
		id := fmt.Sprintf("m%02d", i)
		ids = append(ids, id)
		msgs = append(msgs, HistoryMessage{Delivery{From: "tom", Text: "line " + id, Time: at.Add(time.Duration(i) * time.Second), MsgID: id}})
	}
	e.fh.set(func() { e.fh.msgs = msgs })
	fit := cfg.SendQ - cfg.SendQ/4 - 3 // a quarter left free; the batch's start and end, the note that it was cut
	for _, tc := range []struct {
		line string
		ids  []string
	}{
		{"CHATHISTORY LATEST tom * 50", ids[len(ids)-fit:]},
		{"CHATHISTORY BEFORE tom timestamp=2025-01-01T00:00:00.000Z 50", ids[len(ids)-fit:]},
		{"CHATHISTORY AFTER tom timestamp=2024-01-01T00:00:00.000Z 50", ids[:fit]},
		{"CHATHISTORY BETWEEN tom timestamp=2024-01-01T00:00:00.000Z timestamp=2025-01-01T00:00:00.000Z 50", ids[:fit]},
		{"CHATHISTORY BETWEEN tom timestamp=2025-01-01T00:00:00.000Z timestamp=2024-01-01T00:00:00.000Z 50", ids[len(ids)-fit:]},
		{"CHATHISTORY AROUND tom msgid=m22 50", ids[(len(ids)-fit)/2 : (len(ids)-fit)/2+fit]},
	} {
		c.send(t, tc.line)
		got := c.sync(t)
		e.query(t)
		if note := got[len(got)-1]; note.Command != "NOTICE" || !strings.HasPrefix(note.Trailing(), "CHATHISTORY ") {
			t.Fatalf("%s: got %q last, want the note that the reply was cut", tc.line, note)
		}
		checkHistoryBatch(t, got[:len(got)-1], "tom", msgs, tc.ids)
	}

	long := strings.Repeat("word ", 8000) // more lines than the send queue takes
	e.fh.set(func() {
		e.fh.msgs = []HistoryMessage{{Delivery{From: "tom", Text: long, Time: at, MsgID: "long"}}}
	})
	c.send(t, "CHATHISTORY LATEST tom * 50")
	checkMsgs(t, c.sync(t), []want{w("FAIL", "CHATHISTORY", "MESSAGE_ERROR", "LATEST", "tom", "Messages could not be retrieved")})
	e.query(t)
}

// A CHATHISTORY reply cut to fit the send queue is followed by a note
// naming the target, so that a client taking a short page for the end of
// the history is told there is more: a WARN CHATHISTORY TRUNCATED to a
// client with standard-replies (inside the labeled reply when labeled), a
// NOTICE to one without. The note has room in the send queue; a reply
// sent whole has none.
func TestChathistoryTrimmedReplyIsTold(t *testing.T) {
	t.Parallel()
	cfg := historyConfig()
	cfg.SendQ = 40
	cfg.HistoryLimit = 100
	e := startHistory(t, cfg, true)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	var msgs []HistoryMessage
	for i := range 100 {
		id := fmt.Sprintf("m%02d", i)
		msgs = append(msgs, HistoryMessage{Delivery{From: "tom", Text: "line " + id, Time: at.Add(time.Duration(i) * time.Second), MsgID: id}})
	}
	e.fh.set(func() { e.fh.msgs = msgs })
	for _, tc := range []struct {
		name    string
		nick    string
		caps    []string
		label   string
		noteCmd string
		want    int // messages sent: three quarters of the queue, less the batch's two lines, the note's and the labeled batch's
	}{
		{"standard-replies", "sr", append([]string{"standard-replies"}, histCaps...), "", "WARN", 27},
		{"labeled standard-replies", "lsr", append([]string{"standard-replies", "labeled-response"}, histCaps...), "l1", "WARN", 25},
		{"without standard-replies", "plain", histCaps, "", "NOTICE", 27},
		{"without batch", "nobatch", []string{"server-time", "message-tags", "draft/chathistory"}, "", "NOTICE", 27},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := e.client(t, tc.nick, tc.caps...)
			line := "CHATHISTORY LATEST tom * 100"
			if tc.label != "" {
				line = "@label=" + tc.label + " " + line
			}
			c.send(t, line)
			got := c.sync(t)
			e.query(t)
			if len(got) > cfg.SendQ {
				t.Fatalf("got %d lines, more than the send queue's %d", len(got), cfg.SendQ)
			}
			if tc.label != "" { // a labeled-response batch around the rest
				start, end := got[0], got[len(got)-1]
				if start.Command != "BATCH" || start.Param(1) != "labeled-response" || start.Tags["label"] != tc.label || end.Command != "BATCH" || end.Param(0) != "-"+start.Param(0)[1:] {
					t.Fatalf("got %v, want a labeled-response batch labeled %s", msgStrings(got), tc.label)
				}
				got = got[1 : len(got)-1]
			}
			sent := 0
			for _, m := range got {
				if m.Command == "PRIVMSG" {
					sent++
				}
			}
			if sent != tc.want {
				t.Fatalf("got %d messages of %d, want %d: %v", sent, len(msgs), tc.want, msgStrings(got))
			}
			note := got[len(got)-1]
			if slices.Contains(tc.caps, "batch") {
				if end := got[len(got)-2]; end.Command != "BATCH" || !strings.HasPrefix(end.Param(0), "-") {
					t.Fatalf("got %q before the note, want the batch's end: %v", end, msgStrings(got))
				}
			}
			switch tc.noteCmd {
			case "WARN":
				if note.Command != "WARN" || note.Param(0) != "CHATHISTORY" || note.Param(1) != "TRUNCATED" || note.Param(2) != "LATEST" || note.Param(3) != "tom" {
					t.Fatalf("got %q last, want WARN CHATHISTORY TRUNCATED LATEST tom", note)
				}
			default:
				if note.Command != "NOTICE" || note.Param(0) != tc.nick || !strings.Contains(note.Trailing(), "tom") {
					t.Fatalf("got %q last, want a NOTICE naming tom", note)
				}
			}
			if want := fmt.Sprintf("%d of %d", sent, len(msgs)); !strings.Contains(note.Trailing(), want) {
				t.Fatalf("got note %q, want it to say %q", note.Trailing(), want)
			}
		})
	}

	// A reply that fits has no note.
	c, _ := e.client(t, "you", append([]string{"standard-replies"}, histCaps...)...)
	c.send(t, "CHATHISTORY LATEST tom * 10")
	got := c.sync(t)
	e.query(t)
	checkHistoryBatch(t, got, "tom", msgs, []string{"m90", "m91", "m92", "m93", "m94", "m95", "m96", "m97", "m98", "m99"})
}

// A CHATHISTORY AROUND reply of a msgid, of which the send queue has room
// for one message only, gives the referenced message, not the one before
// it: the backend gives half the limit, rounded down, before the
// reference and the rest from it on (the bridge's historyQuery), so with
// a limit of 2 the reference is the newer of the two.
func TestChathistoryAroundSqueezedKeepsTheReference(t *testing.T) {
	t.Parallel()
	cfg := historyConfig()
	cfg.SendQ = 40
	e := startHistory(t, cfg, true)
	c, _ := e.client(t, "me", histCaps...)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	long := strings.Repeat("word ", 1500) // room in the send queue for one such message, not two
	msgs := []HistoryMessage{
		{Delivery{From: "tom", Text: "before " + long, Time: at, MsgID: "m1"}},
		{Delivery{From: "tom", Text: "ref " + long, Time: at.Add(time.Second), MsgID: "m2"}},
	}
	e.fh.set(func() { e.fh.msgs = msgs })
	c.send(t, "CHATHISTORY AROUND tom msgid=m2 2")
	got := c.sync(t)
	e.query(t)
	var ids []string
	for _, m := range got {
		if m.Command == "PRIVMSG" {
			if id := MsgIDBase(m.Tags["msgid"]); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if !slices.Equal(ids, []string{"m2"}) {
		t.Errorf("AROUND msgid=m2 2 with room for one message: got messages %v, want [m2]", ids)
	}
}

// AROUND's messages are kept around the reference: half of those kept,
// rounded down, before it, whether a limit or the send queue's room
// leaves messages out, and whether the reference is a msgid or a time.
func TestAroundKeepsHalfBeforeTheReference(t *testing.T) {
	t.Parallel()
	at := ts(t, "2024-05-06T07:08:09.010Z")
	var msgs []HistoryMessage
	for i := range 6 {
		msgs = append(msgs, HistoryMessage{Delivery{Time: at.Add(time.Duration(i) * time.Second), MsgID: fmt.Sprint("m", i)}})
	}
	for _, tc := range []struct {
		ref    HistoryRef
		keep   int
		lo, hi int
	}{
		{HistoryRef{MsgID: "m3"}, 1, 3, 4},
		{HistoryRef{MsgID: "m3"}, 2, 2, 4},
		{HistoryRef{MsgID: "m3"}, 3, 2, 5},
		{HistoryRef{MsgID: "m0"}, 3, 0, 3},
		{HistoryRef{MsgID: "m5"}, 3, 3, 6},
		{HistoryRef{Time: at.Add(2500 * time.Millisecond)}, 2, 2, 4}, // between m2 and m3
		{HistoryRef{Time: at.Add(time.Hour)}, 2, 4, 6},               // after them all
		{HistoryRef{MsgID: NewMsgIDAt(at.Add(1500 * time.Millisecond))}, 2, 1, 3},
	} {
		ref := aroundIndex(msgs, tc.ref)
		lo, hi := aroundFit(len(msgs), ref, func(lo, hi int) bool { return hi-lo <= tc.keep })
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("%+v, keeping %d: got [%d:%d], want [%d:%d]", tc.ref, tc.keep, lo, hi, tc.lo, tc.hi)
		}
	}
}

// An AROUND reference may be a line's msgid with a "-N" suffix, which
// earlier versions gave the later lines of a long message and a client may
// still hold (MsgIDBase): the backend looks the message up without it, and
// a reply cut to fit keeps that message, as for its plain id.
func TestChathistoryAroundSqueezedKeepsASuffixedReference(t *testing.T) {
	t.Parallel()
	cfg := historyConfig()
	cfg.SendQ = 40
	e := startHistory(t, cfg, true)
	c, _ := e.client(t, "me", histCaps...)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	long := strings.Repeat("word ", 1500) // room in the send queue for one such message, not two
	m1, m2 := NewMsgIDAt(at), NewMsgIDAt(at.Add(time.Second))
	msgs := []HistoryMessage{
		{Delivery{From: "tom", Text: "before " + long, Time: at, MsgID: m1}},
		{Delivery{From: "tom", Text: "ref " + long, Time: at.Add(time.Second), MsgID: m2}},
	}
	e.fh.set(func() { e.fh.msgs = msgs })
	c.send(t, "CHATHISTORY AROUND tom msgid="+m2+"-2 2")
	got := c.sync(t)
	e.query(t)
	var ids []string
	for _, m := range got {
		if m.Command == "PRIVMSG" {
			if id := MsgIDBase(m.Tags["msgid"]); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if !slices.Equal(ids, []string{m2}) {
		t.Errorf("AROUND msgid=<m2>-2 2 with room for one message: got messages %v, want [%s] (m1 is %s)", ids, m2, m1)
	}
}

// TestChathistoryCutToMessagesThatFillTheRoom: where the room a cut
// reply keeps for its note would leave no message, the messages that fit
// are still sent, with the note, rather than a FAIL.
func TestChathistoryCutToMessagesThatFillTheRoom(t *testing.T) {
	t.Parallel()
	cfg := historyConfig()
	cfg.SendQ = 40 // room for the reply: 40 - 40/4 - 2 = 28 lines
	e := startHistory(t, cfg, true)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	long := strings.Repeat("word ", 2650) // 28 lines each
	var msgs []HistoryMessage
	for i := range 3 {
		id := fmt.Sprintf("m%d", i)
		msgs = append(msgs, HistoryMessage{Delivery{From: "tom", Text: id + " " + long, Time: at.Add(time.Duration(i) * time.Second), MsgID: id}})
	}
	e.fh.set(func() { e.fh.msgs = msgs })
	c, _ := e.client(t, "me", append([]string{"standard-replies"}, histCaps...)...)
	c.send(t, "CHATHISTORY LATEST tom * 3")
	got := c.sync(t)
	e.query(t)
	var lines int
	for _, m := range got {
		switch m.Command {
		case "PRIVMSG":
			if !strings.HasPrefix(m.Trailing(), "m2 ") && m.Tags["msgid"] != "" {
				t.Errorf("got %q, want only the newest message", m)
			}
			lines++
		case "FAIL":
			t.Fatalf("got %v, want the newest message and a note", msgStrings(got))
		}
	}
	if lines != 28 {
		t.Fatalf("got %d lines of messages, want the newest message's 28: %v", lines, len(got))
	}
	if note := got[len(got)-1]; note.Command != "WARN" || note.Param(1) != "TRUNCATED" || !strings.Contains(note.Trailing(), "1 of 3") {
		t.Fatalf("got %q last, want WARN CHATHISTORY TRUNCATED saying 1 of 3", note)
	}
}

// A limit of 0 asks for no number in particular: every subcommand asks
// the backend for as many messages as CHATHISTORY allows, as ergo does
// and as TARGETS does, where refusing it would leave the client without
// history (soju accepts 0 too).
func TestChathistoryLimitZero(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	e.fh.set(func() { e.fh.msgs = convo(t) })
	for _, line := range []string{
		"CHATHISTORY LATEST tom * 0",
		"CHATHISTORY BEFORE tom timestamp=2024-05-06T07:08:09.010Z 0",
		"CHATHISTORY AFTER tom timestamp=2024-05-06T07:08:09.010Z 0",
		"CHATHISTORY AROUND tom timestamp=2024-05-06T07:08:09.010Z 0",
		"CHATHISTORY BETWEEN tom timestamp=2024-05-06T07:08:09.010Z timestamp=2024-05-07T07:08:09.010Z 0",
	} {
		c.send(t, line)
		if got := c.sync(t); len(got) == 0 || got[0].Command != "BATCH" {
			t.Fatalf("%s: got %q, want a chathistory batch", line, msgStrings(got))
		}
		if q := e.query(t); q.Limit != historyConfig().HistoryLimit {
			t.Fatalf("%s: backend got limit %d, want %d", line, q.Limit, historyConfig().HistoryLimit)
		}
	}
}

// TARGETS counts conversations, not messages: a limit past CHATHISTORY's
// (gamja asks for a fixed number of targets, whatever the token says)
// asks the backend for as many as CHATHISTORY allows, as ergo does, where
// refusing it would leave such a client without the conversations it
// missed.
func TestChathistoryTargetsPastTheLimit(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", histCaps...)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	e.fh.set(func() { e.fh.targets = []HistoryTarget{{"tom", at}} })
	c.send(t, "CHATHISTORY TARGETS timestamp=2024-05-06T00:00:00.000Z timestamp=2024-05-07T00:00:00.000Z 1000")
	got := c.sync(t)
	if len(got) != 3 || got[0].Command != "BATCH" || got[0].Param(1) != "draft/chathistory-targets" || lineOf(got[1]) != "irc.test CHATHISTORY TARGETS tom 2024-05-06T07:08:09.010Z" {
		t.Fatalf("got %q, want a draft/chathistory-targets batch with tom", msgStrings(got))
	}
	wantQ := TargetsQuery{ts(t, "2024-05-06T00:00:00.000Z"), ts(t, "2024-05-07T00:00:00.000Z"), historyConfig().HistoryLimit}
	if q := <-e.fh.tqs; q != wantQ {
		t.Fatalf("backend got %+v, want %+v", q, wantQ)
	}
	// So is a limit of 0 (none asked for), or one too large for an int,
	// as ergo does: the backend is asked for as many as CHATHISTORY allows.
	for _, limit := range []string{"0", "99999999999999999999999"} {
		c.send(t, "CHATHISTORY TARGETS timestamp=2024-05-06T00:00:00.000Z timestamp=2024-05-07T00:00:00.000Z "+limit)
		if got := c.sync(t); len(got) != 3 || got[0].Command != "BATCH" {
			t.Fatalf("limit %s: got %q, want a draft/chathistory-targets batch", limit, msgStrings(got))
		}
		if q := <-e.fh.tqs; q != wantQ {
			t.Fatalf("limit %s: backend got %+v, want %+v", limit, q, wantQ)
		}
	}
	// A limit that is no number, or negative, is still refused.
	for _, limit := range []string{"-1", "many", "-99999999999999999999999"} {
		c.send(t, "CHATHISTORY TARGETS timestamp=2024-05-06T00:00:00.000Z timestamp=2024-05-07T00:00:00.000Z "+limit)
		checkMsgs(t, c.sync(t), []want{w("FAIL", "CHATHISTORY", "INVALID_PARAMS", "TARGETS", limit, "Invalid limit")})
	}
}
