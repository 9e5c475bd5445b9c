package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
	"github.com/msimircd/msimircd/msim/server"
)

// TestMetricsConfig: [metrics] listen must be host:port and loopback
// unless public = true; its errors name metrics.listen and its line.
func TestMetricsConfig(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // in the error; nil: loads
	}{
		{"loopback", "[metrics]\nlisten = \"127.0.0.1:9100\"\n", nil},
		{"localhost", "[metrics]\nlisten = \"localhost:9100\"\n", nil},
		{"IPv6 loopback", "[metrics]\nlisten = \"[::1]:9100\"\n", nil},
		{"off", "[metrics]\npublic = true\n", nil},
		{"public allowed", "[metrics]\nlisten = \"0.0.0.0:9100\"\npublic = true\n", nil},
		{"any address", "[metrics]\n\nlisten = \"0.0.0.0:9100\"\n", []string{"line 3", "metrics.listen", "not a loopback address", "metrics.public = true"}},
		{"no host", "[metrics]\nlisten = \":9100\"\n", []string{"line 2", "metrics.listen", "not a loopback address"}},
		{"public false", "[metrics]\nlisten = \"192.0.2.1:9100\"\npublic = false\n", []string{"line 2", "metrics.listen"}},
		{"not host:port", "[metrics]\nlisten = \"9100\"\n", []string{"line 2", "metrics.listen", "host:port"}},
		{"unknown key", "[metrics]\nport = 9100\n", []string{"line 2", `unknown key "metrics.port"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.text))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want it to load", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestMetricsListenFlag: -metrics-listen overrides metrics.listen and is
// held to the same loopback rule.
func TestMetricsListenFlag(t *testing.T) {
	path := writeConfig(t, "[metrics]\nlisten = \"127.0.0.1:9100\"\n")
	for _, tc := range []struct {
		name string
		args []string
		want string // the address, or the error's text
		ok   bool
	}{
		{"config", []string{"-config", path}, "127.0.0.1:9100", true},
		{"flag wins", []string{"-config", path, "-metrics-listen", "127.0.0.1:9200"}, "127.0.0.1:9200", true},
		{"flag alone", []string{"-metrics-listen", "[::1]:9300"}, "[::1]:9300", true},
		{"flag not loopback", []string{"-metrics-listen", "0.0.0.0:9100"}, "metrics.listen", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-state", t.TempDir()}, tc.args...)
			o, err := parseOptions(args, strings.NewReader(""))
			switch {
			case tc.ok && err != nil:
				t.Fatalf("got %v", err)
			case tc.ok && o.cfg.Metrics.Listen != tc.want:
				t.Errorf("metrics.listen: got %q, want %q", o.cfg.Metrics.Listen, tc.want)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// scrape GETs path from the metrics listener and returns the status and
// body.
func scrape(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	code, body := scrape(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: got %d %q, want 200", code, body)
	}
	m, err := promtest.ParseText(body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// upstream is an in-process MSIM server (with Tom) that the test can stop.
type upstream struct {
	srv  *server.Server
	addr string
	stop func()
}

func startMSIMServer(t *testing.T, accounts ...string) *upstream {
	t.Helper()
	l, _ := logtest.NewNullLogger()
	srv, err := server.New(server.Config{Demo: true}, server.NewMemStore(), logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range accounts {
		if _, _, err := srv.SeedAccount(spec); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	u := &upstream{srv: srv, addr: ln.Addr().String()}
	stopped := false
	u.stop = func() {
		if stopped {
			return
		}
		stopped = true
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		<-done
	}
	t.Cleanup(u.stop)
	return u
}

// ircWithCaps registers nick with PASS pass after asking for caps.
func ircWithCaps(t *testing.T, addr, nick, pass string, caps ...string) *ircSession {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	r, w := irc.NewReader(nc), irc.NewWriter(nc)
	_ = w.Write("CAP REQ :" + strings.Join(caps, " "))
	_ = w.Write("PASS " + pass)
	_ = w.Write("NICK " + nick)
	_ = w.Write("USER " + nick + " 0 * :" + nick)
	_ = w.Write("CAP END")
	s := &ircSession{nc: nc, w: w}
	s.wait = func(pred func(*irc.Message) bool) *irc.Message {
		t.Helper()
		for {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("%s: read: %v", nick, err)
			}
			if pred(m) {
				return m
			}
		}
	}
	if m := s.wait(func(m *irc.Message) bool { return m.Command == "001" || m.Command == "464" || m.Command == "ERROR" }); m.Command != "001" {
		t.Fatalf("%s: got %v, want 001", nick, m)
	}
	return s
}

// waitAll reads until every pred has matched a message, in any order.
func waitAll(s *ircSession, preds ...func(*irc.Message) bool) {
	seen := make([]bool, len(preds))
	left := len(preds)
	s.wait(func(m *irc.Message) bool {
		for i, p := range preds {
			if !seen[i] && p(m) {
				seen[i] = true
				left--
			}
		}
		return left == 0
	})
}

func from(cmd, nick string, text string) func(*irc.Message) bool {
	return func(m *irc.Message) bool {
		return m.Command == cmd && m.Prefix != nil && m.Name == nick && strings.Contains(m.Trailing(), text)
	}
}

// TestMetricsEndToEnd runs the gateway with a metrics listener against an
// upstream MSIM server, drives a real IRC session through everything the
// metrics count, and reads them over HTTP: each one moved, /healthz and
// /readyz answer 200, and /readyz answers 503 naming the MSIM server once
// it is gone.
func TestMetricsEndToEnd(t *testing.T) {
	up := startMSIMServer(t, "zoe@example.com:Zoe-pw1", "bob@example.com:Bob-pw1", "wrong@example.com:Right-pw1")
	cfg := Defaults()
	cfg.MSIM.Server = up.addr
	cfg.MSIM.QueueLimit = 1
	cfg.MSIM.ReconnectMin = Duration{20 * time.Millisecond}
	cfg.MSIM.ReconnectMax = Duration{50 * time.Millisecond}
	cfg.Store.StateDir = t.TempDir()
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.IRC.FloodRate, cfg.IRC.FloodBurst = 200, 10
	cfg.Users = []UserEntry{{Name: "zoe", Password: "zoe-irc", Accounts: []AccountEntry{
		{Email: "zoe@example.com", Password: "Zoe-pw1", Channel: "&zoe"},
		{Email: "wrong@example.com", Password: "Wrong-pw1", Channel: "&wrong"}, // a wrong password
	}}}
	at, _ := startServe(t, cfg)
	if at.metrics == "" {
		t.Fatal("no metrics listener")
	}
	if code, body := scrape(t, at.metrics, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: got %d %q, want 200", code, body)
	}

	zoe := ircWithCaps(t, at.irc[0], "zoe", "zoe-irc", "message-tags")
	waitAll(zoe, func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Param(0) == "&zoe" && strings.Contains(m.Trailing(), "Logged in")
	}, func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Param(0) == "&wrong" && strings.Contains(m.Trailing(), "Login failed")
	})
	if code, body := scrape(t, at.metrics, "/readyz"); code != http.StatusOK || !strings.Contains(body, "msim_server: ok") || !strings.Contains(body, "store: ok") || !strings.Contains(body, "irc_listeners: ok") {
		t.Errorf("/readyz: got %d %q, want 200 with every check ok", code, body)
	}
	for i := range 20 { // over the flood burst
		_ = zoe.w.Write(fmt.Sprintf("PING flood-%d", i))
	}
	zoe.wait(func(m *irc.Message) bool { return m.Command == "PONG" && m.Trailing() == "flood-19" })
	during := scrapeMetrics(t, at.metrics)

	// IMs both ways with Tom, and a zap to him.
	_ = zoe.w.Write("PRIVMSG tom :hello Tom")
	zoe.wait(from("PRIVMSG", "tom", "Tom"))
	_ = zoe.w.Write("@+typing=active TAGMSG tom")
	_ = zoe.w.Write("PRIVMSG &zoe :zap tom")
	zoe.wait(from("PRIVMSG", "root", "Sent tom a zap"))
	_ = zoe.w.Write("AWAY :lunch")
	zoe.wait(func(m *irc.Message) bool { return m.Command == "306" })

	// Bob, on MSIM, writes, types, zaps and goes away.
	bob := msimDial(t, up.addr, "bob@example.com", "Bob-pw1")
	zoeUID := lookupUID(t, bob, "zoe")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bob.AddBuddy(ctx, zoeUID, "IM Friends"); err != nil {
		t.Fatal(err)
	}
	_ = zoe.w.Write("PRIVMSG &zoe :add bob")
	zoe.wait(func(m *irc.Message) bool { return m.Command == "JOIN" && m.Name == "bob" })
	if err := bob.SendIM(ctx, zoeUID, "hi zoe"); err != nil {
		t.Fatal(err)
	}
	zoe.wait(from("PRIVMSG", "bob", "hi zoe"))
	if err := bob.SendTyping(ctx, zoeUID, true); err != nil {
		t.Fatal(err)
	}
	zoe.wait(func(m *irc.Message) bool { return m.Command == "TAGMSG" && m.Name == "bob" })
	if err := bob.SendZap(ctx, zoeUID, markup.Zap(0)); err != nil {
		t.Fatal(err)
	}
	zoe.wait(from("PRIVMSG", "bob", "zap"))
	if err := bob.SetStatus(ctx, msim.StatusAway, "out"); err != nil {
		t.Fatal(err)
	}
	zoe.wait(func(m *irc.Message) bool { return m.Command == "MODE" && m.Param(1) == "-v" && m.Param(2) == "bob" })

	// The MSIM server goes: the link is lost and retried; IMs are queued,
	// then refused over the limit.
	up.stop()
	zoe.wait(func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Param(0) == "&zoe" && strings.Contains(m.Trailing(), "Reconnecting in")
	})
	_ = zoe.w.Write("PRIVMSG tom :queued")
	zoe.wait(from("NOTICE", "tom", "queued (1 waiting)"))
	_ = zoe.w.Write("PRIVMSG tom :one too many")
	zoe.wait(from("NOTICE", "tom", "NOT sent"))
	zoe.wait(func(m *irc.Message) bool { // a retry failed
		return m.Command == "PRIVMSG" && m.Param(0) == "&zoe" && strings.Contains(m.Trailing(), "Cannot connect to MSIM")
	})
	code, body := scrape(t, at.metrics, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "msim_server: ") || strings.Contains(body, "msim_server: ok") {
		t.Errorf("/readyz with the MSIM server gone: got %d %q, want 503 naming msim_server", code, body)
	}
	after := scrapeMetrics(t, at.metrics)

	// During the session: what is attached and online.
	for _, s := range []string{
		"msimircd_irc_connections",
		"msimircd_users_attached",
		promtest.Series("msimircd_msim_accounts", "state", "online"),
		promtest.Series("msimircd_msim_accounts", "state", "stopped"),
	} {
		if during[s] < 1 {
			t.Errorf("%s during the session: got %v, want at least 1", s, during[s])
		}
	}
	// After it: what moved.
	for _, s := range []string{
		promtest.Series("msimircd_ims_bridged_total", "direction", "to_msim"),
		promtest.Series("msimircd_ims_bridged_total", "direction", "to_irc"),
		promtest.Series("msimircd_zaps_total", "direction", "to_msim"),
		promtest.Series("msimircd_zaps_total", "direction", "to_irc"),
		promtest.Series("msimircd_typing_total", "direction", "to_msim"),
		promtest.Series("msimircd_typing_total", "direction", "to_irc"),
		promtest.Series("msimircd_presence_updates_total", "direction", "to_msim"),
		promtest.Series("msimircd_presence_updates_total", "direction", "to_irc"),
		promtest.Series("msimircd_msim_logins_total", "result", "ok"),
		promtest.Series("msimircd_msim_logins_total", "result", "bad_password"),
		promtest.Series("msimircd_msim_logins_total", "result", "network"),
		"msimircd_msim_reconnects_total",
		"msimircd_ims_queued_total",
		"msimircd_ims_refused_total",
		"msimircd_irc_flood_delays_total",
		promtest.Series("msimircd_store_operation_duration_seconds_count", "op", "load_user"),
		"go_goroutines",
	} {
		if after[s] < 1 {
			t.Errorf("%s: got %v, want at least 1", s, after[s])
		}
	}
	// The account the server left is in its retries: waiting for the next
	// (retrying) or, at the scrape's moment, dialing it (connecting).
	if n := after[promtest.Series("msimircd_msim_accounts", "state", "retrying")] + after[promtest.Series("msimircd_msim_accounts", "state", "connecting")]; n < 1 {
		t.Errorf("msimircd_msim_accounts retrying or connecting after the server went: got %v, want at least 1", n)
	}
	lost := 0.0
	for k, v := range after {
		if strings.HasPrefix(k, "msimircd_msim_links_lost_total{") {
			lost += v
		}
	}
	if lost < 1 {
		t.Errorf("msimircd_msim_links_lost_total: got %v in all, want at least 1", lost)
	}
	// Counted in the bridge's own tests (they need a client that leaves
	// while IMs are on their way, or a thousand held), present here.
	for _, s := range []string{"msimircd_ims_held_total", "msimircd_ims_dropped_total"} {
		if _, ok := after[s]; !ok {
			t.Errorf("%s is not served", s)
		}
	}
	if t.Failed() {
		t.Logf("metrics during the session: %v", fmt.Sprint(during))
	}
}

// TestMetricsSendQ: a gateway whose SendQ cannot hold a welcome drops the
// client and counts it on /metrics.
func TestMetricsSendQ(t *testing.T) {
	cfg := Defaults()
	cfg.IRC.SendQ = 2 // the control channel's JOIN and NAMES overflow it
	cfg.Metrics.Listen = "127.0.0.1:0"
	at, _ := startServe(t, cfg)
	_, m := ircRegister(t, at.irc[0], "dave", "")
	if m.Command != "ERROR" || !strings.Contains(m.Trailing(), "SendQ exceeded") {
		t.Fatalf("dave: got %v, want ERROR SendQ exceeded", m)
	}
	if got := scrapeMetrics(t, at.metrics)["msimircd_irc_sendq_disconnects_total"]; got != 1 {
		t.Errorf("msimircd_irc_sendq_disconnects_total: got %v, want 1", got)
	}
}

// TestNoMetricsListener: without [metrics] listen there is no listener
// and nothing registered.
func TestNoMetricsListener(t *testing.T) {
	at, _ := startServe(t, Defaults())
	if at.metrics != "" {
		t.Errorf("metrics listener without [metrics] listen: got %s, want none", at.metrics)
	}
}
