package channel

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// TestLoginInFlightAcrossIdentifyStaysWithTheOldUser: a login of the
// user's account still under way when identify or register makes the
// session another user's (becomeUser) ends after the switch. The IMs it
// brings, whether it succeeded or failed after the server handed them
// over, are the old user's: held in their memory, or, for a user without
// a password, whose memory is forgotten, told lost. None is held for the
// new user.
func TestLoginInFlightAcrossIdentifyStaysWithTheOldUser(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ephemeral bool
		failed    bool // the login fails after the server handed the IM over
	}{
		{"the login succeeds", false, false},
		{"the login fails", false, true},
		{"a user without a password, the login succeeds", true, false},
		{"a user without a password, the login fails", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			email := r.a.cfg.Email
			oldMem := r.s.mem
			if tc.ephemeral {
				r.s.user.Ephemeral = true
				r.s.b.mu.Lock()
				r.s.b.memory[r.s.user.Name] = oldMem // as the bridge keeps it, to forget it
				r.s.b.mu.Unlock()
			}
			r.s.start() // the dial waits for r.dials
			old := r.s.user
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, old)
			if r.s.mem == oldMem {
				t.Fatal("the session kept the old user's memory")
			}
			im := msim.IMEvent{From: 7, Text: "offline one", Offline: true, Time: time.Now()}
			if tc.failed {
				r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
					return nil, &msim.UndeliveredError{Err: context.DeadlineExceeded, Events: []msim.Event{im}}
				}
			} else {
				cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
				cl.events = []msim.Event{im}
				r.okDial(cl)
			}
			r.step() // the login's result
			oldMem.settle()
			r.s.mem.settle()
			if got := heldTexts(r.s.mem, email); len(got) != 0 {
				t.Errorf("held for the new user (carol) under the old user's account %s: %q", email, got)
			}
			held, lost := heldTexts(oldMem, email), r.irc.said("offline one")
			switch {
			case tc.ephemeral && (len(held) != 0 || len(lost) != 1):
				t.Errorf("held for the old user %q, told %q; want nothing held (they keep nothing) and the IM told lost once", held, lost)
			case !tc.ephemeral && (len(held) != 1 || len(lost) != 0):
				t.Errorf("held for the old user %q, told %q; want the IM the login brought held, and nothing told", held, lost)
			}
		})
	}
}

// TestLoginInFlightAcrossIdentifyIsRecordedForTheOldUser: the IM a login
// under way across the switch brings is in the old user's history, not
// the new user's.
func TestLoginInFlightAcrossIdentifyIsRecordedForTheOldUser(t *testing.T) {
	r, st := historyRig(t)
	ctx := context.Background()
	if _, err := st.CreateUser(ctx, "carol", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	r.s.start() // the dial waits for r.dials
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	cl.events = []msim.Event{msim.IMEvent{From: 7, Text: "offline one", Offline: true, Time: time.Now()}}
	r.okDial(cl)
	r.step() // the login's result
	for _, name := range []string{"alice", "carol"} {
		if !r.s.b.hist.sync(ctx, name) {
			t.Fatal("history not synced")
		}
	}
	q := store.HistoryQuery{Account: "alice@msim.test", Buddy: 7, Latest: true, Limit: 10}
	if es, err := st.History(ctx, "carol", q); err != nil && !errors.Is(err, store.ErrNotFound) || len(es) != 0 {
		t.Errorf("the new user's (carol's) history: %v, %v; want none of alice's account", es, err)
	}
	if es, err := st.History(ctx, "alice", q); err != nil || len(es) != 1 || es[0].Text != "offline one" {
		t.Errorf("the old user's (alice's) history: %v, %v; want the IM the login brought", es, err)
	}
}

// TestLoginEndingAfterTheSwitchedSessionStaysWithTheOldUser: a login
// under way across the switch that ends after the session has ended too
// (keepLogin) keeps its IM for the old user, not the new one.
func TestLoginEndingAfterTheSwitchedSessionStaysWithTheOldUser(t *testing.T) {
	r := newRig(t, nil)
	email := r.a.cfg.Email
	oldMem := r.s.mem
	finish := loginHeld(r)
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
	r.s.cancel()
	close(finish)
	r.s.workers.Wait() // the dial's goroutine has kept what the login brought
	oldMem.settle()
	r.s.mem.settle()
	if got := heldTexts(r.s.mem, email); len(got) != 0 {
		t.Errorf("held for the new user (carol) under the old user's account %s: %q", email, got)
	}
	if got := heldTexts(oldMem, email); len(got) != 1 {
		t.Errorf("held for the old user: %q; want the IM the login brought", got)
	}
}

// appendWatch records whose history is appended to.
type appendWatch struct {
	store.Store
	mu    sync.Mutex
	users []string
}

func (w *appendWatch) AppendHistoryBatch(ctx context.Context, batch []store.HistoryAppend, res []store.HistoryResult) []store.HistoryResult {
	w.mu.Lock()
	for _, a := range batch {
		w.users = append(w.users, a.User)
	}
	w.mu.Unlock()
	return w.Store.AppendHistoryBatch(ctx, batch, res)
}

// A login under way as the user drops their registration, whose result
// comes after the session ended, keeps nothing for the deleted user:
// neither held in their memory nor in their history.
func TestLoginAcrossDropKeepsNothingForTheDeletedUser(t *testing.T) {
	r, st := historyRig(t)
	w := &appendWatch{Store: st}
	r.s.b.hist = startHistoryWriter(w, false, quietLog(), nil, time.Hour)
	t.Cleanup(r.s.b.hist.close)
	email, oldMem := r.a.cfg.Email, r.s.mem
	finish := loginHeld(r)
	ctx := context.Background()
	if err := st.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	r.s.dropped(replyCtx{}, "alice", nil, nil)
	r.s.cancel()
	close(finish)
	r.s.workers.Wait()
	oldMem.settle()
	r.s.b.hist.sync(ctx, "alice")
	if got := heldTexts(oldMem, email); len(got) != 0 {
		t.Errorf("held in the deleted user's (alice's) memory: %q", got)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Contains(w.users, "alice") {
		t.Errorf("history appended for the deleted user alice: %q", w.users)
	}
}

// loginHeld starts r's session with its account's login under way, held
// until finish is closed; the login then brings "offline one" from bob.
func loginHeld(r *rig) (finish chan struct{}) {
	dialing, finish := make(chan struct{}), make(chan struct{})
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	cl.events = []msim.Event{msim.IMEvent{From: 7, Text: "offline one", Offline: true, Time: time.Now()}}
	r.dials <- func(msim.ClientConfig) (MSIMClient, error) {
		close(dialing)
		<-finish
		return cl, nil
	}
	r.s.start()
	<-dialing
	return finish
}

// A login under way as the user drops their registration, whose result
// comes once they have identified as another user, brings an IM for an
// account of the dropped registration: the session the drop left keeps
// nothing, so the IM is told lost, as for any user without a password,
// not held where no one reads it.
func TestLoginAcrossDropThenIdentifyTellsItsIMLost(t *testing.T) {
	r := newRig(t, nil)
	email := r.a.cfg.Email
	finish := loginHeld(r)
	r.s.dropped(replyCtx{}, "alice", nil, nil)
	droppedMem := r.s.mem
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
	close(finish)
	r.step() // the login's result
	droppedMem.settle()
	r.s.mem.settle()
	held, lost := heldTexts(droppedMem, email), r.irc.said("offline one")
	if len(held) != 0 || len(lost) != 1 {
		t.Errorf("held in the dropped session's memory %q, told %q; want nothing held and the IM told lost once", held, lost)
	}
	if got := heldTexts(r.s.mem, email); len(got) != 0 {
		t.Errorf("held for the new user (carol): %q", got)
	}
}
