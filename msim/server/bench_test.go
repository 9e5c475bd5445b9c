package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
)

// Environment of the load benchmark. The idle sessions are held by a child
// process (this test binary, running TestBenchClientHelper), so that this
// process's heap is the server's alone and neither process needs more than
// one descriptor per session.
const (
	envSessions = "MSIM_BENCH_SESSIONS" // idle sessions to hold (default 10000)
	envChild    = "MSIM_BENCH_CHILD"    // set in the child: the server address
)

const benchPairs = 32 // active sessions routing IMs: 2×benchPairs

func benchEmail(i int) string { return fmt.Sprintf("idle%05d@bench.invalid", i) }

// BenchmarkSessions holds N logged-in sessions (MSIM_BENCH_SESSIONS, default
// 10000) with presence fan-out, then routes IMs between 64 active sessions
// while the active ones' status changes fan out to the idle ones. It reports
// the sessions held, the server's memory per idle session (heap and stacks
// in use, after GC, divided by N) and the IMs routed per second.
func BenchmarkSessions(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv(envSessions)); err == nil && v > 0 {
		n = v
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	// Every session comes from one address, and they are more than the
	// default total: the connection caps are off.
	srv, err := New(Config{SendQ: 4096, MaxConnections: -1, MaxConnectionsPerAddr: -1}, NewMemStore(), logrus.NewEntry(l))
	if err != nil {
		b.Fatal(err)
	}
	noFloodWaits(srv) // the active sessions at full speed: past flood control's rate
	ln := listen(b)
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Serve(ctx, ln)
	b.Cleanup(func() {
		cancel()
		sctx, stop := context.WithTimeout(context.Background(), time.Minute)
		defer stop()
		_ = srv.Shutdown(sctx)
	})
	addr := ln.Addr().String()

	active := make([]msim.UID, 2*benchPairs)
	for i := range active {
		active[i] = addAccount(b, srv, fmt.Sprintf("active%02d@bench.invalid", i), "pw", fmt.Sprintf("active%02d", i))
	}
	idle := make([]msim.UID, n)
	for i := range idle {
		idle[i] = addAccount(b, srv, benchEmail(i), "pw", "")
	}
	put := func(owner, c msim.UID) {
		if err := srv.store.PutContact(owner, Contact{UID: c, GroupName: "IM Friends", Position: 1000, Visibility: 1}); err != nil {
			b.Fatal(err)
		}
	}
	for i, u := range idle { // a ring, and one active user each
		put(u, idle[(i+1)%n])
		put(u, active[i%len(active)])
	}
	for i := 0; i < benchPairs; i++ {
		put(active[2*i], active[2*i+1])
		put(active[2*i+1], active[2*i])
	}

	base := serverMemory()
	child := exec.Command(os.Args[0], "-test.run=^TestBenchClientHelper$", "-test.timeout=0")
	child.Env = append(os.Environ(), envChild+"="+addr, envSessions+"="+strconv.Itoa(n))
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	start := time.Now()
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = child.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && lines.Text() != "READY" {
	}
	if got := srv.reg.count(); got != n {
		b.Fatalf("sessions online: got %d, want %d", got, n)
	}
	loginTime := time.Since(start)
	held := serverMemory()
	perSession := float64(held-base) / float64(n)

	clients := make([]*client, len(active))
	for i := range clients {
		clients[i] = login(b, addr, fmt.Sprintf("active%02d@bench.invalid", i), "pw")
		clients[i].status(msim.StatusOnline, "")
	}
	for _, c := range clients {
		c.sync()
		c.takeSeen()
	}
	routed := 0
	round := 0
	b.ResetTimer()
	t0 := time.Now()
	for b.Loop() {
		for i, c := range clients {
			c.bm(msim.BMIM, clients[i^1].uid, "ping")
		}
		for i, c := range clients {
			c.expect("IM", isBM(msim.BMIM, clients[i^1].uid))
			c.seen = nil
		}
		routed += len(clients)
		round++
		if round%64 == 0 { // a status change fans out to ~N/64 idle watchers
			clients[round/64%len(clients)].status(msim.Status(1+round/64%2), "bench")
		}
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(n), "sessions")
	b.ReportMetric(perSession/1024, "KiB/session")
	b.ReportMetric(float64(routed)/elapsed.Seconds(), "IMs/s")
	b.Logf("%d sessions logged in in %v; server memory %.1f MiB for them (%.1f KiB each, heap+stacks); %d goroutines; %d IMs routed in %v",
		n, loginTime.Round(time.Millisecond), float64(held-base)/(1<<20), perSession/1024, runtime.NumGoroutine(), routed, elapsed.Round(time.Millisecond))
}

// serverMemory returns heap and stack bytes in use after a full GC.
func serverMemory() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// TestBenchClientHelper is the client side of BenchmarkSessions, run in a
// child process: it logs in the idle sessions, sets them online, prints
// READY and keeps them (reading and discarding) until stdin closes.
func TestBenchClientHelper(t *testing.T) {
	addr := os.Getenv(envChild)
	if addr == "" {
		t.Skip("only run by BenchmarkSessions")
	}
	n, _ := strconv.Atoi(os.Getenv(envSessions))
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, n)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				nc, err := benchLogin(addr, benchEmail(i))
				if err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					continue
				}
				conns[i] = nc
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, nc := range conns {
		go io.Copy(io.Discard, nc) //nolint:errcheck // closes with the process
	}
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, nc := range conns {
		nc.Close()
	}
}

// benchLogin logs one session in, sets it online and waits for the server
// to have handled that (a persist round trip).
func benchLogin(addr, email string) (net.Conn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(time.Minute))
	dec := msim.NewDecoder(nc)
	var key int
	for {
		m, err := dec.Decode()
		if err != nil {
			nc.Close()
			return nil, err
		}
		switch {
		case isType("lc", 1)(m):
			nonce, _ := m.Base64("nc")
			resp, err := msim.LoginResponse(nonce, email, msim.HashPassword("pw"), nil)
			if err != nil {
				return nil, err
			}
			_, err = nc.Write(msim.Encode(msim.NewInt("login2", msim.LoginAlgorithm).Add("username", email).
				AddBase64("response", resp).AddInt("clientver", 697).AddInt("status", 100).AddInt("id", 1)))
			if err != nil {
				return nil, err
			}
		case m.Is("lc"):
			key, _ = m.Int("sesskey")
			_, err = nc.Write(append(
				msim.Encode(msim.NewInt("status", 1).AddInt("sesskey", key).Add("statstring", "").Add("locstring", "")),
				msim.Encode((&msim.Persist{Cmd: 1, DSN: 1, LID: 4, RID: 1}).Request(key))...))
			if err != nil {
				return nil, err
			}
		case m.Is("persistr") && m.StrOr("rid", "") == "1":
			_ = nc.SetDeadline(time.Time{})
			return nc, nil
		case m.Is("error"):
			nc.Close()
			return nil, fmt.Errorf("%v", m)
		}
	}
}
