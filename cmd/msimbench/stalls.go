package main

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Where a fixed-rate phase's slow IMs come from. An IM can be slow on its
// own way (a long message, a queue behind it), or because something held
// up every conversation at once: the machine's CPUs taken by other work,
// a collector's pause, a shared queue. The two call for different
// remedies, and a p99 alone does not tell them apart. The IMs over slowIM
// are grouped by when they were due to be sent: a run of slow IMs, each
// less than stallGap after the one before, is one episode (of any length:
// under lasting slowness, one long stall), and an episode that slowed at
// least stallFlows different conversations is a stall.
const (
	slowIM     = 2 * time.Millisecond // the p99 target at 5,000 IMs/s (issue 12)
	stallGap   = 10 * time.Millisecond
	stallFlows = 10
)

// stallRule says in the report what a stall is.
var stallRule = fmt.Sprintf("runs of slow IMs < %v apart, ≥ %d conversations", stallGap, stallFlows)

// rateSample is one IM of a fixed-rate phase: its flow, when it was due
// to be sent (on the load's clock) and its latency, in ns.
type rateSample struct {
	flow      int
	sent, lat int64
}

// latencies returns the samples' latencies.
func latencies(s []rateSample) []int64 {
	out := make([]int64, len(s))
	for i, x := range s {
		out[i] = x.lat
	}
	return out
}

// findStalls returns how many of the samples were slower than slowIM, how
// many stalls there were, and the share of the slow IMs sent during them
// (0 without slow IMs).
func findStalls(s []rateSample) (slow, stalls int, inStalls float64) {
	var slowOnes []rateSample
	for _, x := range s {
		if x.lat > slowIM.Nanoseconds() {
			slowOnes = append(slowOnes, x)
		}
	}
	if len(slowOnes) == 0 {
		return 0, 0, 0
	}
	slices.SortFunc(slowOnes, func(a, b rateSample) int { return cmp.Compare(a.sent, b.sent) })
	counted := 0
	for start := 0; start < len(slowOnes); {
		end := start + 1
		for end < len(slowOnes) && slowOnes[end].sent-slowOnes[end-1].sent < stallGap.Nanoseconds() {
			end++
		}
		flows := map[int]bool{}
		for _, x := range slowOnes[start:end] {
			flows[x.flow] = true
		}
		if len(flows) >= stallFlows {
			stalls++
			counted += end - start
		}
		start = end
	}
	return len(slowOnes), stalls, float64(counted) / float64(len(slowOnes))
}
