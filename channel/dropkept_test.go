package channel

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// deleteThenWait is a store whose DeleteUser deletes the user (or, with
// fail, deletes nothing and fails), says on entered that it did, and
// returns once release is closed: the name is free meanwhile.
type deleteThenWait struct {
	store.Store
	fail             bool
	entered, release chan struct{}
}

func (d *deleteThenWait) DeleteUser(ctx context.Context, name string) error {
	err := errors.New("disk on fire")
	if !d.fail {
		err = d.Store.DeleteUser(ctx, name)
	}
	d.entered <- struct{}{}
	<-d.release
	return err
}

// A login that began before the user confirmed their drop, and ends after
// the session has ended with the drop under way (keepLogin, with the
// owner the dial took as it began), holds its IMs and keeps its notes in
// memory until the drop ends, never in the store: there the hold would
// outlive the delete, or, if the name is registered anew meanwhile, go to
// the new user. If the drop fails, they are the user's after all: the IM
// is held, the note kept, and the user told, at their next connection,
// of the IM left out of their history, which counts as dropped from it.
func TestLoginEndingMidDropKeepsNothingInTheStore(t *testing.T) {
	const email = "alice@msim.test"
	for _, tc := range []struct {
		name string
		fail bool
	}{
		{"the drop goes through", false},
		{"the drop fails", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := sqliteStore(t)
			if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
				t.Fatal(err)
			}
			if err := st.AddAccount(ctx, "alice", store.Account{Email: email, Password: "pw", Channel: "&msim"}); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			r := newRig(t, func(c *Config) { c.Store, c.Metrics = st, reg })
			r.s.b.hist = startHistoryWriter(st, false, quietLog(), nil, time.Hour)
			t.Cleanup(r.s.b.hist.close)
			dw := &deleteThenWait{Store: st, fail: tc.fail, entered: make(chan struct{}, 1), release: make(chan struct{})}
			r.s.b.cfg.Store = dw
			r.s.b.users = &storeDirectory{st: dw}
			r.s.user.registered = true
			mem, err := loadUserMemory(dw, r.s.user, quietLog(), true)
			if err != nil {
				t.Fatal(err)
			}
			mem.met = r.s.b.met
			r.s.mem = mem
			r.s.b.mu.Lock()
			r.s.b.memory["alice"] = mem
			r.s.b.mu.Unlock()
			own := r.s.ownerNow() // as connect takes it, when the dial starts
			histBefore := promtest.Value(t, reg, "msimircd_history_dropped_total")

			r.s.dropUntil = r.clock.Now().Add(time.Minute)
			r.s.cmdYes(replyCtx{}, nil)
			<-dw.entered
			r.s.cancel() // the session ends meanwhile: the login's result is not handled
			r.s.dropEnd()
			if !tc.fail { // the name is taken anew
				if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
					t.Fatal(err)
				}
				if err := st.AddAccount(ctx, "alice", store.Account{Email: email, Password: "pw2", Channel: "&msim"}); err != nil {
					t.Fatal(err)
				}
			}
			cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
			cl.events = []msim.Event{
				msim.IMEvent{From: 7, Text: "offline one", Offline: true, Time: time.Now()},
				msim.ErrorEvent{Unreadable: true, Message: "an IM could not be read"},
			}
			r.s.keepLogin(own, r.a, cl, nil)
			mem.settle()
			held, err := st.HeldIMs(ctx, "alice", email)
			if err != nil {
				t.Fatal(err)
			}
			if len(held) != 0 {
				t.Errorf("held in the store while alice's drop was under way: %d IMs, want none", len(held))
			}
			if n, err := st.TakeNotes(ctx, "alice"); err != nil || len(n) != 0 {
				t.Errorf("notes in the store while alice's drop was under way: %q, %v; want none", n, err)
			}
			close(dw.release)
			r.s.workers.Wait()
			if !tc.fail {
				return
			}
			if got := mem.heldFor(email); len(got) != 1 {
				t.Errorf("held for alice after her drop failed: %d IMs, want the login's one", len(got))
			}
			notes := strings.Join(mem.takeNotes(), "\n")
			for _, want := range []string{"an IM could not be read", "missing from your history"} {
				if !strings.Contains(notes, want) {
					t.Errorf("notes for alice after her drop failed: %q, want one saying %q", notes, want)
				}
			}
			if got := promtest.Value(t, reg, "msimircd_history_dropped_total") - histBefore; got != 1 {
				t.Errorf("history entries counted dropped: got %v, want 1", got)
			}
		})
	}
}
