package ircd

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	return writeSerialCert(t, t.TempDir(), 1, "ircd test")
}

func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := writeCert(t)
	ln, err := ListenTLS("127.0.0.1:0", certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend()
	log, _ := testLog()
	srv := NewServer(testConfig(), b, log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &tclient{nc: nc, r: irc.NewReader(nc), w: irc.NewWriter(nc)}
	c.send(t, "NICK me", "USER u 0 * :R")
	expect(t, c, irc.RPL_WELCOME)
	c.readUntil(t, irc.RPL_ENDOFMOTD)
	c.send(t, "PRIVMSG ann :over tls")
	c.sync(t)
	if evs := b.conn(t, c).drain(); len(evs) != 1 || evs[0] != "message PRIVMSG ann over tls" {
		t.Fatalf("got events %q", evs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Server shutting down)" {
		t.Fatalf("got ERROR %q", got)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
}
