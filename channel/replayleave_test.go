package channel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/store"
)

// TestLeavingDuringTheReplayReadKeepsThePosition: a client that leaves
// while its replay is being read was shown nothing of it; its next
// connection is replayed the same.
func TestLeavingDuringTheReplayReadKeepsThePosition(t *testing.T) {
	r, st := historyRig(t)
	r.s.newBuddy(r.a, 7, "bob", "")
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	r.s.record(store.HistoryEntry{MsgID: "m-missed", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "missed", Time: time.Now()})
	blocked := blockReplays(r, st)
	phone := attachNamed(r, &closableIRC{fakeIRC: newFakeIRC()}, "phone")
	r.s.replay(phone)
	blocked.began(t)
	r.s.closed(phone)
	close(blocked.release)
	r.step() // the read's result
	if got, want := replayedTo(r, st, "phone"), []string{"missed"}; !slices.Equal(got, want) {
		t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
	}
}
