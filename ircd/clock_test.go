package ircd

import (
	"testing"
	"time"
)

// TestLineReadsTheClockOnce: the reader reads the clock once for a line,
// and that time is the line's everywhere: the ping timer's last read, the
// idle time, the message's server-time and the time its msgid starts
// with.
func TestLineReadsTheClockOnce(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	h := &countingHandler{c: c}
	c.handler = h
	addBud(t, c)
	at := time.Date(2001, 2, 3, 4, 5, 6, 789_123_456, time.FixedZone("x", 3600))
	reads := 0
	c.srv.now = func() time.Time { reads++; return at }
	st := c.newReadState()
	for i, line := range []string{"PRIVMSG bud :hello\r\n", "NOTICE bud :hi\r\n"} {
		reads = 0
		if reason, end := c.line(st, []byte(line), nil); end {
			t.Fatalf("line %d ended the connection: %q", i, reason)
		}
		if reads != 1 {
			t.Errorf("line %d read the clock %d times, want 1", i, reads)
		}
		want := at.UTC().Truncate(time.Millisecond)
		if h.messages != i+1 || !h.last.Time.Equal(want) || h.last.Time.Location() != time.UTC {
			t.Fatalf("line %d: %d messages, the last at %v; want %d, at %v (UTC)", i, h.messages, h.last.Time, i+1, want)
		}
		if got := msgIDTime(t, h.last.MsgID); !got.Equal(want) {
			t.Errorf("line %d: msgid %s is of %v, want %v (the line's time)", i, h.last.MsgID, got, want)
		}
		if !st.lastRead.Equal(at) || !c.lastActive.Equal(at) {
			t.Errorf("line %d: last read %v, last active %v; want both %v", i, st.lastRead, c.lastActive, at)
		}
		if !c.lineAt.IsZero() {
			t.Errorf("line %d: the line's time is kept after it: %v", i, c.lineAt)
		}
	}
}

// TestDeliveriesReadTheClockOncePerSecond: IMs delivered within a second
// read the clock once between them for their sender's idle time; the
// timer set for the next second's start makes the next one read it
// again, and the sender's last message time follows it.
func TestDeliveriesReadTheClockOncePerSecond(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	addBud(t, c)
	ft := fakeStamps(c)
	at := c.signon.Add(5*time.Second + 300*time.Millisecond)
	reads := 0
	c.srv.now = func() time.Time { reads++; return at }
	spoke := func() stamp {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.findUser("bud").lastSpoke
	}
	for i := range 3 {
		if !c.Deliver(Delivery{From: "bud", Text: "hello"}) {
			t.Fatalf("delivery %d refused", i)
		}
	}
	c.giveBack(c.take())
	if reads != 1 || spoke() != 5 {
		t.Errorf("3 deliveries read the clock %d times, stamped %d; want 1, 5", reads, spoke())
	}
	ds, _ := ft.durations()
	if len(ds) != 1 || ds[0] != 700*time.Millisecond {
		t.Fatalf("timers %v, want one of 700ms (to the next second)", ds)
	}
	at = at.Add(time.Second)
	if n := ft.fire(); n != 1 {
		t.Fatalf("fired %d timers, want 1", n)
	}
	c.Deliver(Delivery{From: "bud", Text: "again"})
	c.giveBack(c.take())
	if reads != 2 || spoke() != 6 {
		t.Errorf("after the timer: %d clock reads, stamped %d; want 2, 6", reads, spoke())
	}
}

// fakeStamps gives c fake stamp timers (ft), stopping the real one its
// world's users were added under: it would make the next stamp stale
// whenever it ran.
func fakeStamps(c *Client) *fakeTimers {
	ft := &fakeTimers{}
	c.mu.Lock()
	c.dropStamp()
	c.srv.stampAfter = ft.afterFunc
	c.mu.Unlock()
	return ft
}
