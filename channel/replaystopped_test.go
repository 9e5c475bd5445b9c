package channel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/store"
)

// TestReplayOfAStrangerWaitsForTheLogin: the phone missed a conversation
// with someone not on the list of an account that is not logged in (the
// user disconnected it), so no one can name them. The conversation is
// not dropped: the phone's position stays before it, and the account's
// next login replays it.
func TestReplayOfAStrangerWaitsForTheLogin(t *testing.T) {
	r, st := historyRig(t)
	r.a.state = linkStopped
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	r.s.record(store.HistoryEntry{MsgID: "m-stranger", Account: "alice@msim.test", Buddy: 9, Kind: kindIM, Text: "from a stranger",
		Time: time.Now().Add(-time.Minute)})
	phone := attachNamed(r, &closableIRC{fakeIRC: newFakeIRC()}, "phone")
	readReplay(r, phone)
	r.s.closed(phone)
	if got, want := replayedTo(r, st, "phone"), []string{"from a stranger"}; !slices.Equal(got, want) {
		t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
	}
}
