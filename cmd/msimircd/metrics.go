package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/metrics"
)

// MetricsConfig is the [metrics] table: the Prometheus metrics, /healthz
// and /readyz listener, off by default.
type MetricsConfig struct {
	Listen string `toml:"listen"` // host:port; "" = no listener
	Public bool   `toml:"public"` // allow a listen address that is not loopback
}

// validate checks the [metrics] table; its errors name the key.
func (m MetricsConfig) validate() error {
	if m.Listen == "" {
		return nil
	}
	p := pathStep{"metrics", -1}
	if err := checkAddr(m.Listen); err != nil {
		return errKey(err.Error(), "listen", p)
	}
	if err := metrics.CheckAddr(m.Listen, m.Public); errors.Is(err, metrics.ErrNotLoopback) {
		return errKey(fmt.Sprintf("%q is not a loopback address: anyone who can reach it would see the gateway's metrics; set metrics.public = true to allow it", m.Listen), "listen", p)
	} else if err != nil {
		return errKey(err.Error(), "listen", p)
	}
	return nil
}

// registerer is where the gateway's parts register their collectors: nil
// (no metrics) without a metrics listener.
func (g *gateway) registerer() prometheus.Registerer {
	if g.reg == nil {
		return nil
	}
	return g.reg
}

// listenMetrics opens the metrics listener, with the readiness checks of
// msimircd: the IRC listeners accept, the store answers, the MSIM server
// can be reached. It returns nil without [metrics] listen.
func (g *gateway) listenMetrics() (*metrics.Server, error) {
	if g.reg == nil {
		return nil, nil
	}
	srv, err := metrics.Listen(g.metricsCfg.Listen, g.metricsCfg.Public, g.reg)
	if err != nil {
		return nil, err
	}
	srv.AddCheck("irc_listeners", g.ircReady)
	if g.st != nil {
		srv.AddCheck("store", g.st.Ping)
	}
	srv.AddCheck("msim_server", metrics.DialCheck(func() string { return g.msimAddr }))
	if !isLoopback(srv.Addr().String()) {
		g.log.Warnf("metrics listener %s is not on loopback", srv.Addr())
	}
	g.log.Infof("metrics on http://%s/metrics (and /healthz, /readyz)", srv.Addr())
	return srv, nil
}

// ircReady fails while an IRC listener is not accepting.
func (g *gateway) ircReady(context.Context) error {
	serving := map[string]bool{}
	for _, a := range g.irc.Listening() {
		serving[a.String()] = true
	}
	var missing []string
	for _, ln := range g.ircLns {
		if a := ln.Addr().String(); !serving[a] {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not accepting on %s", strings.Join(missing, ", "))
	}
	return nil
}

// metricsAddr is the metrics listener's address, "" without one.
func metricsAddr(srv *metrics.Server) string {
	if srv == nil {
		return ""
	}
	return srv.Addr().String()
}
