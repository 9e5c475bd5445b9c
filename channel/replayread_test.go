package channel

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
	"github.com/msimircd/msimircd/store"
)

// blockedLatest is a store whose reads of the history to replay wait
// until the test releases them, after saying they began.
type blockedLatest struct {
	store.Store
	reading chan struct{}
	release chan struct{}
}

func (b blockedLatest) HistoryLatestSince(ctx context.Context, user string, afterID, beforeID int64, limit int) ([]store.HistoryEntry, error) {
	b.reading <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.Store.HistoryLatestSince(ctx, user, afterID, beforeID, limit)
}

// blockReplays has r's session read st through a blockedLatest, which it
// returns.
func blockReplays(r *rig, st store.Store) blockedLatest {
	b := blockedLatest{Store: st, reading: make(chan struct{}, 1), release: make(chan struct{})}
	r.s.b.cfg.Store = b
	return b
}

// began waits until a read of the history to replay has begun.
func (b blockedLatest) began(t *testing.T) {
	t.Helper()
	select {
	case <-b.reading:
	case <-time.After(10 * time.Second):
		t.Fatal("the replay's read did not begin")
	}
}

// TestReplayReadLeavesTheSessionFree: while the history a returning
// client missed is read, the session goes on handling its other work (an
// IM arrives); the client is then shown its replay, and after it the IM
// that came meanwhile.
func TestReplayReadLeavesTheSessionFree(t *testing.T) {
	r, st := historyRig(t)
	blocked := blockReplays(r, st)
	r.s.newBuddy(r.a, 7, "bob", "")
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	r.s.record(store.HistoryEntry{MsgID: "m-earlier", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "earlier",
		Time: time.Now().Add(-time.Minute)})
	r.s.run(func() {})
	t.Cleanup(func() { r.s.cancel(); <-r.s.done }) // before the rig's own

	phoneIRC := &closableIRC{fakeIRC: newFakeIRC()}
	phone := newAttachment(phoneIRC, r.s, nil)
	phone.name = "phone"
	attached := make(chan error, 1)
	go func() {
		_, err := r.s.attachRunning(phone, nil)
		attached <- err
	}()
	blocked.began(t)
	served := make(chan struct{})
	if !r.s.post(call(func() {
		r.s.fromUser(r.a, 7, msim.IMEvent{From: 7, Text: "live", Time: time.Now()})
		close(served)
	})) {
		t.Fatal("the session has ended")
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		close(blocked.release)
		t.Fatal("the session handled nothing while the replay was read")
	}
	close(blocked.release)
	if err := <-attached; err != nil {
		t.Fatalf("attach: %v", err)
	}
	for i := 0; len(phoneIRC.said(": live")) == 0; i++ {
		turn := make(chan struct{})
		r.s.post(call(func() { close(turn) })) // a turn of the session
		<-turn
		if i == 100000 {
			t.Fatal("the IM that came during the replay's read was never shown")
		}
	}
	want := []string{"earlier", "live"}
	if got := shownOf(phoneIRC.fakeIRC, want...); !slices.Equal(got, want) {
		t.Errorf("the phone was shown %q, want %q", got, want)
	}
}

// TestQueuedIMNotReplayedToWhoTypedIt: an IM the phone typed while the
// MSIM link was down is sent, and kept in the history, once the link is
// back, after the phone left. The phone, back, is replayed what it
// missed, but not that IM, which it saw as it typed it.
func TestQueuedIMNotReplayedToWhoTypedIt(t *testing.T) {
	r, st := historyRig(t)
	bd := r.s.newBuddy(r.a, 7, "bob", "")
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	phone := attachNamed(r, &closableIRC{fakeIRC: newFakeIRC()}, "phone")
	r.a.state = linkWaiting // down, and coming back: IMs are queued
	r.s.sender = phone
	r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "typed while down", MsgID: "m-typed", Time: time.Now()},
		"PRIVMSG", "typed while down", "typed while down")
	r.s.sender = nil
	r.s.closed(phone)
	r.a.client, r.a.state = &fakeMSIM{}, linkUp
	r.s.flushQueue(r.a)
	r.s.record(store.HistoryEntry{MsgID: "m-answer", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "answer", Time: time.Now()})

	phoneIRC := &closableIRC{fakeIRC: newFakeIRC()}
	readReplay(r, attachNamed(r, phoneIRC, "phone"))
	want := []string{"answer"}
	if got := shownOf(phoneIRC.fakeIRC, "typed while down", "answer"); !slices.Equal(got, want) {
		t.Errorf("the phone, back, was replayed %q, want %q", got, want)
	}
}

// TestHeldIMsLeaveRoomDuringTheReplayRead: while a client's replay is
// read, the IMs held for the user wait in the outbox behind it; an IM
// that comes meanwhile is not lost for want of room, though as many were
// held as an account can hold.
func TestHeldIMsLeaveRoomDuringTheReplayRead(t *testing.T) {
	r := newRig(t, nil)
	bd := r.s.newBuddy(r.a, 7, "bob", "")
	phone := attachNamed(r, &closableIRC{fakeIRC: newFakeIRC()}, "phone")
	phone.replaying = &replayRead{} // its read is under way
	// The held IMs, then one that comes meanwhile.
	for i := range maxHeld + 1 {
		r.s.enqueue(bd, seqEvent{ev: msim.IMEvent{From: 7, Text: "im"}, seq: uint64(i + 1)})
	}
	if got, want := len(r.s.out.waiting()), maxHeld+1; got != want {
		t.Errorf("%d IMs wait for the replay, want %d", got, want)
	}
}

// TestQueuedIMShownToAClientThatCameAfter: an IM the desk typed while
// the MSIM link was down is sent, and kept in the history, once the link
// is back, while the phone, which attached after it was typed, is
// attached. The phone is shown it then, as the user's own message with
// its msgid, once; the desk, which saw it as it typed it, is not shown it
// again. Else the phone's position, saved as it leaves, would pass an IM
// it never saw.
func TestQueuedIMShownToAClientThatCameAfter(t *testing.T) {
	r, _ := historyRig(t)
	bd := r.s.newBuddy(r.a, 7, "bob", "")
	desk := r.s.cl.ats[0]
	desk.name = "desk"
	r.a.state = linkWaiting // down, and coming back: IMs are queued
	r.s.sender = desk
	r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "typed while down", MsgID: "m-typed", Time: time.Now()},
		"PRIVMSG", "typed while down", "typed while down")
	r.s.sender = nil
	phoneIRC := flushToPhone(t, r, r.a, "typed while down")
	if len(phoneIRC.own) != 1 || phoneIRC.own[0].MsgID != "m-typed" {
		t.Errorf("the phone was shown %+v as the user's own, want the IM with its msgid", phoneIRC.own)
	}
	if got := r.irc.said("typed while down"); len(got) != 0 {
		t.Errorf("the desk, which typed it, was shown %q, want nothing", got)
	}
}

// ownIRC is a connection that keeps what it is given as the user's own.
type ownIRC struct {
	*closableIRC
	own []ircd.Delivery
}

func (f *ownIRC) Deliver(d ircd.Delivery) bool {
	if d.Self {
		f.own = append(f.own, d)
	}
	return f.closableIRC.Deliver(d)
}

// downMSIM is an MSIM client whose link died: every IM is refused as
// disconnected.
type downMSIM struct{ *fakeMSIM }

func (downMSIM) SendIM(context.Context, msim.UID, string) error {
	return fmt.Errorf("msim: send: %w", msim.ErrDisconnected)
}

func (d downMSIM) SendStyledIM(ctx context.Context, uid msim.UID, text string, _ []markup.Span) error {
	return d.SendIM(ctx, uid, text)
}

// TestQueuedIMShownWhateverQueuedIt: an IM queued because the link died
// as it was sent, and one queued in an earlier session (who saw it typed
// is not known), are shown as they are sent from the queue to the
// clients attached since: never passed by a position unseen.
func TestQueuedIMShownWhateverQueuedIt(t *testing.T) {
	t.Run("the link died mid-send", func(t *testing.T) {
		r, _ := historyRig(t)
		bd := r.s.newBuddy(r.a, 7, "bob", "")
		desk := r.s.cl.ats[0]
		desk.name = "desk"
		r.a.client, r.a.state = downMSIM{&fakeMSIM{}}, linkUp
		r.s.sender = desk
		r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "as it died", MsgID: "m-died", Time: time.Now()},
			"PRIVMSG", "as it died", "as it died")
		r.s.sender = nil
		flushToPhone(t, r, r.a, "as it died")
		if got := r.irc.said("as it died"); len(got) != 0 {
			t.Errorf("the desk, which typed it, was shown %q, want nothing", got)
		}
	})
	t.Run("across a change of the account's configuration", func(t *testing.T) {
		// Who saw it typed goes with the queue to the account the
		// change makes: the clients that saw it are not shown it again.
		r, _ := historyRig(t)
		bd := r.s.newBuddy(r.a, 7, "bob", "")
		desk := r.s.cl.ats[0]
		desk.name = "desk"
		r.a.client, r.a.state = nil, linkWaiting
		r.s.sender = desk
		r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "before the change", MsgID: "m-change", Time: time.Now()},
			"PRIVMSG", "before the change", "before the change")
		r.s.sender = nil
		r.failDial() // the changed account's login
		r.s.applyAccounts([]Account{{Email: "alice@msim.test", Password: "new", Channel: "&msim", AutoConnect: true}})
		na := r.s.accounts[0]
		if na == r.a || len(na.queue) != 1 {
			t.Fatalf("after the change: the same account (%v), %d queued; want a new account with the IM queued", na == r.a, len(na.queue))
		}
		flushToPhone(t, r, na, "before the change")
		if got := r.irc.said("before the change"); len(got) != 0 {
			t.Errorf("the desk, which typed it, was shown %q, want nothing", got)
		}
	})
	t.Run("queued in an earlier session", func(t *testing.T) {
		r, _ := historyRig(t)
		bd := r.s.newBuddy(r.a, 7, "bob", "")
		r.a.client, r.a.state = nil, linkWaiting // down: IMs wait in the queue
		r.s.queueIM(r.a, queuedIM{uid: bd.UID(), nick: bd.nick, text: "from before", record: true, msgid: "m-before", at: time.Now()})
		flushToPhone(t, r, r.a, "from before")
	})
}

// flushToPhone attaches a connection named phone, brings a's link up and
// sends a's queue, and checks that the phone is shown text as the user's
// own IM to bob, once.
func flushToPhone(t *testing.T, r *rig, a *account, text string) *ownIRC {
	t.Helper()
	phoneIRC := &ownIRC{closableIRC: &closableIRC{fakeIRC: newFakeIRC()}}
	attachNamed(r, phoneIRC, "phone")
	a.client, a.state = &fakeMSIM{}, linkUp
	delete(r.s.queueUnread, a)
	r.s.flushQueue(a)
	if got, want := phoneIRC.said(text), []string{"PRIVMSG  bob: " + text}; !slices.Equal(got, want) {
		t.Fatalf("the phone was shown %q, want %q", got, want)
	}
	return phoneIRC
}
