package msim

// Unit tests of what the reader makes of single messages from the server,
// handled without a connection.

import (
	"reflect"
	"strconv"
	"testing"
	"time"
)

// handler is a client that only handles messages: no connection, its
// contact table built (empty), its events taken by the test.
func handler(t *testing.T) *Client {
	t.Helper()
	cfg := ClientConfig{Notify: func() {}, Log: testLog(t)}
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
