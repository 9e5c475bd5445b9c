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
