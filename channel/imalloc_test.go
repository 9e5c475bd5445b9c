package channel

import (
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/allocs"
	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
	"github.com/prometheus/client_golang/prometheus"
)

// bobOnline is a rig logged in with bob (uid 7) online, whose IRC side
// records nothing (quietIRC), with one client attached, at.
func bobOnline(t testing.TB) (*rig, *fakeMSIM, *quietIRC, *attachment) {
	t.Helper()
	r := newRig(t, nil)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	q := &quietIRC{fakeIRC: r.irc}
	r.s.irc = q
	at := newAttachment(q, r.s, nil)
	r.s.cl.ats = []*attachment{at} // the only client: no echo to another
	return r, cl, q, at
}

// TestIMToIRCAllocs: an IM from a buddy allocates only its msgid on the
// session's way to the IRC client: not a copy of the event, not a slot of
// the outbox (its array is used again once it runs empty), not the report
// of its fate (pooled with its callback).
func TestIMToIRCAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build")
	}
	r, _, q, _ := bobOnline(t)
	var ev msim.Event = msim.IMEvent{From: 7, Text: "hello there"}
	im := func() { r.s.onMSIM(r.a, r.a.gen, ev) }
	for range 100 { // the queue's array, the ids' state
		im()
	}
	before := q.delivered
	const runs = 200
	objects := allocs.Least(5, func() func() {
		return func() {
			for range runs {
				im()
			}
		}
	})
	bytes := allocs.LeastBytes(5, func() func() {
		return func() {
			for range runs {
				im()
			}
		}
	})
	if got := q.delivered - before; got != 10*runs {
		t.Fatalf("delivered %d IMs, want %d", got, 10*runs)
	}
	t.Logf("per IM: %.1f allocations, %.0f bytes", float64(objects)/runs, float64(bytes)/runs)
	if per := float64(objects) / runs; per > maxIMAllocs {
		t.Errorf("an IM to IRC: %.1f allocations, want at most %d", per, maxIMAllocs)
	}
	if per := float64(bytes) / runs; per > maxIMBytes {
		t.Errorf("an IM to IRC: %.0f bytes allocated, want at most %d", per, maxIMBytes)
	}
}

const (
	maxIMAllocs = 1  // the msgid
	maxIMBytes  = 48 // the msgid's bytes
)

// TestIRCInputAllocs: a message from the IRC client reaches the session as
// a pooled event, not a copy boxed for the queue: posting it, handling it
// and handing it to the MSIM client allocates nothing (the fakes record
// nothing that allocates while measured).
func TestIRCInputAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build (the pool drops items under it)")
	}
	r, cl, _, at := bobOnline(t)
	in := ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "hello there", MsgID: "m1", Time: time.Now()}
	sent := func() int {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return len(cl.sent)
	}
	send := func() {
		n := sent()
		at.Message(in)
		for sent() == n { // past what the login posted meanwhile
			r.s.handleQueued(<-r.s.events)
		}
	}
	for range 100 {
		send()
	}
	cl.mu.Lock()
	cl.sent = make([]string, 0, 4096) // the fake's record allocates nothing while measured
	cl.mu.Unlock()
	n := allocs.Least(5, func() func() { return send })
	if n > maxInputAllocs {
		t.Errorf("a message from the IRC client: %d allocations, want at most %d", n, maxInputAllocs)
	}
}

const maxInputAllocs = 0 // before the pool: 1, the boxed event

// msgidIRC records the msgid of each delivery.
type msgidIRC struct {
	*fakeIRC
	ids []string
}

func (m *msgidIRC) Deliver(d ircd.Delivery) bool {
	m.ids = append(m.ids, d.MsgID)
	return m.fakeIRC.Deliver(d)
}

// TestLiveIMMsgIDFromItsTime: a live IM's msgid starts with the time it
// arrived, which the MSIM client read for it (and its history entry
// keeps): the session reads no clock of its own for it. An offline IM's,
// whose time is when it was sent, starts with now.
func TestLiveIMMsgIDFromItsTime(t *testing.T) {
	r, _, q, _ := bobOnline(t)
	m := &msgidIRC{fakeIRC: q.fakeIRC}
	r.s.irc = m
	r.s.cl.ats = []*attachment{newAttachment(m, r.s, nil)}
	came := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	r.s.onMSIM(r.a, r.a.gen, msim.IMEvent{From: 7, Text: "live", Time: came})
	r.s.onMSIM(r.a, r.a.gen, msim.IMEvent{From: 7, Text: "offline", Time: came, Offline: true})
	if len(m.ids) != 2 {
		t.Fatalf("delivered msgids %q, want 2", m.ids)
	}
	// A msgid's first 9 characters are 45 of its 48 bits of time.
	if got, want := m.ids[0][:9], ircd.NewMsgIDAt(came)[:9]; got != want {
		t.Errorf("live IM: msgid %s starts %s, want %s (its time)", m.ids[0], got, want)
	}
	if got, old := m.ids[1][:9], ircd.NewMsgIDAt(came)[:9]; got == old {
		t.Errorf("offline IM: msgid %s starts with the time it was sent, want now", m.ids[1])
	}
}

// TestIMLeftOutOfAFullHistoryIsNotBuilt: while the history's writer is
// full (a gateway busier than its store), an IM from a buddy is left out
// of the history without its entry being built: its text is not rendered
// again for the store, so it costs what it costs with no history; and it
// is counted as left out, as a refused entry is.
func TestIMLeftOutOfAFullHistoryIsNotBuilt(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build")
	}
	r, _, _, _ := bobOnline(t)
	var ev msim.Event = msim.IMEvent{From: 7, Text: "bold and plain",
		Markup: "<p><f f='Arial' h='13' s='1'>bold</f> and plain</p>"}
	im := func() { r.s.onMSIM(r.a, r.a.gen, ev) }
	const runs = 200
	perIM := func() float64 {
		for range 100 { // the queue's array, the ids' state
			im()
		}
		return float64(allocs.Least(5, func() func() {
			return func() {
				for range runs {
					im()
				}
			}
		})) / runs
	}
	none := perIM() // no history

	reg := prometheus.NewRegistry()
	r.s.b.met = newBridgeMetrics(reg)
	st := &stalledStore{release: make(chan struct{})}
	r.s.b.hist = startHistoryWriter(st, false, quietLog(), r.s.b.met, time.Hour)
	defer func() {
		close(st.release)
		r.s.b.hist.close()
	}()
	for !r.s.b.hist.behind() {
		r.s.b.hist.append("bob", store.HistoryEntry{}, func(error) {})
	}
	if full := perIM(); full > none {
		t.Errorf("an IM left out of a full history: %.1f allocations, want at most %.1f (as with no history)", full, none)
	}
	r.s.countLeftOut() // as the loop does at the end of its turn
	dropped := promtest.Value(t, reg, "msimircd_history_dropped_total")
	const ims = 10
	for range ims {
		im()
	}
	r.s.countLeftOut() // as the loop does at the end of its turn
	if got := promtest.Value(t, reg, "msimircd_history_dropped_total") - dropped; got != ims {
		t.Errorf("entries counted as left out: %v, want one per IM (%d)", got, ims)
	}
	if !r.s.historyFull {
		t.Error("the user was not told that the history leaves entries out")
	}
}
