package channel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// heldDelete is a store whose DeleteUser waits until release is closed,
// after saying on entered that it began.
type heldDelete struct {
	store.Store
	entered, release chan struct{}
}

func (d *heldDelete) DeleteUser(ctx context.Context, name string) error {
	d.entered <- struct{}{}
	<-d.release
	return d.Store.DeleteUser(ctx, name)
}

// A login that began before the user confirmed their drop, and ends
// after the session has ended with the drop under way (keepLogin, with
// the owner the dial took as it began), adds nothing to the history of
// the user being deleted: what is appended after the drop's wait for the
// history's writes would outlive the delete, or go to whoever takes the
// name next.
func TestLoginEndingMidDropAddsNoHistory(t *testing.T) {
	r, st := historyRig(t)
	hd := &heldDelete{Store: st, entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := &appendWatch{Store: hd}
	r.s.b.hist = startHistoryWriter(w, false, quietLog(), nil, time.Hour)
	t.Cleanup(r.s.b.hist.close)
	r.s.b.users = &storeDirectory{st: hd}
	r.s.user.registered = true
	own := r.s.ownerNow() // as connect takes it, when the dial starts

	r.s.dropUntil = r.clock.Now().Add(time.Minute)
	r.s.cmdYes(replyCtx{}, nil)
	<-hd.entered // the drop waited for the history's writes, and deletes
	r.s.cancel() // the session ends meanwhile: the login's result is not handled
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	cl.events = []msim.Event{msim.IMEvent{From: 7, Text: "offline one", Offline: true, Time: time.Now()}}
	r.s.keepLogin(own, r.a, cl, nil)
	close(hd.release)
	r.s.workers.Wait()
	r.s.b.hist.sync(context.Background(), "alice")
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Contains(w.users, "alice") {
		t.Errorf("history appended for alice while her drop was under way: %q", w.users)
	}
}
