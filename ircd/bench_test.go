package ircd

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRelayPrivmsg measures PRIVMSGs relayed from a virtual user to a
// real client over loopback: Deliver on one side, a parsing irc.v4 reader on
// the other. One op is one message received by the client.
func BenchmarkRelayPrivmsg(b *testing.B) {
	be := newBackend()
	cfg := testConfig()
	addr, _ := startServer(b, cfg, be)
	c, fc, _ := register(b, addr, be, "me", "server-time")
	var received atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for {
			_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := c.r.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			if m.Command == "PRIVMSG" {
				received.Add(1)
			}
		}
	}()
	text := "Hey, are you coming to the show tonight? It starts at eight."
	window := int64(cfg.withDefaults().SendQ / 2)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for int64(i)-received.Load() > window { // stay inside the send queue
			time.Sleep(50 * time.Microsecond)
		}
		fc.c.Deliver(Delivery{From: "tom", Text: text})
	}
	for received.Load() < int64(b.N) {
		select {
		case err := <-readErr:
			b.Fatalf("reader stopped after %d of %d: %v", received.Load(), b.N, err)
		default:
			time.Sleep(50 * time.Microsecond)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	_ = c.nc.Close()
	<-readErr
}
