package ircd

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDroppedClientGetsWhatWasSent: a client that stops reading and floods
// past its SendQ is dropped, but every line ircd reported Sent reaches it:
// the close does not reset the connection (which would discard the lines
// still in flight) even though the client's input was left unread.
func TestDroppedClientGetsWhatWasSent(t *testing.T) {
	cfg := testConfig()
	cfg.SendQ = 200
	b := newBackend()
	addr, _ := startServer(t, cfg, b)
	c, fc, _ := register(t, addr, b, "alice")

	var sent atomic.Int64
	text := strings.Repeat("z", 400)
	for i := 0; ; i++ {
		if i == 20000 {
			t.Fatal("the SendQ never overflowed")
		}
		ok := fc.c.Deliver(Delivery{From: "bob", Text: fmt.Sprintf("%05d %s", i, text), Sent: func(ok bool) {
			if ok {
				sent.Add(1)
			}
		}})
		if i%100 == 0 {
			// Input the server will never read once it drops the client.
			_, _ = c.nc.Write([]byte(strings.Repeat("PING :unread\r\n", 20)))
		}
		if !ok {
			break
		}
	}
	fc.waitClosed(t)
	got := 0
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		m, err := c.r.ReadMessage()
		if err != nil {
			if errors.Is(err, errConnReset) || strings.Contains(err.Error(), "reset") {
				t.Fatalf("the connection was reset after %d of the lines reported sent", got)
			}
			break
		}
		if m.Command == "PRIVMSG" {
			got++
		}
	}
	if n := sent.Load(); int64(got) < n {
		t.Fatalf("the client read %d lines, ircd reported %d sent", got, n)
	}
}

var errConnReset = errors.New("connection reset by peer")
