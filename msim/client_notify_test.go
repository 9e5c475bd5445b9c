package msim

// Tests of the Notify/TakeEvents hand-off against the scripted fake server:
// order, a reader that never waits for its owner, overflow, and Close.

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// notifier is an owner's side of Notify: a coalescing wake-up channel and a
// count of calls.
type notifier struct {
	ch    chan struct{}
	calls atomic.Int64
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{}, 1)} }

func (n *notifier) notify() {
	n.calls.Add(1)
	select {
	case n.ch <- struct{}{}:
	default:
	}
}

// notifyClient logs in to the fake with Notify set.
func notifyClient(t *testing.T, mod func(*ClientConfig)) (*Client, *fakeConn, *notifier) {
	t.Helper()
	n := newNotifier()
	c, fc := loggedIn(t, func(cfg *ClientConfig) {
		cfg.Notify = n.notify
		if mod != nil {
			mod(cfg)
		}
	})
	return c, fc, n
}

// takeUntil takes events as Notify announces them until done(all) holds.
func takeUntil(t *testing.T, c *Client, n *notifier, done func([]Event) bool) []Event {
	t.Helper()
	timeout := time.After(waitLimit)
	var all []Event
	for {
		all = c.TakeEvents(all)
		if done(all) {
			return all
		}
		select {
		case <-n.ch:
		case <-timeout:
			t.Fatalf("took %d events, then none for %v", len(all), waitLimit)
		}
	}
}

// untilDisconnected is a takeUntil condition: the DisconnectedEvent came.
func untilDisconnected(evs []Event) bool {
	if len(evs) == 0 {
		return false
	}
	_, ok := evs[len(evs)-1].(DisconnectedEvent)
	return ok
}

// checkFinal checks that evs ends with the only DisconnectedEvent, that
// nothing more comes, and returns it.
func checkFinal(t *testing.T, c *Client, evs []Event) DisconnectedEvent {
	t.Helper()
	for i, ev := range evs[:len(evs)-1] {
		if _, ok := ev.(DisconnectedEvent); ok {
			t.Fatalf("DisconnectedEvent at %d of %d, want it last", i, len(evs))
		}
	}
	d, ok := evs[len(evs)-1].(DisconnectedEvent)
	if !ok {
		t.Fatalf("last event got %T, want DisconnectedEvent", evs[len(evs)-1])
	}
	if more := c.TakeEvents(nil); len(more) != 0 {
		t.Fatalf("TakeEvents after the DisconnectedEvent got %d events, want none", len(more))
	}
	return d
}

// imTexts lists the texts of the IMs among evs.
func imTexts(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		if im, ok := ev.(IMEvent); ok {
			out = append(out, im.Text)
		}
	}
	return out
}

func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

// TestNotifyEventsInOrder: events written by the server come out of
// TakeEvents in the order written, whatever the owner's pace, and Events is
// nil.
func TestNotifyEventsInOrder(t *testing.T) {
	t.Parallel()
	c, fc, n := notifyClient(t, nil)
	if ch := c.Events(); ch != nil {
		t.Errorf("Events() got %v, want nil with Notify", ch)
	}
	login := takeUntil(t, c, n, func(evs []Event) bool { return len(evs) > 0 })
	if p, ok := login[0].(PresenceEvent); !ok || p.UID != 2001 {
		t.Errorf("first event got %#v, want bob's presence from the login", login[0])
	}

	const ims = 300
	var want []string // "im <i>" or "typing <i>" in the order written
	for i := range ims {
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)))
		want = append(want, "im "+strconv.Itoa(i))
		if i%10 == 0 {
			fc.write(NewInt("bm", BMAction).AddInt("f", 2002).Add("msg", "%typing%"))
			want = append(want, "typing "+strconv.Itoa(i))
		}
	}
	last := 0
	evs := takeUntil(t, c, n, func(evs []Event) bool { return len(imTexts(evs)) == ims })
	var got []string
	for _, ev := range evs {
		switch ev := ev.(type) {
		case IMEvent:
			got = append(got, "im "+ev.Text)
			last, _ = strconv.Atoi(ev.Text)
		case TypingEvent:
			got = append(got, "typing "+strconv.Itoa(last))
		default:
			t.Errorf("unexpected event %#v", ev)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %d events %q…, want %d in the order written", len(got), got[:min(len(got), 5)], len(want))
	}
	// takeUntil waits on Notify: every event queued was followed by a call.
	if calls := n.calls.Load(); calls == 0 || calls > int64(len(evs)+len(login)) {
		t.Errorf("Notify called %d times for %d events, want once for each batch queued, at most once per event", calls, len(evs)+len(login))
	}
}

// TestNotifyNeverBlocksReader: an owner that takes nothing for a while does
// not hold up the reader: a request made meanwhile gets its reply, and the
// events are all there afterwards.
func TestNotifyNeverBlocksReader(t *testing.T) {
	t.Parallel()
	// EventQueue is the Events channel's buffer: Notify has no use for it.
	c, fc, n := notifyClient(t, func(cfg *ClientConfig) { cfg.EventQueue = 1 })
	c.TakeEvents(nil) // the login's presence
	const ims = 1000
	for i := range ims {
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := c.LookupUser(ctx, "bob"); err != nil { // read after all the IMs
		t.Fatalf("LookupUser with %d events untaken: %v", ims, err)
	}
	evs := c.TakeEvents(nil) // no wait: the reply came after the IMs
	if got := imTexts(evs); !reflect.DeepEqual(got, numbered(ims)) {
		t.Errorf("got %d IMs, want %d in order", len(got), ims)
	}
	if calls := n.calls.Load(); calls == 0 || calls > ims {
		t.Errorf("Notify called %d times for %d IMs, want once for each batch queued, at most once per IM", calls, ims)
	}
	if more := c.TakeEvents(nil); len(more) != 0 {
		t.Errorf("second TakeEvents got %d events, want none", len(more))
	}
}

// TestNotifyOverflow: EventBacklog counts the events not taken; one more
// ends the session with DisconnectOverflow, after exactly the backlog.
func TestNotifyOverflow(t *testing.T) {
	t.Parallel()
	c, fc, n := notifyClient(t, func(cfg *ClientConfig) { cfg.EventBacklog = 4 })
	c.TakeEvents(nil) // the login's presence
	for i := range 20 {
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)))
	}
	fc.waitEOF() // the client gave up on its own
	evs := takeUntil(t, c, n, untilDisconnected)
	d := checkFinal(t, c, evs)
	if d.Reason != DisconnectOverflow || !errors.Is(d.Err, ErrEventOverflow) {
		t.Errorf("got %v (%v), want overflow", d.Reason, d.Err)
	}
	if got := imTexts(evs); !reflect.DeepEqual(got, numbered(4)) {
		t.Errorf("IMs before the overflow got %q, want the first 4", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := c.LookupUser(ctx, "bob"); !errors.Is(err, ErrDisconnected) {
		t.Errorf("LookupUser after overflow got %v, want ErrDisconnected", err)
	}
}

// TestOverflowNamesTheDroppedIM: the IM that finds the backlog full is
// not queued, but it is not lost without a trace: the DisconnectedEvent
// counts it and names its sender, so the owner can tell the user.
func TestOverflowNamesTheDroppedIM(t *testing.T) {
	t.Parallel()
	c, fc, n := notifyClient(t, func(cfg *ClientConfig) { cfg.EventBacklog = 4 })
	c.TakeEvents(nil) // the login's presence
	for i := range 4 {
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)))
	}
	fc.write(NewInt("bm", BMIM).AddInt("f", 2002).Add("msg", "past the backlog"))
	fc.waitEOF()
	evs := takeUntil(t, c, n, untilDisconnected)
	d := checkFinal(t, c, evs)
	if d.Reason != DisconnectOverflow {
		t.Errorf("got %v (%v), want overflow", d.Reason, d.Err)
	}
	if got := imTexts(evs); !reflect.DeepEqual(got, numbered(4)) {
		t.Errorf("IMs before the overflow got %q, want the first 4", got)
	}
	if d.DroppedIMs != 1 || !reflect.DeepEqual(d.DroppedFrom, []UID{2002}) {
		t.Errorf("dropped got %d from %v, want 1 from [2002]", d.DroppedIMs, d.DroppedFrom)
	}
}

// TestNotifyTakingKeepsBacklog: taking events makes room, so a session whose
// owner keeps up never overflows however many events it gets.
func TestNotifyTakingKeepsBacklog(t *testing.T) {
	t.Parallel()
	const backlog = 4
	c, fc, n := notifyClient(t, func(cfg *ClientConfig) { cfg.EventBacklog = backlog })
	c.TakeEvents(nil)
	for round := range 10 { // many times the backlog in all
		for i := range backlog {
			fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(round*backlog+i)))
		}
		evs := takeUntil(t, c, n, func(evs []Event) bool { return len(imTexts(evs)) == backlog || untilDisconnected(evs) })
		if untilDisconnected(evs) {
			t.Fatalf("round %d: disconnected (%v), want room made by TakeEvents", round, evs[len(evs)-1].(DisconnectedEvent).Reason)
		}
	}
}

// TestNotifyClose is not parallel: it checks for leaked goroutines. IMs
// received before Close and not taken come out of TakeEvents after it,
// followed by the DisconnectedEvent; Notify is not called after Close
// returns.
func TestNotifyClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the fakes' cleanups
	func() {
		c, fc, n := notifyClient(t, nil)
		c.TakeEvents(nil)
		for i := range 50 {
			fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)))
		}
		if _, err := c.LookupUser(context.Background(), "bob"); err != nil { // barrier: the IMs were read
			t.Fatal(err)
		}
		c.Close()
		calls := n.calls.Load()
		evs := c.TakeEvents(nil) // everything is there once Close returns
		if len(evs) == 0 {
			t.Fatal("TakeEvents after Close got nothing, want the IMs and the DisconnectedEvent")
		}
		d := checkFinal(t, c, evs)
		if d.Reason != DisconnectClosed || !errors.Is(d.Err, ErrClosed) {
			t.Errorf("got %v (%v), want closed", d.Reason, d.Err)
		}
		if got := imTexts(evs); !reflect.DeepEqual(got, numbered(50)) {
			t.Errorf("got IMs %q, want the 50 received before Close", got)
		}
		if err := c.SendIM(context.Background(), 2001, "x"); !errors.Is(err, ErrClosed) {
			t.Errorf("SendIM after Close got %v, want ErrClosed", err)
		}
		c.Close()
		if after := n.calls.Load(); after != calls {
			t.Errorf("Notify called %d times after Close returned, want 0", after-calls)
		}
		fc.waitEOF()
	}()
	// The link was lost before Close: the DisconnectedEvent says so.
	func() {
		c, fc, n := notifyClient(t, nil)
		fc.nc.Close()
		d := checkFinal(t, c, takeUntil(t, c, n, untilDisconnected))
		if d.Reason != DisconnectNetwork {
			t.Errorf("got %v, want network", d.Reason)
		}
		c.Close()
		if more := c.TakeEvents(nil); len(more) != 0 {
			t.Errorf("TakeEvents after Close got %d events, want none", len(more))
		}
	}()
}

// TestNotifyCloseReportsIMs: with Notify as with Events, a Close that gave
// up on a stuck write reports the IMs never sent and those written just
// before, in the final event.
func TestNotifyCloseReportsIMs(t *testing.T) {
	t.Parallel()
	n := newNotifier()
	c, fc, g, _ := gatedClient(t, func(cfg *ClientConfig) {
		cfg.closeGrace = 50 * time.Millisecond
		cfg.Notify = n.notify
	})
	sendIMs(t, c, "out")
	receivedIMs(t, fc, "out")
	g.hold()
	sendIMs(t, c, "stuck1", "stuck2")
	c.Close()
	d := checkFinal(t, c, c.TakeEvents(nil))
	if d.Reason != DisconnectClosed {
		t.Errorf("reason got %v, want closed", d.Reason)
	}
	if got := texts(d.Unsent); !reflect.DeepEqual(got, []string{"stuck1", "stuck2"}) {
		t.Errorf("Unsent got %q, want stuck1, stuck2", got)
	}
	if got := texts(d.Unconfirmed); !reflect.DeepEqual(got, []string{"out"}) {
		t.Errorf("Unconfirmed got %q, want out", got)
	}
}

// TestTakeEventsWithoutNotify: a client on Events gives nothing to
// TakeEvents (the events stay on the channel).
func TestTakeEventsWithoutNotify(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, nil)
	fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", "hello"))
	if _, err := c.LookupUser(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	dst := []Event{ZapEvent{}}
	if got := c.TakeEvents(dst); len(got) != 1 {
		t.Errorf("TakeEvents got %d events, want dst unchanged (1)", len(got))
	}
	for {
		if im, ok := nextEvent(t, c).(IMEvent); ok {
			if im.Text != "hello" {
				t.Errorf("got IM %q, want hello", im.Text)
			}
			break
		}
	}
}

// BenchmarkEventHandoff measures the hand-off of IMs from the goroutine
// that queues them (the reader, here a loop) to the owner's: through the
// pump and the Events channel, or through Notify and TakeEvents. "one" hands
// over one IM at a time (the latency of a quiet session); "window" lets up
// to a channel's buffer of IMs be in flight (a busy one).
func BenchmarkEventHandoff(b *testing.B) {
	for _, mode := range []string{"events", "notify"} {
		for _, inFlight := range []int{1, DefaultEventQueue} {
			name := mode + "/one"
			if inFlight > 1 {
				name = mode + "/window"
			}
			b.Run(name, func(b *testing.B) { benchHandoff(b, mode == "notify", inFlight) })
		}
	}
}

func benchHandoff(b *testing.B, notify bool, inFlight int) {
	cfg := ClientConfig{}
	wake := make(chan struct{}, 1)
	if notify {
		cfg.Notify = func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	cfg.setDefaults()
	c := newClient(cfg, nil)
	if !notify {
		c.wg.Add(1)
		go c.pump()
	}
	window := make(chan struct{}, inFlight)
	got := make(chan int)
	go func() {
		n := 0
		if notify {
			var buf []Event
			for n < b.N {
				<-wake
				buf = c.TakeEvents(buf[:0])
				for range buf {
					<-window
				}
				n += len(buf)
			}
		} else {
			for n < b.N {
				if _, ok := (<-c.Events()).(IMEvent); ok {
					<-window
					n++
				}
			}
		}
		got <- n
	}()
	ev := IMEvent{From: 2001, Text: "benchmark", Markup: "benchmark"}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		window <- struct{}{}
		c.emit(ev)
	}
	if n := <-got; n != b.N {
		b.Fatalf("got %d IMs, want %d", n, b.N)
	}
	b.StopTimer()
	close(c.closing)
	c.wg.Wait()
}

// TestDownKeepsWhatTheReaderHas: when the link is declared down (a
// failed write, say) while the reader still has messages it read from the
// socket, those become events before the DisconnectedEvent: none is lost
// because the failure came from the other side of the connection.
func TestDownKeepsWhatTheReaderHas(t *testing.T) {
	t.Parallel()
	n := newNotifier()
	gate, stalled := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var armed atomic.Bool
	c, fc := loggedIn(t, func(cfg *ClientConfig) {
		cfg.Notify = func() {
			if armed.Load() {
				once.Do(func() { close(stalled); <-gate }) // the reader waits here
			}
			n.notify()
		}
	})
	c.TakeEvents(nil) // the login's presence
	armed.Store(true)
	var burst strings.Builder
	for i := range 5 {
		burst.Write(Encode(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i))))
	}
	fc.writeRaw(burst.String()) // one write: the reader takes it in one read
	<-stalled                   // the first IM is queued, the others are in the reader's buffer
	c.down(DisconnectNetwork, errors.New("a write failed"))
	close(gate)
	evs := takeUntil(t, c, n, untilDisconnected)
	checkFinal(t, c, evs)
	if got := imTexts(evs); !reflect.DeepEqual(got, numbered(5)) {
		t.Errorf("IMs: got %q, want all 5 before the DisconnectedEvent", got)
	}
}

// TestOverflowCountsTheDroppedUnreadableIM: a message that may be an IM,
// which the client could not read (reported as ErrorEvent.Unreadable),
// that finds the backlog full is counted with the IMs dropped, though it
// names no sender.
func TestOverflowCountsTheDroppedUnreadableIM(t *testing.T) {
	t.Parallel()
	c, fc, n := notifyClient(t, func(cfg *ClientConfig) { cfg.EventBacklog = 4 })
	c.TakeEvents(nil) // the login's presence
	for i := range 4 {
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)))
	}
	fc.write(NewInt("bm", BMIM).Add("f", "tom").Add("msg", "past the backlog"))
	fc.waitEOF()
	evs := takeUntil(t, c, n, untilDisconnected)
	d := checkFinal(t, c, evs)
	if d.Reason != DisconnectOverflow {
		t.Errorf("got %v (%v), want overflow", d.Reason, d.Err)
	}
	if d.DroppedIMs != 1 || len(d.DroppedFrom) != 0 {
		t.Errorf("dropped got %d from %v, want 1 from no one", d.DroppedIMs, d.DroppedFrom)
	}
}
