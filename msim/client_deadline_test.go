package msim_test

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// deadlineConn counts the write deadlines set on a connection.
type deadlineConn struct {
	net.Conn
	sets *atomic.Int64
}

func (d deadlineConn) SetWriteDeadline(t time.Time) error {
	d.sets.Add(1)
	return d.Conn.SetWriteDeadline(t)
}

// The writer moves the connection's write deadline only once it has gone
// stale, not before every write: many IMs in a second set it once.
func TestWriterArmsDeadlineLazily(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, false)
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	var sets atomic.Int64
	ca, err := dialAs(t, addr, alice, func(cfg *msim.ClientConfig) {
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return deadlineConn{nc, &sets}, nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	cb := mustDial(t, addr, bob)
	ctx := context.Background()
	before := sets.Load()
	const n = 30
	for i := range n {
		// One at a time, each received before the next is sent: n writes.
		text := "im " + strconv.Itoa(i)
		if err := ca.SendIM(ctx, bob.uid, text); err != nil {
			t.Fatal(err)
		}
		if im := waitFor(t, cb, func(msim.IMEvent) bool { return true }); im.Text != text {
			t.Fatalf("bob got %q, want %q", im.Text, text)
		}
	}
	if got := sets.Load() - before; got > 1 {
		t.Fatalf("%d IMs written in well under a second set the write deadline %d times, want at most 1", n, got)
	}
}
