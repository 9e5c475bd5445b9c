package channel

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// failingHistory is a store whose history appends all fail.
type failingHistory struct{ store.Store }

func (failingHistory) AppendHistoryBatch(_ context.Context, batch []store.HistoryAppend, _ []store.HistoryResult) []store.HistoryResult {
	res := make([]store.HistoryResult, len(batch))
	for i := range res {
		res[i].Err = errors.New("disk full")
	}
	return res
}

// An IM that a login under way across identify brings for the old
// user's account goes in the old user's history (recordOwned). If that
// fails, the old user is told, as they are of a failure while the
// session is theirs: a note for their next connection, kept once
// however many of the login's IMs failed; never told to the new user.
func TestOwnedHistoryFailureIsKeptForItsUser(t *testing.T) {
	r, st := historyRig(t)
	r.s.b.hist = startHistoryWriter(failingHistory{st}, false, quietLog(), nil, time.Hour)
	t.Cleanup(r.s.b.hist.close)
	aliceMem := r.s.mem
	r.s.start() // the dial waits for r.dials
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	cl.events = []msim.Event{msim.IMEvent{From: 7, Text: "offline one", Offline: true, Time: time.Now()},
		msim.IMEvent{From: 7, Text: "offline two", Offline: true, Time: time.Now()}}
	r.okDial(cl)
	r.step() // the login's result
	ctx := context.Background()
	if !r.s.b.hist.sync(ctx, "alice") {
		t.Fatal("history not synced")
	}
	aliceMem.settle()
	if got, all := noteWith(aliceMem, "history could not be saved"); len(got) != 1 {
		t.Errorf("notes kept for alice: %q; want one telling her history failed", all)
	}
	r.settle()
	if got := r.irc.said("history could not be saved"); len(got) != 0 {
		t.Errorf("carol's connection was told of alice's history: %q", got)
	}
}
