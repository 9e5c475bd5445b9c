package ircd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/rest"
)

// memBackend builds the world of BenchmarkWorldMemory: one channel the
// client is in, with users virtual users joined (every third voiced, every
// fifth away). Its handler keeps nothing.
type memBackend struct{ users int }

func (memBackend) Authenticate(context.Context, string, string) error { return nil }

func (b memBackend) Connect(c *Client, _ Registration) (Handler, error) {
	if err := c.CreateChannel("&bitlbee", "Welcome to the MySpaceIM gateway"); err != nil {
		return nil, err
	}
	for i := range b.users {
		n := fmt.Sprintf("buddy%03d", i)
		u := User{Nick: n, User: n, Host: "msim", RealName: "Buddy Number " + n[5:]}
		if i%5 == 0 {
			u.Away = "Away"
		}
		if err := c.AddUser(u); err != nil {
			return nil, err
		}
		c.JoinUser("&bitlbee", n, i%3 == 0)
	}
	c.JoinClient("&bitlbee", time.Time{})
	return nopHandler{}, nil
}

// dialIdle registers a client and reads its welcome burst and world with a
// reader it then drops: what remains on the test side is the socket only.
func dialIdle(tb testing.TB, addr, nick string) net.Conn {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(nc, "NICK %s\r\nUSER u 0 * :Real Name\r\nPING done\r\n", nick); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			tb.Fatalf("%s: %v", nick, err)
		}
		if strings.Contains(l, " PONG ") && strings.HasSuffix(l, " done\r\n") {
			break
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return nc
}

// heapNow is the live heap and the stacks in use after a full collection.
func heapNow() (heap, stack uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

// BenchmarkWorldMemory measures what an idle connection costs the server
// when its world has one channel with 100 virtual users, all joined: the
// live heap (and goroutine stacks) per connection after a GC, once the
// readers were asked to rest (rest.All, as after a burst of logins), the test
// side's sockets included (a few hundred bytes each). With MEMPROF=file it
// writes a heap profile while the connections are open (use it with
// -memprofilerate=1 to see every allocation).
// The users=0 case shows the cost of the connection itself.
func BenchmarkWorldMemory(b *testing.B) {
	for _, users := range []int{0, 100} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) { worldMemory(b, users) })
	}
}

func worldMemory(b *testing.B, users int) {
	const conns = 50
	cfg := testConfig()
	cfg.PingInterval = time.Hour          // keep the connections idle
	cfg.MaxConnectionsPerAddr = conns + 1 // all from loopback
	addr, srv := startServer(b, cfg, memBackend{users: users})
	var heap, stack float64
	b.ResetTimer()
	for range b.N {
		h0, s0 := heapNow()
		ncs := make([]net.Conn, 0, conns)
		for i := range conns {
			ncs = append(ncs, dialIdle(b, addr, fmt.Sprintf("me%d", i)))
		}
		// Idle: the readers rest, as the bridge has them after a burst
		// (once a collection has seen the goroutines idle, a new one
		// starts at the smallest stack).
		runtime.GC()
		rest.All()
		time.Sleep(50 * time.Millisecond)
		h1, s1 := heapNow()
		if f := os.Getenv("MEMPROF"); f != "" {
			fh, _ := os.Create(f)
			_ = pprof.WriteHeapProfile(fh)
			fh.Close()
		}
		heap += (float64(h1) - float64(h0)) / conns
		stack += (float64(s1) - float64(s0)) / conns
		b.StopTimer()
		for _, nc := range ncs {
			_ = nc.Close()
		}
		waitClients(b, srv, 0)
		b.StartTimer()
	}
	b.ReportMetric(heap/float64(b.N), "heapB/conn")
	b.ReportMetric(stack/float64(b.N), "stackB/conn")
}

// waitClients waits until srv has n connections.
func waitClients(tb testing.TB, srv *Server, n int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		srv.mu.Lock()
		got := len(srv.clients)
		srv.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("got %d connections, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}
