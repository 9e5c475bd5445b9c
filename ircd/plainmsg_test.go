package ircd

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// recordHandler keeps the Inputs it gets.
type recordHandler struct {
	nopHandler
	ins []Input
}

func (h *recordHandler) Message(in Input) { h.ins = append(h.ins, in) }

// plainCases are lines for the reader's plain way (plainMessage), with
// whether it takes them.
var plainCases = []struct {
	line  string
	plain bool
}{
	{"PRIVMSG tom :hello there", true},
	{"NOTICE ann :hello there", true},
	{"PRIVMSG tom,ann :to both", true},
	{"PRIVMSG tom,,ann,nobody :with holes", true},
	{"PRIVMSG nobody :hi", true},
	{"NOTICE nobody :hi", true},
	{"PRIVMSG me :to myself", true},
	{"PRIVMSG ME :to myself, cased", true},
	{"NOTICE me :note to myself", true},
	{"PRIVMSG &bitlbee :to the channel", true},
	{"PRIVMSG &BitlBee :to the channel, cased", true},
	{"PRIVMSG #other :not joined", true},
	{"PRIVMSG #nochan :no channel", true},
	{"PRIVMSG TOM :cased nick", true},
	{"PRIVMSG tom ::a colon first", true},
	{"PRIVMSG tom :  spaces  and : colons ", true},
	{"PRIVMSG tom :\x01ACTION waves\x01", true},
	{"PRIVMSG tom :h\u00e9llo w\u00f6rld \U0001F600", true},
	{"PRIVMSG " + strings.Repeat("tom,", maxTargets) + "tom :too many", true},
	{"NOTICE " + strings.Repeat("tom,", maxTargets) + "tom :too many", true},
	{"PRIVMSG tom :" + strings.Repeat("x", maxBodyLen-len("PRIVMSG tom :")), true},
	{"PRIVMSG tom :" + strings.Repeat("x", maxBodyLen-len("PRIVMSG tom :")+1), false},
	{"privmsg tom :lower case", false},
	{"Privmsg tom :mixed case", false},
	{"PRIVMSG tom :", false},
	{"PRIVMSG tom", false},
	{"PRIVMSG tom hello", false},
	{"PRIVMSG tom hello :there", false},
	{"PRIVMSG :tom hello", false},
	{"PRIVMSG  tom :two spaces", false},
	{"PRIVMSG tom  :two spaces", false},
	{"PRIVMSG", false},
	{"PRIVMSG ", false},
	{"NOTICE", false},
	{"TAGMSG tom", false},
	{"@+typing=active PRIVMSG tom :tagged", false},
	{"@label=x PRIVMSG tom :labeled", false},
	{":me PRIVMSG tom :prefixed", false},
	{"PRIVMSG tom :bad \xff byte", false},
	{"PRIVMSGtom :glued", false},
}

// plainClient is a fuzzClient with the capabilities caps, a recording
// handler and an empty queue.
func plainClient(t testing.TB, caps []string) (*Client, *recordHandler, func()) {
	c, done := fuzzClient(t)
	for _, cp := range caps {
		c.caps[cp] = true
	}
	h := &recordHandler{}
	c.handler = h
	c.giveBack(c.take())
	return c, h, done
}

// comparePlain runs line on one client by handleLine and on another by
// the general way (parseLine, then dispatch), both at the same read time,
// and fails unless the handlers got the same Inputs and the clients the
// same lines. Msgids, random, must be ids made at that time; they are
// compared by where they appear. It reports whether plainMessage took
// the line; if not, the first client must not have been touched by it.
func comparePlain(t *testing.T, caps []string, line string) bool {
	t.Helper()
	fast, fh, done := plainClient(t, caps)
	defer done()
	slow, sh, done2 := plainClient(t, caps)
	defer done2()
	at := time.Date(2026, 12, 7, 11, 0, 0, 123456789, time.UTC)
	fast.lineAt, slow.lineAt = at, at
	plain := fast.plainMessage([]byte(line))
	if !plain {
		if len(fh.ins) != 0 || fast.queued() != 0 {
			t.Errorf("%q: not taken, yet %d Inputs and %d lines queued", line, len(fh.ins), fast.queued())
		}
		return false
	}
	m, err := parseLine(line)
	if err != nil {
		t.Fatalf("%q: taken, but parseLine: %v", line, err)
	}
	slow.dispatch(m)
	ids := map[string]string{} // an id to its name, per client
	norm := func(id string, names map[string]string) string {
		if id == "" {
			return ""
		}
		if got, ok := MsgIDTime(id); !ok || !got.Equal(inputTime(at)) {
			t.Errorf("%q: msgid %q: time %v, %v; want %v", line, id, got, ok, inputTime(at))
		}
		if n, ok := names[id]; ok {
			return n
		}
		names[id] = "id" + string(rune('0'+len(names)))
		return names[id]
	}
	inputs := func(ins []Input, names map[string]string) []Input {
		out := slices.Clone(ins)
		for i := range out {
			out[i].MsgID = norm(out[i].MsgID, names)
		}
		return out
	}
	lines := func(c *Client, names map[string]string) []string {
		var out []string
		for _, s := range entryLines(c.take()) {
			pm, err := irc.ParseMessage(s)
			if err != nil {
				t.Fatalf("%q: line %q: %v", line, s, err)
			}
			if id, ok := pm.Tags["msgid"]; ok {
				pm.Tags["msgid"] = norm(id, names)
			}
			tags := pm.Tags
			pm.Tags = nil
			keys := slices.Sorted(maps.Keys(tags)) // tag order is random
			for i, k := range keys {
				keys[i] = k + "=" + tags[k]
			}
			out = append(out, strings.Join(keys, ";")+" "+pm.String())
		}
		return out
	}
	fastNames, slowNames := map[string]string{}, ids
	if got, want := inputs(fh.ins, fastNames), inputs(sh.ins, slowNames); !reflect.DeepEqual(got, want) {
		t.Errorf("%q: Inputs: got %+v, want %+v", line, got, want)
	}
	if got, want := lines(fast, fastNames), lines(slow, slowNames); !slices.Equal(got, want) {
		t.Errorf("%q: lines: got %q, want %q", line, got, want)
	}
	if fast.lineID != "" || !fast.lineAt.Equal(at) {
		t.Errorf("%q: after: lineID %q, lineAt %v; want none, %v", line, fast.lineID, fast.lineAt, at)
	}
	return true
}

// TestPlainMessageMatchesGeneral: a line plainMessage takes gives the
// handler the Inputs, and the client the lines (echoes, numerics, a
// message to oneself), that the general way gives; it takes only lines
// of the plain form, with and without the capabilities that change
// the replies.
func TestPlainMessageMatchesGeneral(t *testing.T) {
	for _, caps := range [][]string{nil, {"message-tags", "server-time", "echo-message"}} {
		for _, tc := range plainCases {
			if got := comparePlain(t, caps, tc.line); got != tc.plain {
				t.Errorf("caps %q: %q taken: got %v, want %v", caps, tc.line, got, tc.plain)
			}
		}
	}
}

// TestPlainMessageBeforeWelcome: before the welcome a plain line is left
// to the general way, which refuses it.
func TestPlainMessageBeforeWelcome(t *testing.T) {
	c, h, done := plainClient(t, nil)
	defer done()
	c.mu.Lock()
	c.welcomed = false
	c.mu.Unlock()
	if c.plainMessage([]byte("PRIVMSG tom :hi")) || len(h.ins) != 0 || c.queued() != 0 {
		t.Fatalf("before the welcome: taken or run (%d Inputs, %d lines)", len(h.ins), c.queued())
	}
	c.handleLine([]byte("PRIVMSG tom :hi\r\n"))
	got := entryLines(c.take())
	if len(h.ins) != 0 || len(got) != 1 || !strings.Contains(got[0], " 451 ") {
		t.Errorf("before the welcome: got %d Inputs, lines %q; want none and 451", len(h.ins), got)
	}
}

// TestPlainPrivmsgAllocs: a plain PRIVMSG read from the client allocates
// once: one string holds its target, its text and its msgid.
func TestPlainPrivmsgAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build")
	}
	c, h, done := plainClient(t, nil)
	defer done()
	line := []byte("PRIVMSG tom :Hey, are you coming to the show tonight?\r\n")
	c.handleLine(line)
	if len(h.ins) != 1 || h.ins[0].Text != "Hey, are you coming to the show tonight?" || h.ins[0].Target != "tom" {
		t.Fatalf("Inputs: got %+v, want the message to tom", h.ins)
	}
	n := testing.AllocsPerRun(200, func() {
		h.ins = h.ins[:0]
		c.lineAt = time.Now()
		c.handleLine(line)
		c.lineAt = time.Time{}
	})
	if n > 1 {
		t.Errorf("a plain PRIVMSG: %.1f allocations, want at most 1", n)
	}
}

// FuzzPlainMessage: whatever line plainMessage takes, the general way
// gives the same Inputs and lines.
func FuzzPlainMessage(f *testing.F) {
	for _, tc := range plainCases {
		f.Add([]byte(tc.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.ContainsAny(line, "\r\n\x00") || len(line) == 0 {
			return // handleLine splits or refuses these first
		}
		comparePlain(t, []string{"message-tags", "server-time", "echo-message"}, string(line))
	})
}

// TestCasedNickPrivmsgAllocs: a client whose nick has capitals, writing
// to a buddy named with capitals, allocates no casemapped copy of either
// to see whether the message is to itself; one to itself in other
// capitals still is.
func TestCasedNickPrivmsgAllocs(t *testing.T) {
	c, h, done := plainClient(t, nil)
	defer done()
	c.mu.Lock()
	c.nick = "Me"
	c.mu.Unlock()
	c.handleLine([]byte("PRIVMSG mE :to myself\r\n"))
	if len(h.ins) != 0 || c.queued() != 1 {
		t.Fatalf("to mE from Me: got %d Inputs, %d lines; want none and the message delivered to itself", len(h.ins), c.queued())
	}
	c.giveBack(c.take())
	if raceEnabled {
		return
	}
	line := []byte("PRIVMSG Tom :hi\r\n")
	n := testing.AllocsPerRun(200, func() {
		h.ins = h.ins[:0]
		c.handleLine(line)
		c.giveBack(c.take())
	})
	if len(h.ins) != 1 || h.ins[0].Target != "tom" {
		t.Fatalf("Inputs: got %+v, want one to tom", h.ins)
	}
	if n > 1 {
		t.Errorf("PRIVMSG Tom from Me: %.1f allocations, want at most 1", n)
	}
}
