package channel

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// timedIRC keeps the time and text of each delivery by msgid; serverTime
// is whether the client took server-time.
type timedIRC struct {
	*fakeIRC
	serverTime bool
	mu         sync.Mutex
	times      map[string]time.Time
	texts      map[string]string
}

func newTimedIRC(serverTime bool) *timedIRC {
	return &timedIRC{fakeIRC: newFakeIRC(), serverTime: serverTime, times: map[string]time.Time{}, texts: map[string]string{}}
}

func (f *timedIRC) HasCap(name string) bool { return name != "server-time" || f.serverTime }

func (f *timedIRC) Deliver(d ircd.Delivery) bool {
	f.mu.Lock()
	f.times[d.MsgID], f.texts[d.MsgID] = d.Time, d.Text
	f.mu.Unlock()
	return f.fakeIRC.Deliver(d)
}

// TestIMShownWithItsHistoryTime: every client is shown an IM with the time
// it arrived, the time its history entry keeps (CHATHISTORY gives it under
// the same msgid), not the time ircd was handed it, which is later when
// it waited (for the clients to read, for a stranger's profile). Only a
// late IM (one sent while the user was offline) has its time shown as a
// prefix to a client without server-time.
func TestIMShownWithItsHistoryTime(t *testing.T) {
	r, st := historyRig(t)
	r.s.newBuddy(r.a, 7, "bob", "")
	desk, phone := newTimedIRC(true), newTimedIRC(false)
	attachNamed(r, desk, "desk")
	attachNamed(r, phone, "phone")
	arrived := time.Now().Add(-3 * time.Second)
	r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: "live", Time: arrived})
	sent := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: "offline", Time: sent, Offline: true})

	ctx := context.Background()
	r.s.b.hist.sync(ctx, "alice")
	es, err := st.HistorySince(ctx, "alice", 0, 10)
	if err != nil || len(es) != 2 {
		t.Fatalf("history: %v, %v; want the two IMs", es, err)
	}
	for _, e := range es {
		for name, c := range map[string]*timedIRC{"desk": desk, "phone": phone} {
			c.mu.Lock()
			got, text := c.times[e.MsgID], c.texts[e.MsgID]
			c.mu.Unlock()
			if got.UnixMilli() != e.Time.UnixMilli() {
				t.Errorf("%s: %q shown at %v, kept in the history at %v; want one time", name, e.Text, got, e.Time)
			}
			stamped := strings.HasPrefix(text, "[")
			if want := name == "phone" && e.Text == "offline"; stamped != want {
				t.Errorf("%s: %q shown as %q: date prefix %v, want %v", name, e.Text, text, stamped, want)
			}
		}
	}
}

// TestZapShownWithItsHistoryTime: a zap is shown with the time it arrived,
// which its history entry keeps, as an IM is; one held for the user (no
// client took it) keeps that time when it is shown later, with the date
// before it for a client without server-time.
func TestZapShownWithItsHistoryTime(t *testing.T) {
	r, st := historyRig(t)
	r.s.newBuddy(r.a, 7, "bob", "")
	desk := newTimedIRC(true)
	attachNamed(r, desk, "desk")
	r.s.fromUser(r.a, 7, msim.ZapEvent{From: 7, Zap: markup.ZapHug})
	ctx := context.Background()
	r.s.b.hist.sync(ctx, "alice")
	es, err := st.HistorySince(ctx, "alice", 0, 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("history: %v, %v; want the zap", es, err)
	}
	desk.mu.Lock()
	shown := desk.times[es[0].MsgID]
	desk.mu.Unlock()
	if shown.IsZero() || shown.UnixMilli() != es[0].Time.UnixMilli() {
		t.Errorf("the zap shown at %v, kept in the history at %v; want one time", shown, es[0].Time)
	}

	// Held: shown when the account next logs in, with the time it came.
	if _, ok := r.s.mem.holdEvent(r.a.cfg.Email, seqEvent{ev: msim.ZapEvent{From: 7, Zap: markup.ZapHug}, seq: r.s.mem.nextSeq(), msgid: "held-zap"}); !ok {
		t.Fatal("the zap was not held")
	}
	came := time.Now()
	later := newTimedIRC(false)
	attachNamed(r, later, "phone")
	time.Sleep(2 * time.Millisecond)
	for _, se := range r.s.mem.heldFor(r.a.cfg.Email) {
		r.s.fromUserSeq(r.a, 7, se)
	}
	later.mu.Lock()
	got, text := later.times["held-zap"], later.texts["held-zap"]
	later.mu.Unlock()
	if got.IsZero() || got.After(came) {
		t.Errorf("the held zap shown at %v, want the time it was held (before %v)", got, came)
	}
	if !strings.HasPrefix(text, "\x01ACTION [") {
		t.Errorf("the held zap shown as %q to a client without server-time, want its date first", text)
	}
}
