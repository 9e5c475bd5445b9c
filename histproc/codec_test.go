package histproc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

func sampleRequest() request {
	return request{Seq: 7, Batch: []store.HistoryAppend{
		{User: "alice", Entry: store.HistoryEntry{MsgID: "m1", Time: time.Unix(1_700_000_000, 123_456_789), Account: "a@example.com", Buddy: 42, Outgoing: true, Kind: store.KindIM, Text: "héllo\x01ACTION x\x01"}},
		{User: "bob", Entry: store.HistoryEntry{MsgID: "m2", Account: "b@example.com", Buddy: msim.UID(-1), Kind: store.KindZap}},
		// Times Unix nanoseconds in an int64 do not hold, the epoch,
		// and a Time in the zero Time's first millisecond.
		{User: "bob", Entry: store.HistoryEntry{MsgID: "m3", Time: time.Date(2300, 1, 2, 3, 4, 5, 6, time.UTC)}},
		{User: "bob", Entry: store.HistoryEntry{MsgID: "m4", Time: time.Date(1600, 1, 2, 3, 4, 5, 6, time.UTC)}},
		{User: "bob", Entry: store.HistoryEntry{MsgID: "m5", Time: time.Unix(0, 0)}},
		{User: "bob", Entry: store.HistoryEntry{MsgID: "m6", Time: time.Time{}.Add(time.Nanosecond)}},
	}}
}

// TestCodecRoundTrip: what one side encodes the other decodes unchanged.
func TestCodecRoundTrip(t *testing.T) {
	req := sampleRequest()
	got, err := decodeRequest(appendRequest(nil, &req))
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != req.Seq || len(got.Batch) != len(req.Batch) {
		t.Fatalf("request: got %+v, want %+v", got, req)
	}
	for i := range req.Batch {
		w, g := req.Batch[i], got.Batch[i]
		if !w.Entry.Time.Equal(g.Entry.Time) || w.Entry.Time.IsZero() != g.Entry.Time.IsZero() {
			t.Errorf("entry %d time: got %v, want %v", i, g.Entry.Time, w.Entry.Time)
		}
		w.Entry.Time, g.Entry.Time = time.Time{}, time.Time{}
		if w != g {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}

	rep := reply{Seq: 7, Err: "", Results: []result{
		{ID: 1, Time: time.UnixMilli(1_700_000_000_123).UTC()},
		{ID: 2, Time: time.Unix(0, 0).UTC()},
		{ID: 3, Time: time.Date(2300, 1, 2, 3, 4, 5, 6_000_000, time.UTC)},
		{ID: 4, Time: time.Date(1600, 1, 2, 3, 4, 5, 6_000_000, time.UTC)},
		{Err: "store: exists", Is: errExists},
		{Err: "store: no such user", Is: errNotFound},
	}}
	gotRep, err := decodeReply(appendReply(nil, &rep), len(rep.Results), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotRep, rep) {
		t.Errorf("reply: got %+v, want %+v", gotRep, rep)
	}

	// Into an array of the caller's, large enough: the results are there,
	// and nothing is left of what the array held.
	into := make([]result, len(rep.Results)+1)
	for i := range into {
		into[i] = result{ID: 99, Err: "stale", Is: errExists}
	}
	gotRep, err = decodeReply(appendReply(nil, &rep), len(rep.Results), into)
	if err != nil || !reflect.DeepEqual(gotRep, rep) {
		t.Errorf("reply into an array: got %+v (%v), want %+v", gotRep, err, rep)
	}
	if &gotRep.Results[0] != &into[0] {
		t.Error("reply into an array: the results are in a new one")
	}

	p := Params{Driver: "postgres", DSN: "host=/run password=secret", Key: []byte{0, 1, 2, 255}, MaxHistory: 5}
	gotP, err := decodeParams(appendParams(nil, &p))
	if err != nil || !reflect.DeepEqual(gotP, p) {
		t.Errorf("params: got %+v (%v), want %+v", gotP, err, p)
	}
}

// TestCodecRefusesMalformed: truncated frames, bytes left over, counts
// larger than the frame and unknown error kinds are errors.
func TestCodecRefusesMalformed(t *testing.T) {
	req := sampleRequest()
	b := appendRequest(nil, &req)
	for n := 0; n < len(b); n++ {
		if _, err := decodeRequest(b[:n]); !errors.Is(err, errFrame) {
			t.Fatalf("request cut to %d of %d bytes: got %v, want errFrame", n, len(b), err)
		}
	}
	if _, err := decodeRequest(append(b, 0)); !errors.Is(err, errFrame) {
		t.Errorf("a byte left over: got %v", err)
	}
	// seq 1, a billion entries in five bytes.
	if _, err := decodeRequest([]byte{1, 0x80, 0x94, 0xeb, 0xdc, 0x03}); !errors.Is(err, errFrame) {
		t.Errorf("a count larger than the frame: got %v", err)
	}
	rep := reply{Seq: 1, Results: []result{{Is: errNotFound + 1}}}
	if _, err := decodeReply(appendReply(nil, &rep), 1, nil); !errors.Is(err, errFrame) {
		t.Errorf("an unknown error kind: got %v", err)
	}
	rep = reply{Seq: 1, Results: []result{{ID: 1}, {ID: 2}}}
	if _, err := decodeReply(appendReply(nil, &rep), 3, nil); !errors.Is(err, errFrame) {
		t.Errorf("fewer results than entries: got %v", err)
	}
	if _, err := decodeReply(appendReply(nil, &reply{Seq: 1, Err: "store gone"}), 3, nil); err != nil {
		t.Errorf("a failed request has no results: got %v", err)
	}
	// The smallest entries: empty strings, no time, buddy 0.
	empty := request{Seq: 1, Batch: make([]store.HistoryAppend, 10)}
	if got, err := decodeRequest(appendRequest(nil, &empty)); err != nil || len(got.Batch) != 10 {
		t.Errorf("ten empty entries: got %d, %v", len(got.Batch), err)
	}
	// More entries than a batch may have.
	big := request{Seq: 1, Batch: make([]store.HistoryAppend, maxBatch+1)}
	if _, err := decodeRequest(appendRequest(nil, &big)); !errors.Is(err, errFrame) {
		t.Errorf("%d entries: got %v, want errFrame", maxBatch+1, err)
	}
	req.Batch[0].Entry.Outgoing = true
	b = appendRequest(nil, &req)
	// The first entry's has-time byte: after seq, count, user, msgid.
	at := 1 + 1 + 1 + len("alice") + 1 + len("m1")
	b[at] = 2
	if _, err := decodeRequest(b); !errors.Is(err, errFrame) {
		t.Errorf("a bool of 2: got %v", err)
	}
	// A time of a second's nanoseconds, and the zero Time as a time: each
	// Time has one encoding.
	for _, tm := range [][]byte{
		binary.AppendUvarint(binary.AppendVarint([]byte{1}, 5), uint64(time.Second)),
		binary.AppendUvarint(binary.AppendVarint([]byte{1}, time.Time{}.Unix()), 0),
	} {
		b = appendRequest(nil, &request{Seq: 1, Batch: make([]store.HistoryAppend, 1)})
		b = slices.Concat(b[:4], tm, b[5:]) // seq, count, user, msgid; has time 0
		if _, err := decodeRequest(b); !errors.Is(err, errFrame) {
			t.Errorf("time % x: got %v, want errFrame", tm, err)
		}
	}
}

// TestFrames: frames pass whole, one after another; a frame longer than
// maxFrame is refused before it is read; a frame cut short is an error.
func TestFrames(t *testing.T) {
	var pipe bytes.Buffer
	w := bufio.NewWriter(&pipe)
	for _, body := range []string{"one", "", "three"} {
		if err := writeFrame(w, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&pipe)
	var buf []byte
	for _, want := range []string{"one", "", "three"} {
		var err error
		if buf, err = readFrame(r, buf); err != nil || string(buf) != want {
			t.Fatalf("got %q, %v; want %q", buf, err, want)
		}
	}
	if _, err := readFrame(r, buf); err != io.EOF {
		t.Errorf("after the last frame: got %v, want EOF", err)
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})), nil); !errors.Is(err, errFrame) {
		t.Errorf("a 4 GiB frame: got %v, want errFrame", err)
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader([]byte{0, 0, 0, 5, 'a'})), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a frame cut short: got %v, want ErrUnexpectedEOF", err)
	}
}

// FuzzDecodeRequest: the child's parser never panics, and what it
// accepts encodes back to the same bytes, or to bytes that decode to the
// same request, times to the nanosecond.
func FuzzDecodeRequest(f *testing.F) {
	req := sampleRequest()
	f.Add(appendRequest(nil, &req))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if err != nil {
			return
		}
		if again := appendRequest(nil, &req); !bytes.Equal(again, b) {
			// Varints have one shortest form; another is accepted but
			// re-encodes shorter. Decoding that must give the same.
			req2, err := decodeRequest(again)
			if err != nil || !reflect.DeepEqual(req2, req) {
				t.Fatalf("re-encoded request differs: %v", err)
			}
		}
	})
}

// FuzzDecodeReply: the gateway's parser never panics, whatever number of
// results it wants (0 for the answer to the parameters) and whatever
// array of its own it decodes them into; what it accepts has the results
// wanted, in that array when it is large enough, and encodes back to
// bytes that decode to the same reply.
func FuzzDecodeReply(f *testing.F) {
	rep := reply{Seq: 3, Results: []result{{ID: 9, Time: time.Now()}, {Err: "x", Is: errExists}}}
	f.Add(appendReply(nil, &rep), uint16(2), uint16(0))
	f.Add(appendReply(nil, &rep), uint16(2), uint16(5))
	rep.Results[0].Time, rep.Results[1] = time.Unix(0, 0), result{ID: 10, Time: time.Date(2300, 1, 2, 3, 4, 5, 6, time.UTC)}
	f.Add(appendReply(nil, &rep), uint16(2), uint16(1))
	f.Add(appendReply(nil, &reply{}), uint16(0), uint16(0))
	f.Add(appendReply(nil, &reply{Err: "store gone"}), uint16(3), uint16(3))
	f.Add([]byte{}, uint16(0), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, wantN, intoN uint16) {
		want := int(wantN) % (maxBatch + 1)
		into := make([]result, intoN%(maxBatch+1))
		for i := range into {
			into[i] = result{ID: 99, Err: "stale", Is: errExists}
		}
		rep, err := decodeReply(b, want, into)
		if err != nil {
			return
		}
		if len(rep.Results) != want && !(len(rep.Results) == 0 && rep.Err != "") {
			t.Fatalf("accepted %d results, want %d", len(rep.Results), want)
		}
		if n := len(rep.Results); n > 0 && n <= len(into) && &rep.Results[0] != &into[0] {
			t.Fatal("the results are in a new array, not the one given")
		}
		for _, r := range rep.Results {
			if r.Is > errNotFound {
				t.Fatalf("accepted error kind %d", r.Is)
			}
		}
		if rep2, err := decodeReply(appendReply(nil, &rep), want, nil); err != nil || !reflect.DeepEqual(rep2, rep) {
			t.Fatalf("re-encoded reply differs: %v", err)
		}
	})
}

// TestRequestParts: a batch is cut into parts each one request holds (at
// most maxBatch entries, at most maxFrame encoded), as long as they can
// be; an entry longer than a frame alone is a part of its own that does
// not fit.
func TestRequestParts(t *testing.T) {
	type part struct {
		lo, hi int
		fits   bool
	}
	parts := func(batch []store.HistoryAppend) []part {
		var out []part
		for lo := 0; lo < len(batch); {
			hi, fits := requestPart(batch, lo)
			if fits {
				if n := len(appendRequest(nil, &request{Seq: 1 << 62, Batch: batch[lo:hi]})); n > maxFrame {
					t.Errorf("part %d-%d: %d bytes, want at most %d", lo, hi, n, maxFrame)
				}
			}
			out = append(out, part{lo, hi, fits})
			lo = hi
		}
		return out
	}
	small := store.HistoryAppend{User: "alice", Entry: store.HistoryEntry{MsgID: "m", Account: "a@example.com", Kind: store.KindIM, Text: "hi", Time: time.Now()}}
	mib := small
	mib.Entry.Text = strings.Repeat("x", 1<<20)
	huge := small
	huge.Entry.Text = strings.Repeat("x", maxFrame)

	many := slices.Repeat([]store.HistoryAppend{small}, maxBatch+5)
	if got, want := parts(many), []part{{0, maxBatch, true}, {maxBatch, maxBatch + 5, true}}; !slices.Equal(got, want) {
		t.Errorf("%d short entries: got %v, want %v", len(many), got, want)
	}
	if got, want := parts([]store.HistoryAppend{small, huge, small}), []part{{0, 1, true}, {1, 2, false}, {2, 3, true}}; !slices.Equal(got, want) {
		t.Errorf("an entry longer than a frame: got %v, want %v", got, want)
	}
	long := slices.Repeat([]store.HistoryAppend{mib}, 70)
	got := parts(long)
	if len(got) != 2 || !got[0].fits || !got[1].fits || got[1].hi != len(long) {
		t.Fatalf("70 entries of 1 MiB: got %v, want two parts that fit", got)
	}
	if n := len(appendRequest(nil, &request{Batch: long[:got[0].hi+1]})); n <= maxFrame {
		t.Errorf("the first part of 70 entries of 1 MiB: %d entries, and one more (%d bytes) would fit too", got[0].hi, n)
	}
}

// FuzzDecodeParams: the child's parser of the store's parameters never
// panics, and what it accepts encodes back to bytes that decode to the
// same parameters.
func FuzzDecodeParams(f *testing.F) {
	f.Add(appendParams(nil, &Params{Driver: "sqlite", DSN: "/var/lib/msimircd/state.db", Key: bytes.Repeat([]byte{7}, 32), MaxHistory: 5000}))
	f.Add(appendParams(nil, &Params{Driver: "postgres", DSN: "postgres://u@h/db"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeParams(b)
		if err != nil {
			return
		}
		p2, err := decodeParams(appendParams(nil, &p))
		if err != nil || p2.Driver != p.Driver || p2.DSN != p.DSN || !bytes.Equal(p2.Key, p.Key) || p2.MaxHistory != p.MaxHistory {
			t.Fatalf("re-encoded parameters differ: %v", err)
		}
	})
}

// frameSlack is how much more than the bytes it has read readFrame may
// hold for a frame: what it reads at once before it has seen the rest.
const frameSlack = 2 * frameChunk

// FuzzReadFrame: the frame reader never panics, holds for a frame at
// most frameSlack more than twice the bytes it has read (the length a
// frame claims allocates nothing until its bytes come), and the frames it
// reads written again give the bytes they were read from.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	req := sampleRequest()
	writeFrame(w, appendParams(nil, &Params{Driver: "sqlite", DSN: "state.db", Key: []byte("k")}))
	writeFrame(w, appendRequest(nil, &req))
	writeFrame(w, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 5, 'a'})
	f.Add([]byte{byte(maxFrame >> 24), 0, 0, 0, 'a', 'b'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		var again bytes.Buffer
		bw := bufio.NewWriter(&again)
		var frame []byte
		for {
			var err error
			frame, err = readFrame(br, frame)
			if cap(frame) > 2*len(b)+frameSlack {
				t.Fatalf("holds %d bytes for a frame, having read %d", cap(frame), len(b))
			}
			if err != nil {
				break
			}
			if len(frame) > maxFrame {
				t.Fatalf("read a frame of %d bytes, longer than maxFrame", len(frame))
			}
			if err := writeFrame(bw, frame); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.HasPrefix(b, again.Bytes()) {
			t.Fatalf("the frames read, written again, give %q, not a prefix of %q", again.Bytes(), b)
		}
	})
}

// TestChildBuffersAfterBurst: the child reads a request longer than
// keptFrame and answers with a reply longer than keptFrame, and keeps at
// most keptFrame of either buffer after; a short request still reads.
func TestChildBuffersAfterBurst(t *testing.T) {
	long := strings.Repeat("x", keptFrame)
	big := request{Seq: 1, Batch: []store.HistoryAppend{{User: "alice", Entry: store.HistoryEntry{MsgID: "m1", Text: long}}}}
	small := request{Seq: 2, Batch: []store.HistoryAppend{{User: "alice", Entry: store.HistoryEntry{MsgID: "m2", Text: "hi"}}}}
	var pipe bytes.Buffer
	w := bufio.NewWriter(&pipe)
	for _, req := range []*request{&big, &small} {
		if err := writeFrame(w, appendRequest(nil, req)); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(&pipe)
	var rbuf, wbuf []byte
	req, err := readRequest(br, &rbuf)
	if err != nil || len(req.Batch) != 1 || req.Batch[0].Entry.Text != long {
		t.Fatalf("the long request: got %d entries, %v", len(req.Batch), err)
	}
	if got := cap(rbuf); got > keptFrame {
		t.Errorf("read buffer kept: got %d bytes, want at most %d", got, keptFrame)
	}
	var out bytes.Buffer
	if err := answer(bufio.NewWriter(&out), &wbuf, &reply{Seq: 1, Results: []result{{Err: long}}}); err != nil {
		t.Fatal(err)
	}
	if out.Len() <= keptFrame {
		t.Fatalf("the long reply: %d bytes written, want more than %d", out.Len(), keptFrame)
	}
	if got := cap(wbuf); got > keptFrame {
		t.Errorf("write buffer kept: got %d bytes, want at most %d", got, keptFrame)
	}
	if req, err := readRequest(br, &rbuf); err != nil || len(req.Batch) != 1 || req.Batch[0].Entry.MsgID != "m2" {
		t.Errorf("the short request after: got %+v, %v", req, err)
	}
}

// TestBuffersKeptForAFrameWithinKeptFrame: a frame no longer than
// keptFrame (a full batch of the bridge's fits) leaves the buffer it was
// read in, or encoded in, kept for the next, so that batches of that size
// one after another do not each grow a buffer anew: the next frame of
// that size is read, or encoded, in the buffer kept.
func TestBuffersKeptForAFrameWithinKeptFrame(t *testing.T) {
	text := strings.Repeat("x", keptFrame-frameChunk)
	req := request{Seq: 1, Batch: []store.HistoryAppend{{User: "alice", Entry: store.HistoryEntry{MsgID: "m1", Text: text}}}}
	body := appendRequest(nil, &req)
	if len(body) > keptFrame {
		t.Fatalf("the request is %d bytes, longer than keptFrame", len(body))
	}
	var pipe bytes.Buffer
	w := bufio.NewWriter(&pipe)
	for range 2 {
		if err := writeFrame(w, body); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(&pipe)
	var rbuf []byte
	if _, err := readRequest(br, &rbuf); err != nil {
		t.Fatal(err)
	}
	if cap(rbuf) < len(body) {
		t.Errorf("read buffer kept after a frame of %d bytes (keptFrame %d): got %d bytes", len(body), keptFrame, cap(rbuf))
	}
	first := unsafe.SliceData(rbuf)
	if _, err := readRequest(br, &rbuf); err != nil {
		t.Fatal(err)
	}
	if first != nil && unsafe.SliceData(rbuf) != first {
		t.Errorf("the next frame of %d bytes was read in a new buffer, not the one kept", len(body))
	}
	rep := reply{Seq: 1, Results: []result{{Err: text}}}
	var wbuf []byte
	if err := answer(bufio.NewWriter(io.Discard), &wbuf, &rep); err != nil {
		t.Fatal(err)
	}
	if cap(wbuf) < len(text) {
		t.Errorf("write buffer kept after a frame of about %d bytes (keptFrame %d): got %d bytes", len(text), keptFrame, cap(wbuf))
	}
	first = unsafe.SliceData(wbuf)
	if err := answer(bufio.NewWriter(io.Discard), &wbuf, &rep); err != nil {
		t.Fatal(err)
	}
	if first != nil && unsafe.SliceData(wbuf) != first {
		t.Errorf("the next reply of about %d bytes was encoded in a new buffer, not the one kept", len(text))
	}
}

// TestReadFrameCutShortHoldsTwiceWhatCame: a frame claiming maxFrame cut
// short after a MiB holds at most frameSlack more than twice the bytes
// read (FuzzReadFrame's bound, with an input longer than the fuzzer
// makes).
func TestReadFrameCutShortHoldsTwiceWhatCame(t *testing.T) {
	b := make([]byte, 4+1<<20)
	binary.BigEndian.PutUint32(b, maxFrame)
	frame, err := readFrame(bufio.NewReader(bytes.NewReader(b)), nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if cap(frame) > 2*len(b)+frameSlack {
		t.Errorf("holds %d bytes for a frame, having read %d; want at most %d", cap(frame), len(b), 2*len(b)+frameSlack)
	}
}

// TestChildRefusesAnotherBuild: a child whose gateway is another build
// (a pipe format or a store schema other than its own: where the child
// cannot be started from the gateway's own binary, an upgrade replaced
// it) refuses the parameters with an error saying so, to the gateway and
// on stderr, before it opens the store (which it would migrate under the
// gateway).
func TestChildRefusesAnotherBuild(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "state.db")
	own := appendParams(nil, &Params{Driver: "sqlite", DSN: db, Key: bytes.Repeat([]byte{7}, 32)})
	// The frame's first two fields: the pipe format's version, the store's
	// schema version.
	_, n1 := binary.Uvarint(own)
	_, n2 := binary.Uvarint(own[n1:])
	for name, frame := range map[string][]byte{
		"format": slices.Concat(binary.AppendUvarint(nil, 1<<20), own[n1:]),
		"schema": slices.Concat(own[:n1], binary.AppendUvarint(nil, 1<<20), own[n1+n2:]),
	} {
		t.Run(name, func(t *testing.T) {
			var in, out bytes.Buffer
			if err := writeFrame(bufio.NewWriter(&in), frame); err != nil {
				t.Fatal(err)
			}
			var errw strings.Builder
			err := serve(&in, &out, &errw)
			if err == nil || !strings.Contains(err.Error(), "another build") {
				t.Errorf("serve: got %v, want an error saying the gateway is another build", err)
			}
			b, ferr := readFrame(bufio.NewReader(&out), nil)
			if ferr != nil {
				t.Fatalf("no answer to the parameters: %v", ferr)
			}
			rep, derr := decodeReply(b, 0, nil)
			if derr != nil || !strings.Contains(rep.Err, "another build") {
				t.Errorf("the answer: got %+v (%v), want an error saying the gateway is another build", rep, derr)
			}
			if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the store was opened (%v)", err)
			}
		})
	}
}
