package msim

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// pieces reads data in pieces of the sizes given in turn (sizes of 0
// read one byte), and counts its reads.
type pieces struct {
	data  []byte
	sizes []byte
	reads int
}

func (r *pieces) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(r.sizes) > 0 {
		n = max(int(r.sizes[r.reads%len(r.sizes)]), 1)
	}
	r.reads++
	n = copy(p[:min(n, len(p))], r.data)
	r.data = r.data[n:]
	return n, nil
}

// checkDecodeBuffered decodes data twice, as decode does (decodeBuffered,
// then decodeTokens when the message has not arrived whole) and token by
// token only, from readers that give data in the same pieces, and fails
// unless the two give the same messages, errors and offsets; and unless
// decodeBuffered reads nothing, and consumes nothing when the message has
// not arrived whole. It returns how many messages (or errors) decodeBuffered
// gave.
func checkDecodeBuffered(t *testing.T, data, sizes []byte, maxSize int, skipEmpty, room, into bool) (fastOnes int) {
	t.Helper()
	fr, rr := &pieces{data: data, sizes: sizes}, &pieces{data: data, sizes: sizes}
	fast, ref := NewDecoder(fr), NewDecoder(rr)
	for _, d := range []*Decoder{fast, ref} {
		d.MaxSize, d.SkipEmptyKeys = maxSize, skipEmpty
		if room {
			d.room = "msg"
		}
	}
	fm, rm := &Message{}, &Message{}
	for step := 0; step < 256; step++ {
		var got, want *Message
		var gotErr, wantErr error
		if into {
			fm.fields, fm.room = fm.fields[:0], nil
			rm.fields, rm.room = rm.fields[:0], nil
		}
		wasWhole := fast.whole()
		reads, buffered, off := fr.reads, fast.r.Buffered(), fast.off
		var intoF, intoR *Message
		if into {
			intoF, intoR = fm, rm
		}
		got, gotErr, whole := fast.decodeBuffered(intoF)
		if wasWhole && !whole {
			t.Fatalf("step %d: the next message had arrived whole, yet decodeBuffered said not", step)
		}
		if fr.reads != reads {
			t.Fatalf("step %d: decodeBuffered read from the connection", step)
		}
		if !whole {
			if got != nil || gotErr != nil || fast.r.Buffered() != buffered || fast.off != off {
				t.Fatalf("step %d: not whole, yet decodeBuffered gave %v, %v and consumed %d bytes",
					step, got, gotErr, buffered-fast.r.Buffered())
			}
			if _, _, again := fast.decodeBuffered(intoF); again || fast.r.Buffered() != buffered {
				t.Fatalf("step %d: not whole, then whole with nothing more read", step)
			}
			got, gotErr = fast.decodeTokens(intoF)
		} else {
			fastOnes++
		}
		want, wantErr = ref.decodeTokens(intoR)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("step %d: got error %v, want %v", step, gotErr, wantErr)
		}
		if reflect.TypeOf(gotErr) != reflect.TypeOf(wantErr) {
			t.Fatalf("step %d: got error %#v, want %#v", step, gotErr, wantErr)
		}
		for _, e := range []error{ErrMalformed, ErrTooLarge, ErrEmptyKey, ErrNoBackslash, io.ErrUnexpectedEOF, io.EOF} {
			if errors.Is(gotErr, e) != errors.Is(wantErr, e) {
				t.Fatalf("step %d: got error %v, want %v", step, gotErr, wantErr)
			}
		}
		if fast.off != ref.off || fast.r.Buffered() != ref.r.Buffered() {
			t.Fatalf("step %d: at %d with %d buffered, want %d with %d",
				step, fast.off, fast.r.Buffered(), ref.off, ref.r.Buffered())
		}
		if gotErr != nil {
			if into && (len(fm.fields) != 0 || fm.room != nil) {
				t.Fatalf("step %d: failed with %v and left %d fields", step, gotErr, len(fm.fields))
			}
			if errors.Is(gotErr, io.EOF) {
				return fastOnes
			}
			continue
		}
		if !got.Equal(want) {
			t.Fatalf("step %d: got %q, want %q", step, got.Fields(), want.Fields())
		}
		if (got.room == nil) != (want.room == nil) {
			t.Fatalf("step %d: room for msg %v, want %v", step, got.room != nil, want.room != nil)
		}
		if into {
			for _, f := range fm.fields[len(fm.fields):cap(fm.fields)] {
				if f != (Field{}) {
					t.Fatalf("step %d: %q, of an earlier message, is left past the fields", step, f)
				}
			}
		}
		for _, f := range got.Fields() {
			g, _ := got.Str(f.Key)
			w, _ := want.Str(f.Key)
			if g != w {
				t.Fatalf("step %d: Str(%q) got %q, want %q", step, f.Key, g, w)
			}
		}
		if into {
			putFields(fm)
			putFields(rm)
		}
	}
	return fastOnes
}

// putFields lets m's room go, as the client's reader does once a message is
// handled.
func putFields(m *Message) {
	if m.room != nil {
		m.room.Reset()
		m.room = nil
	}
}

// FuzzDecodeBuffered: decoding what has arrived whole in one scan gives
// what decoding token by token gives, whatever the stream, the pieces it
// arrives in, the size limit and the decoder's options.
func FuzzDecodeBuffered(f *testing.F) {
	f.Add([]byte(`\bm\1\f\2\msg\a/1b\final\\ka\\final\`), []byte{7, 3}, uint16(0), uint8(7))
	f.Add([]byte(`\a\final\\b\final\x\final\c\final\d\final\`), []byte{9}, uint16(0), uint8(3))
	f.Add([]byte(`\a\b\\\c\d\\final\\\final\\x\final\`), []byte{}, uint16(0), uint8(1))
	f.Add([]byte(`\lc\1\nc\`+strings.Repeat("x", 80)+`\final\`), []byte{50}, uint16(40), uint8(0))
	f.Add([]byte(`xy\k\v\final\`), []byte{1, 200}, uint16(0), uint8(5))
	f.Add(bytes.Repeat([]byte(`\k\v`), 80), []byte{255}, uint16(0), uint8(2))
	f.Add(Encode(imMsg(2001, `a\b/c final \final\ `)), []byte{255, 10}, uint16(0), uint8(7))
	for _, c := range loadCapture(f) {
		f.Add([]byte(c.Wire), []byte{255}, uint16(0), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data, sizes []byte, maxSize uint16, opts uint8) {
		if len(data) > 8192 || len(sizes) > 64 {
			return
		}
		checkDecodeBuffered(t, data, sizes, int(maxSize), opts&1 != 0, opts&2 != 0, opts&4 != 0)
	})
}

// TestDecodeBufferedAsTokens: for streams of the messages real clients and
// servers send, of ones with "final" as a value, flags, empty keys and
// garbage, arriving whole or cut anywhere, decoding what has arrived in
// one scan gives what decoding token by token gives.
func TestDecodeBufferedAsTokens(t *testing.T) {
	var stream bytes.Buffer
	msgs := 0
	for _, c := range loadCapture(t) {
		if c.Complete {
			stream.WriteString(c.Wire)
			msgs++
		}
	}
	small := []string{
		`\bm\1\f\2\msg\final\final\`, `\a\final\\b\final\`, `\a\final\b\final\`,
		`\ka\\final\`, `\final\`, `\\x\final\`, `\a\b\\c\final\`, `\a\b\\\final\`,
		`stray\a\b\final\`, `\bm\1\msg\a/1b/2\note\x\final\`, `\a\b\c\final\`,
		`\msg\a/1\final\`, `\bm\1\msg\x\msg\y/1\final\`,
		`\k` + strings.Repeat(`\v\k`, 70) + `\final\`,
	}
	for _, s := range small {
		stream.WriteString(s)
		// s buffered after a message, up to each of its bytes, and
		// then the rest at once.
		const before = `\ka\final\`
		for cut := 1; cut < len(s) && len(before)+cut < 256; cut++ {
			for opts := range 8 {
				checkDecodeBuffered(t, []byte(before+s+before), []byte{byte(len(before) + cut), 255}, 0,
					opts&1 != 0, opts&2 != 0, opts&4 != 0)
			}
		}
		// s buffered whole after a message, under each size limit
		// about its own.
		for limit := len(before); limit < len(s)+3; limit++ {
			checkDecodeBuffered(t, []byte(before+s+before), []byte{byte(len(before)), 255}, limit, true, true, true)
		}
	}
	data := stream.Bytes()
	if n := checkDecodeBuffered(t, data, []byte{255}, 0, true, true, true); n < msgs/2 {
		t.Errorf("the stream in reads of 255 bytes: %d of its %d messages decoded in one scan, want most", n, msgs)
	}
	for _, sizes := range [][]byte{{255}, {1}, {200, 7, 13}, {61}, {0, 1, 2, 3, 255}} {
		for opts := range 8 {
			checkDecodeBuffered(t, data, sizes, 0, opts&1 != 0, opts&2 != 0, opts&4 != 0)
			checkDecodeBuffered(t, data, sizes, 60, opts&1 != 0, opts&2 != 0, opts&4 != 0)
		}
	}
}
