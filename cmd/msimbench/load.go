package main

// The message load: pairs of IRC clients send each other PRIVMSGs that carry
// a sequence number, a send timestamp and a payload derived from both, so
// the receiver can check every message arrives once, intact and in order.
// The same engine drives the bridge (IRC → msimircd → MSIM → msimircd → IRC)
// and a plain IRC server.

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadOptions size the two load phases.
type loadOptions struct {
	window       int           // closed loop: messages in flight per direction
	duration     time.Duration // closed loop: measured time
	warmup       time.Duration // closed loop: unmeasured lead-in
	rate         float64       // fixed-rate phase: offered IMs/s in all (0 = skip)
	rateDuration time.Duration
	drain        time.Duration // how long to wait for stragglers at the end of a phase
}

// loadResult is what one load run measured.
type loadResult struct {
	Clients     int     `json:"clients"`
	Window      int     `json:"window"`
	IMPerSec    float64 `json:"im_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
	RateOffered float64 `json:"rate_offered,omitempty"`
	RateDone    float64 `json:"rate_achieved,omitempty"`
	RateP50ms   float64 `json:"rate_p50_ms,omitempty"`
	RateP99ms   float64 `json:"rate_p99_ms,omitempty"`
	RateMaxms   float64 `json:"rate_max_ms,omitempty"`

	// The fixed-rate phase's IMs over slowIM, and how many of them were
	// sent during stalls (stalls.go).
	RateSlow         int     `json:"rate_slow,omitempty"`
	RateStalls       int     `json:"rate_stalls,omitempty"`
	RateSlowInStalls float64 `json:"rate_slow_in_stalls,omitempty"`

	Sent       int64  `json:"sent"`
	Delivered  int64  `json:"delivered"`
	Lost       int64  `json:"lost"`
	Errors     int64  `json:"errors"` // duplicates, reorders, corruption, unexpected messages, notices
	FirstError string `json:"first_error,omitempty"`
	// GatewayCPUPerIM is the gateway's CPU time (user and system, both
	// phases) per IM delivered, in µs; bridged runs with a known pid only.
	GatewayCPUPerIM float64 `json:"gateway_cpu_us_per_im,omitempty"`
	// What each phase cost per IM delivered in it, the server's and this
	// process's (the benchmark's clients, and in a bridged run the MSIM
	// server): nil when the server's process is not known. The fixed
	// rate's is over the whole phase, its warm-up and drain included (the
	// latencies leave the warm-up out); the full load's over the measured
	// part only.
	RateCost     *phaseCost `json:"rate_cost,omitempty"`
	FullLoadCost *phaseCost `json:"full_load_cost,omitempty"`
	// The full load's measured IMs and seconds (for pooling phases).
	fullIMs  int64
	fullSecs float64
}

// phaseCost is the CPU, the read and write system calls and the context
// switches per IM of one phase, of the IRC server under test and of this
// process (the calls are zero when /proc does not tell: systemCallsSet).
type phaseCost struct {
	ServerCPUus  float64 `json:"server_cpu_us_per_im"`
	ServerReads  float64 `json:"server_reads_per_im"`
	ServerWrites float64 `json:"server_writes_per_im"`
	BenchCPUus   float64 `json:"bench_cpu_us_per_im"`
	BenchReads   float64 `json:"bench_reads_per_im"`
	BenchWrites  float64 `json:"bench_writes_per_im"`
	// Context switches per IM (switchesSet), of every thread of the
	// server's process and of this process.
	ServerSwitches float64 `json:"server_switches_per_im,omitempty"`
	BenchSwitches  float64 `json:"bench_switches_per_im,omitempty"`
	MachineCPUus   float64 `json:"machine_cpu_us_per_im"` // every process's, these two included
	IMs            int64   `json:"ims"`
	systemCallsSet bool
	switchesSet    bool
}

// costOf is what a phase between s0 and s1 cost per IM for ims IMs; nil
// when either sample is missing or no IM was delivered.
func costOf(s0, s1 cpuSample, ims int64) *phaseCost {
	if !s0.ok || !s1.ok || ims <= 0 {
		return nil
	}
	n := float64(ims)
	us := func(t uint64) float64 { return float64(t) * 1e6 / clockTicks / n }
	c := &phaseCost{
		ServerCPUus: us(s1.gw - s0.gw), BenchCPUus: us(s1.self - s0.self),
		MachineCPUus: us(s1.all - s0.all), IMs: ims,
	}
	if g, b := s1.gwIO.minus(s0.gwIO), s1.selfIO.minus(s0.selfIO); g != (ioCalls{}) && b != (ioCalls{}) {
		c.ServerReads, c.ServerWrites = float64(g.Reads)/n, float64(g.Writes)/n
		c.BenchReads, c.BenchWrites = float64(b.Reads)/n, float64(b.Writes)/n
		c.systemCallsSet = true
		if g.Switches != 0 && b.Switches != 0 {
			c.ServerSwitches, c.BenchSwitches = float64(g.Switches)/n, float64(b.Switches)/n
			c.switchesSet = true
		}
	}
	return c
}

// sample reads the server's and this process's counters; not ok without
// a server.
func (l *load) sample() cpuSample {
	if l.server == nil {
		return cpuSample{}
	}
	return l.server()
}

// flow is one direction of a pair: src sends to dst, whose nick on src's
// side is to.
type flow struct {
	id  int
	src *ircClient
	to  string // the nick src addresses
	sem chan struct{}

	sent atomic.Int64 // written by the sender

	// Receiver side, owned by dst's reader goroutine (read after a drain).
	from  string // the nick dst sees the messages from
	next  int64  // the sequence number expected next
	ok    atomic.Int64
	errs  atomic.Int64
	latMu sync.Mutex
	lat   []int64 // ns, measured phase only
	rate  []rateSample
}

// load is one run of the engine over connected clients.
type load struct {
	t0        time.Time
	flows     []*flow
	delivered atomic.Int64
	phase     atomic.Int32 // 0 = not measuring, 1 = rate phase, 2 = closed loop measured
	errMu     sync.Mutex
	firstErr  string
	errCount  atomic.Int64
	// server, when set, reads the server's (the gateway's or the plain
	// IRC server's) and this process's CPU and system calls, for the cost
	// per IM of each phase.
	server func() cpuSample
}

// historyBusy reports whether a NOTICE is the gateway saying, once, that
// it left IMs out of the history under load: the IMs were delivered, so
// the run goes on (the metrics report how many).
func historyBusy(from string, text []byte) bool {
	return from == "root" && bytes.Contains(text, []byte("too busy to keep your history"))
}

const payloadChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// payload is the text after the header, derived from flow and seq.
func appendPayload(b []byte, flow int, seq int64) []byte {
	off := int((seq*7 + int64(flow)*13) % int64(len(payloadChars)))
	for i := 0; i < 40; i++ {
		b = append(b, payloadChars[(off+i)%len(payloadChars)])
	}
	return b
}

// appendIM renders "PRIVMSG to :seq stamp payload\r\n".
func appendIM(b []byte, f *flow, seq, stamp int64) []byte {
	b = append(b, "PRIVMSG "...)
	b = append(b, f.to...)
	b = append(b, " :"...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, stamp, 10)
	b = append(b, ' ')
	return append(appendPayload(b, f.id, seq), "\r\n"...)
}

func (l *load) fail(f *flow, format string, args ...any) {
	f.errs.Add(1)
	l.errCount.Add(1)
	l.errMu.Lock()
	if l.firstErr == "" {
		l.firstErr = fmt.Sprintf(format, args...)
	}
	l.errMu.Unlock()
}

// receive checks one message of f; it runs on the receiver's reader.
func (l *load) receive(f *flow, from string, text []byte, at time.Time) {
	if nickKey(from) != nickKey(f.from) {
		l.fail(f, "flow %d: message from %q, want %q: %q", f.id, from, f.from, text)
		return
	}
	sp1 := bytes.IndexByte(text, ' ')
	sp2 := -1
	if sp1 > 0 {
		sp2 = bytes.IndexByte(text[sp1+1:], ' ')
	}
	if sp1 <= 0 || sp2 <= 0 {
		l.fail(f, "flow %d: malformed message %q", f.id, text)
		return
	}
	sp2 += sp1 + 1
	seq, err1 := strconv.ParseInt(string(text[:sp1]), 10, 64)
	stamp, err2 := strconv.ParseInt(string(text[sp1+1:sp2]), 10, 64)
	if err1 != nil || err2 != nil {
		l.fail(f, "flow %d: malformed header %q", f.id, text)
		return
	}
	var want [64]byte
	if !bytes.Equal(text[sp2+1:], appendPayload(want[:0], f.id, seq)) {
		l.fail(f, "flow %d seq %d: payload altered: %q", f.id, seq, text)
		return
	}
	switch {
	case seq == f.next:
	case seq > f.next:
		l.fail(f, "flow %d: got seq %d, want %d (gap or reorder)", f.id, seq, f.next)
	default:
		l.fail(f, "flow %d: got seq %d again or late (want %d)", f.id, seq, f.next)
		return
	}
	f.next = seq + 1
	lat := at.Sub(l.t0).Nanoseconds() - stamp
	switch l.phase.Load() {
	case 1:
		f.latMu.Lock()
		f.rate = append(f.rate, rateSample{flow: f.id, sent: stamp, lat: lat})
		f.latMu.Unlock()
	case 2:
		f.latMu.Lock()
		f.lat = append(f.lat, lat)
		f.latMu.Unlock()
	}
	f.ok.Add(1)
	l.delivered.Add(1)
	select {
	case f.sem <- struct{}{}:
	default:
	}
}

// newLoad wires pairs: clients[2i] and clients[2i+1] talk to each other;
// nicks[i] is how the partner addresses client i.
func newLoad(clients []*ircClient, nicks []string, window int) *load {
	l := &load{t0: time.Now()}
	for i, c := range clients {
		p := i ^ 1
		f := &flow{id: i, src: c, to: nicks[p], from: nicks[i], next: 1, sem: make(chan struct{}, window)}
		for range window {
			f.sem <- struct{}{}
		}
		l.flows = append(l.flows, f)
	}
	for i, c := range clients {
		f := l.flows[i^1] // the flow into client i
		c.handlers.Store(&handlers{
			privmsg: func(from string, text []byte, at time.Time) { l.receive(f, from, text, at) },
			notice: func(from string, text []byte) {
				if historyBusy(from, text) {
					return // counted by msimircd_history_dropped_total
				}
				l.fail(f, "%s got a NOTICE from %s: %s", c.nick, from, text)
			},
		})
	}
	return l
}

func (l *load) now() int64 { return time.Since(l.t0).Nanoseconds() }

// closedLoop keeps window messages in flight on f until stop.
func (l *load) closedLoop(f *flow, stop <-chan struct{}) {
	buf := make([]byte, 0, 64<<10)
	w := cap(f.sem)
	for {
		select {
		case <-stop:
			return
		case <-f.sem:
		}
		n := 1
	more:
		for n < w {
			select {
			case <-f.sem:
				n++
			default:
				break more
			}
		}
		buf = buf[:0]
		for range n {
			buf = appendIM(buf, f, f.sent.Add(1), l.now())
		}
		if err := f.src.writeRaw(buf); err != nil {
			l.fail(f, "flow %d: write: %v", f.id, err)
			return
		}
	}
}

// paced sends on f every interval from start (ns since t0) until end; each
// message carries its scheduled time, so queueing delay in the sender counts.
func (l *load) paced(f *flow, interval, start, end int64) {
	buf := make([]byte, 0, 4096)
	next := start
	for next < end {
		now := l.now()
		if now < next {
			time.Sleep(time.Duration(next - now))
			now = l.now()
		}
		buf = buf[:0]
		for next <= now && next < end {
			buf = appendIM(buf, f, f.sent.Add(1), next)
			next += interval
		}
		if len(buf) > 0 {
			if err := f.src.writeRaw(buf); err != nil {
				l.fail(f, "flow %d: write: %v", f.id, err)
				return
			}
		}
	}
}

// drain waits until every flow received what was sent, or d passes.
func (l *load) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		done := true
		for _, f := range l.flows {
			if f.ok.Load()+f.errs.Load() < f.sent.Load() {
				done = false
				break
			}
		}
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run does the fixed-rate phase (if any) and then the closed loop.
func (l *load) run(ctx context.Context, o loadOptions, prog *progress, label string) loadResult {
	res := loadResult{Clients: len(l.flows), Window: o.window}
	if o.rate > 0 && o.rateDuration > 0 {
		n := int64(len(l.flows))
		interval := int64(float64(n) * 1e9 / o.rate) // per flow
		start := l.now() + int64(50*time.Millisecond)
		end := start + o.rateDuration.Nanoseconds()
		var wg sync.WaitGroup
		// Latencies count after the warm-up (logins' background work done).
		measure := time.AfterFunc(time.Duration(start-l.now())+o.warmup, func() { l.phase.Store(1) })
		before := l.delivered.Load()
		c0 := l.sample()
		for i, f := range l.flows {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.paced(f, interval, start+interval*int64(i)/n, end)
			}()
		}
		stopProg := prog.every(label+" fixed rate", func() string {
			return fmt.Sprintf("%d delivered", l.delivered.Load()-before)
		})
		wg.Wait()
		l.drain(o.drain)
		res.RateCost = costOf(c0, l.sample(), l.delivered.Load()-before)
		stopProg()
		measure.Stop()
		l.phase.Store(0)
		res.RateOffered = o.rate
		res.RateDone = float64(l.delivered.Load()-before) / o.rateDuration.Seconds()
		var samples []rateSample
		for _, f := range l.flows {
			f.latMu.Lock()
			samples = append(samples, f.rate...)
			f.latMu.Unlock()
		}
		res.RateSlow, res.RateStalls, res.RateSlowInStalls = findStalls(samples)
		res.RateP50ms, res.RateP99ms, res.RateMaxms = percentiles(latencies(samples))
	}
	if o.duration > 0 && ctx.Err() == nil {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, f := range l.flows {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.closedLoop(f, stop)
			}()
		}
		time.Sleep(o.warmup)
		l.phase.Store(2)
		c1 := l.sample()
		t1, d1 := time.Now(), l.delivered.Load()
		stopProg := prog.every(label+" full load", func() string {
			el := time.Since(t1).Seconds()
			return fmt.Sprintf("%.0f IMs/s", float64(l.delivered.Load()-d1)/el)
		})
		select {
		case <-time.After(o.duration):
		case <-ctx.Done():
		}
		d2, t2 := l.delivered.Load(), time.Now()
		res.FullLoadCost = costOf(c1, l.sample(), d2-d1)
		l.phase.Store(0)
		stopProg()
		close(stop)
		wg.Wait()
		l.drain(o.drain)
		res.fullIMs, res.fullSecs = d2-d1, t2.Sub(t1).Seconds()
		res.IMPerSec = float64(res.fullIMs) / res.fullSecs
		var lat []int64
		for _, f := range l.flows {
			f.latMu.Lock()
			lat = append(lat, f.lat...)
			f.latMu.Unlock()
		}
		res.P50ms, res.P99ms, res.Maxms = percentiles(lat)
	}
	for _, f := range l.flows {
		s, ok := f.sent.Load(), f.ok.Load()
		res.Sent += s
		res.Delivered += ok
		res.Lost += s - ok
	}
	res.Errors = l.errCount.Load()
	res.FirstError = l.firstErr
	if res.Lost > 0 && res.FirstError == "" {
		for _, f := range l.flows {
			if s, ok := f.sent.Load(), f.ok.Load(); s > ok {
				res.FirstError = fmt.Sprintf("flow %d (%s → %s): sent %d, delivered in order %d", f.id, f.src.nick, f.to, s, ok)
				break
			}
		}
	}
	return res
}

// takeRateLat returns the fixed-rate latencies of every flow so far and
// forgets them: the next run's percentiles are its own.
func (l *load) takeRateLat() []int64 {
	var lat []int64
	for _, f := range l.flows {
		f.latMu.Lock()
		lat = append(lat, latencies(f.rate)...)
		f.rate = nil
		f.latMu.Unlock()
	}
	return lat
}

// percentiles returns p50, p99 and max of ns latencies, in ms.
func percentiles(ns []int64) (p50, p99, maxv float64) {
	if len(ns) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ns)
	at := func(q float64) float64 {
		i := int(q * float64(len(ns)-1))
		return float64(ns[i]) / 1e6
	}
	return at(0.50), at(0.99), float64(ns[len(ns)-1]) / 1e6
}

// writeRaw writes b and flushes.
func (c *ircClient) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	return c.bw.Flush()
}
