package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim/server"
)

// TestMoreConnectionsThanPerAddrCaps runs the bridged IM and the large
// contact list with more connections from the one loopback address than
// the default per-address caps of ircd and of the MSIM server allow: the
// generated gateway config and the in-process MSIM server must lift them.
func TestMoreConnectionsThanPerAddrCaps(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark run; skipped with -short")
	}
	n := max(ircd.DefaultConfig().MaxConnectionsPerAddr, server.DefaultMaxConnectionsPerAddr) + 2
	n += n % 2 // -clients must be even
	var out, errOut bytes.Buffer
	args := []string{"-json", "-quiet", "-scenarios", "im,names",
		"-clients", fmt.Sprint(n), "-window", "1", "-duration", "200ms", "-warmup", "50ms", "-rate", "0",
		"-names-buddies", fmt.Sprint(n), "-timeout", "60s"}
	code, err := run(args, &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("run with %d clients: code %d, err %v\nstdout: %s\nstderr: %s", n, code, err, out.String(), errOut.String())
	}
	var rep struct {
		OK      bool `json:"ok"`
		Bridged *struct {
			Clients int `json:"clients"`
		} `json:"bridged"`
		NamesBuddies int `json:"names_buddies"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if !rep.OK || rep.Bridged == nil || rep.Bridged.Clients != n {
		t.Errorf("got ok %v, bridged %+v, want ok with %d clients", rep.OK, rep.Bridged, n)
	}
	if rep.NamesBuddies != n {
		t.Errorf("names_buddies: got %d, want %d", rep.NamesBuddies, n)
	}
}

// TestGatewayConfigCaps checks the caps written into msimircd's config: no
// per-address cap, and a total cap above the scenario's accounts.
func TestGatewayConfigCaps(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 40, 1100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			accts := pairAccounts("x", n)
			var cfg struct {
				IRC struct {
					MaxConnections        int `toml:"max_connections"`
					MaxConnectionsPerAddr int `toml:"max_connections_per_addr"`
				} `toml:"irc"`
			}
			text := gatewayConfig("127.0.0.1:1", "127.0.0.1:2", gwOptions{}, accts)
			if _, err := toml.Decode(text, &cfg); err != nil {
				t.Fatalf("generated config: %v\n%s", err, text)
			}
			if got := cfg.IRC.MaxConnectionsPerAddr; got != -1 {
				t.Errorf("max_connections_per_addr: got %d, want -1", got)
			}
			if got := cfg.IRC.MaxConnections; got < n {
				t.Errorf("max_connections: got %d, want at least %d", got, n)
			}
		})
	}
}

// TestConnectAllStopsAtFirstFailure: when the server refuses one client,
// the others stop waiting for buddies that will never come.
func TestConnectAllStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() { // refuses the user "refused", and keeps the others waiting in silence
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				go func() { <-done; nc.Close() }()
				sc := bufio.NewScanner(nc)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "NICK refused") {
						fmt.Fprint(nc, "ERROR :Too many connections from your address\r\n")
						return
					}
				}
			}()
		}
	}()
	accts := []*acct{{name: "waiting1", ircUser: true}, {name: "refused", ircUser: true}, {name: "waiting2", ircUser: true}}
	want := func(*acct) []string { return []string{"someone"} }
	res := make(chan error, 1)
	go func() {
		_, err := connectAll(context.Background(), ln.Addr().String(), accts, want)
		res <- err
	}()
	select {
	case err := <-res:
		if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "Too many connections") {
			t.Errorf("got %v, want the refused client's error first", err)
		}
	case <-time.After(time.Minute): // a bound on the test, not a measurement
		t.Fatal("connectAll still waits for the other clients after one was refused")
	}
}
