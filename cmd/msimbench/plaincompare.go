// The bridged gateway and the plain IRC server measured in turns.

package main

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// plainPairs is the bridged gateway and the plain IRC server measured in
// turns, round after round, on two stacks that stay up meanwhile: the
// host's speed drifts over a run (by a fifth within minutes on a shared
// machine), and phases taken minutes apart compare the host with itself
// as much as the two servers. Each round runs both loads (the fixed rate,
// then full load), in the other order in the next round; after its turn
// the gateway settles (its history writer idle) before the other's.
type plainPairs struct {
	Rounds int `json:"rounds"`
	// Bridged and Plain are pooled over the rounds: the full-load rate is
	// every round's IMs over their time, the percentiles (fixed rate and
	// full load) are over every round's IMs, the counts (sent,
	// delivered, lost…) and the gateway's CPU per IM over the rounds; the
	// rest (the phases' costs per IM, the fixed rate's slow IMs and
	// stalls) are the last round's. They are
	// filled in also when a round fails, for its losses to be counted.
	Bridged loadResult `json:"bridged"`
	Plain   loadResult `json:"plain"`
	// Each round's full-load rates (bridged, plain) and the bridged share
	// of the plain rate; its fixed-rate p99s and their ratio (bridged over
	// plain).
	RoundIMPerSec  [][2]float64 `json:"round_im_per_sec"`
	RoundShares    []float64    `json:"round_shares"`
	RoundRateP99ms [][2]float64 `json:"round_rate_p99_ms,omitempty"`
	RoundP99Ratios []float64    `json:"round_rate_p99_ratios,omitempty"`
	// The medians of the rounds' shares and p99 ratios: the figures the
	// relative targets are judged by. A round whose plain figure was not
	// measured (a ratio of 0) is left out of them.
	MedianShare    float64 `json:"median_share"`
	MedianP99Ratio float64 `json:"median_rate_p99_ratio,omitempty"`
	// BridgedSettleSecs: how long the gateway took to settle (its history
	// writer idle) after each of its turns, before the plain server's.
	BridgedSettleSecs []float64 `json:"bridged_settle_s,omitempty"`
}

// plainTurnsPlan says whether the loads are taken in turns after the plain
// scenario (ranIM: the im scenario ran), and what to say when they are not
// for a reason the user may not expect.
func plainTurnsPlan(o options, ranIM, external bool) (run bool, note string) {
	switch {
	case !ranIM || o.plainRounds == 0 || o.duration <= 0:
		return false, ""
	case external:
		// The gateway is not msimbench's: it cannot start a second one,
		// whose accounts -setup did not write.
		return false, "bridged and plain in turns: not with an external gateway (-irc)"
	}
	return true, ""
}

// turnSide is one stack measured in turns.
type turnSide struct {
	name    string
	t       *target // the gateway's stack; nil for the plain server
	clients []*ircClient
	l       *load
	lat     []int64 // every round's fixed-rate latencies
	res     loadResult
	// The full-load IMs and seconds of every round, and the gateway's CPU
	// ticks and the IMs delivered over every round.
	fullIMs          float64
	fullSecs         float64
	ticks, delivered int64
	cpuErr           error
	// settled: the seconds the gateway took to settle after each of its
	// turns (settleAfterTurn), before the other side's.
	settled []float64
}

// settleAfterTurn bounds the wait, after a gateway's turn, for it and its
// history writer to be idle: the entries a full load left queued are
// appended then, rather than during the other side's turn, where they
// would take the CPU the other side is measured on.
const settleAfterTurn = 30 * time.Second

// turnOptions are the options of each side's turn: the full-load phase
// half as long as alone (two sides, several rounds) but at least a
// second, or as long as alone when that is shorter.
func turnOptions(o loadOptions) loadOptions {
	if o.duration > 0 {
		o.duration = max(o.duration/2, min(o.duration, time.Second))
	}
	return o
}

// runPlainPairs brings up a gateway like the im scenario's (gwo) and n
// clients of the plain IRC server at addr (its process pid when known),
// then runs rounds of their loads in turns.
func runPlainPairs(ctx context.Context, e *env, addr string, pid, n int, o loadOptions, rounds int, gwo gwOptions) (pp plainPairs, err error) {
	pp.Rounds = rounds
	if rounds < 1 || o.duration <= 0 {
		return pp, fmt.Errorf("bridged and plain in turns: want rounds ≥ 1 and a full-load phase (got %d rounds, %s)", rounds, o.duration)
	}
	var sides [2]*turnSide // bridged, plain
	defer func() {
		for _, s := range sides {
			if s != nil {
				closeAll(s.clients)
				if s.t != nil {
					s.t.close()
				}
			}
		}
		if sides[0] != nil {
			pp.Bridged = sides[0].pooled()
		}
		if sides[1] != nil {
			pp.Plain = sides[1].pooled()
		}
	}()
	accts := pairAccounts("it", n)
	t, err := e.start("im-turns", accts, gwo)
	if err != nil {
		return pp, err
	}
	sides[0] = &turnSide{name: "bridged", t: t}
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	clients, err := connectAll(cctx, t.ircAddr, accts, func(a *acct) []string { return a.buddies })
	cancel()
	if err != nil {
		return pp, fmt.Errorf("bridged IM in turns: %w", err)
	}
	nicks := make([]string, len(accts))
	for i, a := range accts {
		nicks[i] = a.name
	}
	sides[0].clients, sides[0].l = clients, newLoad(clients, nicks, o.window)
	sides[0].l.server = func() cpuSample { return sampleCPU(t.gw) }
	// Its memory release after the logins (collections) would fall into
	// the first phase: let it pass.
	t.gw.settle(settleAfterLogins)
	pclients, pnicks, err := dialPlain(ctx, e, addr, "pt", n)
	if err != nil {
		return pp, err
	}
	sides[1] = &turnSide{name: "plain", clients: pclients, l: plainLoad(pclients, pnicks, pid, o.window)}

	to := turnOptions(o)
	err = takeTurns(ctx, e, sides, rounds, to, " in turns", func(res [2]loadResult) {
		ims := [2]float64{res[0].IMPerSec, res[1].IMPerSec}
		pp.RoundIMPerSec = append(pp.RoundIMPerSec, ims)
		pp.RoundShares = append(pp.RoundShares, ratio(ims[0], ims[1]))
		if to.rate > 0 && to.rateDuration > 0 {
			p99 := [2]float64{res[0].RateP99ms, res[1].RateP99ms}
			pp.RoundRateP99ms = append(pp.RoundRateP99ms, p99)
			pp.RoundP99Ratios = append(pp.RoundP99Ratios, ratio(p99[0], p99[1]))
		}
	})
	if err != nil {
		return pp, err
	}
	if err := t.gw.alive(); err != nil {
		return pp, err
	}
	pp.BridgedSettleSecs = sides[0].settled
	pp.MedianShare = median(measured(pp.RoundShares))
	pp.MedianP99Ratio = median(measured(pp.RoundP99Ratios))
	return pp, nil
}

// takeTurns runs rounds of o's phases on the two sides in turns, the order
// swapped each round, and hands each round's results (in the sides'
// order) to round; what its labels say after each side's name is how.
func takeTurns(ctx context.Context, e *env, sides [2]*turnSide, rounds int, o loadOptions, how string, round func(res [2]loadResult)) error {
	for r := range rounds {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		var res [2]loadResult
		for _, i := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			s := sides[i]
			var err error
			res[i], err = s.turn(ctx, e, o, fmt.Sprintf("%s%s, round %d of %d", s.name, how, r+1, rounds))
			if err != nil {
				return err
			}
		}
		round(res)
	}
	return nil
}

// turn runs one phase of s's load and adds it to the side's pool.
func (s *turnSide) turn(ctx context.Context, e *env, o loadOptions, label string) (loadResult, error) {
	d0 := s.l.delivered.Load()
	var cpu0, cpu1 uint64
	var err0, err1 error
	if s.t != nil {
		cpu0, err0 = s.t.gw.cpuTicks()
	}
	res := s.l.run(ctx, o, e.prog, label)
	if s.t != nil {
		cpu1, err1 = s.t.gw.cpuTicks()
		s.ticks += int64(cpu1 - cpu0)
		s.cpuErr = cmp.Or(s.cpuErr, err0, err1)
		s.settled = append(s.settled, s.t.gw.settle(settleAfterTurn).Seconds())
	}
	s.delivered += s.l.delivered.Load() - d0
	s.lat = append(s.lat, s.l.takeRateLat()...)
	s.fullIMs += float64(res.fullIMs)
	s.fullSecs += res.fullSecs
	s.res = res
	if res.Lost > 0 || res.Errors > 0 {
		return res, fmt.Errorf("%s: %d lost, %d errors; first: %s", label, res.Lost, res.Errors, res.FirstError)
	}
	return res, nil
}

// pooled is the side's last result with its figures taken over every
// round.
func (s *turnSide) pooled() loadResult {
	res := s.res
	res.RateP50ms, res.RateP99ms, res.RateMaxms = percentiles(s.lat)
	if s.fullSecs > 0 {
		res.IMPerSec = s.fullIMs / s.fullSecs
	}
	if s.t != nil && s.cpuErr == nil && s.delivered > 0 {
		res.GatewayCPUPerIM = float64(s.ticks) * 1e6 / clockTicks / float64(s.delivered)
	}
	return res
}

// measured is xs without its zeros (ratios whose divisor was not
// measured).
func measured(xs []float64) []float64 {
	var m []float64
	for _, x := range xs {
		if x > 0 {
			m = append(m, x)
		}
	}
	return m
}

// ratio is a/b, 0 when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}
