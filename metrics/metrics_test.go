package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
		ok     bool
	}{
		{"127.0.0.1:9100", false, true},
		{"[::1]:9100", false, true},
		{"localhost:9100", false, true},
		{"0.0.0.0:9100", false, false},
		{":9100", false, false},
		{"192.0.2.1:9100", false, false},
		{"0.0.0.0:9100", true, true},
		{"no-port", true, false},
	} {
		err := CheckAddr(tc.addr, tc.public)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%q, %v) = %v, want ok %v", tc.addr, tc.public, err, tc.ok)
		}
		if !tc.ok && !tc.public && err != nil && strings.Contains(tc.addr, ":") && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("CheckAddr(%q) = %v, want ErrNotLoopback", tc.addr, err)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	s, err := Listen("127.0.0.1:0", false, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "http://" + s.Addr().String()

	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "test_things_total 3") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d %q, want 200 with test_things_total 3 and go_goroutines", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz with no checks = %d %q, want 200", code, body)
	}
	s.AddCheck("store", func(context.Context) error { return nil })
	s.AddCheck("upstream", func(context.Context) error { return errors.New("connection refused") })
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "upstream: connection refused") || !strings.Contains(body, "store: ok") {
		t.Errorf("/readyz = %d %q, want 503 naming upstream's error and store ok", code, body)
	}
	s.AddCheck("upstream", DialCheck(func() string { return s.Addr().String() }))
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz with a reachable upstream = %d %q, want 200", code, body)
	}
}

func TestRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "test_twice_total", Help: "Twice."}
	a := Register(reg, prometheus.NewCounter(opts))
	b := Register(reg, prometheus.NewCounter(opts))
	a.Inc()
	b.Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != 2 {
		t.Errorf("got %v, want one counter of 2 shared by both registrations", mfs)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering another kind of metric under a taken name did not panic")
		}
	}()
	Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_twice_total", Help: "Twice."}))
}

// TestIdleConnectionClosed: a client that keeps its connection open after
// a request and sends nothing more is let go, so clients that never close
// theirs cannot pile up the process's file descriptors.
func TestIdleConnectionClosed(t *testing.T) {
	s, err := Listen("127.0.0.1:0", false, NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if s.http.IdleTimeout > 0 { // shortened, so the test does not wait the real one
		s.http.IdleTimeout = time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // only if never closed
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("reading an idle kept-alive connection: got %v, want EOF (closed by the server)", err)
	}
}

// serve serves s until the test ends.
func serve(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// expectClosed reads c until the server closes it; the deadline is only a
// bound for the case where it never does.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("reading the connection: got %v, want it closed by the server", err)
	}
}

// TestStalledReaderReleased: a client that sends a request and then stops
// reading the answer does not hold the handler and its connection for
// ever: the write times out, the handler returns and the connection is
// closed.
func TestStalledReaderReleased(t *testing.T) {
	s, err := Listen("127.0.0.1:0", false, NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if s.http.WriteTimeout > 0 { // shortened, so the test does not wait the real one
		s.http.WriteTimeout = 10 * time.Millisecond
	}
	returned := make(chan error, 1)
	s.http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 64<<10) // written for ever: more than the socket buffers hold
		for {
			if _, err := w.Write(chunk); err != nil {
				returned <- err
				return
			}
		}
	})
	serve(t, s)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-returned:
	case <-time.After(10 * time.Second): // only if never released
		t.Fatal("writing to a client that stopped reading: got no error, want the write to time out")
	}
	expectClosed(t, c)
}

// TestUnsentBodyReleased: a request that announces a body and never sends
// it does not hold its connection (and the goroutine serving it) for ever.
func TestUnsentBodyReleased(t *testing.T) {
	s, err := Listen("127.0.0.1:0", false, NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if s.http.ReadTimeout > 0 { // shortened, but long enough to read the header
		s.http.ReadTimeout = time.Second
	}
	serve(t, s)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
}

// TestReadyShared: a flood of /readyz requests does not multiply the
// probes (a store query, a dial): requests that come while the probes run
// share that run and its answer.
func TestReadyShared(t *testing.T) {
	s, err := Listen("127.0.0.1:0", false, NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	joined := make(chan struct{}, n)
	s.onJoin = func() { joined <- struct{}{} }
	release := make(chan struct{})
	var calls atomic.Int64
	s.AddCheck("store", func(context.Context) error {
		calls.Add(1)
		<-release // until every request waits for this run
		return errors.New("down")
	})
	serve(t, s)
	url := "http://" + s.Addr().String() + "/readyz"
	var wg sync.WaitGroup
	failed := make(chan struct{}, n) // a request that failed before it joined
	for range n {
		wg.Go(func() {
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				failed <- struct{}{}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "store: down") {
				t.Errorf("/readyz = %d %q, want 503 naming the store", resp.StatusCode, body)
			}
		})
	}
	for range n {
		select {
		case <-joined:
		case <-failed:
			close(release)
			wg.Wait()
			t.FailNow()
		}
	}
	close(release)
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Errorf("probe calls for %d concurrent requests: got %d, want 1", n, got)
	}
	if code, _ := get(t, url); code != http.StatusServiceUnavailable || calls.Load() != 2 {
		t.Errorf("a later request: got %d after %d probe calls, want 503 after a run of its own (2 calls)", code, calls.Load())
	}
}

// TestReadyPanic: a probe that panics is a failed probe, not a crash.
func TestReadyPanic(t *testing.T) {
	s, err := Listen("127.0.0.1:0", false, NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s.AddCheck("bad", func(context.Context) error { panic("boom") })
	serve(t, s)
	if code, body := get(t, "http://"+s.Addr().String()+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "bad: ") {
		t.Errorf("/readyz = %d %q, want 503 naming the panicking probe", code, body)
	}
}
