package ircd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

func TestMsgIDBase(t *testing.T) {
	t.Parallel()
	tests := []struct{ id, want string }{
		{"abc", "abc"},
		{"abc-2", "abc"},
		{"abc-17", "abc"},
		{"abc-1", "abc-1"},
		{"abc-02", "abc-02"},
		{"abc-x", "abc-x"},
		{"-2", "-2"},
		{"a-b-3", "a-b"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := MsgIDBase(tc.id); got != tc.want {
			t.Errorf("MsgIDBase(%q): got %q, want %q", tc.id, got, tc.want)
		}
	}
}

// NewMsgID gives distinct ids of letters and digits, which IRCv3 allows
// anywhere and which a piece suffix cannot be confused with.
func TestNewMsgID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := NewMsgID()
		if len(id) != 26 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Fatalf("got id %q, want 26 characters of [a-z2-7]", id)
		}
		if seen[id] {
			t.Fatalf("got id %q twice", id)
		}
		seen[id] = true
	}
}

// Ids made later sort after, so a store's unique index by msgid grows at
// its end.
func TestNewMsgIDSortsByTime(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	prev := newMsgID(at)
	for _, step := range []time.Duration{time.Millisecond, time.Second, time.Hour, 24 * 365 * time.Hour} {
		at = at.Add(step)
		id := newMsgID(at)
		if id <= prev {
			t.Errorf("id %s later: got %q, want it after %q", step, id, prev)
		}
		prev = id
	}
	if a, b := newMsgID(at), newMsgID(at); a == b {
		t.Errorf("two ids in one millisecond: got %q twice, want distinct", a)
	}
}

// msgIDTime is the time a NewMsgID id begins with.
func msgIDTime(t *testing.T, id string) time.Time {
	t.Helper()
	b, err := msgIDEncoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		t.Fatalf("msgid %q: got %d bytes (%v), want 16", id, len(b), err)
	}
	var ms int64
	for _, c := range b[:6] {
		ms = ms<<8 | int64(c)
	}
	return time.UnixMilli(ms).UTC()
}

// A Delivery's MsgID is the msgid tag for clients with message-tags, on
// the first line of a long text only.
func TestDeliverMsgID(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	long := strings.Repeat("word ", 250) // three lines
	tests := []struct {
		name string
		caps []string
		d    Delivery
		want []string // msgid of each line, "" = none
	}{
		{"with message-tags", []string{"message-tags"}, Delivery{From: "tom", Text: "hi", MsgID: "m1"}, []string{"m1"}},
		{"without message-tags", nil, Delivery{From: "tom", Text: "hi", MsgID: "m1"}, []string{""}},
		{"no id", []string{"message-tags"}, Delivery{From: "tom", Text: "hi"}, []string{""}},
		{"split", []string{"message-tags"}, Delivery{From: "tom", Text: long, MsgID: "m2"}, []string{"m2", "", ""}},
		{"lines", []string{"message-tags"}, Delivery{From: "tom", Target: "&bitlbee", Text: "a\nb", MsgID: "m3"}, []string{"m3", ""}},
		{"tagmsg", []string{"message-tags"}, Delivery{Command: "TAGMSG", From: "tom", Tags: map[string]string{"+typing": "active"}, MsgID: "m4"}, []string{"m4"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, fc, _ := register(t, addr, b, "me"+string(rune('a'+i)), tc.caps...)
			if !fc.c.Deliver(tc.d) {
				t.Fatal("Deliver: got false, want true")
			}
			got := c.sync(t)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d lines %v, want %d", len(got), msgStrings(got), len(tc.want))
			}
			for j, m := range got {
				id, has := m.Tags["msgid"]
				if id != tc.want[j] || has != (tc.want[j] != "") {
					t.Fatalf("line %d %q: got msgid %q, want %q", j, m, id, tc.want[j])
				}
			}
		})
	}
}

// A Self delivery is the user's own message from another client: it comes
// from the client's own prefix and goes to the buddy or channel.
func TestDeliverSelf(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me", "message-tags", "server-time")
	at := ts(t, "2024-05-06T07:08:09.010Z")
	tests := []struct {
		name string
		d    Delivery
		want string
	}{
		{"to a buddy", Delivery{Self: true, Target: "tom", Text: "hi tom", MsgID: "s1", Time: at}, "me!u@127.0.0.1 PRIVMSG tom :hi tom"},
		{"buddy's case", Delivery{Self: true, Target: "TOM", Text: "hi", MsgID: "s2", Time: at}, "me!u@127.0.0.1 PRIVMSG tom hi"},
		{"to a channel", Delivery{Self: true, Target: "&bitlbee", Text: "hello all", MsgID: "s3", Time: at}, "me!u@127.0.0.1 PRIVMSG &bitlbee :hello all"},
		{"unknown nick", Delivery{Self: true, Target: "gone", Text: "hi", MsgID: "s4", Time: at}, "me!u@127.0.0.1 PRIVMSG gone hi"},
		{"action", Delivery{Self: true, Target: "ann", Text: "\x01ACTION waves\x01", MsgID: "s5", Time: at}, "me!u@127.0.0.1 PRIVMSG ann :\x01ACTION waves\x01"},
		{"From ignored", Delivery{Self: true, From: "tom", Target: "ann", Text: "x", MsgID: "s6", Time: at}, "me!u@127.0.0.1 PRIVMSG ann x"},
	}
	for _, tc := range tests {
		if !fc.c.Deliver(tc.d) {
			t.Fatalf("%s: Deliver: got false, want true", tc.name)
		}
		m := c.read(t)
		if got := lineOf(m); got != tc.want {
			t.Fatalf("%s: got %q, want %q", tc.name, got, tc.want)
		}
		if m.Tags["msgid"] != tc.d.MsgID || m.Tags["time"] != "2024-05-06T07:08:09.010Z" {
			t.Fatalf("%s: got tags %v, want msgid %s and the time", tc.name, m.Tags, tc.d.MsgID)
		}
	}
	for _, target := range []string{"", "bad nick"} {
		if fc.c.Deliver(Delivery{Self: true, Target: target, Text: "x"}) {
			t.Fatalf("Deliver of own message to %q: got true, want false", target)
		}
	}
	checkMsgs(t, c.sync(t), nil)
}

// The echo-message echo of the client's own message carries the msgid and
// time the backend gets in Input; each message has its own id.
func TestEchoCarriesInputMsgID(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	tests := []struct {
		name string
		caps []string
		line string
	}{
		{"privmsg", []string{"echo-message", "message-tags", "server-time"}, "PRIVMSG ann :hi"},
		{"notice", []string{"echo-message", "message-tags", "server-time"}, "NOTICE tom :n"},
		{"channel", []string{"echo-message", "message-tags", "server-time"}, "PRIVMSG &bitlbee :all"},
		{"tagmsg", []string{"echo-message", "message-tags", "server-time"}, "@+typing=active TAGMSG ann"},
		{"no echo", []string{"message-tags", "server-time"}, "PRIVMSG ann :hi"},
	}
	ids := map[string]bool{}
	for i, tc := range tests {
		nick := "me" + string(rune('a'+i))
		c, _ := e.client(t, nick, tc.caps...)
		hc := e.b.hconn(nick)
		before := time.Now().Add(-time.Millisecond)
		c.send(t, tc.line)
		echo := c.sync(t)
		var in Input
		select {
		case in = <-hc.inputs:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Message not called", tc.name)
		}
		if in.MsgID == "" || ids[in.MsgID] {
			t.Fatalf("%s: got Input.MsgID %q, want a new id", tc.name, in.MsgID)
		}
		ids[in.MsgID] = true
		if at := msgIDTime(t, in.MsgID); !at.Equal(in.Time) {
			t.Fatalf("%s: got a msgid made at %v, want Input.Time %v (one reading of the clock)", tc.name, at, in.Time)
		}
		if in.Time.Before(before) || in.Time.After(time.Now()) || in.Time.Location() != time.UTC || in.Time.Nanosecond()%int(time.Millisecond) != 0 {
			t.Fatalf("%s: got Input.Time %v, want now in UTC to the millisecond", tc.name, in.Time)
		}
		if tc.name == "no echo" {
			checkMsgs(t, echo, nil)
			continue
		}
		if len(echo) != 1 {
			t.Fatalf("%s: got %v, want the echo", tc.name, msgStrings(echo))
		}
		if got := echo[0].Tags["msgid"]; got != in.MsgID {
			t.Fatalf("%s: got echo msgid %q, want Input's %q", tc.name, got, in.MsgID)
		}
		if got, want := echo[0].Tags["time"], in.Time.Format(timeFormat); got != want {
			t.Fatalf("%s: got echo time %q, want Input's %q", tc.name, got, want)
		}
	}
}

// DeliverHistory honours MsgID and Self, and without server-time puts the
// date before the text (inside CTCP ACTION framing).
func TestDeliverHistoryPast(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	at := ts(t, "2024-05-06T07:08:09.010Z")
	ds := []Delivery{
		{From: "tom", Text: "hello", Time: at, MsgID: "h1"},
		{Self: true, Text: "hi back", Time: at.Add(time.Second), MsgID: "h2"},
		{From: "tom", Text: "\x01ACTION waves\x01", Time: at.Add(2 * time.Second), MsgID: "h3"},
	}
	tests := []struct {
		name  string
		caps  []string
		lines []string
		tags  bool // time and msgid tags, inside a batch
	}{
		{"plain client", nil, []string{
			"tom!tom@msim PRIVMSG me :[2024-05-06 07:08:09 UTC] hello",
			"me!u@127.0.0.1 PRIVMSG tom :[2024-05-06 07:08:10 UTC] hi back",
			"tom!tom@msim PRIVMSG me :\x01ACTION [2024-05-06 07:08:11 UTC] waves\x01",
		}, false},
		{"modern client", []string{"batch", "server-time", "message-tags"}, []string{
			"irc.test BATCH ? chathistory tom",
			"tom!tom@msim PRIVMSG me hello",
			"me!u@127.0.0.1 PRIVMSG tom :hi back",
			"tom!tom@msim PRIVMSG me :\x01ACTION waves\x01",
			"irc.test BATCH ?",
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, fc, _ := register(t, addr, b, "me", tc.caps...)
			if !fc.c.DeliverHistory("tom", ds) {
				t.Fatal("DeliverHistory: got false, want true")
			}
			got := c.sync(t)
			if len(got) != len(tc.lines) {
				t.Fatalf("got %v, want %d lines", msgStrings(got), len(tc.lines))
			}
			for j, m := range got {
				line := lineOf(m)
				if m.Command == "BATCH" {
					line = strings.Join(append([]string{"irc.test BATCH ?"}, m.Params[1:]...), " ")
				}
				if line != tc.lines[j] {
					t.Fatalf("line %d: got %q, want %q", j, line, tc.lines[j])
				}
				if !tc.tags || m.Command == "BATCH" {
					continue
				}
				if m.Tags["msgid"] != ds[j-1].MsgID || m.Tags["time"] != formatTime(ds[j-1].Time) || m.Tags["batch"] == "" {
					t.Fatalf("line %d: got tags %v, want msgid, time and batch", j, m.Tags)
				}
			}
		})
	}
}

// DeliverHistory refuses a target that is neither a nick nor a channel:
// in the batch's line a CR, LF or NUL would end it or corrupt it, and a
// space would make two params. Nothing is sent, each Delivery's Sent
// gets false, and the connection goes on.
func TestDeliverHistoryBadTarget(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	for _, target := range []string{"tom\r\nQUIT :bye", "tom\nx", "tom\x00x", "tom x", "#chan x", "#chan\r\n", ""} {
		for _, caps := range [][]string{{"batch", "server-time", "message-tags"}, nil} {
			t.Run(fmt.Sprintf("%q, %v", target, caps), func(t *testing.T) {
				c, fc, _ := register(t, addr, b, "me", caps...)
				sent := make(chan bool, 2)
				ds := []Delivery{
					{From: "tom", Text: "hello", Time: ts(t, "2024-05-06T07:08:09.010Z"), Sent: func(ok bool) { sent <- ok }},
					{Self: true, Text: "hi back", Time: ts(t, "2024-05-06T07:08:10.010Z"), Sent: func(ok bool) { sent <- ok }},
				}
				if fc.c.DeliverHistory(target, ds) {
					t.Error("DeliverHistory: got true, want false")
				}
				for i := range ds {
					if ok := <-sent; ok {
						t.Errorf("Sent %d: got true, want false", i)
					}
				}
				if got := c.sync(t); len(got) != 0 {
					t.Errorf("got %v, want nothing sent", msgStrings(got))
				}
				if !fc.c.DeliverHistory("tom", ds[:1]) {
					t.Fatal("DeliverHistory to tom after the refusal: got false, want true")
				}
				if got := c.sync(t); !slices.ContainsFunc(got, func(m *irc.Message) bool { return m.Command == "PRIVMSG" && strings.HasSuffix(m.Trailing(), "hello") }) {
					t.Errorf("after the refusal: got %v, want tom's hello", msgStrings(got))
				}
			})
		}
	}
}

func BenchmarkNewMsgID(b *testing.B) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for b.Loop() {
		msgIDSink = newMsgID(at)
	}
}

// msgIDSink keeps BenchmarkNewMsgID's ids, as a message keeps its own:
// an id the compiler sees unused would be built on the stack.
var msgIDSink string

// TestMsgIDTime: an id NewMsgIDAt made gives back its time to the
// millisecond; another id gives none.
func TestMsgIDTime(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if got, ok := MsgIDTime(NewMsgIDAt(at)); !ok || !got.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("MsgIDTime(NewMsgIDAt(%v)) = %v, %v; want %v", at, got, ok, at.Truncate(time.Millisecond))
	}
	for _, id := range []string{"", "m1", "abc-2", strings.Repeat("z", 25), strings.Repeat("!", 26), strings.Repeat("A", 26)} {
		if got, ok := MsgIDTime(id); ok {
			t.Errorf("MsgIDTime(%q) = %v, true; want false", id, got)
		}
	}
}

// TestAppendMsgIDAt: AppendMsgIDAt appends an id as NewMsgIDAt makes
// them (26 characters of its alphabet, its time given back by MsgIDTime),
// a new one each time, after what b held, and allocates nothing into a
// buffer with room.
func TestAppendMsgIDAt(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 987654321, time.UTC)
	buf := make([]byte, 0, 64)
	b := AppendMsgIDAt(append(buf, "text "...), at)
	id := string(b[len("text "):])
	if string(b[:len("text ")]) != "text " || len(id) != len(NewMsgIDAt(at)) || strings.Trim(id, msgIDAlphabetForTest) != "" {
		t.Fatalf("got %q, want \"text \" and an id", b)
	}
	if got, ok := MsgIDTime(id); !ok || !got.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("MsgIDTime(%q) = %v, %v; want %v", id, got, ok, at.Truncate(time.Millisecond))
	}
	if again := string(AppendMsgIDAt(nil, at)); again == id {
		t.Errorf("two ids at the same time: both %q", id)
	}
	if n := testing.AllocsPerRun(100, func() { _ = AppendMsgIDAt(buf[:0], at) }); n > 0 {
		t.Errorf("AppendMsgIDAt into a buffer with room: %.1f allocations, want none", n)
	}
}

// msgIDAlphabetForTest is the characters an id is made of.
const msgIDAlphabetForTest = "234567abcdefghijklmnopqrstuvwxyz"
