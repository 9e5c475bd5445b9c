package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
)

// relayIRC is an ordinary IRC server as small as the plain load needs:
// it welcomes each client (001) and relays its PRIVMSGs to the nick they
// name. It stands in for ngircd where that is not installed.
type relayIRC struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[string]net.Conn // by nick
	wg    sync.WaitGroup
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
			r.mu.Unlock()
			if to != nil {
				_, _ = to.Write([]byte(":" + nick + "!u@relay PRIVMSG " + f[1] + " " + f[2] + "\r\n"))
			}
		case f[0] == "QUIT":
			return
		}
	}
	r.mu.Lock()
	if r.conns[nick] == nc {
		delete(r.conns, nick)
	}
	r.mu.Unlock()
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
	var out, errOut bytes.Buffer
	args := []string{"-quick", "-json", "-quiet", "-scenarios", "im,plain", "-plain-irc", relay.ln.Addr().String(),
		"-clients", "4", "-window", "2", "-duration", "400ms", "-warmup", "50ms", "-rate", "200", "-rate-duration", "400ms",
		"-plain-rounds", "2", "-timeout", "20s"}
	code, err := run(args, &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("run: code %d, err %v\nstdout: %s\nstderr: %s", code, err, out.String(), errOut.String())
	}
	var rep struct {
		OK       bool        `json:"ok"`
		Failures []string    `json:"failures"`
		Share    *float64    `json:"plain_share_in_turns"`
		P99Ratio *float64    `json:"rate_p99_ratio_in_turns"`
		Turns    *plainPairs `json:"plain_turns"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output: %v\n%s", err, out.String())
	}
	if !rep.OK {
		t.Fatalf("ok: false; failures %v", rep.Failures)
	}
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

	// The table judges by the medians.
	var tbl bytes.Buffer
	var full report
	if err := json.Unmarshal(out.Bytes(), &full); err != nil {
		t.Fatal(err)
	}
	printTable(&tbl, &full)
	for _, want := range []string{"in turns", "bridged / plain IMs/s in turns, 2 rounds", "median share"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table: want %q in\n%s", want, tbl.String())
		}
	}
}
