package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestReportJSONShape checks the top-level keys each target's ratio is read
// from: present with the scenario's figure when it ran, null when it did
// not, and the large contact list under names_ms whatever its size.
func TestReportJSONShape(t *testing.T) {
	t.Parallel()
	full := &report{Failures: []string{}, Memory: []memResult{}}
	full.GoroutinesPerAccount = fp(2.5)
	full.NamesMs, full.NamesBuddies = fp(12), 250
	full.setPlain(&loadResult{IMPerSec: 300000, P99ms: 8, RateOffered: 5000, RateP99ms: 1.25})
	full.setPlainTurns(&plainPairs{Rounds: 1, RoundShares: []float64{0.34}, MedianShare: 0.34, RoundP99Ratios: []float64{1.3}, MedianP99Ratio: 1.3})
	noRate := &report{Failures: []string{}, Memory: []memResult{}}
	noRate.setPlain(&loadResult{IMPerSec: 1000, P99ms: 3})
	tests := []struct {
		name string
		rep  *report
		want map[string]any // nil: the key is null
	}{
		{"every scenario", full, map[string]any{
			"goroutines_per_account": 2.5, "names_ms": 12.0, "names_buddies": 250.0,
			"plain_im_per_sec": 300000.0, "plain_p99_ms": 8.0, "plain_rate_p99_ms": 1.25,
			"plain_share_in_turns": 0.34, "rate_p99_ratio_in_turns": 1.3,
		}},
		{"plain without the fixed rate", noRate, map[string]any{
			"plain_im_per_sec": 1000.0, "plain_p99_ms": 3.0, "plain_rate_p99_ms": nil,
			"goroutines_per_account": nil, "names_ms": nil,
			"plain_share_in_turns": nil, "rate_p99_ratio_in_turns": nil, "plain_turns": nil,
		}},
		{"nothing ran", &report{}, map[string]any{
			"goroutines_per_account": nil, "names_ms": nil, "plain_im_per_sec": nil,
			"plain_p99_ms": nil, "plain_rate_p99_ms": nil,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := checkJSONKeys(t, tc.rep, tc.want)
			if _, ok := got["names_1000_ms"]; ok {
				t.Errorf("key names_1000_ms: present, want it renamed to names_ms")
			}
		})
	}
}

// TestTargetsInTable checks the verdicts printed for the relative targets.
func TestTargetsInTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		bridged       loadResult
		plain         *loadResult
		turns         *plainPairs
		wantTP, wantR string
	}{
		{"both met", loadResult{IMPerSec: 120000, RateOffered: 5000, RateP99ms: 1.5},
			&loadResult{IMPerSec: 300000, RateOffered: 5000, RateP99ms: 1.2}, nil,
			"≥ 1/3 of plain (0.40): met", "≤ 2 ms and ≤ 1.5× plain (1.25×): met"},
		{"ratios missed", loadResult{IMPerSec: 60000, RateOffered: 5000, RateP99ms: 1.9},
			&loadResult{IMPerSec: 300000, RateOffered: 5000, RateP99ms: 1.0}, nil,
			"≥ 1/3 of plain (0.20): MISSED", "≤ 2 ms and ≤ 1.5× plain (1.90×): MISSED"},
		{"absolute p99 missed under a slow plain", loadResult{IMPerSec: 120000, RateOffered: 5000, RateP99ms: 3},
			&loadResult{IMPerSec: 300000, RateOffered: 5000, RateP99ms: 4}, nil,
			"≥ 1/3 of plain (0.40): met", "≤ 2 ms and ≤ 1.5× plain (0.75×): MISSED"},
		{"no plain", loadResult{IMPerSec: 30000, RateOffered: 5000, RateP99ms: 1},
			nil, nil, "≥ 20000: met", "≤ 2 ms: met"},
		// The loads taken in turns judge the relative targets by their
		// median rounds, whichever way the sequential phases lean.
		{"in turns met, in sequence missed", loadResult{IMPerSec: 60000, RateOffered: 5000, RateP99ms: 1.9},
			&loadResult{IMPerSec: 300000, RateOffered: 5000, RateP99ms: 1.0},
			&plainPairs{RoundShares: []float64{0.3, 0.4, 0.35}, MedianShare: 0.35, RoundP99Ratios: []float64{1.2, 1.6, 1.4}, MedianP99Ratio: 1.4, Plain: loadResult{RateOffered: 5000}},
			"≥ 1/3 of plain (in turns 0.35, median of 3; in sequence 0.20): met", "≤ 2 ms and ≤ 1.5× plain (in turns 1.40×, median of 3): met"},
		{"in turns missed, in sequence met", loadResult{IMPerSec: 120000, RateOffered: 5000, RateP99ms: 1.5},
			&loadResult{IMPerSec: 300000, RateOffered: 5000, RateP99ms: 1.2},
			&plainPairs{RoundShares: []float64{0.3}, MedianShare: 0.3, RoundP99Ratios: []float64{1.6}, MedianP99Ratio: 1.6, Plain: loadResult{RateOffered: 5000}},
			"≥ 1/3 of plain (in turns 0.30, median of 1; in sequence 0.40): MISSED", "≤ 2 ms and ≤ 1.5× plain (in turns 1.60×, median of 1): MISSED"},
		{"in turns without the fixed rate", loadResult{IMPerSec: 120000, RateOffered: 5000, RateP99ms: 1.5},
			&loadResult{IMPerSec: 300000, RateOffered: 5000, RateP99ms: 1.2},
			&plainPairs{RoundShares: []float64{0.36}, MedianShare: 0.36},
			"≥ 1/3 of plain (in turns 0.36, median of 1; in sequence 0.40): met", "≤ 2 ms and ≤ 1.5× plain (1.25×): met"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := throughputTarget(&tc.bridged, tc.plain, tc.turns); got != tc.wantTP {
				t.Errorf("throughputTarget: got %q, want %q", got, tc.wantTP)
			}
			if got := rateTarget(&tc.bridged, tc.plain, tc.turns); got != tc.wantR {
				t.Errorf("rateTarget: got %q, want %q", got, tc.wantR)
			}
		})
	}
	var out bytes.Buffer
	printTable(&out, &report{OK: true, Memory: []memResult{{Accounts: 1000, Buddies: 100, MemoryMeasured: true,
		RSSPerAccount: 50 << 10, GoroutinesPerAccount: 2, LoginStormMs: 900}}})
	for _, want := range []string{"goroutines per idle account", "2.00", "≤ 3: met", "≤ 1000 ms: met"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table: want %q in\n%s", want, out.String())
		}
	}
}

func TestParseGoroutineTotal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"goroutine profile: total 17\n1 @ 0x1\n", 17, false},
		{"goroutine profile: total 0\n", 0, false},
		{"goroutine profile: total 5", 5, false},
		{"heap profile: 1: 2 [3: 4] @ heap/1048576\n", 0, true},
		{"goroutine profile: total x\n", 0, true},
		{"goroutine profile: total -3\n", 0, true},
		{"", 0, true},
	}
	for _, tc := range tests {
		got, err := parseGoroutineTotal([]byte(tc.in))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseGoroutineTotal(%q): got %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestGatewayGoroutines reads a goroutine count over a real pprof endpoint:
// goroutines started in between show in the growth.
func TestGatewayGoroutines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/pprof/goroutine", pprof.Handler("goroutine"))
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	g := &gateway{debugAddr: ln.Addr().String()}
	before, err := g.goroutines()
	if err != nil {
		t.Fatal(err)
	}
	// Goroutines other tests left behind (a closing connection, a timer)
	// may end while the count is read, so the growth is checked against a
	// large number within a margin rather than exactly.
	const extra, margin = 500, 25
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range extra {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-stop
		}()
	}
	after, err := g.goroutines()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if growth := after - before; growth < extra-margin || growth > extra+margin {
		t.Errorf("goroutines: got growth %d (%d → %d), want %d ± %d", growth, before, after, extra, margin)
	}
}

// TestHasFlag: the gateway gets -state only when its usage lists it (an
// older binary given with -gateway has none and would refuse to start).
func TestHasFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name, usage string
		want        bool
	}{
		{"listed with an argument", "Usage of msimircd:\n  -config string\n    \tconfig file\n  -state DIR\n    \tkeep state in DIR\n", true},
		{"listed as a bool", "Usage of msimircd:\n  -state\n    \tkeep state\n", true},
		{"missing", "Usage of msimircd:\n  -config string\n    \tconfig file\n  -statefile string\n", false},
		{"only in help text", "Usage of msimircd:\n  -config string\n    \tsee -state in the docs\n", false},
	}
	for i, tc := range tests {
		bin := filepath.Join(dir, fmt.Sprintf("gw%d", i))
		script := "#!/bin/sh\ncat >&2 <<'END'\n" + tc.usage + "END\nexit 2\n"
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := hasFlag(bin, "state"); got != tc.want {
			t.Errorf("%s: hasFlag: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestHistoryBusyNotice: the gateway's notice that it left IMs out of the
// history under load does not fail a run; any other NOTICE does.
func TestHistoryBusyNotice(t *testing.T) {
	for _, tc := range []struct {
		from, text string
		want       bool
	}{
		{"root", "The gateway is too busy to keep your history just now: some IMs are missing from it (they were delivered as usual).", true},
		{"root", "Message NOT sent", false},
		{"im0001", "too busy to keep your history", false},
	} {
		if got := historyBusy(tc.from, []byte(tc.text)); got != tc.want {
			t.Errorf("historyBusy(%q, %q) = %v, want %v", tc.from, tc.text, got, tc.want)
		}
	}
}

// checkJSONKeys marshals rep and checks each key of want has that value
// (nil: the key is there, null); it returns the whole object.
func checkJSONKeys(t *testing.T, rep *report, want map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		v, ok := got[k]
		if !ok {
			t.Errorf("key %s: missing, want %v", k, w)
		} else if v != w {
			t.Errorf("key %s: got %v, want %v", k, v, w)
		}
	}
	return got
}
