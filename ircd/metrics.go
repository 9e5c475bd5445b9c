package ircd

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/metrics"
)

// serverMetrics are the server's Prometheus collectors; nil (no
// Config.Metrics) counts nothing and costs a nil check.
type serverMetrics struct {
	connections prometheus.Gauge
	sendQ       prometheus.Counter
	flood       prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	if reg == nil {
		return nil
	}
	return &serverMetrics{
		connections: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "msimircd_irc_connections",
			Help: "Open IRC connections, registered or not.",
		})),
		sendQ: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msimircd_irc_sendq_disconnects_total",
			Help: "IRC connections closed because their send queue was full (SendQ exceeded).",
		})),
		flood: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "msimircd_irc_flood_delays_total",
			Help: "IRC lines whose reading was delayed by flood control.",
		})),
	}
}

func (m *serverMetrics) connOpened() {
	if m != nil {
		m.connections.Inc()
	}
}

func (m *serverMetrics) connClosed() {
	if m != nil {
		m.connections.Dec()
	}
}

func (m *serverMetrics) sendQExceeded() {
	if m != nil {
		m.sendQ.Inc()
	}
}

func (m *serverMetrics) floodDelayed() {
	if m != nil {
		m.flood.Inc()
	}
}

// Listening returns the addresses of the listeners Serve is accepting on
// now (a readiness check compares them with those it was given).
func (s *Server) Listening() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.lns))
	for ln := range s.lns {
		out = append(out, ln.Addr())
	}
	return out
}
