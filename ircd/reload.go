// Settings that change while the server runs (a reload of msimircd's
// config): the MOTD, flood control and the TLS listeners' certificates.

package ircd

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// live holds what SetMOTD and SetFlood set; nil pointers mean Config's.
type live struct {
	motd  atomic.Pointer[motdState]
	flood atomic.Pointer[floodState]
}

type motdState struct {
	lines        []string
	welcomeLines int // welcomeLines with these lines
}

type floodState struct {
	rate  float64
	burst int
}

// SetMOTD replaces the message of the day: the welcome of every
// connection that registers from now on, and every MOTD command, show
// lines (none: 422 ERR_NOMOTD). It is safe to call while the server runs.
func (s *Server) SetMOTD(lines []string) {
	lines = append([]string(nil), lines...)
	cfg := s.cfg
	cfg.MOTD = lines
	s.live.motd.Store(&motdState{lines: lines, welcomeLines: welcomeLines(&cfg)})
}

// motdLines is the message of the day in effect.
func (s *Server) motdLines() []string {
	if m := s.live.motd.Load(); m != nil {
		return m.lines
	}
	return s.cfg.MOTD
}

// welcomeBurst is how many lines the welcome burst sends at most, with the
// MOTD in effect.
func (s *Server) welcomeBurst() int {
	if m := s.live.motd.Load(); m != nil {
		return m.welcomeLines
	}
	return s.welcomeLines
}

// SetFlood changes flood control: a client may send burst lines at once,
// then rate lines per second (rate 0: no limit; burst 0 with a rate: the
// default burst). It applies to connections opened from now on and to the
// open ones that have flood control: a connection opened while there was
// none keeps none until it reconnects. It is safe to call while the server
// runs.
func (s *Server) SetFlood(lines float64, burst int) {
	if lines < 0 {
		lines = 0
	}
	if lines > 0 && burst <= 0 {
		burst = DefaultConfig().FloodBurst
	}
	s.live.flood.Store(&floodState{rate: lines, burst: burst})
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		if c.limiter == nil {
			continue
		}
		c.limiter.SetBurst(burst)
		c.limiter.SetLimit(floodLimit(lines))
	}
}

func floodLimit(lines float64) rate.Limit {
	if lines <= 0 {
		return rate.Inf
	}
	return rate.Limit(lines)
}

// newLimiter is a new connection's flood control; nil when there is none.
func (s *Server) newLimiter() *rate.Limiter {
	f := floodState{rate: s.cfg.FloodRate, burst: s.cfg.FloodBurst}
	if l := s.live.flood.Load(); l != nil {
		f = *l
	}
	if f.rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(f.rate), f.burst)
}

// TLSListener is a TLS listener whose certificate can be replaced while it
// serves (Reload): each handshake takes the certificate in effect, and
// connections already open keep theirs.
type TLSListener struct {
	net.Listener
	cert atomic.Pointer[tls.Certificate]
}

// ListenTLS listens on addr with the certificate and key from files.
func ListenTLS(addr, certFile, keyFile string) (*TLSListener, error) {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ircd: listen %s: %w", addr, err)
	}
	l := &TLSListener{}
	l.cert.Store(cert)
	l.Listener = tls.NewListener(ln, &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.cert.Load(), nil },
		MinVersion:     tls.VersionTLS12,
	})
	return l, nil
}

// Reload reads the certificate and key again from files (those it was made
// with or others) and uses them for the handshakes from now on. On an
// error it keeps the certificate it has.
func (l *TLSListener) Reload(certFile, keyFile string) error {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	l.cert.Store(cert)
	return nil
}

// Certificate returns the certificate in effect, its Leaf parsed.
func (l *TLSListener) Certificate() *tls.Certificate { return l.cert.Load() }

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("ircd: load TLS key pair: %w", err)
	}
	return &cert, nil
}
