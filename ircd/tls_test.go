package ircd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ircd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
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
