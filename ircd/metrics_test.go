package ircd

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/internal/promtest"
)

// TestMetricsConnections: the connections gauge counts open connections,
// registered or not, and falls back to 0 once they have ended; Listening
// names the listener while it is served.
func TestMetricsConnections(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Metrics = reg
	b := newBackend()
	log, _ := testLog()
	srv := NewServer(cfg, b, log)
	addr, _ := startWith(t, srv)
	register(t, addr, b, "me") // Serve runs: it accepted the client
	if got := srv.Listening(); len(got) != 1 || got[0].String() != addr {
		t.Errorf("Listening: got %v, want [%s]", got, addr)
	}
	unregistered := dial(t, addr)
	unregistered.send(t, "PING before")
	expect(t, unregistered, "PONG")
	if got := promtest.Value(t, reg, "msimircd_irc_connections"); got != 2 {
		t.Errorf("connections with two clients: got %v, want 2", got)
	}
	shutdown(t, srv)
	if got := promtest.Value(t, reg, "msimircd_irc_connections"); got != 0 {
		t.Errorf("connections after shutdown: got %v, want 0", got)
	}
	if got := srv.Listening(); len(got) != 0 {
		t.Errorf("Listening after shutdown: got %v, want none", got)
	}
}

// TestMetricsSendQ: a client whose queue overflows (here with the lines
// its world holds for after the welcome) is counted once.
func TestMetricsSendQ(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Metrics = reg
	cfg.SendQ = 2 // stdWorld's JOIN and NAMES lines alone overflow it
	b := newBackend()
	addr, _ := startServer(t, cfg, b)
	c := dial(t, addr)
	c.send(t, "NICK me", "USER u 0 * :Real Name")
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (SendQ exceeded)" {
		t.Fatalf("got ERROR %q, want SendQ exceeded", got)
	}
	if got := promtest.Value(t, reg, "msimircd_irc_sendq_disconnects_total"); got != 1 {
		t.Errorf("sendq disconnects: got %v, want 1", got)
	}
}

// TestMetricsFloodDelays: lines beyond the flood burst are counted as
// delayed; within the burst none is.
func TestMetricsFloodDelays(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		burst   int
		delayed bool
	}{
		{"within the burst", 100, false},
		{"beyond the burst", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			cfg := testConfig()
			cfg.Metrics = reg
			cfg.FloodRate, cfg.FloodBurst = 200, tc.burst
			b := newBackend()
			addr, _ := startServer(t, cfg, b)
			c, _, _ := register(t, addr, b, "me")
			const n = 10
			for i := range n {
				c.send(t, fmt.Sprintf("PING %d", i))
			}
			for range n {
				expect(t, c, "PONG")
			}
			got := promtest.Value(t, reg, "msimircd_irc_flood_delays_total")
			if (got > 0) != tc.delayed {
				t.Errorf("flood delays: got %v, want delayed %v", got, tc.delayed)
			}
		})
	}
}
