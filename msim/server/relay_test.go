package server

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
)

// TestRelayedIMAllocations: the server relays an IM in two allocations
// (the text the decoder reads, the one buffer the recipient gets),
// without decoding the text and encoding it again, and decodes each
// message into the same one. The text has escapes and the message keys
// the recipient must not get.
func TestRelayedIMAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a full, race-free build")
	}
	l := logrus.New() // the test log runs at debug level under -v, which logs every message
	l.SetOutput(io.Discard)
	srv, err := New(Config{SendQ: 4096}, NewMemStore(), logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	addAccount(t, srv, "a@x.invalid", "pw", "alice")
	addAccount(t, srv, "b@x.invalid", "pw", "bob")
	a, b := login(t, addr, "a@x.invalid", "pw"), login(t, addr, "b@x.invalid", "pw")
	for _, c := range []*client{a, b} {
		c.status(msim.StatusOnline, "")
		c.sync()
		c.takeSeen()
	}
	const text = `<p>a/b \ c/1 d</p>`
	in := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", a.key).AddInt("t", int(b.uid)).
		AddInt("cv", 673).Add("msg", text).Add("lc", "9").AddInt("userid", 5))
	want := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(a.uid)).AddInt("cv", 673).Add("msg", text))

	// One first, read by the decoder: the recipient gets exactly the
	// sender's text and keys, and nothing else.
	a.write(in)
	got := b.expect("IM", isBM(msim.BMIM, a.uid))
	if s, _ := got.Str("msg"); s != text || got.Has("lc") || got.Has("userid") || got.Has("sesskey") {
		t.Fatalf("relayed %v, want %q from %d with cv and msg only", got, text, a.uid)
	}

	const n = 2000
	batch := bytes.Repeat(in, 50)
	buf := make([]byte, n*len(want))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan error, 1)
	go func() {
		_ = b.nc.SetReadDeadline(time.Now().Add(testWait))
		_, err := io.ReadFull(b.nc, buf)
		done <- err
	}()
	_ = a.nc.SetWriteDeadline(time.Now().Add(testWait))
	for range n / 50 {
		if _, err := a.nc.Write(batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if !bytes.Equal(buf, bytes.Repeat(want, n)) {
		t.Fatalf("the relayed IMs differ from %q", want)
	}
	per := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%.2f allocations and %d bytes per relayed IM", per, (after.TotalAlloc-before.TotalAlloc)/n)
	if per > 2.5 {
		t.Errorf("%.2f allocations per relayed IM over %d IMs, want at most 2.5", per, n)
	}
}

// TestQueueWakesTheWriterOnce: IMs queued while the writer has been woken
// and has yet to take the queue do not wake it again (it would wake to an
// empty queue once it has written them); one queued after it has taken
// the queue does, and nothing queued is left behind.
func TestQueueWakesTheWriterOnce(t *testing.T) {
	srv, _ := startServer(t, Config{SendQ: 16}, NewMemStore())
	s := &session{srv: srv, wake: make(chan struct{}, 1)}
	woken := func() bool {
		select {
		case <-s.wake:
			return true
		default:
			return false
		}
	}
	im := func(i int) []byte { return []byte(fmt.Sprintf(`\bm\1\f\7\msg\im %d\final\`, i)) }
	if !s.enqueueBM(im(1), 7) || !woken() {
		t.Fatal("the first IM did not wake the writer")
	}
	// The writer has the wake and has yet to take the queue.
	for i := 2; i <= 4; i++ {
		if !s.enqueueBM(im(i), 7) {
			t.Fatalf("IM %d refused", i)
		}
		if woken() {
			t.Fatalf("IM %d woke the writer again before it took the queue", i)
		}
	}
	batch, _ := s.take()
	if len(batch) != 4 {
		t.Fatalf("the writer took %d IMs, want 4", len(batch))
	}
	for i, q := range batch {
		if !bytes.Equal(q.b, im(i+1)) {
			t.Fatalf("IM %d is %q, want %q", i+1, q.b, im(i+1))
		}
	}
	if !s.enqueueBM(im(5), 7) || !woken() {
		t.Fatal("an IM queued after the writer took the queue did not wake it")
	}
	if batch, _ := s.take(); len(batch) != 1 || !bytes.Equal(batch[0].b, im(5)) {
		t.Fatalf("the writer took %d messages, want IM 5 alone", len(batch))
	}
}

// TestRelayBMFromField: the f field a session makes once for its uid
// (fromField) relays every bm as encoding it afresh would, and follows
// the session's uid.
func TestRelayBMFromField(t *testing.T) {
	s := &session{}
	for _, uid := range []msim.UID{1, 9, 10, 1000000, 2147483647, 1000001} {
		s.uid = uid
		for _, typ := range []int{msim.BMIM, msim.BMAction, 121} {
			in := msim.NewInt("bm", typ).AddInt("sesskey", 5).AddInt("t", 7).AddInt("cv", 673).
				Add("msg", `a\b/c`).Add("lc", "9")
			want := msim.Encode(msim.NewInt("bm", typ).AddInt("f", int(uid)).AddInt("cv", 673).Add("msg", `a\b/c`))
			if got := relayBM(typ, s.fromField(), in); !bytes.Equal(got, want) {
				t.Errorf("uid %d, bm %d: relayed %q, want %q", uid, typ, got, want)
			}
		}
	}
}

// TestStoredIMKeepsItsCVAndText: an IM for an offline user is stored with
// the cv and the text its sender wrote (read from the message only when
// it is stored), and one without cv with none.
func TestStoredIMKeepsItsCVAndText(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	addAccount(t, srv, "a@x.invalid", "pw", "alice")
	bUID := addAccount(t, srv, "b@x.invalid", "pw", "bob")
	a := login(t, addr, "a@x.invalid", "pw")
	const text = `<p>a/b \ c/1 d</p>`
	a.bm(msim.BMIM, bUID, text)
	a.send(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", a.key).AddInt("t", int(bUID)).Add("msg", "no cv"))
	a.sync()
	if seen := a.takeSeen(); len(seen) > 0 {
		t.Fatalf("the sender got %v", seen)
	}
	got, err := srv.store.TakeOffline(bUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].From != a.uid || got[0].CV != 673 || got[0].Body != text ||
		got[1].From != a.uid || got[1].CV != 0 || got[1].Body != "no cv" {
		t.Fatalf("stored %+v, want %q with cv 673 and %q with none, from %d", got, text, "no cv", a.uid)
	}
}
