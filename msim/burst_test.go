package msim

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// trickle is a connection holding data that is all there already: a read
// gets as much as it asks for, up to per bytes (0: no limit), then err
// with the last bytes (io.EOF when nil).
type trickle struct {
	data  []byte
	per   int
	reads int
	err   error
}

// next takes what one read gets: up to per bytes of what is there.
func (t *trickle) next(p []byte) int {
	t.reads++
	n := len(p)
	if t.per > 0 {
		n = min(n, t.per)
	}
	n = copy(p, t.data[:min(n, len(t.data))])
	t.data = t.data[n:]
	return n
}

// readNow is Read without the end: what is there, or false.
func (t *trickle) readNow(p []byte) (int, bool) {
	if len(t.data) == 0 {
		return 0, false
	}
	return t.next(p), true
}

func (t *trickle) Read(p []byte) (int, error) {
	n := t.next(p)
	if len(t.data) == 0 {
		if t.err != nil {
			return n, t.err
		}
		return n, io.EOF
	}
	return n, nil
}

// contactListMsg is a persist reply of about size bytes, as a contact
// list comes: one message, many records.
func contactListMsg(size int) []byte {
	var body strings.Builder
	for i := 0; body.Len() < size; i++ {
		body.WriteString("ContactID=1000123\x1cUserName=buddy_name\x1cDisplayName=A Buddy\x1cPosition=1\x1cGroupID=1\x1d")
	}
	return NewInt("persistr", 1).Add("uid", "1000001").Add("body", Escape(body.String())).AppendTo(nil)
}

// decodeLists decodes n messages from d, each with a body of at least
// size bytes (contactListMsg's).
func decodeLists(t *testing.T, d *Decoder, n, size int) {
	t.Helper()
	for i := range n {
		m, err := d.Decode()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got, _ := m.Raw("body"); len(got) < size {
			t.Fatalf("message %d: body of %d bytes, want at least %d", i, len(got), size)
		}
	}
}

// TestBurstReadsAhead: a message far larger than the read buffer that has
// arrived whole is read in a few large reads of the connection, not one
// of readBuf bytes at a time, and the lent buffer goes back once read.
func TestBurstReadsAhead(t *testing.T) {
	msg := contactListMsg(20 << 10)
	conn := &trickle{data: append(msg, msg...)}
	d := NewDecoder(conn)
	decodeLists(t, d, 2, 20<<10)
	if max := 2*len(msg)/burstRead + 3; conn.reads > max {
		t.Errorf("two messages of %d bytes: %d reads of the connection, want at most %d", len(msg), conn.reads, max)
	}
	if d.burst.lent != nil {
		t.Errorf("the burst's buffer is held after its bytes were read")
	}
	if _, err := d.Decode(); err != io.EOF {
		t.Errorf("at the end: got %v, want io.EOF", err)
	}
}

// TestSmallReadsGoStraight: messages that arrive one by one (each read
// finds less than the buffer holds) are read straight into the read
// buffer: no buffer is lent, one read each.
func TestSmallReadsGoStraight(t *testing.T) {
	one := NewInt("bm", 1).Add("f", "1000002").Add("msg", "hello").AppendTo(nil)
	conn := &trickle{data: bytes.Repeat(one, 50), per: len(one)}
	d := NewDecoder(conn)
	for i := range 50 {
		if _, err := d.Decode(); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if d.burst.lends != 0 {
			t.Fatalf("message %d: a buffer was lent for small reads", i)
		}
	}
	if conn.reads > 51 {
		t.Errorf("50 messages read one by one: %d reads, want 50 or 51", conn.reads)
	}
}

// TestBurstKeepsTheErrorForLast: an error that comes with the last bytes
// of a burst is returned after them, never instead of them.
func TestBurstKeepsTheErrorForLast(t *testing.T) {
	msg := contactListMsg(4 << 10)
	boom := errors.New("connection reset")
	conn := &trickle{data: bytes.Clone(msg), err: boom}
	br := newBurstReader(conn)
	br.more = true
	got, err := io.ReadAll(io.LimitReader(struct{ io.Reader }{br}, int64(len(msg)+1)))
	if !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes, want the %d sent", len(got), len(msg))
	}
	if !errors.Is(err, boom) {
		t.Errorf("after the bytes: got %v, want %v", err, boom)
	}
	if br.lent != nil {
		t.Errorf("the buffer is held after the error")
	}
}

// FuzzBurstReader: whatever the sizes of the connection's reads and of the
// reader's, a burstReader passes on the bytes in order, all of them, then
// the end.
func FuzzBurstReader(f *testing.F) {
	f.Add([]byte("\\bm\\1\\final\\"), uint16(0), uint16(1024), true)
	f.Add(contactListMsg(40<<10), uint16(1500), uint16(1024), false)
	f.Add(contactListMsg(3<<10), uint16(1), uint16(7), true)
	f.Fuzz(func(t *testing.T, data []byte, per, ask uint16, more bool) {
		conn := &trickle{data: bytes.Clone(data), per: int(per)}
		br := newBurstReader(conn)
		br.more = more
		buf := make([]byte, max(1, int(ask)))
		var got []byte
		for range 4*len(data) + 8 {
			n, err := br.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want the %d given (or not in order)", len(got), len(data))
		}
		if br.lent != nil {
			t.Fatalf("a buffer is held at the end")
		}
	})
}

// TestBurstOverTCP: on a real socket a burst that has arrived is read in
// large reads too, and every byte of it decodes.
func TestBurstOverTCP(t *testing.T) {
	client, server := tcpPair(t)
	msg := contactListMsg(20 << 10)
	if _, err := server.Write(append(bytes.Clone(msg), msg...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // all of it there before the first read
	d := NewDecoder(client)
	decodeLists(t, d, 2, 20<<10)
	if d.burst.lends == 0 {
		t.Errorf("two messages of %d bytes, there at once: no large read", len(msg))
	}
	if d.burst.lent != nil {
		t.Errorf("the burst's buffer is held after its bytes were read")
	}
}

// TestWaitingReaderHoldsNoBuffer: when a read filled the read buffer
// exactly and nothing more has arrived, the reader waits for the next
// message without a lent buffer: an idle connection holds none.
func TestWaitingReaderHoldsNoBuffer(t *testing.T) {
	client, server := tcpPair(t)
	base := len(NewInt("bm", 1).Add("f", "1000002").Add("msg", "").AppendTo(nil))
	exact := NewInt("bm", 1).Add("f", "1000002").Add("msg", strings.Repeat("a", readBuf-base)).AppendTo(nil)
	if len(exact) != readBuf {
		t.Fatalf("message of %d bytes, want %d", len(exact), readBuf)
	}
	if _, err := server.Write(exact); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	d := NewDecoder(client)
	if _, err := d.Decode(); err != nil {
		t.Fatal(err)
	}
	if !d.burst.more {
		t.Fatalf("a read of exactly %d bytes did not say more may be waiting", readBuf)
	}
	got := make(chan error, 1)
	go func() {
		_, err := d.Decode() // waits: nothing has arrived
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := server.Write(NewInt("bm", 1).Add("f", "1000002").Add("msg", "hi").AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if d.burst.lends != 0 {
		t.Errorf("a buffer was lent to a reader waiting for its next message (%d lent)", d.burst.lends)
	}
}
