package histproc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// The pipes carry frames: a 4-byte big-endian length, then that many
// bytes. Integers in a frame are varints (encoding/binary), strings a
// uvarint length and the bytes. The gateway's side encodes into one
// buffer it keeps, without reflection: it runs at the IMs' priority.
//
//	params:  format version, schema version, driver, dsn, key,
//	         max history
//	request: seq, n, then n entries: user, msgid, time, account,
//	         buddy, outgoing (0/1), kind, text
//	reply:   seq, err, n, then n results: id, time, err, kind of err
//	         (errKind)
//
// A time is 0 for the zero Time, or 1 then Unix seconds and nanoseconds
// (0 to 999999999): any Time passes whole, and the child's store keeps
// of it what the gateway's would (to the millisecond, the zero Time as
// now, a Time within the zero Time's first millisecond as that instant).
// Unix nanoseconds in an int64 hold only the years 1678 to 2262.
//
// The child is started from the binary the gateway runs (selfExe), so
// both sides are one build. Elsewhere than Linux, where selfExe has no
// path, a child started after an upgrade replaced the binary runs the new
// one: its format, like its store's migrations, may differ. The params
// frame therefore starts with formatVersion and store.SchemaVersion, and
// a child that finds others than its own answers (a reply: Seq 0, Err)
// that the gateway is another build, before it opens the store. Those two
// fields and that reply keep their encoding whatever else changes.

// maxFrame bounds a frame either side reads. The gateway sends a batch
// whose request would be longer in parts (requestPart).
const maxFrame = 64 << 20

// frameChunk is what readFrame reads of a frame longer than its buffer
// before it grows the buffer further: a frame's length is what the other
// side claims, and nothing is allocated for bytes that have not come.
const frameChunk = 64 << 10

var errFrame = errors.New("malformed frame")

// formatVersion is the version of the frames' encoding: change it with
// the encoding.
const formatVersion = 1

// errOtherBuild: the params frame came from another build of msimircd
// than the child's (see formatVersion).
var errOtherBuild = errors.New("the gateway is another build of msimircd than this history writer")

// keptFrame bounds the frame whose buffer each side keeps to encode, or
// read, its next frame in: a full batch of the bridge's, however long its
// IMs ordinarily are, fits, and the buffer of a burst of longer ones is
// not held after it.
const keptFrame = 4 << 20

// kept is b emptied, to be used again, or nil when what it held is longer
// than most: the next use allocates what it needs. It looks at what b
// held, not at its capacity: growth overshoots (append's steps), and a
// buffer grown for an item within most is kept for the next as long.
func kept[E any](b []E, most int) []E {
	if len(b) > most {
		return nil
	}
	return b[:0]
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendParams(b []byte, p *Params) []byte {
	b = binary.AppendUvarint(b, formatVersion)
	b = binary.AppendUvarint(b, uint64(store.SchemaVersion()))
	b = appendString(b, p.Driver)
	b = appendString(b, p.DSN)
	b = appendString(b, string(p.Key))
	return binary.AppendVarint(b, int64(p.MaxHistory))
}

func appendRequest(b []byte, req *request) []byte {
	b = binary.AppendUvarint(b, req.Seq)
	b = binary.AppendUvarint(b, uint64(len(req.Batch)))
	for i := range req.Batch {
		a := &req.Batch[i]
		e := &a.Entry
		b = appendString(b, a.User)
		b = appendString(b, e.MsgID)
		b = appendTime(b, e.Time)
		b = appendString(b, e.Account)
		b = binary.AppendVarint(b, int64(e.Buddy))
		b = appendBool(b, e.Outgoing)
		b = appendString(b, e.Kind)
		b = appendString(b, e.Text)
	}
	return b
}

func appendReply(b []byte, rep *reply) []byte {
	b = binary.AppendUvarint(b, rep.Seq)
	b = appendString(b, rep.Err)
	b = binary.AppendUvarint(b, uint64(len(rep.Results)))
	for i := range rep.Results {
		r := &rep.Results[i]
		b = binary.AppendVarint(b, r.ID)
		b = appendTime(b, r.Time)
		b = appendString(b, r.Err)
		b = append(b, byte(r.Is))
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	b = appendBool(b, !t.IsZero())
	if t.IsZero() {
		return b
	}
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads a frame's fields; the first error sticks and every read
// after it returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errFrame
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

// time reads a time (appendTime); the zero Time sent as a time, or
// nanoseconds of a second or more, are malformed: each Time has one
// encoding.
func (d *decoder) time() time.Time {
	if !d.bool() {
		return time.Time{}
	}
	sec, ns := d.varint(), d.uvarint()
	if ns >= uint64(time.Second) {
		d.fail()
		return time.Time{}
	}
	t := time.Unix(sec, int64(ns))
	if t.IsZero() {
		d.fail()
	}
	return t
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a number of items each at least min bytes long: more than
// the frame can hold is malformed (so no allocation follows from it).
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail()
		return 0
	}
	return int(n)
}

// done is the decoding's error: the first, or bytes left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%w: %d bytes left over", errFrame, len(d.b))
	}
	return d.err
}

// decodeParams decodes the store's parameters; errOtherBuild when the
// gateway's format or schema version is not this binary's.
func decodeParams(b []byte) (Params, error) {
	d := &decoder{b: b}
	format, schema := d.uvarint(), d.uvarint()
	if d.err == nil && (format != formatVersion || schema != uint64(store.SchemaVersion())) {
		return Params{}, fmt.Errorf("%w (the gateway's pipe format %d and store schema %d, this binary's %d and %d): restart msimircd", errOtherBuild, format, schema, formatVersion, store.SchemaVersion())
	}
	p := Params{Driver: d.string(), DSN: d.string()}
	p.Key = []byte(d.string())
	p.MaxHistory = int(d.varint())
	return p, d.done()
}

// Smallest encodings of an entry and a result, for count.
const (
	minEntry  = 8
	minResult = 4
)

// maxBatch bounds the entries of a request: many times the bridge's
// batches. The gateway sends a batch of more in parts (requestPart).
const maxBatch = 1 << 14

func decodeRequest(b []byte) (request, error) {
	d := &decoder{b: b}
	req := request{Seq: d.uvarint()}
	n := d.count(minEntry)
	if n > maxBatch {
		d.fail()
		n = 0
	}
	if n > 0 {
		req.Batch = make([]store.HistoryAppend, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		a := &req.Batch[i]
		e := &a.Entry
		a.User, e.MsgID = d.string(), d.string()
		e.Time = d.time()
		e.Account = d.string()
		e.Buddy = msim.UID(d.varint())
		e.Outgoing = d.bool()
		e.Kind, e.Text = d.string(), d.string()
	}
	return req, d.done()
}

// decodeReply decodes a reply of want results (or none, with Err set or
// to the store's parameters). The results go in into's array when it is
// large enough, so a caller may keep one array for every reply.
func decodeReply(b []byte, want int, into []result) (reply, error) {
	d := &decoder{b: b}
	rep := reply{Seq: d.uvarint(), Err: d.string()}
	n := d.count(minResult)
	if n != want && (n != 0 || rep.Err == "") {
		if d.err == nil {
			d.err = fmt.Errorf("%w: %d results, want %d", errFrame, n, want)
		}
		n = 0
	}
	if n > 0 {
		if cap(into) >= n {
			rep.Results = into[:n]
			clear(rep.Results)
		} else {
			rep.Results = make([]result, n)
		}
	}
	for i := 0; i < n && d.err == nil; i++ {
		r := &rep.Results[i]
		r.ID = d.varint()
		r.Time = d.time().UTC()
		r.Err = d.string()
		r.Is = errKind(d.byte())
		if r.Is > errNotFound {
			d.fail()
		}
	}
	return rep, d.done()
}

// writeFrame writes body as one frame and flushes w.
func writeFrame(w *bufio.Writer, body []byte) error {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(body)))
	w.Write(n[:])
	w.Write(body)
	return w.Flush()
}

// readFrame reads one frame into buf and returns it. buf grows as the
// frame's bytes come (frameChunk, then doubling), not to the length the
// frame claims at once: a frame cut short costs no more than it brought.
// Each step is exact, neither past twice what came nor past the length
// claimed (append's growth would round it up).
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return buf, err
	}
	// Compared before it is an int: where an int has 32 bits, a length
	// of 2 GiB or more would be negative, and pass for an empty frame.
	claimed := binary.BigEndian.Uint32(n[:])
	if claimed > maxFrame {
		return buf, fmt.Errorf("%w: %d bytes", errFrame, claimed)
	}
	size := int(claimed)
	buf = buf[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(size, max(2*len(buf), frameChunk)))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(r, buf[len(buf):min(size, cap(buf))])
		buf = buf[:len(buf)+k]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}
