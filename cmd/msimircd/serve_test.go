package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"
)

// brokenListener's Accept fails for good.
type brokenListener struct{ net.Listener }

var errBroken = errors.New("broken listener")

func (brokenListener) Accept() (net.Conn, error) { return nil, errBroken }

// TestListenerFailureEndsServe: a listener that stops ends serve with an
// error naming it, after the usual shutdown.
func TestListenerFailureEndsServe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(g *gateway)
		want  []string
	}{
		{"IRC listener closed", func(g *gateway) { g.ircLns[0].Close() }, []string{"IRC listener 127.0.0.1:", "stopped"}},
		{"embedded MSIM server's accept fails", func(g *gateway) { g.emb.ln = brokenListener{g.emb.ln} }, []string{"embedded MSIM server", errBroken.Error()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.IRC.Listen = []string{"127.0.0.1:0", "127.0.0.1:0"}
			g, hook := mustBuild(t, cfg)
			defer g.close()
			healthy := g.ircLns[1].Addr().String()
			tc.spoil(g)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := g.run(ctx, nil)
			if err == nil || ctx.Err() != nil {
				t.Fatalf("run: got %v (context: %v), want the listener's error before the context ends", err, ctx.Err())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
			if !slices.ContainsFunc(hook.AllEntries(), func(e *logrus.Entry) bool { return e.Message == "shutting down" }) {
				t.Error("no shutdown in the log")
			}
			if nc, err := net.Dial("tcp", healthy); err == nil {
				nc.Close()
				t.Errorf("the other IRC listener %s still accepts after serve ended", healthy)
			}
		})
	}
}

// TestShutdownOrder: at shutdown the IRC client is told, and the bridge
// logs its MSIM account out while the embedded server still runs.
func TestShutdownOrder(t *testing.T) {
	cfg := Defaults()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l, hook := logtest.NewNullLogger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logrus.NewEntry(l), ready) }()
	at := <-ready

	dave, m := ircRegister(t, at.irc[0], "dave", "pw")
	if m.Command != "001" {
		t.Fatalf("dave: got %s %q, want 001", m.Command, m.Trailing())
	}
	dave.loggedIn("&dave")
	cancel()
	dave.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })
	if err := <-done; err != nil {
		t.Fatalf("serve: got %v, want nil after its context ended", err)
	}

	var order []string
	for _, e := range hook.AllEntries() {
		switch {
		case e.Message == "shutting down":
			order = append(order, "shutting down")
		case e.Message == "logged out" && strings.HasPrefix(fmt.Sprint(e.Data["email"]), "dave@"):
			order = append(order, "dave logged out")
		}
	}
	if want := []string{"shutting down", "dave logged out"}; !slices.Equal(order, want) {
		t.Errorf("log: got %q, want %q", order, want)
	}
}

// TestShutdownWaitsForSessions: when the bridge's sessions take longer to
// end than the shutdown's limit, run still returns (and the stores close)
// only once they have ended: a session saves what it holds at its end (IMs
// that arrived for its user, the user's queue), and a closed store would
// lose it. The embedded MSIM server is then shut down within that extra
// wait, not with the limit that is over already: its sessions end
// gracefully rather than being cut.
func TestShutdownWaitsForSessions(t *testing.T) {
	defer func(d time.Duration) { shutdownTimeout = d }(shutdownTimeout)
	shutdownTimeout = time.Nanosecond // every session outlives it
	cfg := Defaults()
	cfg.Store.StateDir = t.TempDir()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	cfg.Metrics.Listen = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l, hook := logtest.NewNullLogger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, err := build(ctx, cfg, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- g.run(ctx, ready) }()
	at := <-ready
	for _, nick := range []string{"dave", "erin", "fay"} {
		c, m := ircRegister(t, at.irc[0], nick, nick+"-pw")
		if m.Command != "001" {
			t.Fatalf("%s: got %s %q, want 001", nick, m.Command, m.Trailing())
		}
		c.loggedIn("&" + nick)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	running := 0.0
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "msimircd_msim_accounts" {
			for _, m := range mf.GetMetric() {
				running += m.GetGauge().GetValue()
			}
		}
	}
	g.close()
	if running != 0 {
		t.Errorf("run returned with %v MSIM accounts still in sessions: the stores would close under them", running)
	}
	for _, e := range hook.AllEntries() {
		if e.Message == "MSIM server shutdown" {
			t.Errorf("the embedded MSIM server was cut short: %v", e.Data[logrus.ErrorKey])
		}
	}
}
