package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/metrics"
)

// TestParseMetrics: only msimircd_* and msimd_* series are kept, a
// histogram by its _count alone.
func TestParseMetrics(t *testing.T) {
	t.Parallel()
	body := `# HELP go_goroutines x
# TYPE go_goroutines gauge
go_goroutines 12
process_open_fds 9
msimircd_irc_connections 3
msimircd_ims_bridged_total{direction="to_irc"} 7
msimircd_store_operation_duration_seconds_bucket{op="load_user",le="0.001"} 2
msimircd_store_operation_duration_seconds_bucket{op="load_user",le="+Inf"} 2
msimircd_store_operation_duration_seconds_sum{op="load_user"} 0.0004
msimircd_store_operation_duration_seconds_count{op="load_user"} 2
msimd_presence_fanout_recipients_bucket{le="1"} 4
msimd_presence_fanout_recipients_sum 4
msimd_presence_fanout_recipients_count 4
msimd_bytes_sum 5
`
	got, err := parseMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"msimircd_irc_connections":                                        3,
		`msimircd_ims_bridged_total{direction="to_irc"}`:                  7,
		`msimircd_store_operation_duration_seconds_count{op="load_user"}`: 2,
		"msimd_presence_fanout_recipients_count":                          4,
		"msimd_bytes_sum":                                                 5, // a _sum with no _count: not a histogram's
	}
	if len(got) != len(want) {
		t.Errorf("got %d series %v, want %d", len(got), got, len(want))
	}
	for s, v := range want {
		if got[s] != v {
			t.Errorf("%s: got %v, want %v", s, got[s], v)
		}
	}
	if _, err := parseMetrics("msimd_sessions x\n"); err == nil {
		t.Error("a bad value: got no error, want one")
	}
}

// TestMetricTally adds two stacks' scrapes: deltas add up, a series first
// seen after counts from 0, and one seen only before is kept as unmoved.
func TestMetricTally(t *testing.T) {
	t.Parallel()
	tally := newMetricTally()
	tally.add("msimircd", map[string]float64{"msimircd_irc_connections": 0, "msimircd_ims_queued_total": 5},
		map[string]float64{"msimircd_irc_connections": 4, "msimircd_ims_queued_total": 5, `msimircd_msim_logins_total{result="ok"}`: 4})
	tally.add("msimircd", map[string]float64{"msimircd_irc_connections": 1, "msimd_gone": 2},
		map[string]float64{"msimircd_irc_connections": 3})
	want := map[string]float64{
		"msimircd_irc_connections":                4 + 2,
		"msimircd_ims_queued_total":               0,
		`msimircd_msim_logins_total{result="ok"}`: 4,
		"msimd_gone": 0,
	}
	if len(tally.delta) != len(want) {
		t.Errorf("got %v, want %v", tally.delta, want)
	}
	for s, v := range want {
		if d, ok := tally.delta[s]; !ok || d != v {
			t.Errorf("%s: got %v (present %v), want %v", s, d, ok, v)
		}
	}
}

// TestMetricsVerdict splits moved from still series and names every
// required pattern nothing moved: an exact series, or any series of a bare
// metric name.
func TestMetricsVerdict(t *testing.T) {
	t.Parallel()
	delta := map[string]float64{
		`msimircd_ims_bridged_total{direction="to_irc"}`:                       10,
		`msimircd_ims_bridged_total{direction="to_msim"}`:                      0,
		`msimircd_store_operation_duration_seconds_count{op="load_user"}`:      3,
		`msimircd_store_operation_duration_seconds_count{op="append_history"}`: 0,
		"msimircd_users_attached":                                              -1, // a gauge that went down moved too
		"msimircd_msim_reconnects_total":                                       0,
		"msimircd_users_attached_extra":                                        5,
	}
	tests := []struct {
		name     string
		required []string
		missing  []string
	}{
		{"all moved", []string{`msimircd_ims_bridged_total{direction="to_irc"}`, "msimircd_store_operation_duration_seconds_count", "msimircd_users_attached"}, []string{}},
		{"one direction still", []string{`msimircd_ims_bridged_total{direction="to_msim"}`}, []string{`msimircd_ims_bridged_total{direction="to_msim"}`}},
		{"one op still", []string{`msimircd_store_operation_duration_seconds_count{op="append_history"}`}, []string{`msimircd_store_operation_duration_seconds_count{op="append_history"}`}},
		{"a name is not a prefix of another", []string{"msimircd_users_attached_ext", "msimircd_msim_reconnects_total"}, []string{"msimircd_users_attached_ext", "msimircd_msim_reconnects_total"}},
		{"never seen", []string{"msimd_sessions"}, []string{"msimd_sessions"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			moved, still, missing := metricsVerdict(delta, tc.required)
			if !slices.Equal(missing, tc.missing) {
				t.Errorf("missing: got %q, want %q", missing, tc.missing)
			}
			if len(moved) != 4 || moved["msimircd_users_attached"] != -1 {
				t.Errorf("moved: got %v, want the 4 series with a non-zero delta", moved)
			}
			wantStill := []string{`msimircd_ims_bridged_total{direction="to_msim"}`, "msimircd_msim_reconnects_total", `msimircd_store_operation_duration_seconds_count{op="append_history"}`}
			if !slices.Equal(still, wantStill) {
				t.Errorf("still: got %q, want %q", still, wantStill)
			}
		})
	}
}

// TestRequiredMetrics: what must move follows the scenarios that completed
// and the sources that were scraped.
func TestRequiredMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		r         ranSet
		want, not []string
	}{
		{"nothing ran", ranSet{msimircd: true, msimd: true}, nil, []string{"msimircd_irc_connections", "msimd_sessions"}},
		{"names only", ranSet{names: true, msimircd: true, msimd: true},
			[]string{"msimircd_irc_connections", "msimircd_users_attached", seriesAccountsOnline, `msimircd_msim_logins_total{result="ok"}`, "msimd_sessions", "msimd_persist_requests_total"},
			[]string{`msimircd_ims_bridged_total{direction="to_irc"}`, `msimircd_typing_total{direction="to_msim"}`}},
		{"im with history", ranSet{im: true, historyOn: true, msimircd: true, msimd: true},
			[]string{`msimircd_ims_bridged_total{direction="to_irc"}`, `msimircd_ims_bridged_total{direction="to_msim"}`, storeOp("append_history_batch"), "msimd_ims_routed_total"},
			[]string{msimircdLogins("bad_password")}},
		{"im without history", ranSet{im: true, msimircd: true, msimd: true}, []string{`msimircd_ims_bridged_total{direction="to_msim"}`}, []string{storeOp("append_history_batch")}},
		{"probes", ranSet{probes: true, msimircd: true, msimd: true},
			[]string{`msimircd_typing_total{direction="to_msim"}`, `msimircd_typing_total{direction="to_irc"}`, `msimircd_zaps_total{direction="to_irc"}`,
				`msimircd_presence_updates_total{direction="to_msim"}`, msimircdLogins("bad_password"), msimircdLogins("network"),
				`msimircd_msim_links_lost_total{reason="kicked"}`, "msimircd_msim_reconnects_total", "msimircd_ims_queued_total", "msimircd_ims_refused_total",
				"msimircd_irc_flood_delays_total", storeOp("history"), `msimd_logins_total{result="260"}`, `msimd_protocol_errors_total{code="6"}`,
				"msimd_ims_stored_total", "msimd_ims_delivered_from_storage_total"}, nil},
		{"history", ranSet{history: true, msimircd: true}, []string{storeOp("history")}, []string{"msimd_sessions"}},
		{"no gateway metrics", ranSet{im: true, msimd: true}, []string{"msimd_ims_routed_total"}, []string{"msimircd_irc_connections"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := requiredMetrics(tc.r)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("got %q, want it to hold %s", got, w)
				}
			}
			for _, n := range tc.not {
				if slices.Contains(got, n) {
					t.Errorf("got %q, want it without %s", got, n)
				}
			}
			if !slices.IsSorted(got) || len(dedup(got)) != len(got) {
				t.Errorf("got %q, want sorted without duplicates", got)
			}
		})
	}
}

// TestTallyResult: a required metric that did not move fails the run with
// a message naming it; a scrape error fails it too.
func TestTallyResult(t *testing.T) {
	t.Parallel()
	tally := newMetricTally()
	tally.add("msimircd", map[string]float64{}, map[string]float64{
		"msimircd_irc_connections": 2, "msimircd_users_attached": 2, seriesAccountsOnline: 2,
		msimircdLogins("ok"): 2, storeOp("load_user"): 2, storeOp("history"): 0,
		`msimircd_history_queries_total{kind="chathistory"}`: 3,
	})
	rep, failures := tally.result(ranSet{history: true})
	if !slices.Equal(rep.Missing, []string{storeOp("history")}) {
		t.Errorf("missing: got %q, want the history operation alone", rep.Missing)
	}
	if len(failures) != 1 || !strings.Contains(failures[0], "did not move") || !strings.Contains(failures[0], `op="history"`) {
		t.Errorf("failures: got %q, want one naming the history operation", failures)
	}
	if !slices.Equal(rep.Sources, []string{"msimircd"}) {
		t.Errorf("sources: got %q, want msimircd (msimd was not scraped, so none of its metrics is required)", rep.Sources)
	}
	if rep.Skipped != "" {
		t.Errorf("skipped: got %q, want nothing (a source was scraped)", rep.Skipped)
	}
	tally.fail("im: msimd metrics after: connection refused")
	if _, failures := tally.result(ranSet{}); len(failures) != 1 || !strings.Contains(failures[0], "connection refused") {
		t.Errorf("failures: got %q, want the scrape error", failures)
	}
}

// TestMetricsSkipped: a run without a gateway, or whose gateways served no
// metrics, says why nothing was checked.
func TestMetricsSkipped(t *testing.T) {
	t.Parallel()
	rep, failures := newMetricTally().result(ranSet{})
	if rep.Skipped != "no scenario ran a gateway" || len(failures) != 0 {
		t.Errorf("no stack: got skipped %q, failures %q", rep.Skipped, failures)
	}
	tally := newMetricTally()
	startMetrics(tally, "im", []metricSource{{"msimircd", ""}, {"msimd", ""}}).finish()
	rep, _ = tally.result(ranSet{im: true})
	if !strings.Contains(rep.Skipped, "no metrics listener") || len(rep.Required) != 0 {
		t.Errorf("no listener: got skipped %q, required %q; want the reason and nothing required", rep.Skipped, rep.Required)
	}
}

// TestStackMetricsOverHTTP scrapes a registry served by metrics.Listen,
// as the MSIM server's is: what moves between the two scrapes is counted
// once, however often finish is called.
func TestStackMetricsOverHTTP(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	routed := prometheus.NewCounter(prometheus.CounterOpts{Name: "msimd_ims_routed_total", Help: "h"})
	sessions := prometheus.NewGauge(prometheus.GaugeOpts{Name: "msimd_sessions", Help: "h"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total", Help: "h"})
	reg.MustRegister(routed, sessions, other)
	srv, err := metrics.Listen("127.0.0.1:0", false, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	tally := newMetricTally()
	m := startMetrics(tally, "test", []metricSource{{"msimd", srv.Addr().String()}, {"msimircd", ""}})
	routed.Add(3)
	sessions.Set(2)
	other.Inc()
	m.finish()
	routed.Add(100)
	m.finish()
	rep, failures := tally.result(ranSet{})
	if len(failures) != 0 {
		t.Fatalf("failures: %q", failures)
	}
	want := map[string]float64{"msimd_ims_routed_total": 3, "msimd_sessions": 2}
	if len(rep.Moved) != len(want) {
		t.Errorf("moved: got %v, want %v", rep.Moved, want)
	}
	for s, v := range want {
		if rep.Moved[s] != v {
			t.Errorf("%s: got %v, want %v", s, rep.Moved[s], v)
		}
	}
	if !slices.Equal(rep.Sources, []string{"msimd"}) {
		t.Errorf("sources: got %q, want msimd only (the other had no address)", rep.Sources)
	}
}

// TestMSIMServerMetrics: the in-process MSIM server serves its metrics on
// a loopback listener of its own.
func TestMSIMServerMetrics(t *testing.T) {
	t.Parallel()
	ms, err := startMSIM(pairAccounts("mt", 2))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	if !isLoopbackAddr(ms.metricsAddr) {
		t.Errorf("metrics address %q: want a loopback one", ms.metricsAddr)
	}
	got, err := scrapeMetrics(ms.metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"msimd_sessions", `msimd_logins_total{result="ok"}`, "msimd_ims_routed_total"} {
		if _, ok := got[s]; !ok {
			t.Errorf("series %s: missing from %v", s, got)
		}
	}
}

// TestMetricsJSONKeys: the metrics and history keys of the report, present
// (null where nothing was measured).
func TestMetricsJSONKeys(t *testing.T) {
	t.Parallel()
	full := &report{Failures: []string{}, Memory: []memResult{}}
	full.metricsReport = metricsReport{Sources: []string{"msimd", "msimircd"}, Moved: map[string]float64{"msimd_sessions": 2},
		Still: []string{"msimircd_ims_held_total"}, Required: []string{"msimd_sessions"}, Missing: []string{}, NotExpected: notExpected}
	full.History = true
	full.setHistoryCompare(&historyPairs{Rounds: 1, On: loadResult{RateOffered: 5000, RateP99ms: 1.1}, Off: loadResult{RateOffered: 5000, RateP99ms: 1.0}})
	full.setChathistory(&historyResult{LatestP50ms: 1, LatestP99ms: 4, BeforeP50ms: 2, BeforeP99ms: 5})
	tests := []struct {
		name string
		rep  *report
		want map[string]any // nil: the key is null
	}{
		{"everything", full, map[string]any{
			"history": true, "rate_p99_ms_history": 1.1, "rate_p99_ms_no_history": 1.0,
			"chathistory_latest_p50_ms": 1.0, "chathistory_latest_p99_ms": 4.0,
			"chathistory_before_p50_ms": 2.0, "chathistory_before_p99_ms": 5.0,
		}},
		{"nothing", &report{}, map[string]any{
			"history": false, "rate_p99_ms_history": nil, "rate_p99_ms_no_history": nil, "history_p99_overhead": nil,
			"chathistory_latest_p99_ms": nil, "chathistory_before_p99_ms": nil, "metrics_moved": nil, "metrics_still": nil,
			"chathistory": nil, "probes": nil,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkJSONKeys(t, tc.rep, tc.want) })
	}
	b, _ := json.Marshal(full)
	var got struct {
		Moved       map[string]float64 `json:"metrics_moved"`
		Still       []string           `json:"metrics_still"`
		Missing     []string           `json:"metrics_missing"`
		NotExpected map[string]string  `json:"metrics_not_expected"`
		Overhead    float64            `json:"history_p99_overhead"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Moved["msimd_sessions"] != 2 || !slices.Equal(got.Still, []string{"msimircd_ims_held_total"}) || got.Missing == nil || got.NotExpected["msimircd_ims_held_total"] == "" {
		t.Errorf("metrics keys: got %+v", got)
	}
	if got.Overhead < 0.0999 || got.Overhead > 0.1001 {
		t.Errorf("history_p99_overhead: got %v, want 0.1 ((1.1 − 1.0) / 1.0)", got.Overhead)
	}
}

// TestHistoryCompare: the pooled figures land in their keys, the verdict
// is on them, and the table shows each round and their median.
func TestHistoryCompare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		on, off     float64
		rounds      []float64
		wantVerdict string
		wantRounds  string
	}{
		{"within", 1.05, 1.0, []float64{0.2, 0.01, -0.05}, "≤ +10%: met", "+20%, +1%, -5%; +1%"},
		{"over", 1.5, 1.0, []float64{0.5, 0.4}, "≤ +10%: MISSED", "+50%, +40%; +45%"},
		{"history faster", 0.9, 1.0, []float64{-0.1}, "≤ +10%: met", "-10%; -10%"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hp := &historyPairs{Rounds: len(tc.rounds), RoundOverheads: tc.rounds, MedianOverhead: median(tc.rounds),
				On:  loadResult{RateOffered: 5000, RateP99ms: tc.on, GatewayCPUPerIM: 120},
				Off: loadResult{RateOffered: 5000, RateP99ms: tc.off, GatewayCPUPerIM: 80}}
			r := &report{}
			r.setHistoryCompare(hp)
			if *r.RateP99msHistory != tc.on || *r.RateP99msNoHistory != tc.off || r.HistoryCompare != hp {
				t.Errorf("got on %v off %v, want %v %v", *r.RateP99msHistory, *r.RateP99msNoHistory, tc.on, tc.off)
			}
			var b strings.Builder
			printHistoryRows(&b, r)
			for _, want := range []string{tc.wantVerdict, tc.wantRounds, "120 / 80 µs", fmt.Sprintf("%d rounds", len(tc.rounds))} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("table: got %q, want %q in it", b.String(), want)
				}
			}
		})
	}
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v): got %v, want %v", c.xs, got, c.want)
		}
	}
	if got := historyOverhead(1, 0); got != 0 {
		t.Errorf("historyOverhead with no baseline: got %v, want 0", got)
	}
}

// TestPrintMetrics: the table lists each moved series with its delta, the
// unmoved ones, and the missing required ones.
func TestPrintMetrics(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printMetrics(&b, &metricsReport{Sources: []string{"msimircd"}, Moved: map[string]float64{"msimircd_irc_connections": 4},
		Still: []string{"msimircd_ims_held_total"}, Required: []string{"msimircd_irc_connections", "msimircd_users_attached"},
		Missing: []string{"msimircd_users_attached"}})
	for _, want := range []string{"msimircd_irc_connections  +4", "did not move (1):\n  msimircd_ims_held_total\n", "MISSED, did not move: msimircd_users_attached"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table: want %q in\n%s", want, b.String())
		}
	}
	b.Reset()
	printMetrics(&b, &metricsReport{Skipped: "no listener"})
	if !strings.Contains(b.String(), "metrics not checked: no listener") {
		t.Errorf("table: got %q, want the reason metrics were not checked", b.String())
	}
}

// settleHistory scrapes once the gateway's history queue is empty, and no
// later than its bound when the queue stays full; a source without the
// gauge is scraped at once.
func TestSettleHistory(t *testing.T) {
	var scrapes atomic.Int32
	queued := func(n int32) string {
		return fmt.Sprintf("# TYPE %s gauge\n%s %d\n# TYPE msimircd_x_total counter\nmsimircd_x_total %d\n", seriesHistoryQueued, seriesHistoryQueued, n, n)
	}
	tests := []struct {
		name      string
		body      func(scrape int32) string
		max       time.Duration
		wantX     float64
		minScrape int32
	}{
		{"drains", func(n int32) string { return queued(max(3-n, 0)) }, 10 * time.Second, 0, 4},
		{"stays full", func(int32) string { return queued(5) }, 100 * time.Millisecond, 5, 2},
		{"no gauge", func(int32) string { return "# TYPE msimircd_x_total counter\nmsimircd_x_total 7\n" }, 10 * time.Second, 7, 1},
	}
	for _, tc := range tests {
		scrapes.Store(0)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, tc.body(scrapes.Add(1)-1))
		}))
		got, err := settleHistory(strings.TrimPrefix(srv.URL, "http://"), tc.max)
		srv.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got["msimircd_x_total"] != tc.wantX || scrapes.Load() < tc.minScrape {
			t.Errorf("%s: got msimircd_x_total %v after %d scrapes, want %v after at least %d", tc.name, got["msimircd_x_total"], scrapes.Load(), tc.wantX, tc.minScrape)
		}
	}
}
