package msim

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// bytesBudget is the EventBacklogBytes of these tests, and bigText the
// length of the IMs that pass it: a few fit, not all.
const (
	bytesBudget = 64 << 10
	bigText     = 16 << 10
)

// bigIM is the i-th IM of a burst that passes bytesBudget: from 3000+i,
// its text starting with i.
func bigIM(i int) *Message {
	text := strconv.Itoa(i) + ":" + strings.Repeat("a", bigText)
	return NewInt("bm", BMIM).AddInt("f", 3000+i).Add("msg", text)
}

// bigIndex is i of bigIM(i)'s text, -1 for another text.
func bigIndex(text string) int {
	n, rest, ok := strings.Cut(text, ":")
	i, err := strconv.Atoi(n)
	if !ok || err != nil || len(rest) != bigText {
		return -1
	}
	return i
}

// checkBigPrefix checks that the IMs among evs are bigIM 0…k-1 in order,
// with 0 < k < sent, and returns k.
func checkBigPrefix(t *testing.T, evs []Event, sent int) int {
	t.Helper()
	k := 0
	for _, ev := range evs {
		im, ok := ev.(IMEvent)
		if !ok {
			continue
		}
		if i := bigIndex(im.Text); i != k || im.From != UID(3000+k) {
			t.Fatalf("IM %d: got one from %d with %d bytes of text, want bigIM(%d), in order", k, im.From, len(im.Text), k)
		}
		k++
	}
	if k == 0 || k >= sent {
		t.Fatalf("got %d of the %d IMs, want some, and not all past a budget of %d bytes", k, sent, bytesBudget)
	}
	return k
}

// markupBytes adds up the IMs' markup among evs.
func markupBytes(evs []Event) int {
	n := 0
	for _, ev := range evs {
		if im, ok := ev.(IMEvent); ok {
			n += len(im.Markup)
		}
	}
	return n
}

// checkQueueBytes checks the backlog's byte count: that of the events
// queued, within the budget.
func checkQueueBytes(t *testing.T, c *Client) {
	t.Helper()
	c.qmu.Lock()
	defer c.qmu.Unlock()
	want := 0
	for _, ev := range c.queue {
		want += eventBytes(ev)
	}
	if c.qbytes != want || c.qbytes > c.cfg.EventBacklogBytes {
		t.Errorf("backlog bytes: got %d, want %d, the size of the %d events queued, at most %d", c.qbytes, want, len(c.queue), c.cfg.EventBacklogBytes)
	}
}

// TestBacklogBytesOverflow: EventBacklogBytes caps the backlog's size as
// EventBacklog caps its count. IMs whose texts pass it, nobody taking
// them, end the session as an overflow: the IMs queued come first, within
// the budget, and the one left out is counted and named. (The backlog was
// capped by count alone: a server could make one client hold tens of
// thousands of events of up to a MiB each.)
func TestBacklogBytesOverflow(t *testing.T) {
	t.Parallel()
	const sent = 20
	t.Run("notify", func(t *testing.T) {
		t.Parallel()
		c, fc, n := notifyClient(t, func(cfg *ClientConfig) { cfg.EventBacklogBytes = bytesBudget })
		c.TakeEvents(nil) // the login's presence
		for i := range sent {
			fc.write(bigIM(i))
		}
		fc.waitEOF() // the client gave up on its own
		evs := takeUntil(t, c, n, untilDisconnected)
		d := checkFinal(t, c, evs)
		if d.Reason != DisconnectOverflow || !errors.Is(d.Err, ErrEventOverflow) {
			t.Errorf("got %v (%v), want overflow", d.Reason, d.Err)
		}
		k := checkBigPrefix(t, evs, sent)
		if got := markupBytes(evs); got > bytesBudget {
			t.Errorf("the backlog held %d bytes of IMs, want at most the budget, %d", got, bytesBudget)
		}
		if d.DroppedIMs < 1 || len(d.DroppedFrom) < 1 || d.DroppedFrom[0] != UID(3000+k) {
			t.Errorf("dropped: got %d from %v, want the IM from %d first", d.DroppedIMs, d.DroppedFrom, 3000+k)
		}
	})
	t.Run("events", func(t *testing.T) {
		t.Parallel()
		c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.EventQueue, cfg.EventBacklogBytes = 1, bytesBudget })
		for i := range sent {
			fc.write(bigIM(i))
		}
		fc.waitEOF()
		var evs []Event
		for {
			ev := nextEvent(t, c)
			evs = append(evs, ev)
			if _, ok := ev.(DisconnectedEvent); ok {
				break
			}
		}
		d := evs[len(evs)-1].(DisconnectedEvent)
		if d.Reason != DisconnectOverflow || !errors.Is(d.Err, ErrEventOverflow) {
			t.Errorf("got %v (%v), want overflow", d.Reason, d.Err)
		}
		k := checkBigPrefix(t, evs, sent)
		if d.DroppedIMs < 1 || len(d.DroppedFrom) < 1 || d.DroppedFrom[0] != UID(3000+k) {
			t.Errorf("dropped: got %d from %v, want the IM from %d first", d.DroppedIMs, d.DroppedFrom, 3000+k)
		}
	})
}

// TestBacklogBytesOverflowBeforeLogin: IMs sent before lc 2 past the byte
// budget fail the login as an overflow, as those past the count do: the
// IMs queued come with the error, and the one dropped is counted and named.
func TestBacklogBytesOverflowBeforeLogin(t *testing.T) {
	t.Parallel()
	const sent = 20
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.Notify = func() {}
	cfg.EventBacklogBytes = bytesBudget
	ch := dialAsync(cfg)
	fc := f.accept()
	go func() { // the client reads no login2 reply: it gives up at the overflow
		fc.challenge()
		for i := range sent {
			fc.write(bigIM(i))
		}
	}()
	c, err := waitDial(t, ch)
	if c != nil {
		t.Fatal("Dial succeeded past the budget, want an overflow")
	}
	if !errors.Is(err, ErrEventOverflow) {
		t.Fatalf("Dial got %v, want an overflow", err)
	}
	var ue *UndeliveredError
	if !errors.As(err, &ue) {
		t.Fatalf("Dial got %v, want an UndeliveredError", err)
	}
	k := checkBigPrefix(t, ue.Events, sent)
	if got := markupBytes(ue.Events); got > bytesBudget {
		t.Errorf("the backlog held %d bytes of IMs, want at most the budget, %d", got, bytesBudget)
	}
	if ue.DroppedIMs != 1 || !slices.Equal(ue.DroppedFrom, []UID{UID(3000 + k)}) {
		t.Errorf("dropped: got %d from %v, want 1 from [%d]", ue.DroppedIMs, ue.DroppedFrom, 3000+k)
	}
}

// TestBacklogBytesGivenBack: what the owner takes leaves the byte count,
// with TakeEvents and through Events, so a session whose owner keeps up
// never overflows however many bytes come; and an event larger than the
// whole budget is still queued when no other waits.
func TestBacklogBytesGivenBack(t *testing.T) {
	t.Parallel()
	const perRound = 3 // within bytesBudget
	huge := NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strings.Repeat("h", 2*bytesBudget))
	t.Run("notify", func(t *testing.T) {
		t.Parallel()
		c, fc, n := notifyClient(t, func(cfg *ClientConfig) { cfg.EventBacklogBytes = bytesBudget })
		c.TakeEvents(nil)
		for round := range 10 {
			for i := range perRound {
				fc.write(bigIM(round*perRound + i))
			}
			evs := takeUntil(t, c, n, func(evs []Event) bool { return len(imTexts(evs)) == perRound || untilDisconnected(evs) })
			if untilDisconnected(evs) {
				t.Fatalf("round %d: disconnected (%v), want room made by TakeEvents", round, evs[len(evs)-1].(DisconnectedEvent).Reason)
			}
			checkQueueBytes(t, c)
		}
		fc.write(huge)
		evs := takeUntil(t, c, n, func(evs []Event) bool { return len(imTexts(evs)) == 1 || untilDisconnected(evs) })
		if untilDisconnected(evs) {
			t.Fatalf("an IM larger than the budget alone: disconnected (%v), want it queued", evs[len(evs)-1].(DisconnectedEvent).Reason)
		}
	})
	t.Run("events", func(t *testing.T) {
		t.Parallel()
		c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.EventQueue, cfg.EventBacklogBytes = 1, bytesBudget })
		for round := range 10 {
			for i := range perRound {
				fc.write(bigIM(round*perRound + i))
			}
			for i := 0; i < perRound; {
				switch ev := nextEvent(t, c).(type) {
				case IMEvent:
					i++
				case DisconnectedEvent:
					t.Fatalf("round %d: disconnected (%v), want room made by the events taken", round, ev.Reason)
				}
			}
			checkQueueBytes(t, c)
		}
		fc.write(huge)
		for {
			switch ev := nextEvent(t, c).(type) {
			case IMEvent:
				return
			case DisconnectedEvent:
				t.Fatalf("an IM larger than the budget alone: disconnected (%v), want it queued", ev.Reason)
			}
		}
	})
}

// TestLargeMessagesWithTinyTexts: a server that sends, before lc 2 and
// after, messages far larger than the text they carry (a junk field)
// costs the backlog the texts, not the messages: every IM is kept
// within a budget the messages pass many times over.
func TestLargeMessagesWithTinyTexts(t *testing.T) {
	t.Parallel()
	const each, junk = 8, 256 << 10 // each message is four times the budget
	tiny := func(i int) *Message {
		return NewInt("bm", BMIM).AddInt("f", 2001).Add("junk", strings.Repeat("j", junk)).Add("msg", strconv.Itoa(i))
	}
	n := newNotifier()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.Notify = n.notify
	cfg.EventBacklogBytes = bytesBudget
	ch := dialAsync(cfg)
	var early []*Message
	for i := range each {
		early = append(early, tiny(i))
	}
	fc := f.accept()
	fc.loginAfter(false, early...)
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	checkQueueBytes(t, c) // the IMs before lc 2, not taken yet
	for i := range each {
		fc.write(tiny(each + i))
	}
	evs := takeUntil(t, c, n, func(evs []Event) bool { return len(imTexts(evs)) == 2*each || untilDisconnected(evs) })
	if untilDisconnected(evs) {
		t.Fatalf("disconnected (%v), want every IM kept", evs[len(evs)-1].(DisconnectedEvent).Err)
	}
	if got := imTexts(evs); !slices.Equal(got, numbered(2*each)) {
		t.Errorf("IMs: got %q, want 0…%d in order", got, 2*each-1)
	}
	checkQueueBytes(t, c)
}

// span is the memory of a message's text: [lo, hi).
type span struct{ lo, hi uintptr }

func (s span) holds(v string) bool {
	p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	return len(v) > 0 && p >= s.lo && p < s.hi
}

// spanOf is the memory holding m's fields, and its room if it has one.
func spanOf(m *Message) []span {
	var spans []span
	add := func(s string) {
		if len(s) == 0 {
			return
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		spans = append(spans, span{p, p + uintptr(len(s))})
	}
	first, last := m.fields[0], m.fields[len(m.fields)-1]
	lo := uintptr(unsafe.Pointer(unsafe.StringData(first.Key)))
	hi := uintptr(unsafe.Pointer(unsafe.StringData(last.Value))) + uintptr(len(last.Value))
	spans = append(spans, span{lo, hi})
	if m.room != nil {
		add(m.room.String())
	}
	return spans
}

// TestKeptStringsDoNotPinTheirMessage: the texts an event keeps of a
// message much larger than they are (an IM's, a server error's, an
// alert's name) are copies, so that a two-byte IM does not keep a
// message of up to ClientMaxSize alive while it waits in the backlog; a
// text that is most of its message is kept as it is, at no cost. (The
// event's text was a substring of the message's, or of the decoder's
// room for it.)
func TestKeptStringsDoNotPinTheirMessage(t *testing.T) {
	t.Parallel()
	junk := strings.Repeat("j", 64<<10)
	long := strings.Repeat("a", 4<<10)
	alerts := Dict{{Key: "Mail", Value: "On"}, {Key: "junk", Value: junk}}
	cases := []struct {
		name   string
		m      *Message
		pinned bool // the text is most of the message: kept in place
		texts  func(Event) []string
	}{
		{"IM", NewInt("bm", BMIM).AddInt("f", 2001).Add("junk", junk).Add("msg", "hi"), false, imStrings},
		{"IM with escapes", NewInt("bm", BMIM).AddInt("f", 2001).Add("junk", junk).Add("msg", `a\b/c`), false, imStrings},
		{"action", NewInt("bm", BMAction).AddInt("f", 2001).Add("junk", junk).Add("msg", "hi"), false, imStrings},
		{"long IM", NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", long), true, imStrings},
		{"long IM with escapes", NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", long+`/\`), true, imStrings},
		// Each '/' is two bytes on the wire, and the room the text is
		// unescaped into holds the wire form beside it: four times the
		// text's length.
		{"IM all escapes", NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strings.Repeat("/", 4<<10)), false, imStrings},
		{"error", ErrorMessage(1, false, "oops").Add("junk", junk), false, func(ev Event) []string {
			return []string{ev.(ErrorEvent).Message}
		}},
		{"alerts", (&Persist{Cmd: CmdReply | 1, DSN: 7, LID: 18, RID: 99, Body: alerts}).Reply(), false, func(ev Event) []string {
			return ev.(AlertEvent).Alerts
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := NewDecoder(strings.NewReader(string(Encode(tc.m))))
			d.MaxSize, d.SkipEmptyKeys, d.room = ClientMaxSize, true, "msg" // as the client's reader
			m := new(Message)
			if err := d.DecodeInto(m); err != nil {
				t.Fatal(err)
			}
			cfg := ClientConfig{Notify: func() {}, Log: testLog(t)}
			cfg.setDefaults()
			c := newClient(cfg, &memConn{})
			c.handle(m)
			c.flush()
			spans := spanOf(m) // after handle: the room holds the unescaped text
			evs := c.TakeEvents(nil)
			if len(evs) != 1 {
				t.Fatalf("got %#v, want one event", evs)
			}
			for _, s := range tc.texts(evs[0]) {
				in := slices.ContainsFunc(spans, func(sp span) bool { return sp.holds(s) })
				if in != tc.pinned {
					t.Errorf("%.20q (%d bytes of a %d-byte message): in the message's memory %v, want %v", s, len(s), len(Encode(tc.m)), in, tc.pinned)
				}
			}
		})
	}
}

// imStrings are an IMEvent's texts.
func imStrings(ev Event) []string {
	im := ev.(IMEvent)
	return []string{im.Text, im.Markup}
}

// TestReaderOwnerKeepingUpNeverOverflowsBytes: as with the count (see
// TestReaderOwnerKeepingUpNeverOverflows), the IMs of one read that the
// reader holds together are queued before they pass the byte budget, so
// an owner taking every event it is told of never sees an overflow.
func TestReaderOwnerKeepingUpNeverOverflowsBytes(t *testing.T) {
	t.Parallel()
	const ims, budget = 24, 1 << 10 // a few IMs a read, more than the budget
	var wire strings.Builder
	for i := range ims {
		wire.Write(Encode(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)+":"+strings.Repeat("a", 300))))
	}
	got := readKeepingUp(ClientConfig{EventBacklogBytes: budget, Log: testLog(t)}, wire.String())
	d, ok := got[len(got)-1].(DisconnectedEvent)
	if !ok || d.Reason != DisconnectNetwork || d.DroppedIMs != 0 {
		t.Errorf("end: got %#v; want the server's close (EOF), none dropped", got[len(got)-1])
	}
	if n := len(imTexts(got)); n != ims {
		t.Errorf("IMs delivered: got %d, want all %d", n, ims)
	}
}

// TestBacklogBytesCountsTheEventsChannel: the events waiting in the Events
// channel's buffer count against EventBacklogBytes as those queued behind
// it do. An owner that takes nothing from Events makes the client hold no
// more than the budget: the session ends as an overflow, the IMs kept
// within the budget. (The events in the channel's buffer were outside
// both caps: a full buffer of IMs of up to a MiB each, beyond the budget.)
func TestBacklogBytesCountsTheEventsChannel(t *testing.T) {
	t.Parallel()
	const sent = 20 // fewer than the channel's buffer: all fitted in it
	c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.EventBacklogBytes = bytesBudget })
	if cap(c.events) <= sent {
		t.Fatalf("the Events channel's buffer: got %d, want more than the %d IMs", cap(c.events), sent)
	}
	for i := range sent {
		fc.write(bigIM(i))
	}
	fc.waitEOF() // the client gave up on its own
	var evs []Event
	for {
		ev := nextEvent(t, c)
		evs = append(evs, ev)
		if _, ok := ev.(DisconnectedEvent); ok {
			break
		}
	}
	d := evs[len(evs)-1].(DisconnectedEvent)
	if d.Reason != DisconnectOverflow || !errors.Is(d.Err, ErrEventOverflow) {
		t.Errorf("got %v (%v), want overflow", d.Reason, d.Err)
	}
	k := checkBigPrefix(t, evs, sent)
	if got := markupBytes(evs); got > bytesBudget {
		t.Errorf("the client held %d bytes of IMs, want at most the budget, %d", got, bytesBudget)
	}
	if d.DroppedIMs < 1 || len(d.DroppedFrom) < 1 || d.DroppedFrom[0] != UID(3000+k) {
		t.Errorf("dropped: got %d from %v, want the IM from %d first", d.DroppedIMs, d.DroppedFrom, 3000+k)
	}
}
