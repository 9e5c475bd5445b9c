package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
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
