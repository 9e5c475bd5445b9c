// Package metrics serves the operational endpoints of msimircd and msimd on
// one HTTP listener: Prometheus metrics at /metrics, liveness at /healthz and
// readiness at /readyz.
//
// Ownership: this package owns the listener and the readiness checks' HTTP
// form only. Each package that counts something (ircd, channel, store,
// msim/server) defines and registers its own collectors on the
// prometheus.Registerer its config hands it; the commands make one registry
// per process and pass it down, so tests can run several servers in one
// process without their figures mixing.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"
)

// checkTimeout bounds one run of the readiness probes.
const checkTimeout = 3 * time.Second

// idleTimeout is how long a client's connection may stay open between
// requests: longer than a scraper's interval, so a scraper keeps its one
// connection, but bounded, so clients that never close theirs do not use
// up the process's file descriptors (shared with the IRC and MSIM
// listeners).
const idleTimeout = 5 * time.Minute

// readTimeout bounds reading a whole request, body included: the endpoints
// take no body, and a client that announces one and never sends it would
// otherwise hold its connection and goroutine for ever.
const readTimeout = 10 * time.Second

// writeTimeout bounds a whole answer, from the end of its request's header:
// well above checkTimeout and any scrape, so it cuts off only a client that
// stopped reading, which would otherwise hold its connection and goroutine
// for ever.
const writeTimeout = 30 * time.Second

// Check is one readiness probe: nil when the part it checks is usable.
type Check func(ctx context.Context) error

// NewRegistry returns a registry holding the Go runtime's and the process's
// standard collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Server is the HTTP listener of the operational endpoints.
type Server struct {
	reg  prometheus.Gatherer
	ln   net.Listener
	http *http.Server

	runs   singleflight.Group // concurrent /readyz requests share one run of the probes
	onJoin func()             // called when a request has joined a run; tests set it

	mu     sync.Mutex
	checks map[string]Check
	gen    uint64 // counts AddCheck calls, so a request never joins a run of replaced probes
}

// readiness is the result of one run of the probes.
type readiness struct {
	code int    // http.StatusOK or http.StatusServiceUnavailable
	body string // one line per probe
}

// ErrNotLoopback refuses a metrics address that is not loopback when the
// configuration did not allow other addresses.
var ErrNotLoopback = errors.New("not a loopback address")

// CheckAddr refuses a listen address that is not loopback unless public is
// set (the config's explicit consent).
func CheckAddr(addr string, public bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics listen address %q: %w", addr, err)
	}
	if public {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("metrics listen address %q: %w (set [metrics] public = true to allow it)", addr, ErrNotLoopback)
}

// Listen opens addr (checked by CheckAddr) and returns the server, not yet
// serving.
func Listen(addr string, public bool, reg prometheus.Gatherer) (*Server, error) {
	if err := CheckAddr(addr, public); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	s := &Server{reg: reg, ln: ln, checks: map[string]Check{}}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.ready)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
	return s, nil
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// AddCheck adds (or replaces) the readiness probe called name.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
	s.gen++
}

// Serve serves until ctx ends, then closes the listener and returns nil; it
// returns the listener's error if serving fails.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.http.Shutdown(shutdown)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("metrics listener: %w", err)
	}
}

// Close stops the server at once.
func (s *Server) Close() error { return s.http.Close() }

// ready answers 200 when every probe passes, else 503 naming each failing
// probe and its error, one per line.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	res, err := s.readiness(r.Context())
	if err != nil {
		return // the client went away
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if res.code != http.StatusOK {
		w.WriteHeader(res.code)
	}
	fmt.Fprintln(w, res.body)
}

// readiness joins the run of the probes in flight, or starts one, and
// waits for its result as long as ctx allows. A flood of requests thus
// runs the probes (a store query, a dial) once at a time, not once each.
func (s *Server) readiness(ctx context.Context) (readiness, error) {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	ch := s.runs.DoChan(strconv.FormatUint(gen, 10), func() (any, error) {
		return s.runChecks(), nil
	})
	if s.onJoin != nil {
		s.onJoin()
	}
	select {
	case res := <-ch:
		return res.Val.(readiness), nil
	case <-ctx.Done():
		return readiness{}, ctx.Err()
	}
}

// runChecks runs every probe, in name order. Its context is no request's,
// since the run is shared: one client leaving must not fail it for the
// others.
func (s *Server) runChecks() readiness {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	checks := make(map[string]Check, len(s.checks))
	for n, c := range s.checks {
		names = append(names, n)
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	res := readiness{code: http.StatusOK}
	var lines []string
	for _, n := range names {
		if err := runCheck(ctx, checks[n]); err != nil {
			res.code = http.StatusServiceUnavailable
			lines = append(lines, fmt.Sprintf("%s: %v", n, err))
		} else {
			lines = append(lines, n+": ok")
		}
	}
	res.body = strings.Join(lines, "\n")
	return res
}

// runCheck runs c, turning a panic into its error: the shared run happens
// outside any request's goroutine, where net/http would not recover it.
func runCheck(ctx context.Context, c Check) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return c(ctx)
}

// DialCheck is a readiness probe that succeeds when a TCP connection to the
// address addr() returns can be opened (an upstream server's, say).
func DialCheck(addr func() string) Check {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr())
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// LatencyBuckets are histogram buckets for operations that take from tens
// of microseconds (a store write) to seconds (a stalled disk), in seconds.
var LatencyBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
