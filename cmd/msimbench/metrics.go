package main

// The Prometheus metrics of the system under test. Each stack's gateway
// (-metrics-listen) and MSIM server (a registry served on a loopback
// listener, as msimd serves it) are scraped when the stack is up and again
// at the end of its scenario, while its clients are still connected (so the
// gauges show them). The deltas of every stack are added up; the run fails
// when a metric that the scenarios which ran must move did not.

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
)

// metricSource is one /metrics endpoint: "msimircd" or "msimd".
type metricSource struct {
	name, addr string
}

// reported says whether a series is one msimbench reports: the gateway's
// and the MSIM server's own (not go_… or process_…), a histogram by its
// _count only (its buckets and sum would say the same thing many times).
func reported(series string, all map[string]float64) bool {
	name := seriesName(series)
	if !strings.HasPrefix(name, "msimircd_") && !strings.HasPrefix(name, "msimd_") {
		return false
	}
	if strings.HasSuffix(name, "_bucket") {
		return false
	}
	if base, ok := strings.CutSuffix(name, "_sum"); ok {
		if _, hist := all[base+"_count"+series[len(name):]]; hist {
			return false
		}
	}
	return true
}

// seriesName is the metric name of a series: x of x{a="1"}.
func seriesName(series string) string {
	name, _, _ := strings.Cut(series, "{")
	return name
}

// parseMetrics reads the text format and keeps the reported series.
func parseMetrics(body string) (map[string]float64, error) {
	all, err := promtest.ParseText(body)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(all))
	for s, v := range all {
		if reported(s, all) {
			out[s] = v
		}
	}
	return out, nil
}

// scrapeMetrics reads the reported series of one /metrics endpoint.
func scrapeMetrics(addr string) (map[string]float64, error) {
	b, err := httpGet("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(b))
}

// metricTally adds up the deltas of every stack of a run.
type metricTally struct {
	mu      sync.Mutex
	delta   map[string]float64 // every series seen, by how much it moved in all
	sources map[string]bool    // sources scraped before and after at least once
	stacks  int                // stacks whose metrics were asked for
	errs    []string
}

func newMetricTally() *metricTally {
	return &metricTally{delta: map[string]float64{}, sources: map[string]bool{}}
}

// add records one source's two scrapes of one stack: a series missing
// from before (a label first used since) counts from 0.
func (t *metricTally) add(source string, before, after map[string]float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sources[source] = true
	for s, v := range after {
		t.delta[s] += v - before[s]
	}
	for s := range before {
		if _, ok := t.delta[s]; !ok {
			t.delta[s] = 0 // gone since: seen, and not said to have moved
		}
	}
}

// fail records a scrape that did not work.
func (t *metricTally) fail(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, msg)
}

// stackMetrics are one stack's scrapes.
type stackMetrics struct {
	tally   *metricTally
	label   string
	sources []metricSource
	before  map[string]map[string]float64
	once    sync.Once
}

// startMetrics takes the before scrapes of a stack's sources (none when
// tally is nil).
func startMetrics(tally *metricTally, label string, sources []metricSource) *stackMetrics {
	m := &stackMetrics{tally: tally, label: label, before: map[string]map[string]float64{}}
	if tally == nil {
		return m
	}
	tally.mu.Lock()
	tally.stacks++
	tally.mu.Unlock()
	for _, src := range sources {
		if src.addr == "" {
			continue
		}
		got, err := scrapeMetrics(src.addr)
		if err != nil {
			tally.fail(fmt.Sprintf("%s: %s metrics before: %v", label, src.name, err))
			continue
		}
		m.sources = append(m.sources, src)
		m.before[src.name] = got
	}
	return m
}

// finish takes the after scrapes and adds the deltas to the tally; only
// the first call counts. Scenarios call it while their clients are still
// connected; the stack's close calls it too, for a scenario that failed
// before it could.
func (m *stackMetrics) finish() {
	if m == nil {
		return
	}
	m.once.Do(func() {
		for _, src := range m.sources {
			got, err := settleHistory(src.addr, historySettle)
			if err != nil {
				m.tally.fail(fmt.Sprintf("%s: %s metrics after: %v", m.label, src.name, err))
				continue
			}
			m.tally.add(src.name, m.before[src.name], got)
		}
	})
}

// seriesHistoryQueued is the gateway's gauge of the history entries its
// writer has not yet written.
const seriesHistoryQueued = "msimircd_history_queued"

// historySettle bounds settleHistory's wait.
const historySettle = 30 * time.Second

// settleHistory scrapes addr once the gateway there has written the
// history it had queued (its writer works in batches, at low priority,
// behind the load by design), or once max has passed: the after scrape
// then counts those writes. A source without the gauge is scraped at once.
func settleHistory(addr string, max time.Duration) (map[string]float64, error) {
	deadline := time.Now().Add(max)
	for {
		got, err := scrapeMetrics(addr)
		if err != nil || got[seriesHistoryQueued] == 0 || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ranSet is what a run did, for the metrics it must move.
type ranSet struct {
	im, memory, names, probes, history bool // scenarios that completed
	historyOn                          bool // the im scenario's gateway kept history
	msimircd, msimd                    bool // sources scraped
}

// Series the requirements name.
var (
	seriesAccountsOnline  = `msimircd_msim_accounts{state="online"}`
	seriesAccountsStopped = `msimircd_msim_accounts{state="stopped"}`
	storeOps              = "msimircd_store_operation_duration_seconds_count"
	msimdBadPassword      = fmt.Sprintf(`msimd_logins_total{result="%d"}`, msim.ErrCodeBadPassword)
)

func byDir(metric, d string) string      { return fmt.Sprintf(`%s{direction="%s"}`, metric, d) }
func byLabel(metric, k, v string) string { return fmt.Sprintf(`%s{%s="%s"}`, metric, k, v) }
func storeOp(op string) string           { return byLabel(storeOps, "op", op) }
func msimdErr(code int) string           { return fmt.Sprintf(`msimd_protocol_errors_total{code="%d"}`, code) }
func bothWays(metric string) []string {
	return []string{byDir(metric, "to_msim"), byDir(metric, "to_irc")}
}
func msimircdLogins(result string) string {
	return byLabel("msimircd_msim_logins_total", "result", result)
}

// requiredMetrics are the series (or, for a bare metric name, any of its
// series) that must move in a run that did r.
func requiredMetrics(r ranSet) []string {
	var gw, md []string
	if r.im || r.memory || r.names || r.probes || r.history {
		// Every scenario logs IRC users and their MSIM accounts in.
		gw = append(gw, "msimircd_irc_connections", "msimircd_users_attached", seriesAccountsOnline,
			msimircdLogins("ok"), storeOps)
		md = append(md, "msimd_sessions", `msimd_logins_total{result="ok"}`, "msimd_persist_requests_total",
			"msimd_presence_fanout_recipients_count")
	}
	if r.im {
		gw = append(gw, bothWays("msimircd_ims_bridged_total")...)
		gw = append(gw, byDir("msimircd_presence_updates_total", "to_irc"))
		if r.historyOn {
			gw = append(gw, storeOp("append_history_batch"))
		}
		md = append(md, "msimd_ims_routed_total")
	}
	if r.probes {
		gw = append(gw, bothWays("msimircd_typing_total")...)
		gw = append(gw, bothWays("msimircd_zaps_total")...)
		gw = append(gw, bothWays("msimircd_presence_updates_total")...)
		gw = append(gw, msimircdLogins("bad_password"), seriesAccountsStopped,
			byLabel("msimircd_msim_links_lost_total", "reason", "kicked"),
			"msimircd_ims_refused_total", "msimircd_irc_flood_delays_total", storeOp("history"),
			byLabel("msimircd_history_queries_total", "kind", "chathistory"),
			byLabel("msimircd_msim_links_lost_total", "reason", "network"), "msimircd_msim_reconnects_total",
			msimircdLogins("network"), "msimircd_ims_queued_total")
		md = append(md, msimdBadPassword, msimdErr(msim.ErrCodeBadPassword), msimdErr(msim.ErrCodeElsewhere),
			"msimd_ims_stored_total", "msimd_ims_delivered_from_storage_total")
	}
	if r.history {
		gw = append(gw, storeOp("history"), byLabel("msimircd_history_queries_total", "kind", "chathistory"))
	}
	var out []string
	if r.msimircd {
		out = append(out, gw...)
	}
	if r.msimd {
		out = append(out, md...)
	}
	sort.Strings(out)
	return dedup(out)
}

// notExpected are the metrics no scenario moves, and why.
var notExpected = map[string]string{
	"msimircd_msim_links_lost_total":         "only kicked (a probe logs an account in elsewhere) and network (a probe cuts the connections) are provoked; the others need a failing or overloaded MSIM server",
	"msimircd_ims_held_total":                "IMs are held only when they arrive as the IRC client leaves, or while it is too slow (always_on is off in the benchmark): not provoked reliably",
	"msimircd_ims_dropped_total":             "IMs are dropped only when a link dies with IMs it had taken unsent, or beyond the held limit",
	"msimircd_irc_sendq_disconnects_total":   "needs an IRC client that stops reading until the kernel's socket buffers and its SendQ fill",
	"msimircd_history_writer_failures_total": "the history writer process fails only when it is killed or its store does",
	"msimircd_msim_logins_total":             "only ok, bad_password and network are provoked; the others need a failing MSIM server",
	"msimd_logins_total":                     "only ok and the bad password code are provoked",
	"msimd_protocol_errors_total":            "only the bad password and logged-in-elsewhere codes are provoked",
	"msimd_persist_requests_total":           "only the kinds a login and the bridge ask for are provoked",
	storeOps:                                 "only the operations of logins, IMs, history and the probes run (no user is added or removed, no setting changed…)",
}

func dedup(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// matches reports whether series is pattern, or one of its series when
// pattern is a bare metric name.
func matches(pattern, series string) bool {
	return series == pattern || (!strings.Contains(pattern, "{") && strings.HasPrefix(series, pattern+"{"))
}

// metricsVerdict splits the tally into the series that moved (with their
// deltas) and those that did not, and lists the required patterns that no
// moved series matches.
func metricsVerdict(delta map[string]float64, required []string) (moved map[string]float64, still, missing []string) {
	moved = map[string]float64{}
	still = []string{}
	for s, d := range delta {
		if d != 0 {
			moved[s] = d
		} else {
			still = append(still, s)
		}
	}
	sort.Strings(still)
	missing = []string{}
	for _, p := range required {
		ok := false
		for s := range moved {
			if matches(p, s) {
				ok = true
				break
			}
		}
		if !ok {
			missing = append(missing, p)
		}
	}
	return moved, still, missing
}

// metricsReport is the metrics part of the report.
type metricsReport struct {
	Sources  []string           `json:"metrics_sources"`
	Moved    map[string]float64 `json:"metrics_moved"`
	Still    []string           `json:"metrics_still"`
	Required []string           `json:"metrics_required"`
	Missing  []string           `json:"metrics_missing"`
	// NotExpected names metrics that no scenario can move, and why.
	NotExpected map[string]string `json:"metrics_not_expected"`
	Skipped     string            `json:"metrics_skipped,omitempty"`
}

// result is the run's metrics report for r; failures lists what makes the
// run fail.
func (t *metricTally) result(r ranSet) (rep metricsReport, failures []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r.msimircd, r.msimd = t.sources["msimircd"], t.sources["msimd"]
	for s := range t.sources {
		rep.Sources = append(rep.Sources, s)
	}
	sort.Strings(rep.Sources)
	rep.Required = requiredMetrics(r)
	rep.Moved, rep.Still, rep.Missing = metricsVerdict(t.delta, rep.Required)
	rep.NotExpected = notExpected
	switch {
	case len(rep.Sources) > 0:
	case t.stacks == 0:
		rep.Skipped = "no scenario ran a gateway"
	default:
		rep.Skipped = "no metrics listener was scraped (a gateway without -metrics-listen, or external mode without -gateway-metrics and -msim-metrics)"
	}
	failures = append(failures, t.errs...)
	if len(rep.Missing) > 0 {
		failures = append(failures, "these metrics did not move: "+strings.Join(rep.Missing, ", "))
	}
	return rep, failures
}

// printMetrics writes the metrics part of the table: every series that
// moved with its delta, then those that did not.
func printMetrics(w io.Writer, m *metricsReport) {
	if m == nil {
		return
	}
	if m.Skipped != "" {
		fmt.Fprintln(w, "\nmetrics not checked:", m.Skipped)
		return
	}
	verdict := "every required one moved: met"
	if len(m.Missing) > 0 {
		verdict = "MISSED, did not move: " + strings.Join(m.Missing, ", ")
	}
	fmt.Fprintf(w, "\nmetrics of %s: %d series moved, %d did not; %d required, %s\n",
		strings.Join(m.Sources, " and "), len(m.Moved), len(m.Still), len(m.Required), verdict)
	names := make([]string, 0, len(m.Moved))
	width := 0
	for s := range m.Moved {
		names = append(names, s)
		width = max(width, len(s))
	}
	sort.Strings(names)
	for _, s := range names {
		fmt.Fprintf(w, "  %-*s  %+g\n", width, s, m.Moved[s])
	}
	if len(m.Still) > 0 {
		fmt.Fprintf(w, "did not move (%d):\n", len(m.Still))
		line := ""
		for _, s := range m.Still {
			if line != "" && len(line)+1+len(s) > 100 {
				fmt.Fprintln(w, " "+line)
				line = ""
			}
			line += " " + s
		}
		fmt.Fprintln(w, " "+line)
	}
}
