package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// startMetrics runs msimd with args (which should include -metrics-listen)
// until the test ends and returns its MSIM and metrics addresses.
func startMetrics(t *testing.T, args ...string) (addr, metricsAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	ready := make(chan string, 1)
	mready := make(chan string, 1)
	done := make(chan error, 1)
	e := env{stdin: strings.NewReader(""), stderr: logs, reload: make(chan struct{}),
		ready: func(a string) { ready <- a }, metricsReady: func(a string) { mready <- a }}
	go func() {
		done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), e)
	}()
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("msimd stopped: %v\n%s", err, logs)
	case <-time.After(5 * time.Second):
		t.Fatal("msimd did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("msimd: %v", err)
		}
	})
	select {
	case metricsAddr = <-mready:
	default:
		t.Fatal("msimd started without a metrics listener")
	}
	return addr, metricsAddr
}

// get fetches path from the metrics listener and returns the status and body.
func get(t *testing.T, metricsAddr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + metricsAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics in the text format: series (name{labels} as
// written) → value.
func scrape(t *testing.T, metricsAddr string) map[string]float64 {
	t.Helper()
	code, body := get(t, metricsAddr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200\n%s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsListener(t *testing.T) {
	addr, maddr := startMetrics(t, "-metrics-listen", "127.0.0.1:0", "-account", "alice@example.com:Secret1")
	c, m := login(t, addr, "alice@example.com", "Secret1")
	if !m.Is("lc") {
		t.Fatalf("login: got %v, want lc 2", m)
	}
	if _, m := login(t, addr, "alice@example.com", "wrong"); !m.Is("error") {
		t.Fatalf("wrong password: got %v, want an error", m)
	}
	// A request answered after the login: it has been counted.
	c.send((&msim.Persist{Cmd: msim.CmdGet, DSN: msim.PersistOwnIMInfo.DSN, LID: msim.PersistOwnIMInfo.LID, RID: 7}).Request(c.key))
	c.next(func(m *msim.Message) bool { return m.Is("persistr") })

	got := scrape(t, maddr)
	for _, w := range []struct {
		series string
		v      float64
	}{
		{"msimd_sessions", 1},
		{`msimd_logins_total{result="ok"}`, 1},
		{`msimd_logins_total{result="260"}`, 1},
		{`msimd_protocol_errors_total{code="260"}`, 1},
		{`msimd_persist_requests_total{kind="1/1/4",result="ok"}`, 1},
		{`msimd_ims_routed_total`, 0},
		{`msimd_presence_fanout_recipients_count`, 0},
	} {
		if v, ok := got[w.series]; !ok || v != w.v {
			t.Errorf("%s: got %v (present %v), want %v", w.series, v, ok, w.v)
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics (go_goroutines)")
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, maddr, path); code != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200\n%s", path, code, body)
		}
	}
	if _, body := get(t, maddr, "/readyz"); !strings.Contains(body, "msim listener: ok") || !strings.Contains(body, "store: ok") {
		t.Errorf("/readyz does not name its checks:\n%s", body)
	}
}

func TestMetricsListenAddress(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"any address", []string{"-metrics-listen", "0.0.0.0:0"}, false},
		{"a host name", []string{"-metrics-listen", "metrics.example.com:9100"}, false},
		{"no port", []string{"-metrics-listen", "127.0.0.1"}, false},
		{"any address, public", []string{"-metrics-listen", "0.0.0.0:0", "-metrics-public"}, true},
		{"localhost", []string{"-metrics-listen", "localhost:0"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				out, err := cli("", append([]string{"-listen", "127.0.0.1:0"}, tc.args...)...)
				if !errors.Is(err, errUsage) {
					t.Fatalf("got %v, want a usage error\n%s", err, out)
				}
				if tc.name != "no port" && !strings.Contains(err.Error(), "-metrics-public") {
					t.Errorf("the error does not name -metrics-public: %v", err)
				}
				return
			}
			_, maddr := startMetrics(t, tc.args...)
			host, port, err := net.SplitHostPort(maddr)
			if err != nil {
				t.Fatal(err)
			}
			if net.ParseIP(host).IsUnspecified() {
				maddr = net.JoinHostPort("127.0.0.1", port)
			}
			if code, _ := get(t, maddr, "/healthz"); code != http.StatusOK {
				t.Errorf("GET /healthz: got %d, want 200", code)
			}
		})
	}
}
