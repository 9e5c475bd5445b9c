package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// relayIRC is an ordinary IRC server as small as the plain load needs:
// it welcomes each client (001) and relays its PRIVMSGs to the nick they
// name. It stands in for ngircd where that is not installed.
type relayIRC struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[string]net.Conn // by nick
	wg    sync.WaitGroup
	// drop, if set, is asked about each PRIVMSG (its target) and drops
	// it on true, under mu.
	drop func(to string) bool
}

func startRelayIRC(t *testing.T) *relayIRC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relayIRC{ln: ln, conns: map[string]net.Conn{}}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, nc := range r.conns {
			nc.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *relayIRC) serve(nc net.Conn) {
	defer nc.Close()
	br := bufio.NewReader(nc)
	nick := ""
	defer func() {
		r.mu.Lock()
		if r.conns[nick] == nc {
			delete(r.conns, nick)
		}
		r.mu.Unlock()
	}()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		f := strings.SplitN(strings.TrimRight(line, "\r\n"), " ", 3)
		switch {
		case f[0] == "NICK" && len(f) > 1:
			nick = f[1]
			r.mu.Lock()
			r.conns[nick] = nc
			r.mu.Unlock()
		case f[0] == "USER":
			_, _ = nc.Write([]byte(":relay 001 " + nick + " :welcome\r\n"))
		case f[0] == "PRIVMSG" && len(f) == 3:
			r.mu.Lock()
			to := r.conns[f[1]]
			if r.drop != nil && r.drop(f[1]) {
				to = nil
			}
			r.mu.Unlock()
			if to != nil {
				_, _ = to.Write([]byte(":" + nick + "!u@relay PRIVMSG " + f[1] + " " + f[2] + "\r\n"))
			}
		case f[0] == "QUIT":
			return
		}
	}
}

// TestPlainTurnsRun: with the im and plain scenarios, -plain-rounds takes
// both loads in turns on a new gateway and the plain server, round after
// round, reports each round and the medians at the top level, and judges
// the relative targets by them.
func TestPlainTurnsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark run; skipped with -short")
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	relay := startRelayIRC(t)
	args := []string{"-quick", "-json", "-quiet", "-scenarios", "im,plain", "-plain-irc", relay.ln.Addr().String(),
		"-clients", "4", "-window", "2", "-duration", "400ms", "-warmup", "50ms", "-rate", "200", "-rate-duration", "400ms",
		"-plain-rounds", "2", "-timeout", "20s"}
	var rep struct {
		Share    *float64    `json:"plain_share_in_turns"`
		P99Ratio *float64    `json:"rate_p99_ratio_in_turns"`
		Turns    *plainPairs `json:"plain_turns"`
	}
	out := runReport(t, args, &rep)
	pp := rep.Turns
	if pp == nil {
		t.Fatal("plain_turns: missing")
	}
	if pp.Rounds != 2 || len(pp.RoundIMPerSec) != 2 || len(pp.RoundShares) != 2 || len(pp.RoundRateP99ms) != 2 || len(pp.RoundP99Ratios) != 2 {
		t.Fatalf("rounds: got %d with %d rates, %d shares, %d p99 pairs, %d ratios; want 2 of each",
			pp.Rounds, len(pp.RoundIMPerSec), len(pp.RoundShares), len(pp.RoundRateP99ms), len(pp.RoundP99Ratios))
	}
	for i, r := range pp.RoundIMPerSec {
		if r[0] <= 0 || r[1] <= 0 || pp.RoundShares[i] != r[0]/r[1] {
			t.Errorf("round %d: rates %v, share %v; want both measured and the share their ratio", i+1, r, pp.RoundShares[i])
		}
		if p := pp.RoundRateP99ms[i]; p[0] <= 0 || p[1] <= 0 || pp.RoundP99Ratios[i] != p[0]/p[1] {
			t.Errorf("round %d: p99s %v, ratio %v; want both measured and the ratio theirs", i+1, p, pp.RoundP99Ratios[i])
		}
	}
	if rep.Share == nil || *rep.Share != median(pp.RoundShares) || rep.P99Ratio == nil || *rep.P99Ratio != median(pp.RoundP99Ratios) {
		t.Errorf("top level: share %v, p99 ratio %v; want the medians of %v and %v", rep.Share, rep.P99Ratio, pp.RoundShares, pp.RoundP99Ratios)
	}
	for name, side := range map[string]loadResult{"bridged": pp.Bridged, "plain": pp.Plain} {
		// Two rounds of 400 ms at 200 IMs/s each: about 160 IMs at the
		// fixed rate, and the full load's on top.
		if side.Delivered < 120 || side.Lost != 0 || side.Errors != 0 || side.RateP99ms <= 0 || side.IMPerSec <= 0 {
			t.Errorf("%s: got %d delivered, %d lost, %d errors, p99 %v ms, %v IMs/s; want both rounds' IMs, none lost",
				name, side.Delivered, side.Lost, side.Errors, side.RateP99ms, side.IMPerSec)
		}
	}
	if pp.Bridged.GatewayCPUPerIM <= 0 {
		t.Errorf("bridged: gateway CPU per IM %v, want it measured", pp.Bridged.GatewayCPUPerIM)
	}
	// The gateway settles (its history writer idle) after each of its
	// turns, before the plain server's.
	if len(pp.BridgedSettleSecs) != 2 {
		t.Errorf("bridged_settle_s: got %v, want one wait per round", pp.BridgedSettleSecs)
	}
	for _, s := range pp.BridgedSettleSecs {
		if s <= 0 || s > settleAfterTurn.Seconds()+1 {
			t.Errorf("bridged_settle_s: got %v, want each a wait of at most %v", pp.BridgedSettleSecs, settleAfterTurn)
		}
	}

	// The table judges by the medians.
	var tbl bytes.Buffer
	var full report
	if err := json.Unmarshal(out, &full); err != nil {
		t.Fatal(err)
	}
	printTable(&tbl, &full)
	for _, want := range []string{"in turns", "bridged / plain IMs/s in turns, 2 rounds", "median share"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table: want %q in\n%s", want, tbl.String())
		}
	}
}

// TestPlainTurnsPlan: the turns run after the im and plain scenarios
// unless turned off, and never against an external gateway (msimbench
// cannot start a second one there; -setup writes no accounts for it).
func TestPlainTurnsPlan(t *testing.T) {
	t.Parallel()
	o := options{plainRounds: 3, duration: time.Second}
	off, short := o, o
	off.plainRounds, short.duration = 0, 0
	tests := []struct {
		name            string
		o               options
		ranIM, external bool
		run, said       bool
	}{
		{"im and plain ran", o, true, false, true, false},
		{"no im", o, false, false, false, false},
		{"rounds 0", off, true, false, false, false},
		{"no full load", short, true, false, false, false},
		{"external gateway", o, true, true, false, true},
	}
	for _, tc := range tests {
		run, note := plainTurnsPlan(tc.o, tc.ranIM, tc.external)
		if run != tc.run || (note != "") != tc.said {
			t.Errorf("%s: got run %v, note %q; want run %v, a note %v", tc.name, run, note, tc.run, tc.said)
		}
	}
}

// TestTurnPoolsRateWithoutServerPID: a side whose server's process is not
// known (-plain-irc) pools its full-load rate over every round, as one
// whose CPU is sampled does, not the last round's alone.
func TestTurnPoolsRateWithoutServerPID(t *testing.T) {
	if testing.Short() {
		t.Skip("loads over loopback; skipped with -short")
	}
	relay := startRelayIRC(t)
	e := &env{timeout: 10 * time.Second, prog: &progress{w: io.Discard, quiet: true}}
	ctx := context.Background()
	clients, nicks, err := dialPlain(ctx, e, relay.ln.Addr().String(), "pt", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(clients)
	s := &turnSide{name: "plain", clients: clients, l: plainLoad(clients, nicks, 0, 2)}
	o := loadOptions{window: 2, duration: 300 * time.Millisecond, drain: 5 * time.Second}
	var ims int64
	for r := range 2 {
		res, err := s.turn(ctx, e, o, "round")
		if err != nil {
			t.Fatalf("round %d: %v", r+1, err)
		}
		ims += res.fullIMs
	}
	if s.fullSecs < 0.55 || s.fullIMs != float64(ims) {
		t.Errorf("pooled: %.0f IMs in %.3f s, want both rounds' %d IMs in about 0.6 s", s.fullIMs, s.fullSecs, ims)
	}
	if got, want := s.pooled().IMPerSec, float64(ims)/s.fullSecs; got != want {
		t.Errorf("pooled rate: got %.0f, want %.0f", got, want)
	}
}

// TestPlainTurnsCountLosses: an IM the plain server loses in a turn fails
// the run and counts in its top-level lost IMs and errors.
func TestPlainTurnsCountLosses(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark run; skipped with -short")
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	relay := startRelayIRC(t)
	dropped := false
	relay.drop = func(to string) bool { // the turns' first IM (their clients are pt…)
		if !dropped && strings.HasPrefix(to, "pt") {
			dropped = true
			return true
		}
		return false
	}
	var out, errOut bytes.Buffer
	args := []string{"-quick", "-json", "-quiet", "-scenarios", "im,plain", "-plain-irc", relay.ln.Addr().String(),
		"-clients", "4", "-window", "2", "-duration", "300ms", "-warmup", "50ms", "-rate", "200", "-rate-duration", "300ms",
		"-plain-rounds", "1", "-timeout", "20s"}
	code, err := run(args, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "bridged and plain in turns") {
		t.Errorf("run: got error %v, want the turns' failure", err)
	}
	var rep struct {
		OK       bool     `json:"ok"`
		Failures []string `json:"failures"`
		Lost     int64    `json:"lost"`
		Errors   int64    `json:"errors"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output: %v\n%s", err, out.String())
	}
	if code == 0 || rep.OK {
		t.Errorf("exit %d, ok %v: want a failed run", code, rep.OK)
	}
	if rep.Lost != 1 || rep.Errors < 1 {
		t.Errorf("lost %d, errors %d: want the IM dropped in the turns counted (1 lost, its gap an error)", rep.Lost, rep.Errors)
	}
	if !strings.Contains(strings.Join(rep.Failures, "\n"), "bridged and plain in turns") {
		t.Errorf("failures %q: want the turns' loss named", rep.Failures)
	}
}

// TestMeasuredMedians: a round whose plain figure was not measured (its
// ratio 0) is left out of the median, not counted as a 0× ratio that
// would pull the verdict towards met.
func TestMeasuredMedians(t *testing.T) {
	t.Parallel()
	if got := median(measured([]float64{1.75, 0, 1.25})); got != 1.5 {
		t.Errorf("median of 1.75, (unmeasured), 1.25: got %v, want 1.5", got)
	}
	if got := median(measured([]float64{0, 0})); got != 0 {
		t.Errorf("median of nothing measured: got %v, want 0", got)
	}
}
