package channel

import (
	"context"
	"testing"
	"time"

	"github.com/msimircd/msimircd/store"
)

// What a client's replay left of the user the session was (a configured
// user who identifies as a stored nick) says nothing of the history of
// the user it becomes: the position it kept as its replay could not be
// read, and conversations waiting for an account's login, no longer hold
// the client's position back once the session is the new user's, so its
// next connection is not replayed what it was shown.
func TestSwitchLeavesTheOldUsersReplay(t *testing.T) {
	r, st := historyRig(t)
	ctx := context.Background()
	if _, err := st.CreateUser(ctx, "carol", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	carolAcct := store.Account{Email: "carol@msim.test", Password: "pw", Channel: "&msim"}
	if err := st.AddAccount(ctx, "carol", carolAcct); err != nil {
		t.Fatal(err)
	}
	for _, res := range st.AppendHistoryBatch(ctx, []store.HistoryAppend{{User: "carol", Entry: store.HistoryEntry{
		MsgID: "c1", Time: time.Now(), Account: carolAcct.Email, Buddy: 9, Kind: kindIM, Text: "carol's"}}}, nil) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	phone := r.s.cl.ats[0]
	phone.name = "phone"
	kept := int64(0) // alice's replay could not be read
	phone.keepPos = &kept
	phone.replayLater = []*replayConv{{email: "alice@msim.test", uid: 7, es: []store.HistoryEntry{{ID: 1, MsgID: "a1"}}}}
	phone.missReplayed("alice", 1)

	carol := User{Name: "carol", registered: true, Accounts: []Account{{Email: carolAcct.Email, Password: "pw", Channel: "&msim"}}}
	r.s.becomeUser(replyCtx{}, carol, r.s.user)
	if r.s.user.Name != "carol" {
		t.Fatalf("the session is %s's, want carol's", r.s.user.Name)
	}
	r.stepUntil("the replay read", func() bool { return phone.replaying == nil })
	r.s.closed(phone)
	r.saved()
	pos, found, err := st.ClientPosition(ctx, "carol", "phone")
	if err != nil || !found {
		t.Fatalf("the phone's position: %v, %v", found, err)
	}
	if es, err := st.HistorySince(ctx, "carol", pos, 10); err != nil || len(es) != 0 {
		t.Errorf("the phone's next connection would be replayed %d of carol's entries (%v), want none", len(es), err)
	}
}

// A MARKREAD the configured user the session was asked for, waiting for
// the one before it to be written as identify makes the session a stored
// user's, is written as that user's marker, not the new user's.
func TestSwitchWritesTheOldUsersMarker(t *testing.T) {
	r, st := historyRig(t)
	ctx := context.Background()
	if _, err := st.CreateUser(ctx, "carol", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	first, second := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond), time.Now().UTC().Truncate(time.Millisecond)
	bob := conversation{"alice@msim.test", 7, "bob"}
	r.s.setReadMarker(nil, "alice", bob, first, func() {})
	r.s.setReadMarker(r.s.cl.ats[0], "alice", bob, second, func() {}) // another client's: waits its turn
	r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
	if r.s.user.Name != "carol" {
		t.Fatalf("the session is %s's, want carol's", r.s.user.Name)
	}
	r.stepUntil("the markers written", func() bool { return len(r.s.markers) == 0 })
	if got, err := st.ReadMarker(ctx, "alice", bob.email, bob.uid); err != nil || !got.Equal(second) {
		t.Errorf("alice's read marker of bob: %v, %v; want %v", got, err, second)
	}
}
