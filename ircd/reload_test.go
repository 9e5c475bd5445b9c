package ircd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/testcert"
	"golang.org/x/time/rate"
	"gopkg.in/irc.v4"
)

// motdOf registers a new client and returns the MOTD lines of its welcome
// (nil after 422).
func motdOf(t *testing.T, addr string, b *fakeBackend, nick string) (*tclient, []string) {
	t.Helper()
	c := dial(t, addr)
	c.send(t, "NICK "+nick, "USER u 0 * :R")
	msgs := c.readUntil(t, irc.RPL_ENDOFMOTD, irc.ERR_NOMOTD)
	b.conn(t, c)
	return c, motdLines(msgs)
}

func motdLines(msgs []*irc.Message) []string {
	var lines []string
	for _, m := range msgs {
		if m.Command == irc.RPL_MOTD {
			lines = append(lines, m.Trailing())
		}
	}
	return lines
}

// TestSetMOTD: a new MOTD shows in the welcome of connections made after
// it, and in the MOTD command of one made before; no lines give 422.
func TestSetMOTD(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, srv := startServer(t, testConfig(), b)
	old, lines := motdOf(t, addr, b, "early")
	if want := []string{"- hello"}; !slices.Equal(lines, want) {
		t.Fatalf("before: got MOTD %q, want %q", lines, want)
	}
	for _, tc := range []struct {
		name string
		motd []string
		want []string
	}{
		{"two lines", []string{"new day", "second line"}, []string{"- new day", "- second line"}},
		{"one line", []string{"only"}, []string{"- only"}},
		{"none", nil, nil},
	} {
		srv.SetMOTD(tc.motd)
		c, got := motdOf(t, addr, b, "n"+tc.name[:3])
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: new connection: got MOTD %q, want %q", tc.name, got, tc.want)
		}
		c.send(t, "QUIT")
		old.send(t, "MOTD")
		msgs := old.readUntil(t, irc.RPL_ENDOFMOTD, irc.ERR_NOMOTD)
		if got := motdLines(msgs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: MOTD command on an open connection: got %q, want %q", tc.name, got, tc.want)
		}
		if len(tc.want) == 0 && msgs[len(msgs)-1].Command != irc.ERR_NOMOTD {
			t.Errorf("%s: got %s, want 422", tc.name, msgs[len(msgs)-1].Command)
		}
	}
	// Room counts the new welcome's lines.
	srv.SetMOTD([]string{"a", "b", "c"})
	cfg := srv.cfg
	cfg.MOTD = []string{"a", "b", "c"}
	if got, want := srv.welcomeBurst(), welcomeLines(&cfg); got != want {
		t.Errorf("welcome burst: got %d lines, want %d", got, want)
	}
}

// limiterOf returns the flood limiter of the server's client whose nick is
// nick.
func limiterOf(t *testing.T, srv *Server, nick string) *rate.Limiter {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for c := range srv.clients {
		c.mu.Lock()
		n := c.nick
		c.mu.Unlock()
		if n == nick {
			return c.limiter
		}
	}
	t.Fatalf("no client %s", nick)
	return nil
}

// TestSetFlood: new flood limits apply to open connections with flood
// control and to new ones; a rate of 0 lifts the limit.
func TestSetFlood(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.FloodRate, cfg.FloodBurst = 5, 20
	b := newBackend()
	addr, srv := startServer(t, cfg, b)
	register(t, addr, b, "open")
	for i, tc := range []struct {
		name       string
		rate       float64
		burst      int
		wantLimit  rate.Limit
		wantBurst  int
		newLimiter bool
	}{
		{"tighter", 1, 3, 1, 3, true},
		{"looser", 50, 100, 50, 100, true},
		{"default burst", 2, 0, 2, DefaultConfig().FloodBurst, true},
		{"off", 0, 0, rate.Inf, 0, false},
	} {
		srv.SetFlood(tc.rate, tc.burst)
		l := limiterOf(t, srv, "open")
		if l.Limit() != tc.wantLimit || l.Burst() != tc.wantBurst {
			t.Errorf("%s: open connection: got rate %v burst %d, want %v and %d", tc.name, l.Limit(), l.Burst(), tc.wantLimit, tc.wantBurst)
		}
		nick := "new" + string(rune('a'+i))
		register(t, addr, b, nick)
		nl := limiterOf(t, srv, nick)
		switch {
		case !tc.newLimiter && nl != nil:
			t.Errorf("%s: new connection: got a limiter (rate %v), want none", tc.name, nl.Limit())
		case tc.newLimiter && (nl == nil || nl.Limit() != tc.wantLimit || nl.Burst() != tc.wantBurst):
			t.Errorf("%s: new connection: got %v, want rate %v burst %d", tc.name, nl, tc.wantLimit, tc.wantBurst)
		}
	}
}

// TestSetFloodFreesOpenConnection: a client whose burst is spent, at a
// rate of one line in a thousand seconds, gets every answer once SetFlood
// lifts the limit.
func TestSetFloodFreesOpenConnection(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.FloodRate, cfg.FloodBurst = 0.001, 4
	b := newBackend()
	addr, srv := startServer(t, cfg, b)
	c := dial(t, addr)
	c.send(t, "NICK me", "USER u 0 * :R") // two lines of the burst
	c.readUntil(t, irc.RPL_ENDOFMOTD)
	c.sync(t) // the third
	srv.SetFlood(0, 0)
	for range 3 { // without SetFlood the second of these would wait 1000 s
		c.sync(t)
	}
}

// peerCert dials addr over TLS and returns the server's certificate; the
// connection registers and gets its welcome, so the listener serves it.
func peerCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificates
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &tclient{nc: nc, r: irc.NewReader(nc), w: irc.NewWriter(nc)}
	c.send(t, "NICK me", "USER u 0 * :R")
	expect(t, c, irc.RPL_WELCOME)
	return nc.ConnectionState().PeerCertificates[0]
}

// TestTLSReload: after Reload new TLS connections get the new certificate;
// a certificate that does not load leaves the one in use.
func TestTLSReload(t *testing.T) {
	t.Parallel()
	cert1, key1 := writeSerialCert(t, t.TempDir(), 101, "first")
	cert2, key2 := writeSerialCert(t, t.TempDir(), 202, "second")
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := ListenTLS("127.0.0.1:0", cert1, key1)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLog()
	srv := NewServer(testConfig(), newBackend(), log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		<-served
	})
	addr := ln.Addr().String()
	for _, tc := range []struct {
		name      string
		cert, key string
		wantErr   bool
		serial    int64
		subject   string
	}{
		{"before any reload", "", "", false, 101, "first"},
		{"new certificate", cert2, key2, false, 202, "second"},
		{"bad certificate keeps the old", bad, key1, true, 202, "second"},
		{"missing key keeps the old", cert1, "/nonexistent/key.pem", true, 202, "second"},
		{"back to the first", cert1, key1, false, 101, "first"},
	} {
		if tc.cert != "" {
			err := ln.Reload(tc.cert, tc.key)
			if (err != nil) != tc.wantErr {
				t.Errorf("%s: Reload: got error %v, want error %v", tc.name, err, tc.wantErr)
			}
		}
		got := peerCert(t, addr)
		if got.SerialNumber.Int64() != tc.serial || got.Subject.CommonName != tc.subject {
			t.Errorf("%s: got certificate %d %q, want %d %q", tc.name, got.SerialNumber, got.Subject.CommonName, tc.serial, tc.subject)
		}
		if leaf := ln.Certificate().Leaf; leaf == nil || leaf.SerialNumber.Int64() != tc.serial {
			t.Errorf("%s: Certificate(): got leaf %v, want serial %d", tc.name, leaf, tc.serial)
		}
	}
}

// writeSerialCert writes a self-signed certificate for 127.0.0.1 with the
// serial number and subject given, and its key, in dir.
func writeSerialCert(t *testing.T, dir string, serial int64, subject string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testcert.Write(t, certFile, keyFile, serial, subject)
	return certFile, keyFile
}
