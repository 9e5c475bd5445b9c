package server

import (
	"bytes"
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
