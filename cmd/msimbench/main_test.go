package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestEndToEnd runs every scenario at the smallest useful size against a
// gateway subprocess and checks the JSON report.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark run; skipped with -short")
	}
	// The gateway keeps its state in the run's temporary directory, not
	// in the default state directory.
	stateHome := t.TempDir()
	t.Setenv("XDG_STATE_HOME", stateHome)
	var out, errOut bytes.Buffer
	args := []string{"-quick", "-json", "-quiet",
		"-clients", "4", "-window", "2", "-duration", "300ms", "-warmup", "100ms",
		"-rate", "400", "-rate-duration", "500ms",
		"-accounts", "6", "-buddies", "4", "-names-buddies", "20", "-timeout", "20s"}
	start := time.Now()
	code, err := run(args, &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("run: code %d, err %v\nstdout: %s\nstderr: %s", code, err, out.String(), errOut.String())
	}
	t.Logf("took %s", time.Since(start))
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if left, _ := os.ReadDir(stateHome); len(left) > 0 {
		t.Errorf("XDG_STATE_HOME: got %d entries (%s first), want none: the gateway's state belongs in the run's temporary directory", len(left), left[0].Name())
	}
	for _, k := range []string{"im_per_sec", "p50_ms", "p99_ms", "lost", "bytes_per_account", "login_storm_ms", "names_ms", "names_buddies", "rate_p99_ms", "heap_bytes_per_account", "goroutines_per_account",
		"chathistory_latest_p50_ms", "chathistory_latest_p99_ms", "chathistory_before_p50_ms", "chathistory_before_p99_ms"} {
		v, ok := rep[k]
		if !ok || v == nil {
			t.Errorf("key %s: got %v, want a number", k, v)
		}
	}
	if lost, _ := rep["lost"].(float64); lost != 0 {
		t.Errorf("lost: got %v, want 0", lost)
	}
	if ok, _ := rep["ok"].(bool); !ok {
		t.Errorf("ok: got false, want true; failures %v", rep["failures"])
	}
	if ims, _ := rep["im_per_sec"].(float64); ims <= 0 {
		t.Errorf("im_per_sec: got %v, want > 0", ims)
	}
	if rep["plain"] != nil {
		for _, k := range []string{"plain_im_per_sec", "plain_p99_ms", "plain_rate_p99_ms"} {
			if _, ok := rep[k].(float64); !ok {
				t.Errorf("key %s: got %v, want a number (the plain mode ran)", k, rep[k])
			}
		}
	}
	// Every required metric moved, the probes' included, on both sources.
	if missing, ok := rep["metrics_missing"].([]any); !ok || len(missing) != 0 {
		t.Errorf("metrics_missing: got %v, want an empty list", rep["metrics_missing"])
	}
	if src, _ := rep["metrics_sources"].([]any); len(src) != 2 {
		t.Errorf("metrics_sources: got %v, want msimd and msimircd", rep["metrics_sources"])
	}
	moved, _ := rep["metrics_moved"].(map[string]any)
	for _, s := range []string{`msimircd_ims_bridged_total{direction="to_msim"}`, `msimircd_typing_total{direction="to_irc"}`, "msimircd_msim_reconnects_total", "msimd_ims_routed_total"} {
		if d, _ := moved[s].(float64); d <= 0 {
			t.Errorf("metrics_moved[%s]: got %v, want > 0", s, moved[s])
		}
	}
	if still, _ := rep["metrics_still"].([]any); len(still) == 0 {
		t.Errorf("metrics_still: got %v, want the series nothing moved (held IMs, SendQ disconnects…)", rep["metrics_still"])
	}
	if h, _ := rep["history"].(bool); !h {
		t.Errorf("history: got %v, want true (the default)", rep["history"])
	}
	if ch, _ := rep["chathistory"].(map[string]any); ch == nil || ch["messages_received"].(float64) <= 0 {
		t.Errorf("chathistory: got %v, want IMs received", rep["chathistory"])
	}
	if b, _ := rep["bridged"].(map[string]any); b == nil {
		t.Errorf("bridged: got nothing, want the load's details")
	} else {
		if cpu, _ := b["gateway_cpu_us_per_im"].(float64); cpu <= 0 {
			t.Errorf("bridged.gateway_cpu_us_per_im: got %v, want > 0", b["gateway_cpu_us_per_im"])
		}
		checkCost(t, "bridged", b)
	}
	if p, _ := rep["plain"].(map[string]any); p != nil {
		checkCost(t, "plain", p)
	}
	if rep["plain"] == nil && rep["plain_skipped"] == nil {
		t.Errorf("plain: neither measured nor skipped")
	}
	if rep["plain_skipped"] != nil && !strings.Contains(errOut.String(), "plain IRC comparison skipped") {
		t.Errorf("stderr: got %q, want the reason the plain mode was skipped, even with -quiet", errOut.String())
	}
}

// checkCost checks a load's cost per IM in each phase: the IMs counted,
// and where this machine's /proc tells, the server's and this process's
// system calls and context switches.
func checkCost(t *testing.T, name string, load map[string]any) {
	t.Helper()
	for _, key := range []string{"rate_cost", "full_load_cost"} {
		c, _ := load[key].(map[string]any)
		if c == nil {
			t.Errorf("%s.%s: got nothing, want the phase's cost per IM", name, key)
			continue
		}
		if n, _ := c["ims"].(float64); n <= 0 {
			t.Errorf("%s.%s.ims: got %v, want > 0", name, key, c["ims"])
		}
		if procIO(os.Getpid()) == (ioCalls{}) {
			continue // no /proc/PID/io here
		}
		for _, k := range []string{"server_reads_per_im", "server_writes_per_im", "bench_reads_per_im", "bench_writes_per_im",
			"server_switches_per_im", "bench_switches_per_im"} {
			if v, _ := c[k].(float64); v <= 0 {
				t.Errorf("%s.%s.%s: got %v, want > 0", name, key, k, c[k])
			}
		}
	}
}

// TestHistoryCompareRuns: -history-compare takes the fixed-rate phase in
// turns on a gateway with history and one without, round after round, and
// reports each side pooled over the rounds and each round's overhead.
func TestHistoryCompareRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark run; skipped with -short")
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	args := []string{"-quick", "-json", "-quiet", "-scenarios", "im", "-clients", "4", "-window", "2",
		"-duration", "0", "-warmup", "50ms", "-rate", "200", "-rate-duration", "400ms",
		"-history-compare", "-history-compare-rounds", "2", "-timeout", "20s"}
	var rep struct {
		On        *float64     `json:"rate_p99_ms_history"`
		NoHistory *float64     `json:"rate_p99_ms_no_history"`
		Overhead  *float64     `json:"history_p99_overhead"`
		HP        historyPairs `json:"history_compare"`
	}
	runReport(t, args, &rep)
	if rep.On == nil || rep.NoHistory == nil || rep.Overhead == nil || *rep.On <= 0 || *rep.NoHistory <= 0 {
		t.Errorf("top-level figures: got %v / %v / %v, want p99s with and without history and the overhead", rep.On, rep.NoHistory, rep.Overhead)
	}
	hp := rep.HP
	if hp.Rounds != 2 || len(hp.RoundOverheads) != 2 || len(hp.RoundP99ms) != 2 {
		t.Errorf("rounds: got %d, %d overheads, %d pairs of p99s; want 2 of each", hp.Rounds, len(hp.RoundOverheads), len(hp.RoundP99ms))
	}
	for name, side := range map[string]loadResult{"on": hp.On, "off": hp.Off} {
		// Two rounds of 400 ms at 200 IMs/s: about 160 IMs, all delivered.
		if side.Delivered < 120 || side.Lost != 0 || side.Errors != 0 || side.RateP99ms <= 0 || side.GatewayCPUPerIM <= 0 {
			t.Errorf("%s: got %d delivered, %d lost, %d errors, p99 %v ms, %v µs of CPU per IM; want both rounds' IMs, none lost",
				name, side.Delivered, side.Lost, side.Errors, side.RateP99ms, side.GatewayCPUPerIM)
		}
	}
	if *rep.On != hp.On.RateP99ms || *rep.NoHistory != hp.Off.RateP99ms {
		t.Errorf("top-level p99s %v / %v, want the pooled %v / %v", *rep.On, *rep.NoHistory, hp.On.RateP99ms, hp.Off.RateP99ms)
	}
}

func TestParseLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line, from, cmd string
		params                []string
	}{
		{"privmsg", ":bob!u@h PRIVMSG alice :1 2 abc", "bob", "PRIVMSG", []string{"alice", "1 2 abc"}},
		{"tags", "@time=x :srv 353 me = &ch :@root +bob", "srv", "353", []string{"me", "=", "&ch", "@root +bob"}},
		{"no prefix", "PING :tok", "", "PING", []string{"tok"}},
		{"mode", ":srv MODE &ch +v bob", "srv", "MODE", []string{"&ch", "+v", "bob"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p parsed
			if !parseInto(&p, []byte(tc.line)) {
				t.Fatalf("parseInto(%q) failed", tc.line)
			}
			if string(p.from) != tc.from || string(p.cmd) != tc.cmd {
				t.Errorf("got from %q cmd %q, want %q %q", p.from, p.cmd, tc.from, tc.cmd)
			}
			var got []string
			for _, x := range p.params {
				got = append(got, string(x))
			}
			if strings.Join(got, "|") != strings.Join(tc.params, "|") {
				t.Errorf("got params %q, want %q", got, tc.params)
			}
		})
	}
}

// TestCheckMessages feeds the receiver good, reordered, duplicated and
// altered messages: only the good ones count, the rest are errors or lost.
func TestCheckMessages(t *testing.T) {
	t.Parallel()
	src := &ircClient{nick: "a"}
	dst := &ircClient{nick: "b"}
	l := newLoad([]*ircClient{src, dst}, []string{"a", "b"}, 4)
	f := l.flows[0] // a → b
	msg := func(seq int64) []byte {
		line := appendIM(nil, f, seq, 0)
		_, text, _ := strings.Cut(strings.TrimSuffix(string(line), "\r\n"), " :")
		return []byte(text)
	}
	now := time.Now()
	h := dst.handlers.Load()
	f.sent.Store(5)
	h.privmsg("a", msg(1), now) // ok
	h.privmsg("a", msg(1), now) // duplicate
	h.privmsg("a", msg(3), now) // gap: 2 lost
	bad := msg(4)
	bad[len(bad)-1] ^= 1
	h.privmsg("a", bad, now)    // altered: 4 lost
	h.privmsg("x", msg(5), now) // wrong sender
	if got := f.ok.Load(); got != 2 {
		t.Errorf("ok: got %d, want 2", got)
	}
	if got := l.errCount.Load(); got != 4 {
		t.Errorf("errors: got %d, want 4 (%s)", got, l.firstErr)
	}
}

// runReport runs msimbench with args and decodes its JSON report into
// rep; it fails the test unless the run succeeded (exit 0, ok). It
// returns the report as printed.
func runReport(t *testing.T, args []string, rep any) []byte {
	t.Helper()
	var out, errOut bytes.Buffer
	code, err := run(args, &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("run: code %d, err %v\nstdout: %s\nstderr: %s", code, err, out.String(), errOut.String())
	}
	var status struct {
		OK       bool     `json:"ok"`
		Failures []string `json:"failures"`
	}
	if err := json.Unmarshal(out.Bytes(), &status); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if !status.OK {
		t.Fatalf("ok: false; failures %v", status.Failures)
	}
	if err := json.Unmarshal(out.Bytes(), rep); err != nil {
		t.Fatalf("output: %v\n%s", err, out.String())
	}
	return out.Bytes()
}
