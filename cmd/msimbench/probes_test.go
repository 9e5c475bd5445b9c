package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestLinkProxy carries a connection to an echo server over loopback; cut
// closes it and refuses new ones (counted) until pass.
func TestLinkProxy(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	p, err := newLinkProxy()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	addr := p.forward(echo.Addr().String())
	roundTrip := func(c net.Conn, s string) (string, error) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound, not a measurement
		if _, err := fmt.Fprintln(c, s); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "hello"); err != nil || got != "hello\n" {
		t.Fatalf("through the proxy: got %q, %v; want the echo", got, err)
	}
	p.cut(true)
	if got, err := roundTrip(c, "again"); err == nil {
		t.Errorf("after cut: got %q, want the connection closed", got)
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c2, "refused"); err == nil {
		t.Errorf("while refusing: got %q, want the connection closed", got)
	}
	c2.Close()
	if err := waitUntil(context.Background(), "the refusal counted", func() bool { return p.refused.Load() == 1 }); err != nil {
		t.Fatal(err)
	}
	p.pass()
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, "back"); err != nil || got != "back\n" {
		t.Errorf("after pass: got %q, %v; want the echo", got, err)
	}
}

// TestLineLog: a wait sees lines that came before it (from its mark on)
// and lines still to come, and gives up when the connection closes.
func TestLineLog(t *testing.T) {
	t.Parallel()
	l := newLineLog()
	c := &ircClient{nick: "me", closed: make(chan struct{})}
	h := l.handlers()
	h.raw([]byte(":bob!u@h PRIVMSG me :old"), time.Now())
	from := l.mark()
	h.raw([]byte(":bob!u@h PRIVMSG me :first"), time.Now())
	ctx := context.Background()
	if got, err := l.waitFrom(ctx, c, 0, "old", lineMatch("bob", "PRIVMSG", "old")); err != nil || !strings.HasSuffix(got, ":old") {
		t.Errorf("from 0: got %q, %v; want the old line", got, err)
	}
	go h.raw([]byte("@time=x :root!u@h NOTICE me :Login FAILED: bad password"), time.Now())
	if got, err := l.waitFrom(ctx, c, from, "notice", lineMatch("root", "NOTICE", "login failed")); err != nil || !strings.Contains(got, "Login FAILED") {
		t.Errorf("a line to come: got %q, %v; want the notice", got, err)
	}
	close(c.closed)
	if _, err := l.waitFrom(ctx, c, from, "old", lineMatch("bob", "PRIVMSG", "old")); err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Errorf("before the mark, connection closed: got %v, want a closed-connection error", err)
	}
}

// TestGatewayConfigOptions checks what the scenarios' choices write into
// msimircd's config: history, flood control, the reconnection delay and a
// probe's wrong MSIM password.
func TestGatewayConfigOptions(t *testing.T) {
	t.Parallel()
	type cfg struct {
		IRC struct {
			FloodRate  float64 `toml:"flood_rate"`
			FloodBurst int     `toml:"flood_burst"`
		} `toml:"irc"`
		MSIM struct {
			ReconnectMin string `toml:"reconnect_min"`
		} `toml:"msim"`
		History struct {
			Enabled *bool `toml:"enabled"`
		} `toml:"history"`
		User []struct {
			Name    string `toml:"name"`
			Account []struct {
				Password string `toml:"password"`
			} `toml:"account"`
		} `toml:"user"`
	}
	_, _, _, _, x, accts := probeAccounts()
	tests := []struct {
		name      string
		o         gwOptions
		history   bool
		rate      float64
		burst     int
		reconnect string
	}{
		{"defaults", gwOptions{}, true, 0, 0, ""},
		{"no history", gwOptions{noHistory: true}, false, 0, 0, ""},
		{"probes", gwOptions{floodRate: probeFloodRate, floodBurst: probeFloodBurst, reconnectMin: probeReconnect}, true, probeFloodRate, probeFloodBurst, "100ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := gatewayConfig("127.0.0.1:1", "127.0.0.1:2", tc.o, accts)
			var c cfg
			if _, err := toml.Decode(text, &c); err != nil {
				t.Fatalf("generated config: %v\n%s", err, text)
			}
			if c.History.Enabled == nil || *c.History.Enabled != tc.history {
				t.Errorf("history.enabled: got %v, want %v", c.History.Enabled, tc.history)
			}
			if c.IRC.FloodRate != tc.rate || c.IRC.FloodBurst != tc.burst || c.MSIM.ReconnectMin != tc.reconnect {
				t.Errorf("got flood %v/%d, reconnect_min %q; want %v/%d, %q", c.IRC.FloodRate, c.IRC.FloodBurst, c.MSIM.ReconnectMin, tc.rate, tc.burst, tc.reconnect)
			}
			for _, u := range c.User {
				want := benchPassword
				if u.Name == x.name {
					want = x.gwPassword
				}
				if len(u.Account) != 1 || u.Account[0].Password != want {
					t.Errorf("user %s: got accounts %+v, want one with password %q", u.Name, u.Account, want)
				}
			}
			if len(c.User) != 4 {
				t.Errorf("users: got %d, want the 4 IRC users of the probes", len(c.User))
			}
		})
	}
}
