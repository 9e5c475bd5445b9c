package msim

// Unit tests of what the reader makes of single messages from the server,
// handled without a connection.

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim/markup"
	"github.com/sirupsen/logrus"
)

// handler is a client that only handles messages: no connection, its
// contact table built (empty), its events taken by the test.
func handler(t *testing.T) *Client { return handlerLog(testLog(t)) }

// handlerLog is handler logging to log (nil: nowhere).
func handlerLog(log *logrus.Entry) *Client {
	cfg := ClientConfig{Notify: func() {}, Log: log}
	cfg.setDefaults()
	c := newClient(cfg, nil)
	c.listed = true
	return c
}

// handleRaw handles the wire message raw and returns the events it made.
func handleRaw(t *testing.T, c *Client, raw string) []Event {
	t.Helper()
	m, err := ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("ParseMessage(%q): %v", raw, err)
	}
	c.handle(m)
	c.flush() // as the reader does before it waits
	return c.TakeEvents(nil)
}

// captureWire returns the wire form of message n of the 2007 capture.
func captureWire(t *testing.T, n int) string {
	t.Helper()
	for _, m := range loadCapture(t) {
		if m.N == n {
			if !m.Complete {
				t.Fatalf("capture message %d is not complete", n)
			}
			return m.Wire
		}
	}
	t.Fatalf("no capture message %d", n)
	return ""
}

// TestLateAlertsErrorIsNoAlert: the 2007 server answered an alerts poll
// (7/18) with an error reply, cmd 1025, whose body holds a junk key and
// ErrorMessage. Arriving after the client gave up the poll, it is not a
// pushed alert; the server's pushed alerts still are.
func TestLateAlertsErrorIsNoAlert(t *testing.T) {
	t.Parallel()
	c := handler(t)
	if evs := handleRaw(t, c, captureWire(t, 44)); len(evs) != 0 {
		t.Errorf("late error reply to an alerts poll: got %#v, want no event", evs)
	}
	want := []Event{AlertEvent{Alerts: []string{"EventInvitation", "Mail"}}}
	if evs := handleRaw(t, c, captureWire(t, 76)); !reflect.DeepEqual(evs, want) {
		t.Errorf("pushed alerts: got %#v, want %#v", evs, want)
	}
}

// TestActionTextStartingWithBangs: a bm 121 carrying text is an IM (spec
// §4.2), even text that starts with "!!!"; only the group-chat controls
// (spec §8), an empty body and an unreadable zap are not.
func TestActionTextStartingWithBangs(t *testing.T) {
	t.Parallel()
	c := handler(t)
	for _, body := range []string{"!!!GroupCount=3", "!!!Offline=2001", "!!!ExitChat", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_x", ""} {
		if evs := handleRaw(t, c, string(Encode(NewInt("bm", BMAction).AddInt("f", 2001).Add("msg", body)))); len(evs) != 0 {
			t.Errorf("bm 121 %q: got %#v, want no event", body, evs)
		}
	}
	// A chat's controls beyond those the spec names: a body starting
	// "!!!" in a message naming a group chat.
	for _, key := range []string{"gid", "aid"} {
		m := NewInt("bm", BMAction).AddInt("f", 2001).Add("msg", "!!!Unlisted=1").AddInt(key, 5)
		if evs := handleRaw(t, c, string(Encode(m))); len(evs) != 0 {
			t.Errorf("bm 121 \"!!!Unlisted=1\" with %s: got %#v, want no event", key, evs)
		}
	}
	evs := handleRaw(t, c, string(Encode(NewInt("bm", BMAction).AddInt("f", 2001).Add("msg", "!!! we won !!!"))))
	if len(evs) != 1 {
		t.Fatalf("bm 121 \"!!! we won !!!\": got %#v, want one IMEvent", evs)
	}
	if im, ok := evs[0].(IMEvent); !ok || im.From != 2001 || im.Text != "!!! we won !!!" || !im.Action {
		t.Errorf("bm 121 \"!!! we won !!!\": got %#v, want the IM from 2001", evs[0])
	}
}

// TestOfflineDateNotAfterReceipt: an offline IM's date (Unix seconds) is
// when it was sent; one after its receipt, which a stored message cannot
// have, reads as the receipt time rather than a time centuries ahead.
func TestOfflineDateNotAfterReceipt(t *testing.T) {
	t.Parallel()
	c := handler(t)
	for _, tc := range []struct {
		date   string
		stored bool // want the date itself, else the receipt time
	}{
		{"1250263988", true},
		{"99999999999999", false}, // year 3170843
		{"9223372036854775807", false},
		{strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10), false},
	} {
		before := time.Now()
		evs := handleRaw(t, c, string(Encode(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", "hi").Add("date", tc.date))))
		after := time.Now()
		if len(evs) != 1 {
			t.Fatalf("date %s: got %#v, want one IMEvent", tc.date, evs)
		}
		im, ok := evs[0].(IMEvent)
		if !ok || !im.Offline {
			t.Fatalf("date %s: got %#v, want an offline IMEvent", tc.date, evs[0])
		}
		if tc.stored {
			if want := time.Unix(1250263988, 0); !im.Time.Equal(want) {
				t.Errorf("date %s: got time %v, want %v", tc.date, im.Time, want)
			}
		} else if im.Time.Before(before) || im.Time.After(after) {
			t.Errorf("date %s: got time %v, want the receipt (between %v and %v)", tc.date, im.Time, before, after)
		}
	}
}

// FuzzClientHandle: no message from the server panics the client's
// handling, and none loses an IM: every bm 1 with a valid sender becomes
// exactly one event from it (an IM, or the typing or zap it carries), and
// every other one but a typing notice is reported in an ErrorEvent.
func FuzzClientHandle(f *testing.F) {
	for _, c := range loadCapture(f) {
		if c.Complete && c.Dir == "server" {
			f.Add([]byte(c.Wire), false)
		}
	}
	f.Add(Encode(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", `<p>a\final\ /1</p>`).Add("date", "1250263988")), true)
	f.Add(Encode(NewInt("bm", BMAction).AddInt("f", 2001).Add("msg", "!!!ZAP_SEND!!!=RTE_BTN_ZAPS_3")), false)
	f.Add(Encode(presenceMsg(2001, StatusAway, "lunch")), false)
	f.Add(Encode(ErrorMessage(6, true, "elsewhere")), true)
	f.Add(Encode(NewInt("bm", BMIM).Add("f", "tom").Add("msg", "hi")), false)
	f.Add([]byte(`\bm\1\f\2001\\x\msg\hi\final\`), false) // a pair with an empty key
	f.Add([]byte("\\persistr\\\\cmd\\257\\dsn\\7\\lid\\18\\rid\\9\\mtf\\1\\body\\Mail=On\\final\\"), false)
	f.Fuzz(func(t *testing.T, b []byte, early bool) {
		c := handlerLog(nil)
		c.listed = !early        // presence before the contact table, as at login
		c.downOnce.Do(func() {}) // no connection to take down
		d := NewDecoder(bytes.NewReader(b))
		d.MaxSize, d.SkipEmptyKeys = ClientMaxSize, true // as the client reads
		for range 16 {
			m, err := d.Decode()
			if err != nil {
				continue
			}
			c.handle(m)
			c.flush()
			evs := c.TakeEvents(nil)
			if typ, _ := m.TypeInt(); !m.Is("bm") || typ != BMIM {
				continue
			}
			if from, err := m.Int("f"); err != nil || !validUID(UID(from)) {
				if k := markup.Classify(m.StrOr("msg", "")); k != markup.KindTyping && k != markup.KindStopTyping && !hasErrorEvent(evs) {
					t.Fatalf("bm 1 %s from no valid sender: got events %#v, want an ErrorEvent", m, evs)
				}
				continue
			} else if len(evs) != 1 || fromOf(evs[0]) != UID(from) {
				t.Fatalf("bm 1 %s from %d: got events %#v, want one from it", m, from, evs)
			}
		}
	})
}

// hasErrorEvent reports whether evs holds an ErrorEvent.
func hasErrorEvent(evs []Event) bool {
	for _, ev := range evs {
		if _, ok := ev.(ErrorEvent); ok {
			return true
		}
	}
	return false
}

// fromOf is the sender of an IM, typing or zap event; 0 for the others.
func fromOf(ev Event) UID {
	if ev, ok := ev.(TypingEvent); ok {
		return ev.From
	}
	return SenderOf(ev)
}

// TestIMFromUnreadableSender: an IM whose sender (f) is no user ID cannot
// be delivered as from anyone, but it is not lost in silence: the owner
// gets an ErrorEvent saying an IM came that could not be read, with its
// text. Typing notices and chat controls from such a sender are no IMs.
func TestIMFromUnreadableSender(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		m    *Message
		want string // in the ErrorEvent's text; "" for no event
	}{
		{"letters", NewInt("bm", BMIM).Add("f", "tom").Add("msg", "<p>hi there</p>"), `sender "tom"`},
		{"zero", NewInt("bm", BMIM).AddInt("f", 0).Add("msg", "hi there"), `sender "0"`},
		{"past int32", NewInt("bm", BMIM).Add("f", "4294967296").Add("msg", "hi there"), `sender "4294967296"`},
		{"none", NewInt("bm", BMIM).Add("msg", "hi there"), "names no sender"},
		{"action", NewInt("bm", BMAction).Add("f", "x").Add("msg", "hi there"), `sender "x"`},
		{"typing", NewInt("bm", BMIM).Add("f", "x").Add("msg", "%typing%"), ""},
		{"chat control", NewInt("bm", BMAction).Add("f", "x").Add("msg", "!!!ExitChat"), ""},
		{"presence", NewInt("bm", BMStatus).Add("f", "x").Add("msg", "|s|1|ss|hi"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			evs := handleRaw(t, handler(t), string(Encode(tc.m)))
			if tc.want == "" {
				if len(evs) != 0 {
					t.Fatalf("got %#v, want no event", evs)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("got %#v, want one ErrorEvent", evs)
			}
			ev, ok := evs[0].(ErrorEvent)
			if !ok || ev.Fatal || !strings.Contains(ev.Message, tc.want) || !strings.Contains(ev.Message, "hi there") {
				t.Errorf("got %#v, want a non-fatal ErrorEvent naming %s and holding the text", evs[0], tc.want)
			}
		})
	}
}

// TestUnknownBMWithText: a buddy message of a type the client does not
// know or cannot read, carrying text, may be an IM: the owner gets an
// ErrorEvent of the client's own (code 0) with its text. One without
// text, a typing notice, a chat control and the known types without a
// useful payload make no event.
func TestUnknownBMWithText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		m    *Message
		want string // in the ErrorEvent's text; "" for no event
	}{
		{"type past int", New("bm", "99999999999999999999").AddInt("f", 2001).Add("msg", "<p>hi there</p>"), `"99999999999999999999"`},
		{"type past int, bad sender", New("bm", "99999999999999999999").Add("f", "tom").Add("msg", "hi there"), `sender "tom"`},
		{"type of letters", New("bm", "im").AddInt("f", 2001).Add("msg", "hi there"), `type "im"`},
		{"unknown number", NewInt("bm", 7).AddInt("f", 2001).Add("msg", "hi there"), `type "7"`},
		{"no text", New("bm", "99999999999999999999").AddInt("f", 2001), ""},
		{"typing", NewInt("bm", 7).AddInt("f", 2001).Add("msg", "%typing%"), ""},
		{"chat control", NewInt("bm", 7).AddInt("f", 2001).Add("msg", "!!!ExitChat"), ""},
		{"media", NewInt("bm", BMMedia).AddInt("f", 2001).Add("msg", "hi there"), ""},
		{"mood", NewInt("bm", BMStatusMood).AddInt("f", 2001).Add("msg", "hi there"), ""},
		{"presence from no user", NewInt("bm", BMStatus).Add("f", "x").Add("msg", "|s|1|ss|hi there"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			evs := handleRaw(t, handler(t), string(Encode(tc.m)))
			if tc.want == "" {
				if len(evs) != 0 {
					t.Fatalf("got %#v, want no event", evs)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("got %#v, want one ErrorEvent", evs)
			}
			ev, ok := evs[0].(ErrorEvent)
			if !ok || ev.Fatal || !ev.Unreadable || !strings.Contains(ev.Message, tc.want) || !strings.Contains(ev.Message, "hi there") || strings.Contains(ev.Message, "<p>") {
				t.Errorf("got %#v, want a non-fatal ErrorEvent of code 0 naming %s and holding the plain text", evs[0], tc.want)
			}
		})
	}
}

// A bm of a type the client does not know, with text, is reported as one
// that may be an IM whatever its sender: one from no valid user ID (as a
// type past an int from "tom" is) does not vanish into the log either.
func TestUnknownBMTypeFromNoUserIsReported(t *testing.T) {
	t.Parallel()
	for _, m := range []*Message{
		NewInt("bm", 7).Add("f", "tom").Add("msg", "hi there"),
		New("bm", "im").Add("f", "tom").Add("msg", "hi there"),
		NewInt("bm", 7).Add("msg", "hi there"),
	} {
		evs := handleRaw(t, handler(t), string(Encode(m)))
		if len(evs) != 1 {
			t.Errorf("%s: got %#v, want one ErrorEvent", m, evs)
			continue
		}
		if ev, ok := evs[0].(ErrorEvent); !ok || !ev.Unreadable || !strings.Contains(ev.Message, "hi there") {
			t.Errorf("%s: got %#v, want an Unreadable ErrorEvent holding the text", m, evs[0])
		}
	}
}
