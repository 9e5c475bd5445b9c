package msim

// Guards on the cost of each IM on the client's paths: what the reader does
// for a read's worth of IMs, and what SendIM and the writer do for each.

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/allocs"
	"github.com/msimircd/msimircd/msim/markup"
)

// memConn is a connection whose reads return data, as much as is asked
// for, then again the chunk it started with, as many times more as
// repeat says, and then io.EOF; writes are counted. It has no deadlines
// to keep.
type memConn struct {
	net.Conn
	mu     sync.Mutex
	data   []byte
	chunk  []byte
	repeat int
	wrote  int
}

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.data) == 0 && c.repeat > 0 {
		c.data, c.repeat = c.chunk, c.repeat-1
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wrote += len(p)
	return len(p), nil
}

func (c *memConn) Close() error                     { return nil }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// wireIM is the wire form of the bm 1 from with text, as a server passes
// on the gateway's own.
func wireIM(from UID, text string) string {
	return string(Encode(NewInt("bm", BMIM).AddInt("f", int(from)).Add("msg", markup.FromPlain(text))))
}

// readAll runs a reader over wire until the connection ends, and returns
// the events and how many times Notify was called.
func readAll(t *testing.T, wire string) ([]Event, int64) {
	t.Helper()
	var calls atomic.Int64
	cfg := ClientConfig{Notify: func() { calls.Add(1) }}
	cfg.setDefaults()
	c := newClient(cfg, &memConn{data: []byte(wire)})
	c.wg.Add(2) // the reader, and the writer that ends the session
	go c.readLoop(nil)
	c.wg.Wait()
	return c.TakeEvents(nil), calls.Load()
}

// TestReaderQueuesAReadAtOnce: the IMs that come in one read are queued
// together, in order, with one wake of the owner, not one each.
func TestReaderQueuesAReadAtOnce(t *testing.T) {
	t.Parallel()
	const ims = 8
	var wire strings.Builder
	for i := range ims {
		wire.WriteString(wireIM(2001, strconv.Itoa(i)))
	}
	evs, calls := readAll(t, wire.String())
	if got := imTexts(evs); strings.Join(got, " ") != strings.Join(numbered(ims), " ") {
		t.Errorf("IMs: got %q, want %q", got, numbered(ims))
	}
	if _, ok := evs[len(evs)-1].(DisconnectedEvent); !ok {
		t.Errorf("last event: got %#v, want the DisconnectedEvent", evs[len(evs)-1])
	}
	// One for the read's IMs, one for the DisconnectedEvent.
	if calls != 2 {
		t.Errorf("Notify called %d times for %d IMs in one read and the end, want 2", calls, ims)
	}
}

// TestReaderKeepsTheOrderOfARead: what the reader queues at once keeps
// its place among the events it queues at once (a server's error) and
// around a message it skips.
func TestReaderKeepsTheOrderOfARead(t *testing.T) {
	t.Parallel()
	wire := wireIM(2001, "one") + `\error\\err\6\errmsg\slow down\final\` + wireIM(2001, "two") +
		`\final\` + wireIM(2001, "three") // an empty message, skipped
	evs, _ := readAll(t, wire)
	var got []string
	for _, ev := range evs {
		switch ev := ev.(type) {
		case IMEvent:
			got = append(got, ev.Text)
		case ErrorEvent:
			got = append(got, "error "+ev.Message)
		case DisconnectedEvent:
			got = append(got, "end")
		}
	}
	if want := "one,error slow down,two,three,end"; strings.Join(got, ",") != want {
		t.Errorf("events: got %q, want %s", got, want)
	}
}

// BenchmarkReadIMs measures the reader's work for each IM of a steady
// stream of reads of eight IMs each (decode, handle, queue for the
// owner), the owner taking them as Notify says.
func BenchmarkReadIMs(b *testing.B) {
	one := wireIM(2001, "hello there, how are you doing today?")
	cfg := ClientConfig{}
	cfg.setDefaults()
	var c *Client
	var buf []Event
	cfg.Notify = func() { buf = c.TakeEvents(buf[:0]) }
	chunk := []byte(strings.Repeat(one, 8)) // about what a read brings under load
	c = newClient(cfg, &memConn{data: chunk, chunk: chunk, repeat: b.N / 8})
	b.ReportAllocs()
	b.ResetTimer()
	c.wg.Add(2)
	go c.readLoop(nil)
	c.wg.Wait()
}

// TestSendIMCostsNoObject: an IM given to SendIM and written by the writer
// costs no allocation once the pools and the writer's buffers are warm.
func TestSendIMCostsNoObject(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops some of what sync.Pool is given")
	}
	nc := &memConn{}
	c := loggedInMem(nc)
	c.writing = true // the test writes, as the writer would, on its own goroutine
	w := c.ws
	ctx := context.Background()
	send := func() {
		if err := c.SendIM(ctx, 2001, "hello there, how are you doing today?"); err != nil {
			t.Fatal(err)
		}
		if got := c.gather(w); got != gatherBatch {
			t.Fatalf("gather: got %d, want a batch", got)
		}
		if err := c.write(w); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 * recentIMs { // the writer's ring of recent IMs at its size
		send()
	}
	if n := testing.AllocsPerRun(100, send); n != 0 {
		t.Errorf("SendIM and its write: got %v allocations per IM, want 0", n)
	}
	if w.recent.n == 0 || w.recent.at(w.recent.n-1).Text != "hello there, how are you doing today?" {
		t.Errorf("the IMs written are not remembered for Unconfirmed")
	}
}

// TestReadIMCostsTwoObjects: the reader's work for an IM (decode, body,
// event) costs two allocations: the message's text with the body in it,
// and the event. The cost of a read of more IMs less that of fewer is the
// IMs' own, whatever the stream's start and end cost.
func TestReadIMCostsTwoObjects(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops some of what sync.Pool is given")
	}
	one := wireIM(2001, "hello there, how are you doing today?")
	cost := func(ims int) uint64 {
		return allocs.Least(5, func() func() {
			cfg := ClientConfig{}
			cfg.setDefaults()
			var c *Client
			buf := make([]Event, 0, 1024)
			cfg.Notify = func() { buf = c.TakeEvents(buf[:0]) }
			c = newClient(cfg, &memConn{data: []byte(strings.Repeat(one, ims))})
			return func() {
				c.wg.Add(2)
				c.readLoop(nil)
				c.wg.Wait()
			}
		})
	}
	const few, many = 64, 192
	perIM := float64(cost(many)-cost(few)) / (many - few)
	if perIM > 2 {
		t.Errorf("reading an IM: got %.2f allocations, want at most 2", perIM)
	}
}
