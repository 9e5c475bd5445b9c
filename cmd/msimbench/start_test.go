package main

import (
	"net"
	"testing"
)

// A port picked for the gateway and taken before the gateway listens on
// it makes startGateway start it again on fresh ports, not fail the run.
func TestStartGatewayRetriesATakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the gateway; skipped with -short")
	}
	bin, err := buildGateway(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	pickPort = func() (string, error) {
		picks++
		if picks == 1 {
			return taken.Addr().String(), nil // the IRC port, taken meanwhile
		}
		return freePort()
	}
	t.Cleanup(func() { pickPort = freePort })
	g, err := startGateway(bin, t.TempDir(), "127.0.0.1:1", gwOptions{}, ringAccounts("s", 1, 0))
	if err != nil {
		t.Fatalf("startGateway with its first port taken: %v", err)
	}
	defer g.Stop()
	if g.ircAddr == taken.Addr().String() {
		t.Fatalf("the gateway listens on %s, the taken port", g.ircAddr)
	}
}
