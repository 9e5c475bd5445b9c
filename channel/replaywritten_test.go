package channel

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// recordThree records bob's "one", carol's "two" and bob's "three" for
// alice, with the phone's position before them.
func recordThree(t *testing.T, r *rig, st store.Store) {
	t.Helper()
	r.s.newBuddy(r.a, 7, "bob", "")
	r.s.newBuddy(r.a, 8, "carol", "")
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	for i, im := range []struct {
		uid  msim.UID
		text string
	}{{7, "one"}, {8, "two"}, {7, "three"}} {
		r.s.record(store.HistoryEntry{MsgID: "m" + im.text, Account: "alice@msim.test", Buddy: im.uid, Kind: kindIM, Text: im.text,
			Time: time.Now().Add(time.Duration(i) * time.Millisecond)})
	}
}

// TestUnwrittenReplayDoesNotReplayWhatWasWritten: bob's conversation
// (one, three) is written whole before carol's (two), which the
// connection ends with still queued. Its position stays before "two",
// but its next connection is replayed "two" only, not "three" again: the
// phone showed "three". Once a connection has written it all, what was
// kept of the first is forgotten.
func TestUnwrittenReplayDoesNotReplayWhatWasWritten(t *testing.T) {
	r, st := historyRig(t)
	recordThree(t, r, st)
	phoneIRC := &unwrittenReplayIRC{fakeIRC: newFakeIRC(), written: 2}
	phone := attachNamed(r, phoneIRC, "phone")
	readReplay(r, phone)
	if got := phoneIRC.said("three"); len(got) != 1 {
		t.Fatalf("the phone was shown %q, want three once", got)
	}
	r.s.closed(phone)
	if got, want := replayedTo(r, st, "phone"), []string{"two", "three"}; !slices.Equal(got, want) {
		t.Errorf("the phone's position is before %q, want %q", got, want)
	}

	againIRC := &unwrittenReplayIRC{fakeIRC: newFakeIRC(), written: 10}
	again := attachNamed(r, againIRC, "phone")
	readReplay(r, again)
	for _, tc := range []struct {
		text string
		want int
	}{{"one", 0}, {"two", 1}, {"three", 0}} {
		if got := againIRC.said(tc.text); len(got) != tc.want {
			t.Errorf("the phone's next connection was replayed %q, want %q %d times", got, tc.text, tc.want)
		}
	}
	r.s.closed(again)
	if got := replayedTo(r, st, "phone"); len(got) != 0 {
		t.Errorf("the phone's position is before %q, want after all", got)
	}
	r.stepUntil("the save's end", func() bool { return len(r.s.saving) == 0 })
	if kept := r.s.replayWritten["phone"]; len(kept) != 0 {
		t.Errorf("kept %v as written by the phone, want nothing once its position is past", kept)
	}
}

// TestReplayWrittenBounded: what the connections of each client name wrote
// of a replay is kept for as many names as the store keeps positions for,
// however many names come and go (a client chooses its name, and a name
// may never come back).
func TestReplayWrittenBounded(t *testing.T) {
	r, st := historyRig(t)
	recordThree(t, r, st)
	for i := range store.MaxClientPositions + 8 {
		name := fmt.Sprintf("phone%d", i)
		if err := st.SetClientPosition(context.Background(), "alice", name, 0); err != nil {
			t.Fatal(err)
		}
		at := attachNamed(r, &unwrittenReplayIRC{fakeIRC: newFakeIRC(), written: 2}, name)
		readReplay(r, at)
		r.s.closed(at)
		r.saved()
		r.stepUntil("the save's end", func() bool { return len(r.s.saving) == 0 })
		if len(r.s.replayWritten[name]) == 0 {
			t.Fatalf("nothing kept for %s, which wrote three before two", name)
		}
	}
	if n := len(r.s.replayWritten); n == 0 || n > store.MaxClientPositions {
		t.Errorf("client names with written entries kept: %d, want 1 to %d", n, store.MaxClientPositions)
	}
}

// TestSawQueuedBounded: the IMs queued while the link was down that
// clients saw typed, and left before they were sent, are kept by client
// name for those names' next replays; the names kept are bounded however
// many come and go, as the written entries' are.
func TestSawQueuedBounded(t *testing.T) {
	r, _ := historyRig(t)
	for i := range store.MaxClientPositions + 8 {
		r.s.seenQueued([]string{fmt.Sprintf("phone%d", i)}, fmt.Sprintf("m%d", i))
	}
	if n := len(r.s.sawQueued); n == 0 || n > store.MaxClientPositions {
		t.Errorf("client names with queued IMs kept: %d, want 1 to %d", n, store.MaxClientPositions)
	}
}
