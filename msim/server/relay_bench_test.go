package server

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
)

// BenchmarkRelayIM routes IMs from one logged-in session to another over
// loopback sockets: the sender writes them in batches, as a busy gateway
// does, and the recipient reads what the server relays. One op is one IM;
// the allocations are the server's (the clients' writes and reads
// allocate nothing).
func BenchmarkRelayIM(b *testing.B) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	srv, err := New(Config{SendQ: 4096}, NewMemStore(), logrus.NewEntry(l))
	if err != nil {
		b.Fatal(err)
	}
	noFloodWaits(srv) // one session at full speed: past flood control's rate
	addr := serve(b, srv)
	addAccount(b, srv, "a@x.invalid", "pw", "alice")
	addAccount(b, srv, "b@x.invalid", "pw", "bob")
	a, r := login(b, addr, "a@x.invalid", "pw"), login(b, addr, "b@x.invalid", "pw")
	for _, c := range []*client{a, r} {
		c.status(msim.StatusOnline, "")
		c.sync()
		c.takeSeen()
	}
	in := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", a.key).AddInt("t", int(r.uid)).
		AddInt("cv", 673).Add("msg", "<p>hello there, how are you today?</p>"))
	want := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(a.uid)).AddInt("cv", 673).
		Add("msg", "<p>hello there, how are you today?</p>"))
	const perWrite = 8
	batch := bytes.Repeat(in, perWrite)
	buf := make([]byte, 64*len(want))
	_ = a.nc.SetDeadline(time.Time{})
	_ = r.nc.SetDeadline(time.Time{})
	b.ReportAllocs()
	b.ResetTimer()
	n := b.N
	// The sender stays at most window batches ahead of the recipient, so
	// that the recipient's queue stays within SendQ.
	const window = 32
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	go func() {
		for i := 0; i < n; i += perWrite {
			<-credit
			if _, err := a.nc.Write(batch[:min(perWrite, n-i)*len(in)]); err != nil {
				return
			}
		}
	}()
	batchBytes := perWrite * len(want)
	for got := 0; got < n*len(want); {
		k, err := r.nc.Read(buf[:min(len(buf), n*len(want)-got)])
		if err != nil {
			b.Fatal(err)
		}
		for range (got+k)/batchBytes - got/batchBytes {
			credit <- struct{}{}
		}
		got += k
	}
	b.StopTimer()
}
