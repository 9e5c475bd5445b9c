package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestSpreadPairs: with n ≥ 2 gateways the two users of every pair are on
// different gateways (so every IM crosses nodes), and every gateway holds
// about as many users as the others.
func TestSpreadPairs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ users, n int }{{4, 2}, {10, 2}, {10, 3}, {12, 4}, {100, 5}, {6, 3}} {
		g := spreadPairs(tc.users, tc.n)
		count := make([]int, tc.n)
		for i := 0; i < tc.users; i += 2 {
			if g[i] == g[i+1] {
				t.Errorf("%d users on %d: pair %d both on gateway %d, want different ones", tc.users, tc.n, i/2, g[i])
			}
		}
		for _, x := range g {
			if x < 0 || x >= tc.n {
				t.Fatalf("%d users on %d: gateway %d out of range", tc.users, tc.n, x)
			}
			count[x]++
		}
		lo, hi := count[0], count[0]
		for _, c := range count {
			lo, hi = min(lo, c), max(hi, c)
		}
		if lo == 0 || hi-lo > 2 {
			t.Errorf("%d users on %d: got %v users per gateway, want each some and within 2 of the others", tc.users, tc.n, count)
		}
	}
	if g := spreadPairs(4, 1); g[0] != 0 || g[1] != 0 || g[2] != 0 || g[3] != 0 {
		t.Errorf("one gateway: got %v, want all on 0", g)
	}
}

// TestClusterJSONKeys: the N-node figures are top-level keys, numbers when
// the comparison ran (the hop as {p50, p99} in µs: cross-node minus
// same-node), null when it did not; msim_nodes says N either way.
func TestClusterJSONKeys(t *testing.T) {
	t.Parallel()
	ran := &report{MSIMNodes: 3}
	res := newClusterResult(3)
	res.Single = loadResult{IMPerSec: 9000, P99ms: 4, RateOffered: 500, RateP99ms: 1.5}
	res.Cluster = loadResult{IMPerSec: 6000, P99ms: 7, RateOffered: 500, RateP99ms: 2.5}
	res.Hop = &hopResult{Samples: 10, SameP50us: 40, SameP99us: 90, CrossP50us: 140, CrossP99us: 390}
	ran.setCluster(res)
	tests := []struct {
		name string
		rep  *report
		want map[string]any // nil: the key is null
	}{
		{"ran", ran, map[string]any{
			"msim_nodes": 3.0, "cluster_im_per_sec": 6000.0, "cluster_p99_ms": 7.0, "cluster_rate_p99_ms": 2.5,
			"single_im_per_sec": 9000.0, "single_p99_ms": 4.0, "single_rate_p99_ms": 1.5,
			"cross_node_hop_us": map[string]any{"p50": 100.0, "p99": 300.0},
		}},
		{"one node", &report{MSIMNodes: 1}, map[string]any{
			"msim_nodes": 1.0, "cluster_im_per_sec": nil, "cluster_p99_ms": nil, "single_im_per_sec": nil,
			"single_p99_ms": nil, "cross_node_hop_us": nil, "cluster": nil,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.rep)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				v, ok := got[k]
				if !ok {
					t.Errorf("key %s: missing, want %v", k, want)
					continue
				}
				gb, _ := json.Marshal(v)
				wb, _ := json.Marshal(want)
				if !bytes.Equal(gb, wb) {
					t.Errorf("key %s: got %s, want %s", k, gb, wb)
				}
			}
		})
	}
	var got map[string]any
	b, _ := json.Marshal(ran)
	_ = json.Unmarshal(b, &got)
	c, _ := got["cluster"].(map[string]any)
	if c == nil || c["note"] != clusterNote || c["gateways"] != 3.0 || c["single"] == nil || c["cluster"] == nil || c["hop"] == nil {
		t.Errorf("cluster: got %v, want the two runs, the hop probe and the note", got["cluster"])
	}
}

// TestMSIMNodesFlags: -msim-nodes is checked against the other flags.
func TestMSIMNodesFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		wantErr string // "" = accepted
	}{
		{nil, ""},
		{[]string{"-msim-nodes", "3", "-clients", "6"}, ""},
		{[]string{"-msim-nodes", "0"}, "-msim-nodes must be 1 to"},
		{[]string{"-msim-nodes", "17"}, "-msim-nodes must be 1 to"},
		{[]string{"-msim-nodes", "4", "-clients", "6"}, "need -clients ≥ 8"},
		{[]string{"-msim-nodes", "2", "-irc", "127.0.0.1:6667", "-msim", "127.0.0.1:1863"}, "not with -irc"},
		{[]string{"-msim-nodes", "2", "-hop-samples", "0"}, "-hop-samples ≥ 1"},
	} {
		o, err := parseFlags(tc.args, &bytes.Buffer{})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("parseFlags(%q): %v, want accepted", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("parseFlags(%q): got %v, want an error with %q", tc.args, err, tc.wantErr)
		case tc.wantErr == "" && tc.args == nil && o.msimNodes != 1:
			t.Errorf("default -msim-nodes: got %d, want 1", o.msimNodes)
		}
	}
}

// TestEndToEndNodes runs the bridged IM across two msimd nodes and on
// one, at the smallest size: nothing lost, both runs and the hop in the
// report.
func TestEndToEndNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark run; skipped with -short")
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	var out, errOut bytes.Buffer
	args := []string{"-quick", "-json", "-quiet", "-scenarios", "im", "-msim-nodes", "2",
		"-clients", "4", "-window", "2", "-duration", "300ms", "-warmup", "100ms",
		"-rate", "400", "-rate-duration", "500ms", "-hop-samples", "50", "-timeout", "20s"}
	code, err := run(args, &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("run: code %d, err %v\nstdout: %s\nstderr: %s", code, err, out.String(), errOut.String())
	}
	var rep struct {
		OK       bool           `json:"ok"`
		Lost     int64          `json:"lost"`
		Nodes    int            `json:"msim_nodes"`
		Cluster  *float64       `json:"cluster_im_per_sec"`
		Single   *float64       `json:"single_im_per_sec"`
		ClP99    *float64       `json:"cluster_p99_ms"`
		SiP99    *float64       `json:"single_p99_ms"`
		Hop      *hopFigures    `json:"cross_node_hop_us"`
		Detail   *clusterResult `json:"cluster"`
		Failures []string       `json:"failures"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if !rep.OK || rep.Lost != 0 {
		t.Errorf("got ok %v, lost %d (%v), want ok and none lost", rep.OK, rep.Lost, rep.Failures)
	}
	if rep.Nodes != 2 {
		t.Errorf("msim_nodes: got %d, want 2", rep.Nodes)
	}
	for name, v := range map[string]*float64{"cluster_im_per_sec": rep.Cluster, "single_im_per_sec": rep.Single, "cluster_p99_ms": rep.ClP99, "single_p99_ms": rep.SiP99} {
		if v == nil || *v <= 0 {
			t.Errorf("%s: got %v, want > 0", name, v)
		}
	}
	if rep.Hop == nil {
		t.Error("cross_node_hop_us: got null, want the hop's figures")
	}
	if d := rep.Detail; d == nil || d.Hop == nil || d.Hop.Samples != 50 || d.Hop.CrossP50us <= 0 || d.Hop.SameP50us <= 0 {
		t.Errorf("cluster.hop: got %+v, want 50 samples each way with latencies", d)
	} else if d.Cluster.Delivered == 0 || d.Single.Delivered == 0 || d.Cluster.Lost != 0 || d.Single.Lost != 0 {
		t.Errorf("cluster runs: got delivered %d/%d, lost %d/%d, want IMs and none lost", d.Single.Delivered, d.Cluster.Delivered, d.Single.Lost, d.Cluster.Lost)
	}
}
