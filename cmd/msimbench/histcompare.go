package main

// The cost of storing IMs on the bridged path (-history-compare): two
// stacks side by side, one whose gateway keeps history and one whose
// gateway does not, with the same users and load. Their fixed-rate phases
// take turns, on then off, then off then on, and so on, so that whatever
// else the machine does in those minutes weighs on both alike; one phase
// of each, one after the other, differed by tens of per cent from run to
// run on a 2-core VM whatever history did.

import (
	"context"
	"fmt"
	"slices"
)

// historyPairs is the outcome of the turns.
type historyPairs struct {
	Rounds int `json:"rounds"` // a phase with history and one without each
	// On and Off are the pooled fixed-rate phases: their percentiles are
	// over every round's IMs.
	On  loadResult `json:"on"`
	Off loadResult `json:"off"`
	// RoundP99ms are each round's p99 with and without history, and
	// RoundOverheads what history added in each.
	RoundP99ms     [][2]float64 `json:"round_p99_ms"`
	RoundOverheads []float64    `json:"round_overheads"`
	// MedianOverhead is the median of RoundOverheads.
	MedianOverhead float64 `json:"median_overhead"`
}

// runHistoryPairs starts both stacks, connects their clients, and runs
// rounds pairs of fixed-rate phases (o.rate for o.rateDuration each).
func runHistoryPairs(ctx context.Context, e *env, clientsN int, o loadOptions, rounds int) (hp historyPairs, err error) {
	hp.Rounds = rounds
	if rounds < 1 || o.rate <= 0 || o.rateDuration <= 0 {
		return hp, fmt.Errorf("history comparison: want rounds ≥ 1 and a fixed rate (got %d rounds, %g IMs/s for %s)", rounds, o.rate, o.rateDuration)
	}
	accts := pairAccounts("im", clientsN)
	nicks := make([]string, len(accts))
	for i, a := range accts {
		nicks[i] = a.name
	}
	var sides [2]*turnSide // on, off
	defer func() {
		for _, s := range sides {
			if s != nil {
				closeAll(s.clients)
				s.t.close()
			}
		}
		// Also after a failed round: its losses count.
		if sides[0] != nil {
			hp.On = sides[0].pooled()
		}
		if sides[1] != nil {
			hp.Off = sides[1].pooled()
		}
	}()
	for i, name := range []string{"im-history-on", "im-history-off"} {
		t, err := e.start(name, accts, gwOptions{noHistory: i == 1})
		if err != nil {
			return hp, err
		}
		sides[i] = &turnSide{name: "history " + onOff(i == 0), t: t}
		cctx, cancel := context.WithTimeout(ctx, e.timeout)
		clients, err := connectAll(cctx, t.ircAddr, accts, func(a *acct) []string { return a.buddies })
		cancel()
		if err != nil {
			return hp, fmt.Errorf("%s: %w", name, err)
		}
		sides[i].clients, sides[i].l = clients, newLoad(clients, nicks, o.window)
		// Its memory release after the logins (collections) would fall
		// into the other side's first phase: let it pass.
		t.gw.settle(settleAfterLogins)
	}
	po := o
	po.duration = 0 // the fixed-rate phase only
	err = takeTurns(ctx, e, sides, rounds, po, "", func(res [2]loadResult) {
		p99 := [2]float64{res[0].RateP99ms, res[1].RateP99ms}
		hp.RoundP99ms = append(hp.RoundP99ms, p99)
		hp.RoundOverheads = append(hp.RoundOverheads, historyOverhead(p99[0], p99[1]))
	})
	if err != nil {
		return hp, err
	}
	for _, s := range sides {
		if err := s.t.gw.alive(); err != nil {
			return hp, err
		}
	}
	hp.MedianOverhead = median(hp.RoundOverheads)
	return hp, nil
}

// median of xs (not changed); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
