package ircd

import (
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// deadlineConn counts the write deadlines set on a connection.
type deadlineConn struct {
	net.Conn
	sets atomic.Int64
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.sets.Add(1)
	return d.Conn.SetWriteDeadline(t)
}

// The writer moves the connection's write deadline only once it has gone
// stale, not before every write: many writes in a second set it once.
func TestWriterArmsDeadlineLazily(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MOTD = nil
	cfg.WriteTimeout = time.Minute
	b := newBackend()
	conns := make(chan *deadlineConn, 1)
	addr, _ := startWrapped(t, cfg, b, func(nc net.Conn) net.Conn {
		d := &deadlineConn{Conn: nc}
		conns <- d
		return d
	})
	c, fc, _ := register(t, addr, b, "me")
	d := <-conns
	before := d.sets.Load()
	const n = 50
	for i := range n {
		sent := make(chan bool, 1)
		// One at a time, each written before the next is queued: n writes.
		if !fc.c.Deliver(tmsg("im "+strconv.Itoa(i), func(ok bool) { sent <- ok })) {
			t.Fatalf("Deliver %d refused", i)
		}
		if !<-sent {
			t.Fatalf("IM %d not written", i)
		}
		expect(t, c, "PRIVMSG")
	}
	if got := d.sets.Load() - before; got > 1 {
		t.Fatalf("%d writes in well under a second set the write deadline %d times, want at most 1", n, got)
	}
}
