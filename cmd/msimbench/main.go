// Command msimbench measures msimircd end to end: bridged IM throughput and
// latency (IRC → msimircd → MSIM server → msimircd → IRC), gateway memory per
// idle account, the login storm, the time to NAMES for a 1,000-buddy list,
// the same message load through an ordinary IRC server for comparison,
// and with -msim-nodes the bridged load across several msimd nodes joined
// over NATS (nodes.go).
//
// By default it runs the MSIM server in-process (on a MemStore it fills
// directly) and msimircd as a subprocess with a generated config, on
// loopback only, and removes everything at the end. See README.md,
// "Benchmarks", for the flags, the external mode and the figures.
//
// Goroutines: main runs the scenarios one after another. Each IRC client has
// a reader goroutine (which checks what it receives) and, during the load,
// a sender goroutine; the progress printer has its own.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/msimircd/msimircd/msim/server"
)

func main() {
	code, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "msimbench:", err)
	}
	os.Exit(code)
}

// options are the command line.
type options struct {
	quick, jsonOut, quiet, keep bool
	scenarios                   string
	clients, window             int
	duration, warmup            time.Duration
	rate                        float64
	rateDuration                time.Duration
	accounts                    string
	buddies, namesBuddies       int
	gatewayBin                  string
	ircAddr, msimAddr           string
	gwDebug                     string
	gwPID                       int
	plainAddr                   string
	installNgircd               bool
	profileDir                  string
	setupDir                    string
	timeout                     time.Duration
	history, historyCompare     bool
	historyRounds               int
	plainRounds                 int
	hist                        historyOptions
	gwMetrics, msimMetrics      string
	msimNodes, hopSamples       int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("msimbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.quick, "quick", false, "small counts and short phases (under a minute); explicit flags still win")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of the table")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, gateway logs)")
	fs.StringVar(&o.scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated: im (throughput, latency, fixed rate), memory (memory per account and the login storm), names (large contact list), history (CHATHISTORY over a filled store), probes (a script that moves the metrics the load does not), plain (ordinary IRC server)")
	fs.IntVar(&o.clients, "clients", 100, "bridged IM: IRC clients (each its own MSIM account; pairs are buddies)")
	fs.IntVar(&o.window, "window", 8, "bridged IM: messages in flight per direction at full load")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "full-load phase, measured")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "full-load warm-up, not measured")
	fs.Float64Var(&o.rate, "rate", 5000, "fixed-rate phase: offered IMs/s in all (0 skips it)")
	fs.DurationVar(&o.rateDuration, "rate-duration", 5*time.Second, "fixed-rate phase length")
	fs.StringVar(&o.accounts, "accounts", "100,1000", "memory and login storm: numbers of idle accounts, one run each")
	fs.IntVar(&o.buddies, "buddies", 100, "memory and login storm: buddies per account")
	fs.IntVar(&o.namesBuddies, "names-buddies", 1000, "large contact list: buddies of the one account (all online)")
	fs.StringVar(&o.gatewayBin, "gateway", "", "msimircd binary (default: go build ./cmd/msimircd into the temporary directory)")
	fs.StringVar(&o.ircAddr, "irc", "", "external mode: a running msimircd (configured from -setup) at this address")
	fs.StringVar(&o.msimAddr, "msim", "", "external mode: its MSIM server (holding the -setup store); with -setup, the server address written into the config")
	fs.StringVar(&o.gwDebug, "gateway-debug", "", "external mode: the gateway's -debug-listen address (for memory)")
	fs.IntVar(&o.gwPID, "gateway-pid", 0, "external mode: the gateway's pid (for RSS)")
	fs.StringVar(&o.plainAddr, "plain-irc", "", "plain mode: an ordinary IRC server at this address (default: start ngircd)")
	fs.BoolVar(&o.installNgircd, "install-ngircd", false, "plain mode: apt-get install ngircd when it is missing and we are root (without it, a missing ngircd skips the plain mode)")
	fs.StringVar(&o.profileDir, "profile", "", "save the gateway's CPU, mutex, block and goroutine profiles (bridged IM, login storm), its execution trace of the fixed-rate phase (up to 5 s), its heap profiles (memory) and msimbench's own CPU profile in this directory")
	fs.StringVar(&o.setupDir, "setup", "", "write msim.db (a store for msimd -data) and config.toml (for msimircd) with every bench account into this directory, then exit")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bound on each scenario's logins and NAMES waits")
	fs.BoolVar(&o.history, "history", true, "the gateway keeps history ([history] enabled) in the im, memory and names scenarios (history and probes always keep it)")
	fs.BoolVar(&o.historyCompare, "history-compare", false, "with the im scenario: run the fixed-rate phase in turns on two more gateways side by side, one keeping history and one not, and report the p99 overhead of storing IMs")
	fs.IntVar(&o.historyRounds, "history-compare-rounds", 3, "with -history-compare: fixed-rate phases of each gateway, taken in turns")
	fs.IntVar(&o.plainRounds, "plain-rounds", 3, "with the im and plain scenarios: rounds of the bridged and the plain loads taken in turns on two stacks up at once, whose medians the relative targets are judged by (0: none)")
	fs.IntVar(&o.hist.users, "history-users", 100, "chathistory: IRC users (pairs of buddies)")
	fs.IntVar(&o.hist.ims, "history-ims", 10000, "chathistory: IMs stored per user before the gateway starts")
	fs.IntVar(&o.hist.rounds, "history-rounds", 5, "chathistory: CHATHISTORY LATEST requests per client")
	fs.IntVar(&o.hist.pages, "history-pages", 10, "chathistory: CHATHISTORY BEFORE pages after each LATEST")
	fs.IntVar(&o.hist.inflight, "history-inflight", 0, "chathistory: requests in flight across all clients (0: one per client, all at once)")
	fs.StringVar(&o.gwMetrics, "gateway-metrics", "", "external mode: the gateway's -metrics-listen address (its metrics are checked)")
	fs.StringVar(&o.msimMetrics, "msim-metrics", "", "external mode: the MSIM server's metrics address (msimd -metrics-listen)")
	fs.IntVar(&o.msimNodes, "msim-nodes", 1, "with the im scenario and N ≥ 2: the bridged IM load again through N gateways on N msimd nodes joined over NATS (every IM crosses nodes) and on one node, and a cross-node hop's latency; one machine shows the bus's cost, not more machines' gain")
	fs.IntVar(&o.hopSamples, "hop-samples", 2000, "with -msim-nodes: IMs timed one at a time to each of a same-node and a cross-node user")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("clients", func() { o.clients = 10 })
		def("window", func() { o.window = 4 })
		def("duration", func() { o.duration = 1500 * time.Millisecond })
		def("warmup", func() { o.warmup = 300 * time.Millisecond })
		def("rate", func() { o.rate = 500 })
		def("rate-duration", func() { o.rateDuration = time.Second })
		def("accounts", func() { o.accounts = "20" })
		def("buddies", func() { o.buddies = 10 })
		def("names-buddies", func() { o.namesBuddies = 50 })
		def("timeout", func() { o.timeout = 30 * time.Second })
		def("history-users", func() { o.hist.users = 4 })
		def("history-ims", func() { o.hist.ims = 500 })
		def("history-rounds", func() { o.hist.rounds = 2 })
		def("history-compare-rounds", func() { o.historyRounds = 2 })
		def("plain-rounds", func() { o.plainRounds = 1 })
		def("history-pages", func() { o.hist.pages = 3 })
		def("hop-samples", func() { o.hopSamples = 200 })
	}
	if o.hist.users < 2 || o.hist.users%2 != 0 {
		return o, fmt.Errorf("-history-users %d: need an even number ≥ 2", o.hist.users)
	}
	if o.plainRounds < 0 {
		return o, fmt.Errorf("-plain-rounds %d: need 0 or more", o.plainRounds)
	}
	if o.historyRounds < 1 {
		return o, fmt.Errorf("-history-compare-rounds %d: need 1 or more", o.historyRounds)
	}
	if o.hist.ims < 1 || o.hist.rounds < 1 || o.hist.pages < 0 || o.hist.inflight < 0 {
		return o, errors.New("-history-ims and -history-rounds must be ≥ 1, -history-pages and -history-inflight ≥ 0")
	}
	if o.clients < 2 || o.clients%2 != 0 {
		return o, fmt.Errorf("-clients %d: need an even number ≥ 2", o.clients)
	}
	if o.window < 1 || o.buddies < 1 || o.namesBuddies < 1 {
		return o, errors.New("-window, -buddies and -names-buddies must be ≥ 1")
	}
	if o.msimNodes < 1 || o.msimNodes > maxMSIMNodes || o.hopSamples < 1 {
		return o, fmt.Errorf("-msim-nodes must be 1 to %d and -hop-samples ≥ 1", maxMSIMNodes)
	}
	if o.msimNodes > 1 && o.clients < 2*o.msimNodes {
		return o, fmt.Errorf("-msim-nodes %d: need -clients ≥ %d (a pair per node)", o.msimNodes, 2*o.msimNodes)
	}
	if o.msimNodes > 1 && o.ircAddr != "" {
		return o, errors.New("-msim-nodes starts its own nodes and gateways: not with -irc and -msim")
	}
	if (o.ircAddr == "") != (o.msimAddr == "") && o.setupDir == "" {
		return o, errors.New("external mode needs both -irc and -msim")
	}
	for _, a := range []string{o.ircAddr, o.msimAddr, o.gwDebug, o.plainAddr, o.gwMetrics, o.msimMetrics} {
		if a != "" && !isLoopbackAddr(a) {
			return o, fmt.Errorf("%s: only loopback addresses are allowed", a)
		}
	}
	for s := range strings.SplitSeq(o.scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(allScenarios, s) {
			return o, fmt.Errorf("-scenarios: unknown %q (%s)", s, strings.Join(allScenarios, ", "))
		}
	}
	if _, err := o.accountCounts(); err != nil {
		return o, err
	}
	return o, nil
}

// maxMSIMNodes bounds -msim-nodes: each node brings a gateway process.
const maxMSIMNodes = 16

// allScenarios are the scenarios, in the order they run.
var allScenarios = []string{"im", "memory", "names", "history", "probes", "plain"}

func (o options) has(s string) bool {
	for x := range strings.SplitSeq(o.scenarios, ",") {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

func (o options) accountCounts() ([]int, error) {
	var out []int
	for s := range strings.SplitSeq(o.accounts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-accounts: bad count %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o options) loadOptions() loadOptions {
	return loadOptions{window: o.window, duration: o.duration, warmup: o.warmup, rate: o.rate,
		rateDuration: o.rateDuration, drain: 15 * time.Second}
}

// report is the JSON output. Figures of scenarios that did not run are null.
type report struct {
	OK       bool     `json:"ok"`
	Failures []string `json:"failures"`
	Quick    bool     `json:"quick"`
	Mode     string   `json:"mode"` // "subprocess" or "external"

	IMPerSec    *float64 `json:"im_per_sec"`
	P50ms       *float64 `json:"p50_ms"`
	P99ms       *float64 `json:"p99_ms"`
	Maxms       *float64 `json:"max_ms"`
	RateOffered *float64 `json:"rate_offered"`
	RateP99ms   *float64 `json:"rate_p99_ms"`
	Lost        int64    `json:"lost"`
	Errors      int64    `json:"errors"`

	// History is whether the im, memory and names gateways kept history.
	History bool `json:"history"`
	// With -history-compare: the fixed-rate p99 with history on and off,
	// each over every round of the comparison, and the overhead of
	// storing IMs, (on − off) / off.
	RateP99msHistory   *float64      `json:"rate_p99_ms_history"`
	RateP99msNoHistory *float64      `json:"rate_p99_ms_no_history"`
	HistoryP99Overhead *float64      `json:"history_p99_overhead"`
	HistoryCompare     *historyPairs `json:"history_compare"`

	ChathistoryLatestP50ms *float64       `json:"chathistory_latest_p50_ms"`
	ChathistoryLatestP99ms *float64       `json:"chathistory_latest_p99_ms"`
	ChathistoryBeforeP50ms *float64       `json:"chathistory_before_p50_ms"`
	ChathistoryBeforeP99ms *float64       `json:"chathistory_before_p99_ms"`
	Chathistory            *historyResult `json:"chathistory"`
	Probes                 *probeResult   `json:"probes"`

	// With -msim-nodes N ≥ 2: the bridged load through N gateways on N
	// nodes and on one node, and what a cross-node hop adds (µs).
	MSIMNodes        int            `json:"msim_nodes"`
	ClusterIMPerSec  *float64       `json:"cluster_im_per_sec"`
	ClusterP99ms     *float64       `json:"cluster_p99_ms"`
	ClusterRateP99ms *float64       `json:"cluster_rate_p99_ms"`
	SingleIMPerSec   *float64       `json:"single_im_per_sec"`
	SingleP99ms      *float64       `json:"single_p99_ms"`
	SingleRateP99ms  *float64       `json:"single_rate_p99_ms"`
	CrossNodeHopUs   *hopFigures    `json:"cross_node_hop_us"`
	Cluster          *clusterResult `json:"cluster"`

	metricsReport

	BytesPerAccount      *float64 `json:"bytes_per_account"`      // RSS growth / N, at the largest N
	HeapBytesPerAccount  *float64 `json:"heap_bytes_per_account"` // Go heap+stacks growth / N, at the largest N
	GoroutinesPerAccount *float64 `json:"goroutines_per_account"` // goroutine count growth / N, at the largest N
	LoginStormMs         *float64 `json:"login_storm_ms"`         // at the largest N
	LoginStormAccounts   int      `json:"login_storm_accounts"`
	NamesMs              *float64 `json:"names_ms"` // with names_buddies buddies
	NamesBuddies         int      `json:"names_buddies"`

	// The plain IRC server's figures, beside the bridged ones they are
	// compared with.
	PlainIMPerSec  *float64 `json:"plain_im_per_sec"`
	PlainP99ms     *float64 `json:"plain_p99_ms"`
	PlainRateP99ms *float64 `json:"plain_rate_p99_ms"`
	// With -plain-rounds: the medians of the rounds taken in turns, the
	// bridged full-load rate over the plain one and the bridged fixed-rate
	// p99 over the plain one.
	PlainShareInTurns   *float64    `json:"plain_share_in_turns"`
	RateP99RatioInTurns *float64    `json:"rate_p99_ratio_in_turns"`
	PlainTurns          *plainPairs `json:"plain_turns"`

	Bridged      *loadResult  `json:"bridged"`
	Memory       []memResult  `json:"memory"`
	Names        *namesResult `json:"names"`
	Plain        *loadResult  `json:"plain"`
	PlainServer  string       `json:"plain_server,omitempty"`
	PlainSkipped string       `json:"plain_skipped,omitempty"`
	ElapsedS     float64      `json:"elapsed_s"`
	// The machine's 1-minute load average before and after: other work on
	// the machine shows in the latency tails.
	LoadBefore float64 `json:"loadavg_before"`
	LoadAfter  float64 `json:"loadavg_after"`
}

// setPlain records the plain IRC comparison, with its figures at the top
// level.
func (r *report) setPlain(p *loadResult) {
	r.Plain = p
	r.PlainIMPerSec, r.PlainP99ms = fp(p.IMPerSec), fp(p.P99ms)
	if p.RateOffered > 0 {
		r.PlainRateP99ms = fp(p.RateP99ms)
	}
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func fp(v float64) *float64 { return &v }

func isLoopbackAddr(a string) bool {
	host, _, ok := strings.Cut(a, ":")
	if strings.HasPrefix(a, "[") {
		host = strings.TrimPrefix(strings.SplitN(a, "]", 2)[0], "[")
		ok = true
	}
	return ok && (host == "localhost" || host == "::1" || strings.HasPrefix(host, "127."))
}

func run(args []string, stdout, stderr io.Writer) (int, error) {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, err
	}
	if o.setupDir != "" {
		return writeSetup(o)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	prog := &progress{w: stderr, quiet: o.quiet, start: started}

	tmp, err := os.MkdirTemp("", "msimbench-")
	if err != nil {
		return 1, err
	}
	if o.keep {
		prog.say("keeping " + tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	e := &env{tmp: tmp, extIRC: o.ircAddr, extMSIM: o.msimAddr, extDebug: o.gwDebug,
		extPID: o.gwPID, profileDir: o.profileDir, prog: prog, timeout: o.timeout,
		extGWMetrics: o.gwMetrics, extMSIMMetrics: o.msimMetrics, metrics: newMetricTally()}
	rep := &report{Quick: o.quick, Mode: "subprocess", Memory: []memResult{}, Failures: []string{}, LoadBefore: loadAvg(), History: o.history, MSIMNodes: o.msimNodes}
	if e.external() {
		rep.Mode = "external"
	} else if o.has("im") || o.has("memory") || o.has("names") || o.has("history") || o.has("probes") {
		if o.gatewayBin != "" {
			e.gatewayBin = o.gatewayBin
		} else {
			prog.say("building msimircd")
			if e.gatewayBin, err = buildGateway(tmp); err != nil {
				return 1, err
			}
		}
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return 1, err
		}
		// The bench's own CPU profile: the load clients and, unless
		// external, the MSIM server share the machine with the gateway.
		f, err := os.Create(filepath.Join(o.profileDir, "msimbench-cpu.pprof"))
		if err != nil {
			return 1, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 1, err
		}
		defer pprof.StopCPUProfile()
	}
	fail := func(what string, err error) {
		rep.Failures = append(rep.Failures, what+": "+err.Error())
		prog.say("FAILED " + what + ": " + err.Error())
	}
	lo := o.loadOptions()
	var ran ranSet
	gwo := gwOptions{noHistory: !o.history}

	if o.has("im") && ctx.Err() == nil {
		prog.say(fmt.Sprintf("bridged IM: %d clients, window %d, %s at full load, %g IMs/s for %s, history %s", o.clients, o.window, o.duration, o.rate, o.rateDuration, onOff(o.history)))
		res, err := runBridged(ctx, e, "im", o.clients, lo, gwo)
		if err != nil {
			fail("bridged IM", err)
		} else {
			ran.im, ran.historyOn = true, o.history
		}
		if res.Clients > 0 {
			rep.Bridged = &res
			rep.IMPerSec, rep.P50ms, rep.P99ms, rep.Maxms = fp(res.IMPerSec), fp(res.P50ms), fp(res.P99ms), fp(res.Maxms)
			if res.RateOffered > 0 {
				rep.RateOffered, rep.RateP99ms = fp(res.RateOffered), fp(res.RateP99ms)
			}
			rep.Lost += res.Lost
			rep.Errors += res.Errors
			if res.Lost > 0 || res.Errors > 0 {
				fail("bridged IM", fmt.Errorf("%d lost, %d errors; first: %s", res.Lost, res.Errors, res.FirstError))
			}
		}
		if o.historyCompare && o.rate > 0 && ctx.Err() == nil {
			prog.say(fmt.Sprintf("history's cost: %d rounds of %g IMs/s for %s on a gateway with history, then one without (or the other way)", o.historyRounds, o.rate, o.rateDuration))
			hp, err := runHistoryPairs(ctx, e, o.clients, lo, o.historyRounds)
			rep.countLoads(hp.On, hp.Off)
			if err != nil {
				fail("history's cost", err)
			} else {
				rep.setHistoryCompare(&hp)
			}
		}
	}
	if o.has("im") && o.msimNodes > 1 && ctx.Err() == nil {
		prog.say(fmt.Sprintf("bridged IM through %d gateways on one msimd node, then on %d nodes over NATS", o.msimNodes, o.msimNodes))
		res, err := runNodes(ctx, e, o.msimNodes, o.clients, o.hopSamples, lo, gwo)
		if err != nil {
			fail(fmt.Sprintf("bridged IM across %d nodes", o.msimNodes), err)
		} else {
			rep.setCluster(res)
		}
		if res != nil {
			for _, lr := range []loadResult{res.Single, res.Cluster} {
				rep.Lost += lr.Lost
				rep.Errors += lr.Errors
				if lr.Lost > 0 || lr.Errors > 0 {
					fail(fmt.Sprintf("bridged IM across %d nodes", o.msimNodes), fmt.Errorf("%d lost, %d errors; first: %s", lr.Lost, lr.Errors, lr.FirstError))
				}
			}
		}
	}
	if o.has("memory") && ctx.Err() == nil {
		counts, _ := o.accountCounts()
		for _, n := range counts {
			prog.say(fmt.Sprintf("memory and login storm: %d accounts, %d buddies each", n, o.buddies))
			res, err := runMemory(ctx, e, n, o.buddies, gwo)
			if err != nil {
				fail(fmt.Sprintf("memory (%d accounts)", n), err)
				continue
			}
			ran.memory = true
			rep.Memory = append(rep.Memory, res)
			rep.LoginStormMs, rep.LoginStormAccounts = fp(res.LoginStormMs), n
			if res.MemoryMeasured {
				rep.BytesPerAccount, rep.HeapBytesPerAccount = fp(res.RSSPerAccount), fp(res.HeapPerAccount)
				rep.GoroutinesPerAccount = fp(res.GoroutinesPerAccount)
			}
		}
	}
	if o.has("names") && ctx.Err() == nil {
		prog.say(fmt.Sprintf("large contact list: %d buddies", o.namesBuddies))
		res, err := runNames(ctx, e, o.namesBuddies, gwo)
		if err != nil {
			fail("large contact list", err)
		} else {
			rep.Names, rep.NamesMs, rep.NamesBuddies = &res, fp(res.NamesMs), o.namesBuddies
			ran.names = true
		}
	}
	if o.has("history") && ctx.Err() == nil {
		prog.say(fmt.Sprintf("chathistory: %d users × %d stored IMs, %d × (LATEST + %d BEFORE pages) each", o.hist.users, o.hist.ims, o.hist.rounds, o.hist.pages))
		res, err := runHistory(ctx, e, o.hist)
		if err != nil {
			fail("chathistory", err)
		} else {
			rep.setChathistory(&res)
			ran.history = true
		}
	}
	if o.has("probes") && ctx.Err() == nil {
		prog.say("probes: typing, zap, away, CHATHISTORY, offline IM, kick, wrong password, flood, network")
		res, err := runProbes(ctx, e)
		if err != nil {
			fail("probes", err)
		} else {
			rep.Probes = &res
			ran.probes = true
		}
	}
	if o.has("plain") && ctx.Err() == nil {
		addr, name, pid, stopPlain, skip := plainTarget(e, o.plainAddr, o.installNgircd)
		if skip != "" {
			// Said even with -quiet: the report lacks the comparison.
			rep.PlainSkipped = skip
			fmt.Fprintln(stderr, "msimbench: plain IRC comparison skipped: "+skip)
		} else {
			prog.say(fmt.Sprintf("plain IRC (%s): %d clients", name, o.clients))
			rep.PlainServer = name
			res, err := runPlain(ctx, e, addr, pid, o.clients, lo)
			if err != nil {
				fail("plain IRC", err)
			} else {
				rep.setPlain(&res)
				rep.Lost += res.Lost
				rep.Errors += res.Errors
				if res.Lost > 0 || res.Errors > 0 {
					fail("plain IRC", fmt.Errorf("%d lost, %d errors; first: %s", res.Lost, res.Errors, res.FirstError))
				}
			}
			switch run, note := plainTurnsPlan(o, ran.im, e.external()); {
			case note != "":
				prog.say(note)
			case !run || ctx.Err() != nil:
			default:
				prog.say(fmt.Sprintf("bridged and plain in turns: %d rounds on a new gateway and the plain server, each up meanwhile", o.plainRounds))
				pp, err := runPlainPairs(ctx, e, addr, pid, o.clients, lo, o.plainRounds, gwo)
				rep.countLoads(pp.Bridged, pp.Plain)
				if err != nil {
					fail("bridged and plain in turns", err)
				} else {
					rep.setPlainTurns(&pp)
				}
			}
			stopPlain()
		}
	}
	if ctx.Err() != nil {
		fail("run", ctx.Err())
	}
	mr, mfail := e.metrics.result(ran)
	rep.metricsReport = mr
	for _, f := range mfail {
		fail("metrics", errors.New(f))
	}
	rep.ElapsedS = time.Since(started).Seconds()
	rep.LoadAfter = loadAvg()
	rep.OK = len(rep.Failures) == 0
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 1, err
		}
	} else {
		printTable(stdout, rep)
	}
	if !rep.OK {
		return 1, errors.New("the run failed: " + strings.Join(rep.Failures, "; "))
	}
	return 0, nil
}

// writeSetup writes the external mode's store and gateway config.
func writeSetup(o options) (int, error) {
	if err := os.MkdirAll(o.setupDir, 0o700); err != nil {
		return 1, err
	}
	var accts []*acct
	accts = append(accts, pairAccounts("im", o.clients)...)
	counts, _ := o.accountCounts()
	for _, n := range counts {
		accts = append(accts, ringAccounts(fmt.Sprintf("k%d_", n), n, o.buddies)...)
	}
	_, names := namesAccounts(o.namesBuddies)
	accts = append(accts, names...)
	dbPath := filepath.Join(o.setupDir, "msim.db")
	st, err := server.OpenFileStore(dbPath)
	if err != nil {
		return 1, err
	}
	if err := populate(st, accts); err != nil {
		st.Close()
		return 1, fmt.Errorf("%s: %w (start from an empty directory)", dbPath, err)
	}
	if err := st.Close(); err != nil {
		return 1, err
	}
	msimAddr := o.msimAddr
	if msimAddr == "" {
		msimAddr = "127.0.0.1:1863"
	}
	cfg := gatewayConfig("127.0.0.1:6667", msimAddr, gwOptions{sendq: 65536}, accts)
	conns := connCap(len(accts))
	if err := os.WriteFile(filepath.Join(o.setupDir, "config.toml"), []byte(cfg), 0o600); err != nil {
		return 1, err
	}
	// Every bench connection comes from one loopback address: msimd's
	// per-address cap is off and its total cap fits them all.
	fmt.Printf("wrote %s (%d accounts) and %s\nstart: msimd -data %s -listen %s -max-conns %d -max-conns-per-addr -1\n       msimircd -config %s -debug-listen 127.0.0.1:6060\nthen:  msimbench -irc 127.0.0.1:6667 -msim %s -gateway-debug 127.0.0.1:6060 -gateway-pid PID (same counts as here)\n",
		dbPath, len(accts), filepath.Join(o.setupDir, "config.toml"), dbPath, msimAddr, conns, filepath.Join(o.setupDir, "config.toml"), msimAddr)
	return 0, nil
}

// progress prints progress lines on stderr.
type progress struct {
	w     io.Writer
	quiet bool
	start time.Time
	mu    sync.Mutex
}

func (p *progress) say(s string) {
	if p == nil || p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "msimbench [%5.1fs] %s\n", time.Since(p.start).Seconds(), s)
}

// every prints label and status() every 2 s until the returned func is called.
func (p *progress) every(label string, status func() string) func() {
	if p == nil || p.quiet {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.say(strings.TrimSuffix(label+": "+status(), ": "))
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// Targets of issue 12. The relative ones compare with the plain IRC
// server measured in the same run; without it the absolute floor applies.
const (
	targetIMPerSec      = 20000 // without a plain IRC comparison
	targetPlainShare    = 1.0 / 3
	targetRateP99ms     = 2
	targetRateP99Ratio  = 1.5 // × the plain IRC server's p99 at the same rate
	targetPerAccount    = 64 << 10
	targetGoroutines    = 3
	targetStormMs       = 1000
	targetStormAccounts = 1000
	targetNamesMs       = 50
)

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// printCost prints what each load phase cost per IM: the server's CPU and
// system calls, and this process's (called bench).
func printCost(tw io.Writer, server, bench string, r *loadResult) {
	for _, ph := range []struct {
		name string
		c    *phaseCost
	}{{"fixed rate", r.RateCost}, {"full load", r.FullLoadCost}} {
		c := ph.c
		if c == nil {
			continue
		}
		fmt.Fprintf(tw, "  %s, per IM: CPU of %s / %s / machine\t%.1f / %.1f / %.1f µs\t\t\n", ph.name, server, bench, c.ServerCPUus, c.BenchCPUus, c.MachineCPUus)
		if c.systemCallsSet {
			fmt.Fprintf(tw, "    reads / writes per IM: %s; %s\t%.2f / %.2f; %.2f / %.2f\t\t\n", server, bench, c.ServerReads, c.ServerWrites, c.BenchReads, c.BenchWrites)
		}
		if c.switchesSet {
			fmt.Fprintf(tw, "    context switches per IM: %s; %s\t%.2f; %.2f\t\t\n", server, bench, c.ServerSwitches, c.BenchSwitches)
		}
	}
}

func printTable(w io.Writer, r *report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "msimbench (%s gateway)\n\n", r.Mode)
	fmt.Fprintln(tw, "measure\tvalue\ttarget\t")
	fmt.Fprintln(tw, "-------\t-----\t------\t")
	if b := r.Bridged; b != nil {
		fmt.Fprintf(tw, "bridged IMs/s, full load (%d clients, window %d)\t%.0f\t%s\t\n", b.Clients, b.Window, b.IMPerSec, throughputTarget(b, r.Plain, r.PlainTurns))
		fmt.Fprintf(tw, "  latency p50 / p99 / max\t%.2f / %.2f / %.2f ms\t\t\n", b.P50ms, b.P99ms, b.Maxms)
		if b.RateOffered > 0 {
			fmt.Fprintf(tw, "bridged at %.0f IMs/s offered (achieved %.0f)\tp99 %.2f ms\t%s\t\n", b.RateOffered, b.RateDone, b.RateP99ms, rateTarget(b, r.Plain, r.PlainTurns))
			fmt.Fprintf(tw, "  latency p50 / max\t%.2f / %.2f ms\t\t\n", b.RateP50ms, b.RateMaxms)
			fmt.Fprintf(tw, "  over %v / in stalls (%s)\t%d / %.0f%% (%d stalls)\t\t\n", slowIM, stallRule, b.RateSlow, 100*b.RateSlowInStalls, b.RateStalls)
		}
		fmt.Fprintf(tw, "  sent / delivered / lost / errors\t%d / %d / %d / %d\t0 lost: %s\t\n", b.Sent, b.Delivered, b.Lost, b.Errors, verdict(b.Lost == 0 && b.Errors == 0))
		if b.GatewayCPUPerIM > 0 {
			fmt.Fprintf(tw, "  gateway CPU per IM\t%.1f µs\t\t\n", b.GatewayCPUPerIM)
		}
		printCost(tw, "gateway", "msimd and clients", b)
	}
	for _, m := range r.Memory {
		if m.MemoryMeasured {
			fmt.Fprintf(tw, "memory per idle account (N=%d, %d buddies, ~%d online)\tRSS %s, Go heap+stacks %s\t≤ 64 KiB: %s\t\n", m.Accounts, m.Buddies, m.OnlineBuddies,
				kib(m.RSSPerAccount), kib(m.HeapPerAccount), verdict(m.RSSPerAccount <= targetPerAccount))
			fmt.Fprintf(tw, "  goroutines per idle account\t%.2f\t≤ %d: %s\t\n", m.GoroutinesPerAccount, targetGoroutines, verdict(m.GoroutinesPerAccount <= targetGoroutines))
			fmt.Fprintf(tw, "  gateway RSS before / after; peak\t%s / %s; %s\t\t\n", mib(m.Base.RSS), mib(m.After.RSS), mib(m.After.PeakRSS))
			fmt.Fprintf(tw, "  allocated per account during the storm; collections\t%s in %.0f objects; %d\t\t\n", kib(m.AllocPerAccount), m.ObjectsPerAccount, m.StormGCs)
		} else {
			fmt.Fprintf(tw, "memory per idle account (N=%d)\tnot measured: %s\t\t\n", m.Accounts, m.MemoryNotMeasur)
		}
		storm := ""
		if m.Accounts >= targetStormAccounts {
			storm = fmt.Sprintf("≤ %d ms: %s", targetStormMs, verdict(m.LoginStormMs <= targetStormMs))
		}
		fmt.Fprintf(tw, "login storm: %d accounts online, buddies visible\t%.0f ms\t%s\t\n", m.Accounts, m.LoginStormMs, storm)
		if c := m.StormCPU; c != (stormCPU{}) {
			fmt.Fprintf(tw, "  storm CPU: gateway / msimd and clients / others\t%.2f / %.2f / %.2f s\t\t\n", c.Gateway, c.Bench, c.Others)
			if g, b := c.GatewayCalls, c.BenchCalls; g != (ioCalls{}) && b != (ioCalls{}) {
				fmt.Fprintf(tw, "  storm reads / writes: gateway; msimd and clients\t%d / %d; %d / %d\t\t\n", g.Reads, g.Writes, b.Reads, b.Writes)
				if g.Switches != 0 && b.Switches != 0 {
					fmt.Fprintf(tw, "  storm context switches: gateway; msimd and clients\t%d; %d\t\t\n", g.Switches, b.Switches)
				}
			}
		}
	}
	printClusterRows(tw, r)
	printHistoryRows(tw, r)
	if n := r.Names; n != nil {
		fmt.Fprintf(tw, "complete NAMES, %d buddies online\t%.0f ms\t≤ %d ms: %s\t\n", n.Buddies, n.NamesMs, targetNamesMs, verdict(n.NamesMs <= targetNamesMs))
		fmt.Fprintf(tw, "  001 / first 366 (%d buddies in it)\t%.0f / %.0f ms\t\t\n", n.InNames, n.WelcomeMs, n.FirstEndMs)
	}
	if p := r.Plain; p != nil {
		fmt.Fprintf(tw, "plain IRC (%s) IMs/s, full load\t%.0f\tcomparison\t\n", r.PlainServer, p.IMPerSec)
		fmt.Fprintf(tw, "  latency p50 / p99 / max\t%.2f / %.2f / %.2f ms\t\t\n", p.P50ms, p.P99ms, p.Maxms)
		if p.RateOffered > 0 {
			fmt.Fprintf(tw, "  at %.0f IMs/s offered: p50 / p99\t%.2f / %.2f ms\t\t\n", p.RateOffered, p.RateP50ms, p.RateP99ms)
			fmt.Fprintf(tw, "    over %v / in stalls\t%d / %.0f%% (%d stalls)\t\t\n", slowIM, p.RateSlow, 100*p.RateSlowInStalls, p.RateStalls)
		}
		fmt.Fprintf(tw, "  sent / delivered / lost / errors\t%d / %d / %d / %d\t\t\n", p.Sent, p.Delivered, p.Lost, p.Errors)
		printCost(tw, "server", "clients", p)
	} else if r.PlainSkipped != "" {
		fmt.Fprintf(tw, "plain IRC\tskipped (below)\t\t\n")
	}
	printTurnsRows(tw, r.PlainTurns)
	tw.Flush()
	if r.Plain == nil && r.PlainSkipped != "" { // a long reason would widen the table
		fmt.Fprintln(w, "plain IRC skipped:", r.PlainSkipped)
	}
	printMetrics(w, &r.metricsReport)
	if r.Cluster != nil {
		fmt.Fprintln(w, "across nodes: "+clusterNote+".")
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAILED:", f)
	}
	fmt.Fprintf(w, "\n%s in %.1fs (load average %.2f before, %.2f after, %d CPUs)\n", map[bool]string{true: "ok", false: "FAILED"}[r.OK], r.ElapsedS, r.LoadBefore, r.LoadAfter, runtime.NumCPU())
}

// throughputTarget is the full-load target and its verdict: a share of the
// plain IRC server's rate when it ran, else the absolute floor. With the
// loads taken in turns (turns, may be nil), the share is their median
// round's, the sequential one shown beside it.
func throughputTarget(b, plain *loadResult, turns *plainPairs) string {
	if turns != nil && turns.MedianShare > 0 {
		seq := ""
		if plain != nil && plain.IMPerSec > 0 {
			seq = fmt.Sprintf("; in sequence %.2f", b.IMPerSec/plain.IMPerSec)
		}
		share := turns.MedianShare
		return fmt.Sprintf("≥ 1/3 of plain (in turns %.2f, median of %d%s): %s", share, len(measured(turns.RoundShares)), seq, verdict(share >= targetPlainShare))
	}
	if plain == nil || plain.IMPerSec <= 0 {
		return fmt.Sprintf("≥ %d: %s", targetIMPerSec, verdict(b.IMPerSec >= targetIMPerSec))
	}
	share := b.IMPerSec / plain.IMPerSec
	return fmt.Sprintf("≥ 1/3 of plain (%.2f): %s", share, verdict(share >= targetPlainShare))
}

// rateTarget is the fixed-rate p99 target and its verdict: at most
// targetRateP99ms, and at most targetRateP99Ratio × the plain IRC server's
// p99 at the same rate when it ran: with the loads taken in turns (turns,
// may be nil), the median round's ratio.
func rateTarget(b, plain *loadResult, turns *plainPairs) string {
	ok := b.RateP99ms <= targetRateP99ms
	if turns != nil && turns.MedianP99Ratio > 0 && turns.Plain.RateOffered == b.RateOffered {
		ratio := turns.MedianP99Ratio
		ok = ok && ratio <= targetRateP99Ratio
		return fmt.Sprintf("≤ %d ms and ≤ %.1f× plain (in turns %.2f×, median of %d): %s", targetRateP99ms, targetRateP99Ratio, ratio, len(measured(turns.RoundP99Ratios)), verdict(ok))
	}
	if plain == nil || plain.RateP99ms <= 0 || plain.RateOffered != b.RateOffered {
		return fmt.Sprintf("≤ %d ms: %s", targetRateP99ms, verdict(ok))
	}
	ratio := b.RateP99ms / plain.RateP99ms
	ok = ok && ratio <= targetRateP99Ratio
	return fmt.Sprintf("≤ %d ms and ≤ %.1f× plain (%.2f×): %s", targetRateP99ms, targetRateP99Ratio, ratio, verdict(ok))
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
func mib(b uint64) string  { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
