package msim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unsafe"
)

// DefaultMaxSize is the largest message a Decoder accepts unless told
// otherwise (the spec recommends 64 KiB for a server).
const DefaultMaxSize = 64 << 10

// ClientMaxSize is the size a client should accept: a 1000-entry contact
// list arrives as one message.
const ClientMaxSize = 1 << 20

// Escape encodes a string value: '/' becomes "/1" and '\' becomes "/2".
func Escape(s string) string {
	if strings.IndexByte(s, '/') < 0 && strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '/':
			b.WriteString("/1")
		case '\\':
			b.WriteString("/2")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// appendEscaped appends Escape(s) to b.
func appendEscaped(b []byte, s string) []byte {
	for {
		i := strings.IndexAny(s, `/\`)
		if i < 0 {
			return append(b, s...)
		}
		b = append(b, s[:i]...)
		if s[i] == '/' {
			b = append(b, "/1"...)
		} else {
			b = append(b, "/2"...)
		}
		s = s[i+1:]
	}
}

// Unescape decodes a string value: "/1" becomes '/', "/2" becomes '\'. Any
// other '/' is kept as it is, as the protocol specifies.
func Unescape(s string) string {
	if strings.IndexByte(s, '/') < 0 {
		return s
	}
	b := appendUnescaped(make([]byte, 0, len(s)), s)
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is not used again
}

// appendUnescaped appends Unescape(s) to b.
func appendUnescaped(b []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, '/')
		if i < 0 || i+1 == len(s) {
			return append(b, s...)
		}
		switch s[i+1] {
		case '1':
			b = append(append(b, s[:i]...), '/')
		case '2':
			b = append(append(b, s[:i]...), '\\')
		default:
			b = append(b, s[:i+1]...) // a '/' kept as it is
			s = s[i+1:]
			continue
		}
		s = s[i+2:]
	}
}

// writeUnescaped writes Unescape(s) to w.
func writeUnescaped(w *strings.Builder, s string) {
	for {
		i := strings.IndexByte(s, '/')
		if i < 0 || i+1 == len(s) {
			w.WriteString(s)
			return
		}
		switch s[i+1] {
		case '1':
			w.WriteString(s[:i])
			w.WriteByte('/')
		case '2':
			w.WriteString(s[:i])
			w.WriteByte('\\')
		default:
			w.WriteString(s[:i+1]) // a '/' kept as it is
			s = s[i+1:]
			continue
		}
		s = s[i+2:]
	}
}

// AppendTo appends the wire form of m (ending in \final\) to b.
func (m *Message) AppendTo(b []byte) []byte {
	for _, f := range m.fields {
		b = f.AppendTo(b)
	}
	return AppendFinal(b)
}

// AppendTo appends f's wire form, \key\value, to b: Value as it stands
// (escaped, as a decoded message holds it), without a copy of a Message.
func (f Field) AppendTo(b []byte) []byte {
	b = append(b, '\\')
	b = append(b, f.Key...)
	b = append(b, '\\')
	return append(b, f.Value...)
}

// AppendFinal appends the end of a message, \final\, to b.
func AppendFinal(b []byte) []byte { return append(b, `\final\`...) }

// Encode returns the wire form of m.
func Encode(m *Message) []byte {
	n := len(`\final\`)
	for _, f := range m.fields {
		n += 2 + len(f.Key) + len(f.Value)
	}
	return m.AppendTo(make([]byte, 0, n))
}

// SyntaxError reports a message that could not be decoded. Err is one of
// ErrMalformed, ErrTooLarge, ErrEmptyKey, ErrNoBackslash or
// io.ErrUnexpectedEOF.
type SyntaxError struct {
	Offset int64 // stream offset where the offending message started
	Err    error
	Detail string
}

func (e *SyntaxError) Error() string {
	s := fmt.Sprintf("msim: decode at byte %d: %v", e.Offset, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// Decoder reads messages from a byte stream.
//
// A message ends at the first "\final\" that stands where a key would, so a
// value that happens to read "final" cannot cut a message short. Where a
// value would stand, "\final\" ends the message only if the next message
// follows at once (a '\') or the stream ends: the spec's odd token count, a
// last key without a value. For every message a real client or server
// produces, this is the same split as the spec's plain search.
//
// Bytes that do not start with '\' are discarded up to the next '\' (or as
// many as have arrived) and reported as ErrNoBackslash; the stream stays in
// step. A message over MaxSize is reported as ErrTooLarge and the Decoder
// then refuses to go on, since the sender is out of step or hostile: close
// the connection.
type Decoder struct {
	r       *bufio.Reader
	burst   *burstReader // under r when NewDecoder made r; nil otherwise
	MaxSize int          // 0 means DefaultMaxSize
	lent    *[]byte      // holds the buffer lent by largeBufs while one is used
	small   *[]byte      // holds the buffer lent by smallBufs while one is used
	off     int64
	sticky  error
	// room names the field whose unescaped value a message decoded
	// with DecodeInto gets room for after its text (see text); tb holds
	// that text while the message is handled.
	room string
	tb   strings.Builder
	// cut is what decodeBuffered found of a message that had not
	// arrived whole, for decodeTokens to go on from (see cutMessage).
	cut cutMessage
	// tokenDecodes counts the messages decodeTokens began (for tests).
	tokenDecodes int

	// SkipEmptyKeys leaves out a pair whose key is empty, after the first
	// (the type), rather than failing its message with ErrEmptyKey. Fields
	// are read by name (spec §1.1) and no name finds such a pair, so a
	// reader that must not lose the rest of the message skips it.
	SkipEmptyKeys bool
}

// NewDecoder returns a Decoder reading from r, through a read buffer of
// readBuf bytes unless r is a bufio.Reader already.
func NewDecoder(r io.Reader) *Decoder {
	if br, ok := r.(*bufio.Reader); ok && br.Size() >= readBuf {
		return &Decoder{r: br}
	}
	burst := newBurstReader(r)
	return &Decoder{r: bufio.NewReaderSize(burst, readBuf), burst: burst}
}

// readBuf is the size of the read buffer NewDecoder gives a plain reader:
// every connection holds one for its life, so it is small; under load one
// read syscall still brings it several IMs, and in a burst (a contact
// list, a login's presences) its burstReader reads far more at once.
const readBuf = 1024

// Wait blocks until the next message has begun to arrive, and returns
// the error that Decode would return if it cannot (a read error, or the
// refusal after ErrTooLarge). A reader that waits here between messages
// rather than inside Decode waits on a shallower stack, which the Go
// runtime can then shrink: most connections are idle most of the time.
//
//go:noinline
func (d *Decoder) Wait() error {
	if d.sticky != nil {
		return d.sticky
	}
	_, err := d.r.Peek(1)
	return err
}

// buffered is how many bytes have been read from the underlying reader
// and not yet decoded.
func (d *Decoder) buffered() int {
	if d.burst != nil {
		return d.r.Buffered() + len(d.burst.b)
	}
	return d.r.Buffered()
}

// whole reports whether the next message has arrived whole, so that
// decoding it reads nothing more from the underlying reader (and a read
// deadline cannot cut it). It is conservative: false for a message whose
// end it cannot tell without reading on. It never reads.
func (d *Decoder) whole() bool {
	if d.sticky != nil {
		return true // decoding fails at once
	}
	b, _ := d.r.Peek(d.r.Buffered())
	if len(b) == 0 || b[0] != '\\' {
		return false
	}
	b = b[1:]
	for key := true; ; key = !key {
		i := bytes.IndexByte(b, '\\')
		if i < 0 {
			return false
		}
		if key && string(b[:i]) == "final" {
			return true
		}
		b = b[i+1:]
	}
}

// Decode returns the next message. At a clean end of stream it returns io.EOF.
func (d *Decoder) Decode() (*Message, error) { return d.decode(nil) }

// DecodeInto is Decode into m, whose fields it replaces, reusing their
// array when it is large enough: for a reader that handles one message at
// a time and keeps neither m nor its Fields once done with it. The values
// of m's former fields stay valid. On an error m holds no fields.
func (d *Decoder) DecodeInto(m *Message) error {
	m.fields, m.room = m.fields[:0], nil
	_, err := d.decode(m)
	return err
}

// decode is Decode, into the message into when it is not nil.
func (d *Decoder) decode(into *Message) (*Message, error) {
	if d.sticky == nil && d.r.Buffered() == 0 {
		// Read first what has arrived (the read decodeTokens would
		// make for its first byte), so that the messages that came in
		// one read are all decoded in one scan, the first included.
		if _, err := d.r.Peek(1); err != nil {
			return nil, err
		}
	}
	if m, err, whole := d.decodeBuffered(into); whole {
		return m, err
	}
	return d.decodeTokens(into)
}

// cutMessage is what decodeBuffered found of a message that had not
// arrived whole: its first pos bytes (pos > 0) are whole tokens, tokens of
// them, none ending it and within the size limit max, when it starts at
// the stream's offset off. decodeTokens, which decode calls next, goes on
// from there.
type cutMessage struct {
	off              int64
	pos, tokens, max int
}

// scanTokens is the most tokens of a message whose ends decodeBuffered
// keeps while it scans: a message with more is parsed again from its text.
const scanTokens = 64

// decodeBuffered is decode when the next message has arrived whole in
// the read buffer, so that decoding it reads nothing more: it finds the
// message's end and its tokens in one scan of the buffered bytes, copies
// the message's text once and cuts the fields from the text where the scan
// found them. whole is false, and nothing consumed, when the message has
// not arrived whole (or the buffered bytes do not start one); decodeTokens
// decodes it then. A message that fails (empty, too large, an empty key)
// is decoded by decodeTokens too, which fails it alike without reading
// more. The messages and errors are decodeTokens'.
func (d *Decoder) decodeBuffered(into *Message) (m *Message, err error, whole bool) {
	if d.sticky != nil {
		return nil, d.sticky, true
	}
	b, _ := d.r.Peek(d.r.Buffered())
	if len(b) == 0 || b[0] != '\\' {
		return nil, nil, false
	}
	max := d.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	// As decodeTokens reads them: token i ends at ends[i], a '\', and the
	// message at the "final" that stands where a key would, or where a
	// value would if the next message follows at once.
	var ends [scanTokens]int32
	tokens, pos := 0, 1
	fails := false // decodeTokens fails the message: an empty key
	for {
		i := bytes.IndexByte(b[pos:], '\\')
		if i < 0 {
			d.cut = cutMessage{d.off, pos, tokens, max}
			return nil, nil, false
		}
		if i == len("final") && string(b[pos:pos+i]) == "final" {
			if tokens%2 == 0 {
				break
			}
			if pos+i+1 == len(b) {
				// decodeTokens reads on to see what follows
				d.cut = cutMessage{d.off, pos, tokens, max}
				return nil, nil, false
			}
			if b[pos+i+1] == '\\' {
				break
			}
		}
		if i == 0 && tokens%2 == 0 && (tokens == 0 || !d.SkipEmptyKeys) {
			fails = true
		}
		if tokens < scanTokens {
			ends[tokens] = int32(pos + i)
		}
		tokens++
		pos += i + 1
		if pos > max {
			m, err = d.decodeTokens(into) // too large
			return m, err, true
		}
	}
	if tokens == 0 || fails {
		m, err = d.decodeTokens(into)
		return m, err, true
	}
	start := d.off
	size := pos + len("final") + 1
	wire := b[1 : pos-1] // the text: the tokens and the '\'s between them
	n := (tokens + 1) / 2
	if tokens > scanTokens {
		text := d.text(wire, into)
		_, _ = d.r.Discard(size)
		d.off += int64(size)
		if m, err = parseFields(text, n, into, d.SkipEmptyKeys); err != nil {
			if into != nil {
				into.room = nil // a message not decoded keeps no hold on the decoder's text
			}
			return nil, &SyntaxError{Offset: start, Err: err}, true
		}
		return m, nil, true
	}
	// Token i of the text (which starts a byte into b) is text[at(i):ends[i]-1].
	at := func(i int) int {
		if i == 0 {
			return 0
		}
		return int(ends[i-1])
	}
	var v []byte // the value of the field d.room names, if into has one
	if into != nil && d.room != "" {
		for i := 0; i+1 < tokens; i += 2 {
			if string(wire[at(i):ends[i]-1]) == d.room {
				v = wire[at(i+1) : ends[i+1]-1]
				break
			}
		}
	}
	text := d.textOf(wire, v, into)
	_, _ = d.r.Discard(size)
	d.off += int64(size)
	m, fields := fieldsFor(n, into)
	for i := 0; i < tokens; i += 2 {
		k, v := text[at(i):ends[i]-1], ""
		if i+1 < tokens {
			v = text[at(i+1) : ends[i+1]-1]
		}
		if k != "" {
			fields = append(fields, Field{k, v})
		}
	}
	clear(fields[len(fields):n]) // the slots of skipped pairs pin no older text
	m.fields = fields
	return m, nil, true
}

// decodeTokens is decode token by token, reading from the underlying
// reader as needed: for a message that has not arrived whole.
func (d *Decoder) decodeTokens(into *Message) (*Message, error) {
	if d.sticky != nil {
		return nil, d.sticky
	}
	d.tokenDecodes++
	start := d.off
	c, err := d.r.ReadByte()
	if err != nil {
		return nil, err
	}
	d.off++
	if c != '\\' {
		return nil, d.skipGarbage(start)
	}
	max := d.MaxSize
	if max <= 0 {
		max = DefaultMaxSize
	}
	d.small, _ = smallBufs.Get().(*[]byte)
	if d.small == nil {
		d.small = new([]byte)
	}
	buf := append((*d.small)[:0], '\\')
	tokens, tokStart := 0, 1
	if c := d.cut; c.pos > 1 && c.off == start && c.max == max {
		// The whole tokens decodeBuffered found, at once: still
		// buffered, as nothing was consumed since.
		pre, _ := d.r.Peek(c.pos - 1)
		if len(buf)+len(pre) > cap(buf) && len(buf)+len(pre) > keptBuf {
			buf = d.growLarge(buf, len(pre))
		}
		buf = append(buf, pre...)
		_, _ = d.r.Discard(len(pre))
		d.off += int64(len(pre))
		tokens, tokStart = c.tokens, len(buf)
	}
	d.cut.pos = 0
	for {
		chunk, err := d.r.ReadSlice('\\')
		d.off += int64(len(chunk))
		if len(buf)+len(chunk) > cap(buf) && len(buf)+len(chunk) > keptBuf {
			buf = d.growLarge(buf, len(chunk))
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, chunk...)
		} else if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.keep(buf)
			return nil, &SyntaxError{Offset: start, Err: err, Detail: "stream ended inside a message"}
		} else {
			tok := chunk[:len(chunk)-1]
			if len(buf) == tokStart && string(tok) == "final" {
				if tokens%2 == 0 {
					break
				}
				// "final" where a value stands: the end of a message
				// whose last key has no value (the spec allows an odd
				// token count, and old clients wrote flags so) when the
				// next message follows; otherwise a value "final".
				//
				// The Peek may refill the read buffer over chunk (when
				// chunk ended the bytes read so far): the token is
				// taken from its text, never from chunk, after it.
				if next, err := d.r.Peek(1); err != nil || next[0] == '\\' {
					break
				}
				chunk = finalToken
			}
			buf = append(buf, chunk...)
			tokens++
			tokStart = len(buf)
		}
		if len(buf) > max {
			d.sticky = &SyntaxError{Offset: start, Err: ErrTooLarge, Detail: fmt.Sprintf("over %d bytes", max)}
			d.keep(buf)
			return nil, d.sticky
		}
	}
	if tokens == 0 {
		d.keep(buf)
		return nil, &SyntaxError{Offset: start, Err: ErrMalformed, Detail: "empty message"}
	}
	text := d.text(buf[1:len(buf)-1], into)
	d.keep(buf)
	m, err := parseFields(text, (tokens+1)/2, into, d.SkipEmptyKeys)
	if err != nil {
		if into != nil {
			into.room = nil // a message not decoded keeps no hold on the decoder's text
		}
		return nil, &SyntaxError{Offset: start, Err: err}
	}
	return m, nil
}

// finalToken is a token "final" with its backslash, as read.
var finalToken = []byte(`final\`)

// text returns the string of a message's wire form b (without its first
// and last backslash). For a message decoded into into, when d.room names a
// field of it whose value has something to unescape, the string has room
// after it for that value unescaped, and into's getters unescape it there
// (Message.unescape): the text and the value (an IM's body) cost one
// allocation rather than two, and the value keeps the text, as a value
// with nothing to unescape, a substring of it, always has.
func (d *Decoder) text(b []byte, into *Message) string {
	if into == nil || d.room == "" {
		return string(b)
	}
	v, _ := wireValue(b, d.room)
	return d.textOf(b, v, into)
}

// textOf is text, given v, the value of the field d.room names in b (nil
// when there is none).
func (d *Decoder) textOf(b, v []byte, into *Message) string {
	if into == nil || bytes.IndexByte(v, '/') < 0 {
		return string(b)
	}
	d.tb.Reset()
	d.tb.Grow(len(b) + len(v))
	d.tb.Write(b)
	into.room = &d.tb
	return d.tb.String()
}

// wireValue returns the value of the first field named key in a message's
// wire form b (without its first and last backslash).
func wireValue(b []byte, key string) ([]byte, bool) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\\')
		if i < 0 {
			return nil, false // a last key without a value
		}
		k, rest := b[:i], b[i+1:]
		v := rest
		if j := bytes.IndexByte(rest, '\\'); j >= 0 {
			v, b = rest[:j], rest[j+1:]
		} else {
			b = nil
		}
		if string(k) == key {
			return v, true
		}
	}
	return nil, false
}

// keptBuf is the largest buffer smallBufs keeps: most messages are
// gathered in one of those. Larger messages (a contact list, a profile)
// are gathered in buffers lent by largeBufs. Both are shared by all
// connections, so an idle one holds no gathering buffer.
const keptBuf = 1 << 10

// smallBufs holds the buffers of up to keptBuf bytes messages are gathered in.
var smallBufs sync.Pool // of *[]byte

// largeBufs lends the buffers that gather messages over keptBuf (a contact
// list, say), so that each costs only its string.
var largeBufs sync.Pool // of *[]byte

// growLarge returns a buffer lent by largeBufs holding buf's bytes, with
// room for n more bytes.
func (d *Decoder) growLarge(buf []byte, n int) []byte {
	need := len(buf) + n
	p, _ := largeBufs.Get().(*[]byte)
	if p == nil || cap(*p) < need { // a small one is dropped: the pool keeps large ones
		p = &[]byte{}
		*p = make([]byte, 0, max(2*need, 4*keptBuf))
	}
	nb := append((*p)[:0], buf...)
	d.keep(buf)
	d.lent = p
	return nb
}

// keep gives back the buffers lent for a message once it is done with buf:
// smallBufs' (with buf's array if buf is small, else the array it lent,
// which append may have outgrown), and largeBufs' if buf is large.
func (d *Decoder) keep(buf []byte) {
	if d.small != nil {
		if cap(buf) <= keptBuf {
			*d.small = buf[:0]
		}
		smallBufs.Put(d.small)
		d.small = nil
	}
	if cap(buf) > keptBuf {
		if d.lent != nil && cap(buf) <= 2*ClientMaxSize {
			*d.lent = buf[:0]
			largeBufs.Put(d.lent)
		}
		d.lent = nil
	}
}

// skipGarbage discards bytes up to the next '\' (or whatever is buffered).
func (d *Decoder) skipGarbage(start int64) error {
	n := 1
	for d.r.Buffered() > 0 {
		b, _ := d.r.Peek(1)
		if len(b) == 0 || b[0] == '\\' {
			break
		}
		_, _ = d.r.ReadByte()
		d.off++
		n++
	}
	return &SyntaxError{Offset: start, Err: ErrNoBackslash, Detail: fmt.Sprintf("%d stray bytes", n)}
}

// parseFields splits "k1\v1\k2\v2", n pairs, into fields sharing s's
// memory. A pair with an empty key is an error, or with skipEmpty (after the
// first pair) left out.
// A decoded message and its fields, allocated together when it has few.
type (
	message4 struct {
		m Message
		f [4]Field
	}
	message8 struct {
		m Message
		f [8]Field
	}
)

func parseFields(s string, n int, into *Message, skipEmpty bool) (*Message, error) {
	m, fields := fieldsFor(n, into)
	for i := 0; len(s) > 0 || i < n; i++ {
		k, rest, ok := strings.Cut(s, `\`)
		if !ok && i == n-1 {
			k, rest = s, "" // the last key has no value: a flag
		} else if !ok {
			return nil, errors.New("msim: internal: odd token count")
		}
		v, rest2, _ := strings.Cut(rest, `\`)
		s = rest2
		switch {
		case k != "":
			fields = append(fields, Field{k, v})
		case !skipEmpty || i == 0:
			return nil, fmt.Errorf("%w (field %d)", ErrEmptyKey, i)
		}
		if i == n-1 {
			break
		}
	}
	clear(fields[len(fields):n]) // the slots of skipped pairs pin no older text
	m.fields = fields
	return m, nil
}

// fieldsFor returns the message n fields are decoded into (into, when it
// is not nil) and an empty slice with room for them, which the caller
// assigns to the message's fields once they are all there.
func fieldsFor(n int, into *Message) (*Message, []Field) {
	switch {
	case into != nil:
		var fields []Field
		if cap(into.fields) >= n {
			// The n fields overwrite the first n; the values of an
			// earlier, longer message beyond them must not pin its text.
			clear(into.fields[n:cap(into.fields)])
			fields = into.fields[:0]
		} else {
			fields = make([]Field, 0, n)
		}
		into.fields = nil // until parsed
		return into, fields
	case n <= 4:
		mf := &message4{}
		return &mf.m, mf.f[:0:n]
	case n <= 8:
		mf := &message8{}
		return &mf.m, mf.f[:0:n]
	default:
		return &Message{}, make([]Field, 0, n)
	}
}

// ParseMessage decodes exactly one complete message (ending in \final\).
func ParseMessage(b []byte) (*Message, error) {
	d := NewDecoder(strings.NewReader(string(b)))
	d.MaxSize = len(b) + 1
	m, err := d.Decode()
	if err != nil {
		if err == io.EOF {
			err = &SyntaxError{Err: io.ErrUnexpectedEOF, Detail: "no message"}
		}
		return nil, err
	}
	if _, err := d.r.ReadByte(); err != io.EOF {
		return nil, &SyntaxError{Offset: d.off, Err: ErrMalformed, Detail: "bytes after \\final\\"}
	}
	return m, nil
}
