package ircd

import (
	"bytes"
	"testing"

	"golang.org/x/time/rate"
)

// TestFloodEachLineOfARead: every line costs a flood-control token, those
// a bare CR ends within one LF-ended read too, so that a client cannot send
// a read's worth of commands (hundreds of PRIVMSGs) for the price of one.
func TestFloodEachLineOfARead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		line string
		want int // tokens taken
	}{
		{"one line", "PING a\r\n", 1},
		{"lines ended by bare CRs", "PING a\rPING b\rPRIVMSG ann :hi\r\n", 3},
		{"blank segments are no lines", "PING a\r\r\rPING b\r\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, done := fuzzClient(t)
			defer done()
			const burst = 10
			c.limiter = rate.NewLimiter(1e-9, burst) // no token comes back meanwhile
			st := &readState{br: newLineReader(bytes.NewReader(nil), 512+maxTagsLen)}
			if reason, ended := c.line(st, []byte(tc.line), nil); ended {
				t.Fatalf("line %q ended the connection: %q", tc.line, reason)
			}
			if got := burst - int(c.limiter.Tokens()+0.5); got != tc.want {
				t.Errorf("line %q: got %d tokens taken, want %d", tc.line, got, tc.want)
			}
		})
	}
}
