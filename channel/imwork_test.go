package channel

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/internal/allocs"
	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// quickStore takes every history batch at once.
type quickStore struct{ store.Store }

func (quickStore) AppendHistoryBatch(_ context.Context, batch []store.HistoryAppend, res []store.HistoryResult) []store.HistoryResult {
	res = res[:0]
	for _, a := range batch {
		res = append(res, store.HistoryResult{Entry: a.Entry})
	}
	return res
}

// imWorkRig is bobOnline with the bridge's metrics on and, unless
// history is "off", a history writer over a store that takes every batch
// at once ("on") or takes none ("behind": the writer's queue is full, as
// in a gateway busier than its store).
func imWorkRig(t testing.TB, history string) (r *rig, cl *fakeMSIM, q *quietIRC, at *attachment, reg *prometheus.Registry) {
	t.Helper()
	r, cl, q, at = bobOnline(t)
	reg = prometheus.NewRegistry()
	r.s.b.met = newBridgeMetrics(reg)
	switch history {
	case "on":
		w := startHistoryWriter(quickStore{}, false, quietLog(), r.s.b.met, time.Millisecond)
		r.s.b.hist = w
		t.Cleanup(w.close)
	case "behind":
		st := &stalledStore{release: make(chan struct{})}
		w := startHistoryWriter(st, false, quietLog(), r.s.b.met, time.Hour)
		r.s.b.hist = w
		t.Cleanup(func() {
			close(st.release)
			w.close()
		})
		for !r.s.b.hist.behind() {
			r.s.b.hist.append("bob", store.HistoryEntry{}, func(error) {})
		}
	}
	return r, cl, q, at, reg
}

// BenchmarkIMToIRC: the session's work for an IM from a buddy, from the
// MSIM client's event to the IRC client's Deliver (a fake that reports it
// shown at once), with metrics and the history as named.
func BenchmarkIMToIRC(b *testing.B) {
	for _, h := range []string{"off", "on", "behind"} {
		b.Run("history="+h, func(b *testing.B) {
			r, _, _, _, _ := imWorkRig(b, h)
			var ev msim.Event = msim.IMEvent{From: 7, Text: "hello there, how are you today?", Time: time.Now(),
				Markup: "<p><f f='Times' h='16'>hello there, how are you today?</f></p>"}
			b.ReportAllocs()
			for b.Loop() {
				r.s.onMSIM(r.a, r.a.gen, ev)
			}
		})
	}
}

// BenchmarkIMBatchToIRC is BenchmarkIMToIRC for a batch of IMs taken
// from the MSIM client at once (takeMSIM), as at full load; an op is the
// batch, and ns/IM its time per IM.
func BenchmarkIMBatchToIRC(b *testing.B) {
	const ims = 8
	for _, h := range []string{"off", "on", "behind"} {
		b.Run("history="+h, func(b *testing.B) {
			r, cl, _, _, _ := imWorkRig(b, h)
			r.a.client = &batchMSIM{fakeMSIM: cl, batch: imBatch(ims)}
			b.ReportAllocs()
			for b.Loop() {
				r.s.takeMSIM()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ims), "ns/IM")
		})
	}
}

// BenchmarkIMFromIRC: the session's work for a message the IRC client
// sends a buddy, from the attachment's Message to the MSIM client's
// SendIM (a fake), with metrics and the history as named.
func BenchmarkIMFromIRC(b *testing.B) {
	for _, h := range []string{"off", "on", "behind"} {
		b.Run("history="+h, func(b *testing.B) {
			r, cl, _, at, _ := imWorkRig(b, h)
			cl.mu.Lock()
			cl.sent = make([]string, 0, 16) // the fake's record allocates nothing while measured
			cl.mu.Unlock()
			in := ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "hello there, how are you today?", MsgID: "m1", Time: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				at.Message(in)
				for len(r.s.events) > 0 {
					r.s.handleQueued(<-r.s.events)
				}
				cl.mu.Lock()
				cl.sent = cl.sent[:0]
				cl.mu.Unlock()
			}
		})
	}
}

// TestStyledIMRenderedOnce: an IM with styles from a buddy is rendered
// for IRC once, for its history entry and the IRC client alike: with the
// history kept it allocates what it does without the history, but for
// the entry's place in the writer's queue.
func TestStyledIMRenderedOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build")
	}
	var ev msim.Event = msim.IMEvent{From: 7, Text: "bold and plain", Time: time.Now(),
		Markup: "<p><f f='Arial' h='13' s='1'>bold</f> and plain</p>"}
	perIM := func(history string) float64 {
		r, _, _, _, _ := imWorkRig(t, history)
		im := func() { r.s.onMSIM(r.a, r.a.gen, ev) }
		for range 100 { // the queue's array, the ids' state
			im()
		}
		const runs = 100
		return float64(allocs.Least(5, func() func() {
			return func() {
				for range runs {
					im()
				}
			}
		})) / runs
	}
	off, on := perIM("off"), perIM("on")
	t.Logf("per styled IM: %.1f allocations without history, %.1f with", off, on)
	if on > off+maxHistEntryAllocs {
		t.Errorf("a styled IM with history: %.1f allocations, want at most %.1f (%.1f without history, the text rendered once)", on, off+maxHistEntryAllocs, off)
	}
}

// maxHistEntryAllocs: what an entry may cost the session beyond the IM
// (the writer's chunks are reused; a new one now and then).
const maxHistEntryAllocs = 0.5

// countingCounter counts the updates of a counter.
type countingCounter struct {
	prometheus.Counter
	updates int
}

func (c *countingCounter) Inc() {
	c.updates++
	c.Counter.Inc()
}

func (c *countingCounter) Add(v float64) {
	c.updates++
	c.Counter.Add(v)
}

// TestHistoryLeftOutCountedPerTurn: the IMs a session leaves out of a
// full history are counted once per turn of its loop, not one update per
// IM of a counter every session updates, and exactly: once the turn is
// over the metric holds every one.
func TestHistoryLeftOutCountedPerTurn(t *testing.T) {
	r, cl, _, _, reg := imWorkRig(t, "behind")
	counted := &countingCounter{Counter: r.s.b.met.histDrop}
	r.s.b.met.histDrop = counted
	before := promtest.Value(t, reg, "msimircd_history_dropped_total")
	const ims = 20
	for range ims {
		cl.push(msim.IMEvent{From: 7, Text: "left out of the history", Time: time.Now()})
	}
	end := runLoop(r)
	done := make(chan struct{})
	r.s.post(call(func() {
		// After the turn that took the IMs; the fake store keeps no
		// history for the session's end to read.
		r.s.b.hist = nil
		close(done)
	}))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not take the IMs")
	}
	end()
	if got := promtest.Value(t, reg, "msimircd_history_dropped_total") - before; got != ims {
		t.Errorf("entries counted as left out: %v, want %d", got, ims)
	}
	if counted.updates != 1 {
		t.Errorf("the counter was updated %d times for %d IMs taken in one turn, want once", counted.updates, ims)
	}
}

// capsIRC counts the questions about its caps.
type capsIRC struct {
	*quietIRC
	asked int
}

func (c *capsIRC) HasCap(string) bool {
	c.asked++
	return true
}

// TestLiveIMAsksNoCaps: a live IM is handed to each client as it is, so
// no client is asked whether it has server-time (a question to ircd per
// IM and client); a late one, whose time a client without server-time is
// shown in its text, asks.
func TestLiveIMAsksNoCaps(t *testing.T) {
	for _, n := range []int{1, 2} {
		r, _, q, _ := bobOnline(t)
		c := &capsIRC{quietIRC: q}
		r.s.cl.ats = nil
		for range n {
			r.s.cl.ats = append(r.s.cl.ats, newAttachment(c, r.s, nil))
		}
		r.s.irc = r.s.cl
		r.s.onMSIM(r.a, r.a.gen, msim.IMEvent{From: 7, Text: "live", Time: time.Now()})
		if c.asked != 0 {
			t.Errorf("%d clients: a live IM asked the clients' caps %d times, want none", n, c.asked)
		}
		r.s.onMSIM(r.a, r.a.gen, msim.IMEvent{From: 7, Text: "late", Time: time.Now().Add(-time.Hour), Offline: true})
		if c.asked != n {
			t.Errorf("%d clients: a late IM asked the clients' caps %d times, want %d", n, c.asked, n)
		}
		if got := q.delivered; got != 2*n {
			t.Errorf("%d clients: %d deliveries, want %d", n, got, 2*n)
		}
	}
}

// TestKickWakesOnlyAWaitingLoop: work left while the session's loop is
// not waiting (it runs, or has not looked yet) leaves no wake-up on its
// channel (a send, and a turn of the loop for nothing, per IM at full
// load); the loop finds the work as it looks before it waits. Work left
// while it waits wakes it.
func TestKickWakesOnlyAWaitingLoop(t *testing.T) {
	r, cl, _, _ := bobOnline(t)
	select { // a wake-up the login's steps left
	case <-r.s.wake:
	default:
	}
	r.s.rmu.Lock()
	r.s.waiting = false // as while the loop runs
	r.s.rmu.Unlock()
	r.s.kick()
	if n := len(r.s.wake); n != 0 {
		t.Errorf("a kick with the loop not waiting left %d wake-ups, want none", n)
	}
	irc := &signalIRC{fakeIRC: r.irc, got: make(chan struct{})}
	r.s.irc = irc
	r.s.cl.ats = []*attachment{newAttachment(irc, r.s, nil)}
	defer runLoop(r)()
	for i := range 3 {
		cl.push(msim.IMEvent{From: 7, Text: "wake up"})
		select {
		case <-irc.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("IM %d: the loop did not wake", i+1)
		}
	}
}

// BenchmarkSessionBusy: messages from the IRC client reach a session whose
// loop runs on a goroutine of its own, posted as fast as it takes them;
// the loop waits only when it has taken them all.
func BenchmarkSessionBusy(b *testing.B) {
	r, cl, _, at, _ := imWorkRig(b, "off")
	cl.mu.Lock()
	cl.sent = make([]string, 0, 1<<16)
	cl.mu.Unlock()
	defer runLoop(r)()
	in := ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "hello there, how are you today?", MsgID: "m1", Time: time.Now()}
	b.ReportAllocs()
	posted, sent := 0, 0
	for b.Loop() {
		at.Message(in)
		if posted++; posted%4096 == 0 {
			sent += cl.takeSent()
		}
	}
	for sent += cl.takeSent(); sent < posted; sent += cl.takeSent() {
		time.Sleep(100 * time.Microsecond)
	}
}

// TestShownIMLeavesTheSessionNoTurn: the report of an IM shown, with no IM
// waiting for room, leaves the session nothing to do (at full load, a
// wake-up and a turn of its loop per IM); one not shown, or one that
// comes while IMs wait for the window, does.
func TestShownIMLeavesTheSessionNoTurn(t *testing.T) {
	r, _, q, _ := bobOnline(t)
	r.s.onMSIM(r.a, r.a.gen, msim.IMEvent{From: 7, Text: "shown", Time: time.Now()})
	if q.delivered != 1 {
		t.Fatalf("delivered %d IMs, want 1", q.delivered)
	}
	if r.s.out.drained.Load() {
		t.Error("the report of an IM shown left the session a turn, with nothing waiting in the outbox")
	}

	// IMs wait for the window: the report of the one in flight wakes the
	// session, which hands them over.
	held := &heldReportsIRC{quietIRC: q}
	r.s.irc = held
	r.s.cl.ats = []*attachment{newAttachment(held, r.s, nil)}
	r.s.out.inflight.Store(outWindow) // as if a backlog were on its way
	r.s.onMSIM(r.a, r.a.gen, msim.IMEvent{From: 7, Text: "waits", Time: time.Now()})
	if got := len(r.s.out.waiting()); got != 1 {
		t.Fatalf("%d IMs wait in the outbox, want 1", got)
	}
	r.s.out.inflight.Store(0)
	sentOf(r.s, outIM{}, 0)(true) // the backlog's last report
	if !r.s.out.drained.Load() {
		t.Fatal("a report with IMs waiting for the window left the session no turn")
	}
	r.s.out.drained.Store(false)
	r.s.afterReports()
	if got := len(r.s.out.waiting()); got != 0 {
		t.Errorf("%d IMs still wait in the outbox after the report, want none", got)
	}
	if len(held.reports) != 1 {
		t.Fatalf("the waiting IM was not handed over: %d reports", len(held.reports))
	}
	held.reports[0](false) // not shown: held, and the session is told
	if !r.s.out.drained.Load() {
		t.Error("the report of an IM not shown left the session no turn")
	}
}

// heldReportsIRC keeps the reports of what it is given, for the test to
// call.
type heldReportsIRC struct {
	*quietIRC
	reports []func(bool)
}

func (h *heldReportsIRC) Deliver(d ircd.Delivery) bool {
	if d.Sent != nil {
		h.reports = append(h.reports, d.Sent)
	}
	return true
}

// sentOf is the report of it, size bytes in flight, as s makes it.
func sentOf(s *session, it outIM, size int64) func(bool) {
	if it.bd == nil {
		it.bd = s.accounts[0].buddy(7)
		it.ev = msim.IMEvent{From: 7, Text: "backlog"}
	}
	return s.imSent(it, size)
}

// writerIRC reports each delivery from a goroutine of its own, as ircd's
// writer does once it has written it, then tells got.
type writerIRC struct {
	*fakeIRC
	sent chan func(bool)
	got  chan struct{}
}

func (w *writerIRC) Deliver(d ircd.Delivery) bool {
	w.sent <- d.Sent
	return true
}

func (w *writerIRC) write() {
	for f := range w.sent {
		if f != nil {
			f(true)
		}
		w.got <- struct{}{}
	}
}

// BenchmarkSessionWakeReported is BenchmarkSessionWake with the IM's
// report from another goroutine, as ircd's writer sends it.
func BenchmarkSessionWakeReported(b *testing.B) {
	r, cl, q, _ := bobOnline(b)
	irc := &writerIRC{fakeIRC: q.fakeIRC, sent: make(chan func(bool), 1), got: make(chan struct{})}
	go irc.write()
	defer close(irc.sent)
	r.s.irc = irc
	r.s.cl.ats = []*attachment{newAttachment(irc, r.s, nil)}
	defer runLoop(r)()
	var ev msim.Event = msim.IMEvent{From: 7, Text: "hello"}
	b.ReportAllocs()
	for b.Loop() {
		cl.push(ev)
		<-irc.got
	}
}

// takeSent is how many IMs the fake has sent since it was last asked; it
// forgets them (a benchmark's record stays the size it was given).
func (cl *fakeMSIM) takeSent() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := len(cl.sent)
	cl.sent = cl.sent[:0]
	return n
}
