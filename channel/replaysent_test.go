package channel

import (
	"context"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
)

// TestSentDuringTheReplayReadShownOnce: while the phone's replay is read,
// the desk sends bob an IM, which the phone is shown at once and which
// reaches the history before the read. The phone is shown it once, not
// again in its replay.
func TestSentDuringTheReplayReadShownOnce(t *testing.T) {
	r, st := historyRig(t)
	bd := r.s.newBuddy(r.a, 7, "bob", "")
	r.a.client, r.a.state = &fakeMSIM{}, linkUp
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	blocked := blockReplays(r, st)
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC()}
	phone := attachNamed(r, phoneIRC, "phone")
	r.s.replay(phone)
	blocked.began(t)
	r.s.sender = r.s.cl.ats[0] // the desk
	r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "from the desk", MsgID: "m-desk", Time: time.Now()},
		"PRIVMSG", "from the desk", "from the desk")
	r.s.sender = nil
	if !r.s.b.hist.sync(context.Background(), "alice") {
		t.Fatal("history not synced")
	}
	close(blocked.release)
	r.stepUntil("the replay read", func() bool { return phone.replaying == nil })
	if got := phoneIRC.said("from the desk"); len(got) != 1 {
		t.Errorf("the phone was shown %q, want the IM once", got)
	}
}
