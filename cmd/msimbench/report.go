package main

// The report's history figures: the cost of storing IMs on the bridged
// path, and the chathistory benchmark.

import (
	"fmt"
	"io"
	"strings"
)

// targetHistoryOverhead is issue 14's bound on what storing an IM adds to
// the bridged path's p99 at the fixed rate: (on − off) / off.
const targetHistoryOverhead = 0.10

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// historyOverhead is what history adds to the p99: (on − off) / off.
func historyOverhead(on, off float64) float64 {
	if off <= 0 {
		return 0
	}
	return (on - off) / off
}

// setHistoryCompare records the comparison of history on and off, its
// pooled figures at the top level.
func (r *report) setHistoryCompare(hp *historyPairs) {
	r.HistoryCompare = hp
	r.RateP99msHistory, r.RateP99msNoHistory = fp(hp.On.RateP99ms), fp(hp.Off.RateP99ms)
	r.HistoryP99Overhead = fp(historyOverhead(hp.On.RateP99ms, hp.Off.RateP99ms))
}

// countLoads adds the IMs the loads of a comparison lost, and their
// errors, to the run's.
func (r *report) countLoads(loads ...loadResult) {
	for _, l := range loads {
		r.Lost += l.Lost
		r.Errors += l.Errors
	}
}

// setPlainTurns records the bridged and plain loads taken in turns, with
// their medians at the top level.
func (r *report) setPlainTurns(pp *plainPairs) {
	r.PlainTurns = pp
	r.PlainShareInTurns = fp(pp.MedianShare)
	if pp.MedianP99Ratio > 0 {
		r.RateP99RatioInTurns = fp(pp.MedianP99Ratio)
	}
}

// printTurnsRows writes the table's rows of the loads taken in turns (tw
// is the table's tabwriter); nothing when they did not run.
func printTurnsRows(tw io.Writer, pp *plainPairs) {
	if pp == nil {
		return
	}
	fmt.Fprintf(tw, "bridged / plain IMs/s in turns, %d rounds\t%.0f / %.0f\tmedian share %.2f\t\n", pp.Rounds, pp.Bridged.IMPerSec, pp.Plain.IMPerSec, pp.MedianShare)
	var rounds []string
	for i, r := range pp.RoundIMPerSec {
		rounds = append(rounds, fmt.Sprintf("%.0f / %.0f (%.2f)", r[0], r[1], pp.RoundShares[i]))
	}
	fmt.Fprintf(tw, "  each round\t%s\t\t\n", strings.Join(rounds, ", "))
	if len(pp.RoundRateP99ms) == 0 {
		return
	}
	fmt.Fprintf(tw, "  at %.0f IMs/s offered: p99 bridged / plain\t%.2f / %.2f ms\tmedian ratio %.2f×\t\n", pp.Bridged.RateOffered, pp.Bridged.RateP99ms, pp.Plain.RateP99ms, pp.MedianP99Ratio)
	rounds = rounds[:0]
	for i, r := range pp.RoundRateP99ms {
		rounds = append(rounds, fmt.Sprintf("%.2f / %.2f (%.2f×)", r[0], r[1], pp.RoundP99Ratios[i]))
	}
	fmt.Fprintf(tw, "  each round\t%s\t\t\n", strings.Join(rounds, ", "))
}

// setChathistory records the chathistory benchmark, with its figures at
// the top level.
func (r *report) setChathistory(h *historyResult) {
	r.Chathistory = h
	r.ChathistoryLatestP50ms, r.ChathistoryLatestP99ms = fp(h.LatestP50ms), fp(h.LatestP99ms)
	r.ChathistoryBeforeP50ms, r.ChathistoryBeforeP99ms = fp(h.BeforeP50ms), fp(h.BeforeP99ms)
}

// printHistoryRows writes the table's rows of the history figures (tw is
// the table's tabwriter).
func printHistoryRows(tw io.Writer, r *report) {
	if hp := r.HistoryCompare; hp != nil && r.HistoryP99Overhead != nil {
		ov := *r.HistoryP99Overhead
		fmt.Fprintf(tw, "history cost at %.0f IMs/s, %d rounds: p99 with / without\t%.2f / %.2f ms (%+.0f%%)\t≤ %+.0f%%: %s\t\n", hp.On.RateOffered, hp.Rounds,
			*r.RateP99msHistory, *r.RateP99msNoHistory, 100*ov, 100*targetHistoryOverhead, verdict(ov <= targetHistoryOverhead))
		var rounds []string
		for _, o := range hp.RoundOverheads {
			rounds = append(rounds, fmt.Sprintf("%+.0f%%", 100*o))
		}
		fmt.Fprintf(tw, "  each round; median\t%s; %+.0f%%\t\t\n", strings.Join(rounds, ", "), 100*hp.MedianOverhead)
		if hp.On.GatewayCPUPerIM > 0 && hp.Off.GatewayCPUPerIM > 0 {
			fmt.Fprintf(tw, "  gateway CPU per IM with / without\t%.0f / %.0f µs\t\t\n", hp.On.GatewayCPUPerIM, hp.Off.GatewayCPUPerIM)
		}
	}
	if h := r.Chathistory; h != nil {
		fmt.Fprintf(tw, "CHATHISTORY LATEST * %d (%d users × %d stored)\tp50 %.2f / p99 %.2f ms\t\t\n", historyPage, h.Users, h.StoredPerUser, h.LatestP50ms, h.LatestP99ms)
		fmt.Fprintf(tw, "  BEFORE pages of %d\tp50 %.2f / p99 %.2f ms\t\t\n", historyPage, h.BeforeP50ms, h.BeforeP99ms)
		inflight := "one per client"
		if h.Inflight > 0 {
			inflight = fmt.Sprint(h.Inflight)
		}
		fmt.Fprintf(tw, "  requests (in flight: %s) / IMs received\t%d (%.0f/s) / %d\t\t\n", inflight, h.Latest+h.Before, h.PerSec, h.Messages)
		fmt.Fprintf(tw, "  store filled in\t%.1f s (%.0f IMs/s)\t\t\n", h.FillS, h.FillPerSec)
	}
	if p := r.Probes; p != nil {
		fmt.Fprintf(tw, "probes (%d steps)\t%.0f ms\t\t\n", len(p.Steps), p.Ms)
	}
}
