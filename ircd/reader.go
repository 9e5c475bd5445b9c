package ircd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"

	"gopkg.in/irc.v4"
)

// idleReadBuf is the read buffer a connection starts with and returns to:
// one full line without tags.
const idleReadBuf = 512

// busyReadBuf is the read buffer of a connection one of whose reads
// filled the buffer with lines: more was waiting, so lines come faster
// than idleReadBuf takes in one read (a client with several messages in
// flight), and a burst comes in one read instead of several. It is kept
// until the reader rests (idle).
const busyReadBuf = 4096

// lineReader reads lines like bufio.Reader.ReadSlice('\n') on a reader of
// size max, but its buffer starts at idleReadBuf and grows (up to max) only
// for a longer line, or to busyReadBuf while the connection sends more at
// once than that takes; once that line is consumed, or the reader rests,
// it goes back to idleReadBuf. So an idle connection, blocked in Read,
// holds idleReadBuf bytes and not what a line with tags may need, and the
// limit stays max: a line longer than that gives bufio.ErrBufferFull.
type lineReader struct {
	rd   io.Reader
	buf  []byte
	r, w int // buf[r:w] is read but not returned yet
	max  int
	busy bool // a read filled the buffer with lines: it is busyReadBuf until idle
}

func newLineReader(rd io.Reader, max int) *lineReader {
	return &lineReader{rd: rd, buf: make([]byte, min(idleReadBuf, max)), max: max}
}

// ReadSlice returns the next line, '\n' included. The slice is valid until
// the next call. On an error it returns what was buffered (consumed) and
// the error: bufio.ErrBufferFull if max bytes came without a '\n'.
func (b *lineReader) ReadSlice() (line []byte, err error) {
	searched := 0 // buf[r:r+searched] has no '\n'
	for {
		if i := bytes.IndexByte(b.buf[b.r+searched:b.w], '\n'); i >= 0 {
			end := b.r + searched + i + 1
			line, b.r = b.buf[b.r:end], end
			return line, nil
		}
		searched = b.w - b.r
		if searched >= b.max {
			return b.flush(), bufio.ErrBufferFull
		}
		if err := b.fill(); err != nil {
			return b.flush(), err
		}
	}
}

// hasLine reports whether a complete line is buffered: the next ReadSlice
// returns it without reading.
func (b *lineReader) hasLine() bool {
	return bytes.IndexByte(b.buf[b.r:b.w], '\n') >= 0
}

// flush consumes and returns everything buffered.
func (b *lineReader) flush() []byte {
	line := b.buf[b.r:b.w]
	b.r = b.w
	return line
}

// fill makes room and reads once more.
func (b *lineReader) fill() error {
	n := b.w - b.r
	size := min(idleReadBuf, b.max)
	if b.busy {
		size = busyReadBuf
	}
	switch {
	case n == 0 && len(b.buf) > size:
		b.buf = make([]byte, size) // the long line is done: let its buffer go
	case len(b.buf) < size:
		grown := make([]byte, size)
		copy(grown, b.buf[b.r:b.w])
		b.buf = grown
	case b.r > 0:
		copy(b.buf, b.buf[b.r:b.w])
	case b.w == len(b.buf):
		grown := make([]byte, min(2*len(b.buf), b.max))
		copy(grown, b.buf[:b.w])
		b.buf = grown
	}
	b.r, b.w = 0, n
	for range 100 {
		free := len(b.buf) - b.w
		m, err := b.rd.Read(b.buf[b.w:])
		if m < 0 {
			panic("ircd: negative read count")
		}
		b.w += m
		if m == free && b.max >= busyReadBuf && bytes.IndexByte(b.buf[b.w-m:b.w], '\n') >= 0 {
			b.busy = true // lines, not one long one, and more may be waiting
		}
		if err != nil {
			return err
		}
		if m > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// idle lets a busy buffer go back to idleReadBuf if nothing is buffered:
// the reader is about to wait for input it has no sign of (it rests).
func (b *lineReader) idle() {
	b.busy = false
	if b.r == b.w && len(b.buf) > idleReadBuf {
		b.buf, b.r, b.w = make([]byte, idleReadBuf), 0, 0
	}
}

// parsedLine holds a parsed line and room for its parts, allocated at once.
type parsedLine struct {
	m      irc.Message
	prefix irc.Prefix
	params [4]string
}

// errNoCommand is parseLine's error for a line with tags or a prefix and
// nothing after them.
var errNoCommand = errors.New("ircd: no command after the tags or prefix")

// parseLine parses one line as irc.ParseMessage does (Prefix is never nil,
// Params is nil when there are none, the command is upper-cased), with one
// allocation for the message, its prefix and up to four parameters. Tags
// is nil when the line has none.
func parseLine(line string) (*irc.Message, error) {
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, irc.ErrZeroLengthMessage
	}
	pl := &parsedLine{}
	m := &pl.m
	m.Prefix = &pl.prefix
	if line[0] == '@' {
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			return nil, irc.ErrMissingDataAfterTags
		}
		m.Tags = irc.ParseTags(line[1:i])
		line = line[i+1:]
		if line == "" {
			return nil, errNoCommand
		}
	}
	if line[0] == ':' {
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			return nil, irc.ErrMissingDataAfterPrefix
		}
		p := line[1:i]
		if name, host, ok := strings.Cut(p, "@"); ok {
			p, pl.prefix.Host = name, host
		}
		if name, user, ok := strings.Cut(p, "!"); ok {
			p, pl.prefix.User = name, user
		}
		pl.prefix.Name = p
		line = line[i+1:]
	}
	head, trailing, hasTrailing := strings.Cut(line, " :")
	params := pl.params[:0]
	for head != "" {
		if head[0] == ' ' {
			head = head[1:]
			continue
		}
		word := head
		if i := strings.IndexByte(head, ' '); i >= 0 {
			word, head = head[:i], head[i+1:]
		} else {
			head = ""
		}
		params = append(params, word)
	}
	if len(params) == 0 {
		return nil, irc.ErrMissingCommand
	}
	if hasTrailing {
		params = append(params, trailing)
	}
	m.Command = strings.ToUpper(params[0])
	if len(params) > 1 {
		m.Params = params[1:]
	}
	return m, nil
}
