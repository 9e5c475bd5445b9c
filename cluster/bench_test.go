package cluster

import (
	"context"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim/server"
)

// BenchmarkIMLatency measures an IM's trip from the sender's SendIM to the
// recipient's event: in a single process without a bus, between two users
// on one node of a cluster, and across two nodes (one NATS hop there and
// one reply back). It reports the median and the 99th percentile. On one
// machine this is the cost of the bus, not the gain of more machines.
func BenchmarkIMLatency(b *testing.B) {
	for _, tc := range []struct {
		name  string
		nodes int // 0: a single process
		cross bool
	}{
		{"single-process", 0, false},
		{"same-node", 2, false},
		{"cross-node", 2, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var sender, receiver *node
			var store server.Store
			if tc.nodes == 0 {
				store = server.NewMemStore()
				sender = startSingle(b, store)
				receiver = sender
			} else {
				var nodes []*node
				nodes, store = startCluster(b, memEngine, tc.nodes)
				sender, receiver = nodes[0], nodes[0]
				if tc.cross {
					receiver = nodes[1]
				}
			}
			acc := addAccounts(b, sender.srv, store, "alice", "bob")
			alice := dial(b, sender, "alice", acc["alice"])
			bob := dial(b, receiver, "bob", acc["bob"])
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				text := strconv.Itoa(i)
				t0 := time.Now()
				if err := alice.SendIM(ctx, acc["bob"].uid, text); err != nil {
					b.Fatal(err)
				}
				bob.next("IM "+text, im(acc["alice"].uid, text))
				lat = append(lat, time.Since(t0))
				bob.seen = bob.seen[:0] // presence and such: not measured
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// startSingle runs a server without a bus: the single-process baseline.
func startSingle(tb testing.TB, store server.Store) *node {
	tb.Helper()
	srv, err := server.New(server.Config{}, store, testLog(tb))
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), wait)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		<-served
	})
	return &node{srv: srv, addr: ln.Addr().String()}
}
