package channel

import (
	"errors"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// The IMs held for a user who keeps nothing, lost as the bridge forgets
// their memory, count as dropped (msimircd_ims_dropped_total), as those
// the outbox tells lost do: told as identify or register leaves the
// user, or logged as the session ends.
func TestForgottenHeldIMsCountDropped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(r *rig)
	}{
		{"identify or register", func(r *rig) {
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
		}},
		{"the session's end", func(r *rig) {
			b := r.s.b
			b.mu.Lock()
			b.sessions[r.s.user.Name] = r.s
			b.mu.Unlock()
			b.wg.Add(1) // as Connect counts the sessions it runs
			b.ended(r.s)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, reg := metricsRig(t)
			r.s.user.Ephemeral = true
			r.s.b.mu.Lock()
			r.s.b.memory[r.s.user.Name] = r.s.mem // as the bridge keeps it, to forget it
			r.s.b.mu.Unlock()
			for _, text := range []string{"held one", "held two", "held three"} {
				r.s.mem.hold(r.a.cfg.Email, msim.IMEvent{From: 7, Text: text, Time: time.Now()})
			}
			before := promtest.Value(t, reg, "msimircd_ims_dropped_total")
			tc.leave(r)
			if got := promtest.Value(t, reg, "msimircd_ims_dropped_total") - before; got != 3 {
				t.Errorf("IMs counted dropped as the memory was forgotten: got %v, want 3", got)
			}
		})
	}
}

// The history entries a failed drop leaves out count as dropped from the
// history (msimircd_history_dropped_total), as any other entry left out
// does: those past what the session keeps while the drop is under way,
// and, for a session that ended meanwhile, those the history's writer
// refuses as the drop's worker records them.
func TestDropsLeftOutHistoryCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(r *rig)
		want float64
	}{
		{"the drop fails", func(r *rig) {
			r.s.dropping, r.s.dropHistLost = true, 2
			r.s.dropped(replyCtx{}, "alice", errors.New("disk full"), nil)
		}, 2},
		{"the drop fails after the session ended", func(r *rig) {
			w := startHistoryWriter(nil, false, quietLog(), nil, time.Hour)
			w.close() // refuses every entry
			r.s.b.hist = w
			e := store.HistoryEntry{MsgID: "m1", Time: time.Now(), Account: r.a.cfg.Email, Buddy: 7, Kind: kindIM, Text: "kept meanwhile"}
			r.s.b.keepDropLeftovers("alice", dropLeftovers{hist: []store.HistoryEntry{e}, lost: 2}, r.s.log)
		}, 2 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, reg := metricsRig(t)
			before := promtest.Value(t, reg, "msimircd_history_dropped_total")
			tc.fail(r)
			if got := promtest.Value(t, reg, "msimircd_history_dropped_total") - before; got != tc.want {
				t.Errorf("history entries counted dropped: got %v, want %v", got, tc.want)
			}
		})
	}
}
