package msim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// readerGoroutine returns the id of the goroutine the only client's
// reader runs on ("" if none or several).
func readerGoroutine() string {
	var buf strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	id := ""
	for g := range strings.SplitSeq(buf.String(), "\n\n") {
		if !strings.Contains(g, "msim.(*Client).readLoop(") {
			continue
		}
		if id != "" {
			return ""
		}
		id, _, _ = strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
	}
	return id
}

// waitHandedOver waits until the reader runs on another goroutine than
// from, and returns its id.
func waitHandedOver(t *testing.T, from string) string {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		if id := readerGoroutine(); id != "" && id != from {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader still runs on goroutine %s", from)
		}
		time.Sleep(ReaderRest / 8)
	}
}

func imMsg(from UID, text string) *Message {
	return NewInt("bm", BMIM).AddInt("f", int(from)).AddInt("cv", 697).Add("msg", text)
}

func wantIM(t *testing.T, c *Client, text string) {
	t.Helper()
	for {
		switch ev := nextEvent(t, c).(type) {
		case IMEvent:
			if ev.Text != text {
				t.Fatalf("IM: got %q, want %q", ev.Text, text)
			}
			return
		case DisconnectedEvent:
			t.Fatalf("disconnected (%v) before the IM %q", ev.Err, text)
		}
	}
}

// TestClientReaderRests: once a message was handled and none came for
// ReaderRest, the reader hands its wait to a fresh goroutine and goes on
// reading; a message that arrives in two parts across the rest is not cut
// (a cut message could not be decoded: the link would fail). Not
// parallel: it counts every client's readers.
func TestClientReaderRests(t *testing.T) {
	c, fc := loggedIn(t, nil)
	id := waitHandedOver(t, "") // the login's messages wore it
	fc.write(imMsg(2001, "one"))
	wantIM(t, c, "one")
	waitHandedOver(t, id)

	enc := string(Encode(imMsg(2001, "in two parts")))
	half := len(enc) / 2
	fc.write(imMsg(2001, "two")) // wears the reader: the rest is armed again
	wantIM(t, c, "two")
	fc.writeRaw(enc[:half])
	time.Sleep(3 * ReaderRest)
	fc.writeRaw(enc[half:])
	wantIM(t, c, "in two parts")

	// Messages faster than the rest: every one arrives, in order.
	for i := range 10 {
		fc.write(imMsg(2001, "busy "+string(rune('a'+i))))
		time.Sleep(ReaderRest / 8)
	}
	for i := range 10 {
		wantIM(t, c, "busy "+string(rune('a'+i)))
	}
}

// TestClientRest: Rest makes a waiting reader hand over at once, however
// long its deadline, and the reader goes on reading; Rest while a message
// is being decoded (its first part arrived) does not cut it. Not
// parallel: it counts every client's readers.
func TestClientRest(t *testing.T) {
	c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.DeadAfter = time.Hour })
	nextEvent(t, c) // the first presence
	id := waitHandedOver(t, "")
	id = waitHandedOver(t, id) // rested after the login's messages
	// The fresh reader has handled no message: its deadline is the hour's,
	// and only Rest can wake it before then.
	c.Rest()
	waitHandedOver(t, id)
	fc.write(imMsg(2001, "after the rest"))
	wantIM(t, c, "after the rest")

	enc := string(Encode(imMsg(2001, "decoding")))
	fc.writeRaw(enc[:len(enc)/2])
	deadline := time.Now().Add(waitLimit)
	for {
		c.rmu.Lock()
		waiting := c.waiting
		c.rmu.Unlock()
		if !waiting {
			break // the reader decodes, waiting for the rest of the message
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader never left its wait for the message's first part")
		}
		time.Sleep(time.Millisecond)
	}
	c.Rest()
	time.Sleep(ReaderRest / 2)
	fc.writeRaw(enc[len(enc)/2:])
	wantIM(t, c, "decoding")
}

// errReadPast is what readPast returns once its data is read.
var errReadPast = errors.New("read past the data given")

// readPast gives its data in one read, then errReadPast.
type readPast struct{ data []byte }

func (r *readPast) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errReadPast
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// FuzzWhole: when whole says the next message has arrived, decoding it
// reads nothing more; and a stream of whole messages is whole.
func FuzzWhole(f *testing.F) {
	f.Add([]byte(`\bm\1\f\2\msg\final\final\`))
	f.Add([]byte(`\ka\\final\`))
	f.Add([]byte(`\status\1\final\`))
	f.Add([]byte(`\a\final\b\final\`))
	f.Add([]byte(`\a\b\final`))
	f.Add([]byte(`x\a\b\final\`))
	f.Add(Encode(imMsg(2001, `a\b/c final \final\ `)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		br := bufio.NewReaderSize(&readPast{data: bytes.Clone(data)}, 8192)
		d := NewDecoder(br)
		if err := d.Wait(); err != nil {
			return
		}
		if !d.whole() {
			return
		}
		if _, err := d.Decode(); errors.Is(err, errReadPast) {
			t.Fatalf("whole, yet decoding %q read past what had arrived", data)
		}
	})
}

// TestWholeOfEncoded: every encoded message is whole once it has arrived,
// and not before its last byte.
func TestWholeOfEncoded(t *testing.T) {
	for _, m := range []*Message{
		imMsg(2001, `text with \ and / and final`),
		New("ka", ""),
		presenceMsg(2001, StatusAway, "lunch"),
		NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", "final"),
	} {
		enc := Encode(m)
		for cut := 1; cut <= len(enc); cut++ {
			d := NewDecoder(bufio.NewReaderSize(io.MultiReader(bytes.NewReader(enc[:cut])), 8192))
			if err := d.Wait(); err != nil {
				t.Fatal(err)
			}
			_, _ = d.r.Peek(cut) // all that arrived is buffered
			if got, want := d.whole(), cut == len(enc); got != want {
				t.Errorf("%q cut at %d: whole %v, want %v", enc, cut, got, want)
			}
		}
	}
}

// deadlineCounter counts the read deadlines set on its connection.
type deadlineCounter struct {
	net.Conn
	n atomic.Int64
}

func (d *deadlineCounter) SetReadDeadline(t time.Time) error {
	d.n.Add(1)
	return d.Conn.SetReadDeadline(t)
}

// TestRestDeadlinesInABurst: a burst of messages each arriving in two
// parts costs a few read deadlines, not two per message (a rest armed
// before each, put back for each part that is not whole). Not parallel:
// it counts the time between parts.
func TestRestDeadlinesInABurst(t *testing.T) {
	var counted *deadlineCounter
	c, fc := loggedIn(t, func(cfg *ClientConfig) {
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			counted = &deadlineCounter{Conn: nc}
			return counted, nil
		}
	})
	nextEvent(t, c) // the first presence
	const n = 100
	before := counted.n.Load()
	for i := range n {
		enc := string(Encode(imMsg(2001, fmt.Sprintf("split %d", i))))
		fc.writeRaw(enc[:len(enc)/2])
		time.Sleep(time.Millisecond) // the reader has read the first part alone
		fc.writeRaw(enc[len(enc)/2:])
		wantIM(t, c, fmt.Sprintf("split %d", i))
	}
	if got := counted.n.Load() - before; got > n/2 {
		t.Errorf("%d read deadlines for %d messages in two parts, want at most %d", got, n, n/2)
	}
}
