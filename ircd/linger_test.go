package ircd

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
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

// TestSentReportedBeforeClosed: a client that quits with lines still
// queued (it stopped reading) has each of its deliveries reported, written
// or not, before the backend is told the connection closed, so the backend
// knows what the client missed when it lets it go.
func TestSentReportedBeforeClosed(t *testing.T) {
	cfg := testConfig()
	cfg.SendQ = 100000
	cfg.WriteTimeout = 300 * time.Millisecond
	b := newBackend()
	addr, _ := startServer(t, cfg, b)
	c, fc, _ := register(t, addr, b, "alice")

	var mu sync.Mutex
	reported := map[int]bool{}
	var atClose map[int]bool
	hook := func() {
		mu.Lock()
		atClose = maps.Clone(reported)
		mu.Unlock()
	}
	fc.onClosed.Store(&hook)
	text := strings.Repeat("z", 400)
	accepted := 0
	for fc.c.Room() > cfg.SendQ-1000 { // the socket is full: lines stay queued
		if accepted == 200000 {
			t.Fatal("the queue never grew")
		}
		i := accepted
		if !fc.c.Deliver(Delivery{From: "bob", Text: fmt.Sprintf("%06d %s", i, text), Sent: func(bool) {
			mu.Lock()
			reported[i] = true
			mu.Unlock()
		}}) {
			t.Fatalf("delivery %d refused", i)
		}
		accepted++
	}
	_, _ = c.nc.Write([]byte("QUIT :bye\r\n"))
	fc.waitClosed(t)
	mu.Lock()
	defer mu.Unlock()
	for i := range accepted {
		if !atClose[i] {
			t.Fatalf("delivery %d of %d was not yet reported when the close was told", i, accepted)
		}
	}
}
