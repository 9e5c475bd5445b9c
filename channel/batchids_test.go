package channel

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/allocs"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// batchMSIM is an MSIM client that hands over the same batch of events
// each time the session takes them, without allocating.
type batchMSIM struct {
	*fakeMSIM
	batch []msim.Event
}

func (b *batchMSIM) TakeEvents(dst []msim.Event) []msim.Event { return append(dst, b.batch...) }

// imBatch is a batch of n IMs from bob (uid 7), as the MSIM client hands
// them over at full load.
func imBatch(n int) []msim.Event {
	evs := make([]msim.Event, n)
	for i := range evs {
		evs[i] = msim.IMEvent{From: 7, Text: "hello there, how are you today?", Time: time.Now()}
	}
	return evs
}

// TestIMBatchToIRCAllocs: the IMs of one batch of events taken from the
// MSIM client have their msgids written into one piece of memory: the
// batch allocates once for them all, not once an IM.
func TestIMBatchToIRCAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build")
	}
	r, cl, q, _ := bobOnline(t)
	const ims = 8
	r.a.client = &batchMSIM{fakeMSIM: cl, batch: imBatch(ims)}
	for range 100 { // the queue's array, the event buffer, the ids' state
		r.s.takeMSIM()
	}
	before := q.delivered
	const runs = 50
	objects := allocs.Least(5, func() func() {
		return func() {
			for range runs {
				r.s.takeMSIM()
			}
		}
	})
	if q.delivered == before {
		t.Fatal("no IM delivered")
	}
	per := float64(objects) / runs
	t.Logf("per batch of %d IMs: %.1f allocations", ims, per)
	if per > maxBatchAllocs {
		t.Errorf("a batch of %d IMs to IRC: %.1f allocations, want at most %d (the batch's msgids)", ims, per, maxBatchAllocs)
	}
}

const maxBatchAllocs = 1 // the batch's msgids

// TestBatchMsgIDs: the msgids of a batch, written into one piece of
// memory, are what each IM or zap would have had alone: a live IM's and a
// zap's start with the time it arrived, an offline IM's with now; each is
// its own, and the IRC client and the history are given the same one.
// They stay as they are once later batches are taken, and the session
// keeps no room for ids between batches.
func TestBatchMsgIDs(t *testing.T) {
	r, cl, q, _ := bobOnline(t)
	m := &msgidIRC{fakeIRC: q.fakeIRC}
	r.s.irc = m
	r.s.cl.ats = []*attachment{newAttachment(m, r.s, nil)}
	st := &recordingStore{}
	w := startHistoryWriter(st, false, quietLog(), r.s.b.met, time.Hour)
	r.s.b.hist = w
	defer w.close()

	came := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	zapped := came.Add(time.Minute)
	b := &batchMSIM{fakeMSIM: cl, batch: []msim.Event{
		msim.IMEvent{From: 7, Text: "live", Time: came},
		msim.PresenceEvent{UID: 7, Status: msim.StatusOnline},
		msim.IMEvent{From: 7, Text: "offline", Time: came, Offline: true},
		msim.ZapEvent{From: 7, Zap: markup.ZapZap, Time: zapped},
		msim.ZapEvent{From: 7, Zap: markup.ZapZap},
	}}
	r.a.client = b
	start := time.Now()
	r.s.takeMSIM()
	if len(m.ids) != 4 {
		t.Fatalf("delivered msgids %q, want 4", m.ids)
	}
	ids := slices.Clone(m.ids)
	kept := make([]string, len(ids))
	for i, id := range ids {
		kept[i] = strings.Clone(id)
	}
	starts := func(id string, at time.Time) bool { return id[:9] == ircd.NewMsgIDAt(at)[:9] }
	for i, id := range ids {
		if at, ok := ircd.MsgIDTime(id); !ok || at.Before(came.Truncate(time.Millisecond)) {
			t.Errorf("msgid %d: %q is not an id ircd makes (time %v, %v)", i, id, at, ok)
		}
	}
	if !starts(ids[0], came) {
		t.Errorf("live IM: msgid %s, want it to start with its time", ids[0])
	}
	now := func(id string) bool {
		at, _ := ircd.MsgIDTime(id)
		return !at.Before(start.Truncate(time.Millisecond))
	}
	if !now(ids[1]) {
		t.Errorf("offline IM: msgid %s, want it to start with now", ids[1])
	}
	if !starts(ids[2], zapped) {
		t.Errorf("zap: msgid %s, want it to start with its time", ids[2])
	}
	if !now(ids[3]) {
		t.Errorf("zap without a time: msgid %s, want it to start with now", ids[3])
	}
	if sorted := slices.Sorted(slices.Values(ids)); len(slices.Compact(sorted)) != len(ids) {
		t.Errorf("msgids %q: want each its own", ids)
	}
	if n := r.s.ids.Cap() - r.s.ids.Len(); n >= ircd.MsgIDLen {
		t.Errorf("room for ids kept after the batch: %d bytes, want none", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !w.sync(ctx, r.s.user.Name) {
		t.Fatal("history: not written")
	}
	var stored []string
	st.mu.Lock()
	for _, batch := range st.batches {
		for _, a := range batch {
			stored = append(stored, a.Entry.MsgID)
		}
	}
	st.mu.Unlock()
	if !slices.Equal(stored, ids) {
		t.Errorf("history msgids %q, want those delivered, %q", stored, ids)
	}

	for range 3 { // later batches, whose ids are written anew
		r.s.takeMSIM()
	}
	if len(m.ids) != 16 {
		t.Fatalf("delivered %d msgids over 4 batches, want 16", len(m.ids))
	}
	if !slices.Equal(ids, kept) {
		t.Errorf("msgids of the first batch became %q once later ones were taken, want %q", ids, kept)
	}
	if sorted := slices.Sorted(slices.Values(m.ids)); len(slices.Compact(sorted)) != len(m.ids) {
		t.Errorf("msgids %q: want each its own", m.ids)
	}
}
