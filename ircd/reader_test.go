package ircd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type readResult struct {
	line string
	err  error
}

// readAll calls ReadSlice until an error other than ErrBufferFull, at most
// limit times.
func readAll(next func() ([]byte, error), limit int) []readResult {
	var out []readResult
	for range limit {
		line, err := next()
		out = append(out, readResult{string(line), err})
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			break
		}
	}
	return out
}

// chunked returns r's data in reads of the given sizes, cycling.
type chunked struct {
	r     io.Reader
	sizes []int
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	return c.r.Read(p[:min(n, len(p))])
}

func TestLineReader(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 3000) + "\n"
	tests := []struct {
		name string
		in   string
		max  int
		want []readResult
	}{
		{"lines", "a\r\nbb\n\nccc", 100, []readResult{{"a\r\n", nil}, {"bb\n", nil}, {"\n", nil}, {"ccc", io.EOF}}},
		{"empty", "", 100, []readResult{{"", io.EOF}}},
		{"long line grows the buffer", "x\n" + long + "y\n", 8703, []readResult{{"x\n", nil}, {long, nil}, {"y\n", nil}, {"", io.EOF}}},
		{"exactly max", strings.Repeat("z", 599) + "\nok\n", 600, []readResult{{strings.Repeat("z", 599) + "\n", nil}, {"ok\n", nil}, {"", io.EOF}}},
		{"over max", strings.Repeat("z", 600) + "\nok\n", 600, []readResult{{strings.Repeat("z", 600), bufio.ErrBufferFull}, {"\n", nil}, {"ok\n", nil}, {"", io.EOF}}},
		{"max below the idle buffer", "abcdefgh\n", 4, []readResult{{"abcd", bufio.ErrBufferFull}, {"efgh", bufio.ErrBufferFull}, {"\n", nil}, {"", io.EOF}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, rd := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in)), &chunked{r: strings.NewReader(tc.in), sizes: []int{7, 1, 700, 3}}} {
				lr := newLineReader(rd, tc.max)
				got := readAll(lr.ReadSlice, 100)
				if len(got) != len(tc.want) {
					t.Fatalf("got %d results %v, want %d %v", len(got), got, len(tc.want), tc.want)
				}
				for i := range got {
					if got[i].line != tc.want[i].line || !errors.Is(got[i].err, tc.want[i].err) {
						t.Fatalf("result %d: got %q, %v, want %q, %v", i, got[i].line, got[i].err, tc.want[i].line, tc.want[i].err)
					}
				}
				lr.idle()
				if len(lr.buf) > idleReadBuf {
					t.Errorf("buffer of %d bytes kept after the input and a rest, want at most %d", len(lr.buf), idleReadBuf)
				}
			}
		})
	}
}

// TestLineReaderShrinks: the buffer grown for a long line goes back to the
// idle size before the reader waits for more input.
func TestLineReaderShrinks(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	lr := newLineReader(pr, 512+maxTagsLen)
	go func() {
		_, _ = pw.Write([]byte("@" + strings.Repeat("t", 4000) + " PING x\r\n"))
		_, _ = pw.Write([]byte("PING y\r\n"))
		_ = pw.Close()
	}()
	if line, err := lr.ReadSlice(); err != nil || len(line) != 4010 {
		t.Fatalf("got %d bytes, %v, want 4010 bytes", len(line), err)
	}
	if line, err := lr.ReadSlice(); err != nil || string(line) != "PING y\r\n" {
		t.Fatalf("got %q, %v, want PING y", line, err)
	}
	if len(lr.buf) != idleReadBuf {
		t.Errorf("got a %d-byte buffer, want %d", len(lr.buf), idleReadBuf)
	}
}

// bursts is a socket that a client writes bursts of lines to: a read
// returns what is left of the current burst, as much as fits, and the next
// burst only once that one is all read. It counts the reads.
type bursts struct {
	left  [][]byte
	reads int
}

func (b *bursts) Read(p []byte) (int, error) {
	if len(b.left) == 0 {
		return 0, io.EOF
	}
	b.reads++
	n := copy(p, b.left[0])
	if b.left[0] = b.left[0][n:]; len(b.left[0]) == 0 {
		b.left = b.left[1:]
	}
	return n, nil
}

// TestLineReaderBusy: once a read has filled the idle buffer (a client
// with several lines in flight), a burst of them comes in one read instead
// of one per idle buffer's worth; the buffer goes back to the idle size
// when the reader rests (idle), and stays there for a client that sends a
// line at a time.
func TestLineReaderBusy(t *testing.T) {
	t.Parallel()
	line := "PRIVMSG buddy :" + strings.Repeat("x", 57) + "\r\n" // 74 bytes
	burst := strings.Repeat(line, 8)                             // 592 bytes: more than idleReadBuf
	const n = 5
	src := &bursts{}
	for range n {
		src.left = append(src.left, []byte(burst))
	}
	lr := newLineReader(src, 512+maxTagsLen)
	for i := range 8 * n {
		if got, err := lr.ReadSlice(); err != nil || string(got) != line {
			t.Fatalf("line %d: got %q, %v, want %q", i, got, err, line)
		}
	}
	// The first burst takes two reads (512 bytes, then the rest); each
	// later one, one.
	if want := 2 + (n - 1); src.reads != want {
		t.Errorf("reads: got %d for %d bursts, want %d", src.reads, n, want)
	}
	if len(lr.buf) != busyReadBuf {
		t.Errorf("buffer while busy: got %d bytes, want %d", len(lr.buf), busyReadBuf)
	}
	lr.idle()
	if len(lr.buf) != idleReadBuf {
		t.Errorf("buffer once rested: got %d bytes, want %d", len(lr.buf), idleReadBuf)
	}

	// A line at a time never fills the buffer: it stays idle-sized.
	src = &bursts{}
	for range n {
		src.left = append(src.left, []byte(line))
	}
	lr = newLineReader(src, 512+maxTagsLen)
	for i := range n {
		if got, err := lr.ReadSlice(); err != nil || string(got) != line {
			t.Fatalf("single line %d: got %q, %v", i, got, err)
		}
		if len(lr.buf) != idleReadBuf {
			t.Fatalf("buffer after a single line: got %d bytes, want %d", len(lr.buf), idleReadBuf)
		}
	}

	// Resting with part of a line buffered keeps it.
	src = &bursts{left: [][]byte{[]byte(burst + "PRIVMSG buddy :cut"), []byte(" here\r\n")}}
	lr = newLineReader(src, 512+maxTagsLen)
	for range 8 {
		if _, err := lr.ReadSlice(); err != nil {
			t.Fatal(err)
		}
	}
	lr.idle()
	if got, err := lr.ReadSlice(); err != nil || string(got) != "PRIVMSG buddy :cut here\r\n" {
		t.Errorf("line across the rest: got %q, %v", got, err)
	}
}

// FuzzLineReader: lineReader returns what bufio.Reader.ReadSlice returns
// for a buffer of the same size, however the input is cut into reads.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("PING a\r\nPRIVMSG #c :hi\r\n"), uint16(600), byte(5))
	f.Add([]byte("@"+strings.Repeat("k=v;", 300)+" PRIVMSG x :y\n\nz"), uint16(1000), byte(0))
	f.Fuzz(func(t *testing.T, in []byte, max uint16, cut byte) {
		size := 16 + int(max)%9000 // bufio's minimum is 16
		sizes := []int{int(cut) + 1, 3 * (int(cut) + 1), 1}
		br := bufio.NewReaderSize(&chunked{r: bytes.NewReader(in), sizes: sizes}, size)
		want := readAll(func() ([]byte, error) { return br.ReadSlice('\n') }, len(in)+2)
		got := readAll(newLineReader(&chunked{r: bytes.NewReader(in), sizes: sizes}, size).ReadSlice, len(in)+2)
		if len(got) != len(want) {
			t.Fatalf("got %d results %v, want %d %v", len(got), got, len(want), want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("result %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}

// TestIndexLineEnd: indexLineEnd finds what bytes.IndexAny(b, "\r\n")
// finds.
func TestIndexLineEnd(t *testing.T) {
	for _, s := range []string{"", "a", "\r", "\n", "\r\n", "\n\r", "abc", "ab\rc\nd", "ab\nc\rd", "abc\r", "abc\n",
		"PRIVMSG tom :hi\r\nPING x\r\n", strings.Repeat("x", 100) + "\r", strings.Repeat("x", 100) + "\n" + strings.Repeat("y", 20) + "\r"} {
		if got, want := indexLineEnd([]byte(s)), bytes.IndexAny([]byte(s), "\r\n"); got != want {
			t.Errorf("indexLineEnd(%q): got %d, want %d", s, got, want)
		}
	}
}

// FuzzIndexLineEnd: indexLineEnd agrees with bytes.IndexAny on any bytes.
func FuzzIndexLineEnd(f *testing.F) {
	f.Add([]byte("PRIVMSG tom :hi\r\n"))
	f.Add([]byte("a\nb\rc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := indexLineEnd(b), bytes.IndexAny(b, "\r\n"); got != want {
			t.Fatalf("indexLineEnd(%q): got %d, want %d", b, got, want)
		}
	})
}
