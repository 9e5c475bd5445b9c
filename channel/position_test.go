package channel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// closableIRC is a connection that, once closing, takes nothing more;
// with queued, it takes a message and then reports it not written, as a
// connection closed with lines still queued does.
type closableIRC struct {
	*fakeIRC
	closing, queued bool
}

// HasCap: the client has no chathistory, so it is replayed to.
func (f *closableIRC) HasCap(name string) bool { return name != "draft/chathistory" }

func (f *closableIRC) DeliverHistory(target string, ds []ircd.Delivery) bool {
	if !f.closing {
		return f.fakeIRC.DeliverHistory(target, ds)
	}
	return false
}

func (f *closableIRC) Deliver(d ircd.Delivery) bool {
	if !f.closing {
		return f.fakeIRC.Deliver(d)
	}
	if d.Sent != nil {
		d.Sent(false)
	}
	return f.queued
}

// TestPositionStopsAtWhatAClosingClientMissed: an IM that comes while a
// client is closing but still attached (its QUIT is read, the session has
// not yet taken it out) is shown to the other client only. The closing
// client's position stops before that IM, so its next connection is
// replayed it; a client that missed nothing is at the end.
func TestPositionStopsAtWhatAClosingClientMissed(t *testing.T) {
	for _, queued := range []bool{false, true} {
		t.Run(fmt.Sprintf("queued=%v", queued), func(t *testing.T) { positionAfterAMiss(t, queued) })
	}
}

// historyRig is a rig whose session keeps history in a real store, with
// alice's account in it.
func historyRig(t *testing.T) (*rig, store.Store) {
	t.Helper()
	ctx := context.Background()
	st := sqliteStore(t)
	if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAccount(ctx, "alice", store.Account{Email: "alice@msim.test", Password: "pw", Channel: "&msim"}); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(c *Config) { c.Store = st })
	r.s.b.hist = startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	t.Cleanup(r.s.b.hist.close)
	return r, st
}

// attachNamed attaches another connection, c, to the rig's session as
// the client name.
func attachNamed(r *rig, c ircConn, name string) *attachment {
	at := newAttachment(c, r.s, nil)
	at.name = name
	r.s.cl.add(at)
	r.s.countAttached(1)
	return at
}

// readReplay starts at's replay and handles the session's events until
// its read is given.
func readReplay(r *rig, at *attachment) {
	r.t.Helper()
	r.s.replay(at)
	r.stepUntil("the replay read", func() bool { return at.replaying == nil })
}

// saved waits for the position saves under way of the rig's session
// (whose events the test handles: it owns the session).
func (r *rig) saved() {
	r.t.Helper()
	for _, ps := range r.s.saving {
		select {
		case <-ps.done:
		case <-time.After(10 * time.Second):
			r.t.Fatalf("%s's position was not saved", ps.client)
		}
	}
}

// replayedTo is what the client's next connection would be replayed (its
// position saved): the texts after its position.
func replayedTo(r *rig, st store.Store, client string) []string {
	t := r.t
	t.Helper()
	r.saved()
	ctx := context.Background()
	pos, found, err := st.ClientPosition(ctx, "alice", client)
	if err != nil || !found {
		t.Fatalf("%s's position: %v, %v", client, found, err)
	}
	es, err := st.HistorySince(ctx, "alice", pos, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Text)
	}
	return got
}

func positionAfterAMiss(t *testing.T, queued bool) {
	r, st := historyRig(t)
	desk := r.s.cl.ats[0]
	desk.name = "desk"
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC(), queued: queued}
	phone := attachNamed(r, phoneIRC, "phone")

	var shown atomic.Int32
	for i, text := range []string{"one", "two", "three"} {
		phoneIRC.closing = text != "one" // the phone's QUIT is read after one
		msgid := "m" + text
		r.s.record(store.HistoryEntry{MsgID: msgid, Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: text,
			Time: time.Now().Add(time.Duration(i) * time.Millisecond)})
		r.s.irc.Deliver(ircd.Delivery{Command: "PRIVMSG", From: "bob", Text: text, MsgID: msgid,
			Sent: func(ok bool) {
				if ok {
					shown.Add(1)
				}
			}})
	}
	r.s.closed(phone)
	r.s.closed(desk)
	for deadline := time.Now().Add(10 * time.Second); shown.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // Sent may be reported on another goroutine
			t.Fatalf("%d of 3 IMs reported shown", shown.Load())
		}
	}

	for _, tc := range []struct {
		client string
		want   []string
	}{{"phone", []string{"two", "three"}}, {"desk", nil}} {
		if got := replayedTo(r, st, tc.client); !slices.Equal(got, tc.want) {
			t.Errorf("%s's next connection would be replayed %q, want %q", tc.client, got, tc.want)
		}
	}
}

// TestPositionStaysBeforeACutReplay: a replay that the client, closing,
// no longer takes leaves its position before the earliest entry of the
// conversations not shown, so its next connection is replayed them.
func TestPositionStaysBeforeACutReplay(t *testing.T) {
	r, st := historyRig(t)
	ctx := context.Background()
	for _, b := range []struct {
		uid  msim.UID
		name string
	}{{7, "bob"}, {8, "carol"}} {
		r.s.newBuddy(r.a, b.uid, b.name, "")
	}
	if err := st.SetClientPosition(ctx, "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	for i, im := range []struct {
		uid  msim.UID
		text string
	}{{7, "one"}, {8, "two"}, {7, "three"}} {
		r.s.record(store.HistoryEntry{MsgID: "m" + im.text, Account: "alice@msim.test", Buddy: im.uid, Kind: kindIM, Text: im.text,
			Time: time.Now().Add(time.Duration(i) * time.Millisecond)})
	}
	phone := attachNamed(r, &closableIRC{fakeIRC: newFakeIRC(), closing: true}, "phone")
	readReplay(r, phone)
	r.s.closed(phone)
	if got, want := replayedTo(r, st, "phone"), []string{"one", "two", "three"}; !slices.Equal(got, want) {
		t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
	}
}

// slowProfile is an MSIM client whose profile lookups wait for release.
type slowProfile struct {
	*fakeMSIM
	release chan struct{}
}

func (f *slowProfile) Profile(ctx context.Context, uid msim.UID) (msim.Profile, error) {
	select {
	case <-f.release:
		return msim.Profile{UID: uid, UserName: "stranger"}, nil
	case <-ctx.Done():
		return msim.Profile{}, ctx.Err()
	}
}

// TestPositionStopsBeforeWhatIsOnItsWay: an IM is in the history from
// the moment it arrives, but reaches the clients only later: after the
// sender's profile when it is a stranger, or once the clients' window has
// room. A client that leaves in between never got it; its position stops
// before it, so its next connection is replayed it, while the client
// still attached, which got it, is not.
func TestPositionStopsBeforeWhatIsOnItsWay(t *testing.T) {
	for _, tc := range []struct {
		name string
		hold func(r *rig) (deliver func())
		from msim.UID
	}{
		{"a stranger's, waiting for the profile", func(r *rig) func() {
			cl := &slowProfile{fakeMSIM: &fakeMSIM{}, release: make(chan struct{})}
			r.a.client = cl
			return func() {
				close(cl.release)
				r.stepUntil("the stranger's IM shown", func() bool { return len(r.a.pending) == 0 })
			}
		}, 9},
		{"a buddy's, waiting for room", func(r *rig) func() {
			r.s.newBuddy(r.a, 7, "bob", "")
			r.s.out.inflight.Store(outWindow)
			return func() {
				r.s.out.inflight.Store(0)
				r.s.pumpOut()
			}
		}, 7},
	} {
		for _, back := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, back before it: %v", tc.name, back), func(t *testing.T) {
				onItsWay(t, tc.hold, tc.from, back)
			})
		}
	}
}

// onItsWay: the phone leaves while an IM from from is held up by hold,
// and with back, connects again before the IM comes: then it gets it live
// and not in its replay too.
func onItsWay(t *testing.T, hold func(r *rig) (deliver func()), from msim.UID, back bool) {
	r, st := historyRig(t)
	desk := r.s.cl.ats[0]
	desk.name = "desk"
	phone := attachNamed(r, &closableIRC{fakeIRC: newFakeIRC()}, "phone")
	deliver := hold(r)

	r.s.fromUser(r.a, from, msim.IMEvent{From: from, Text: "hello", Time: time.Now()})
	if got := r.irc.said("hello"); len(got) != 0 {
		t.Fatalf("the IM was shown at once (%q): nothing is on its way", got)
	}
	r.s.closed(phone)
	wantReplay := []string{"hello"}
	if back {
		phoneIRC := &closableIRC{fakeIRC: newFakeIRC()}
		phone = attachNamed(r, phoneIRC, "phone")
		readReplay(r, phone)
		deliver()
		if got := phoneIRC.said("hello"); len(got) != 1 {
			t.Errorf("the phone, back before the IM came, was shown %q, want it once", got)
		}
		r.s.closed(phone)
		wantReplay = nil
	} else {
		deliver()
	}
	if got := r.irc.said("hello"); len(got) != 1 {
		t.Fatalf("the desk was shown %q, want the IM once", got)
	}
	r.s.closed(desk)
	for _, c := range []struct {
		client string
		want   []string
	}{{"phone", wantReplay}, {"desk", nil}} {
		if got := replayedTo(r, st, c.client); !slices.Equal(got, c.want) {
			t.Errorf("%s's next connection would be replayed %q, want %q", c.client, got, c.want)
		}
	}
}

// latestFails is a store whose reads of the history to replay fail.
type latestFails struct{ store.Store }

func (latestFails) HistoryLatestSince(context.Context, string, int64, int64, int) ([]store.HistoryEntry, error) {
	return nil, errors.New("the database is away")
}

// TestPositionKeptWhenTheReplayFails: a client whose replay could not be
// read keeps its position, so its next connection is replayed what it
// missed rather than nothing.
func TestPositionKeptWhenTheReplayFails(t *testing.T) {
	r, st := historyRig(t)
	r.s.newBuddy(r.a, 7, "bob", "")
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	r.s.record(store.HistoryEntry{MsgID: "m1", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "missed", Time: time.Now()})
	r.s.b.cfg.Store = latestFails{st}
	phone := attachNamed(r, &closableIRC{fakeIRC: newFakeIRC()}, "phone")
	readReplay(r, phone)
	r.s.b.cfg.Store = st
	r.s.closed(phone)
	if got, want := replayedTo(r, st, "phone"), []string{"missed"}; !slices.Equal(got, want) {
		t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
	}
}

// TestQueuedIMInHistoryOnceSent: an IM typed while the link is down is
// kept in the history, with its msgid and time, once it is sent from the
// queue; one refused from the queue (the account disconnected) is not.
func TestQueuedIMInHistoryOnceSent(t *testing.T) {
	r, st := historyRig(t)
	bd := r.s.newBuddy(r.a, 7, "bob", "")
	r.a.state = linkWaiting // down, and coming back: IMs are queued
	typed := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "refused later", MsgID: "m-refused", Time: typed}, "PRIVMSG", "refused later", "refused later")
	r.s.failQueue(r.a, "the account was disconnected")
	r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "\x01ACTION waves\x01", MsgID: "m-sent", Time: typed}, "PRIVMSG", "\x01ACTION waves\x01", "/me waves")
	var got []string
	history := func() {
		got = nil
		ctx := context.Background()
		r.s.b.hist.sync(ctx, "alice")
		es, err := st.HistorySince(ctx, "alice", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			got = append(got, fmt.Sprintf("%s %s %s %v", e.MsgID, e.Kind, e.Text, e.Time.Equal(typed)))
		}
	}
	if history(); len(got) != 0 {
		t.Errorf("history before the queue is sent: %q, want none", got)
	}
	cl := &fakeMSIM{}
	r.a.client, r.a.state = cl, linkUp
	r.s.flushQueue(r.a)
	if !slices.Equal(cl.sent, []string{"/me waves"}) {
		t.Fatalf("sent %q, want the /me", cl.sent)
	}
	if history(); !slices.Equal(got, []string{"m-sent action waves true"}) {
		t.Errorf("history once the queue is sent: %q, want the /me as typed", got)
	}
	// "bob: /me nods" in a control channel reaches MSIM as a /me too.
	r.s.sendOwn(bd, ircd.Input{Command: "PRIVMSG", Target: "&msim", Text: "bob: /me nods", MsgID: "m-nods", Time: typed}, "PRIVMSG", "/me nods", "/me nods")
	if history(); !slices.Equal(got, []string{"m-sent action waves true", "m-nods action nods true"}) {
		t.Errorf("history after a /me typed in a control channel: %q, want it an action", got)
	}
}

// queuedProfiles is an MSIM client whose profile lookups each wait until
// the test releases them, in the order they began.
type queuedProfiles struct {
	*fakeMSIM
	calls chan chan struct{}
}

func (f *queuedProfiles) Profile(ctx context.Context, uid msim.UID) (msim.Profile, error) {
	release := make(chan struct{})
	f.calls <- release
	select {
	case <-release:
		return msim.Profile{UID: uid, UserName: "stranger"}, nil
	case <-ctx.Done():
		return msim.Profile{}, ctx.Err()
	}
}

// TestStrangerReplayBeforeTheirLiveIM: a client is replayed a conversation
// with someone not on the list while an IM from them waits for their
// profile. It is shown the replay first, then the new IM, though the IM's
// lookup began first.
func TestStrangerReplayBeforeTheirLiveIM(t *testing.T) {
	r, st := historyRig(t)
	cl := &queuedProfiles{fakeMSIM: &fakeMSIM{}, calls: make(chan chan struct{}, 4)}
	r.a.client = cl
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	r.s.record(store.HistoryEntry{MsgID: "m-earlier", Account: "alice@msim.test", Buddy: 9, Kind: kindIM, Text: "earlier",
		Time: time.Now().Add(-time.Minute)})
	r.s.fromUser(r.a, 9, msim.IMEvent{From: 9, Text: "now", Time: time.Now()})
	var first chan struct{}
	select {
	case first = <-cl.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("the IM's sender was not looked up")
	}
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC()}
	phone := attachNamed(r, phoneIRC, "phone")
	readReplay(r, phone)
	close(first)
	r.stepUntil("the sender named", func() bool { return len(r.a.pending) == 0 })
	select {
	case again := <-cl.calls:
		close(again) // a lookup of the replay's own
	case <-time.After(100 * time.Millisecond):
	}
	r.stepUntil("the replay shown", func() bool { return len(phone.replayLater) == 0 })
	want := []string{"earlier", "now"}
	if got := shownOf(phoneIRC.fakeIRC, want...); !slices.Equal(got, want) {
		t.Errorf("the phone was shown %q, want %q", got, want)
	}
}

// TestReplayWaitingBeforeWhatWasHeld: a client attached while its
// account logs in waits for the login to be replayed the conversations of
// that account; IMs held for the account meanwhile are newer, and come
// after the replay.
func TestReplayWaitingBeforeWhatWasHeld(t *testing.T) {
	r, st := historyRig(t)
	if err := st.SetClientPosition(context.Background(), "alice", "phone", 0); err != nil {
		t.Fatal(err)
	}
	r.s.start()
	r.s.record(store.HistoryEntry{MsgID: "m-earlier", Account: "alice@msim.test", Buddy: 42, Kind: kindIM, Text: "earlier",
		Time: time.Now().Add(-time.Minute)})
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC()}
	phone := attachNamed(r, phoneIRC, "phone")
	readReplay(r, phone)
	if len(phone.replayLater) != 1 {
		t.Fatalf("%d conversations wait for the login, want 1", len(phone.replayLater))
	}
	r.okDial(&fakeMSIM{buddies: []msim.Contact{{UID: 42, UserName: "bob", Status: msim.StatusOnline}}})
	r.s.holdIM(r.a, msim.IMEvent{From: 42, Text: "held", Time: time.Now()})
	r.stepUntil("the held IM shown", func() bool { return len(phoneIRC.said(": held")) > 0 })
	want := []string{"earlier", "held"}
	if got := shownOf(phoneIRC.fakeIRC, want...); !slices.Equal(got, want) {
		t.Errorf("the phone was shown %q, want %q", got, want)
	}
}

// shownOf is which of texts f was shown, as whole texts, in the order shown.
func shownOf(f *fakeIRC, texts ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var got []string
	for _, l := range f.lines {
		for _, text := range texts {
			if strings.HasSuffix(l, ": "+text) {
				got = append(got, text)
			}
		}
	}
	return got
}

// TestStrangerNamedByTargetsKeepsTheirOrder: an IM from someone not on
// the list waits for their profile; meanwhile CHATHISTORY TARGETS names
// them (a profile lookup of its own) and they write again. The waiting IM
// is shown before the later one.
func TestStrangerNamedByTargetsKeepsTheirOrder(t *testing.T) {
	r, _ := historyRig(t)
	cl := &queuedProfiles{fakeMSIM: &fakeMSIM{}, calls: make(chan chan struct{}, 4)}
	r.a.client = cl
	phoneIRC := &closableIRC{fakeIRC: newFakeIRC()}
	attachNamed(r, phoneIRC, "phone")
	lookup := func(what string) chan struct{} {
		t.Helper()
		select {
		case c := <-cl.calls:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no profile lookup", what)
			return nil
		}
	}
	r.s.fromUser(r.a, 9, msim.IMEvent{From: 9, Text: "first", Time: time.Now()})
	first := lookup("the IM's sender")
	if !r.s.b.hist.sync(context.Background(), "alice") {
		t.Fatal("history not synced")
	}
	answered := make(chan []ircd.HistoryTarget, 1)
	r.s.historyTargets(ircd.TargetsQuery{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), Limit: 10},
		func(ts []ircd.HistoryTarget, err error) { answered <- ts })
	r.step() // TARGETS' read of the store
	close(lookup("TARGETS' stranger"))
	r.stepUntil("TARGETS answered", func() bool { return len(answered) == 1 })
	r.s.fromUser(r.a, 9, msim.IMEvent{From: 9, Text: "second", Time: time.Now()})
	close(first)
	r.stepUntil("the sender named", func() bool { return len(r.a.pending) == 0 })

	var got []string
	phoneIRC.mu.Lock()
	for _, l := range phoneIRC.lines {
		for _, text := range []string{"first", "second"} {
			if strings.HasSuffix(l, ": "+text) {
				got = append(got, text)
			}
		}
	}
	phoneIRC.mu.Unlock()
	if want := []string{"first", "second"}; !slices.Equal(got, want) {
		t.Errorf("the phone was shown %q, want %q", got, want)
	}
}

// unwrittenReplayIRC takes a replay's lines and writes only the first
// written of them: the rest were still queued when the connection closed,
// and are reported not written, as ircd reports them.
type unwrittenReplayIRC struct {
	*fakeIRC
	written int
}

// HasCap: the client has no chathistory, so it is replayed to.
func (f *unwrittenReplayIRC) HasCap(name string) bool { return name != "draft/chathistory" }

func (f *unwrittenReplayIRC) DeliverHistory(_ string, ds []ircd.Delivery) bool {
	for _, d := range ds {
		ok := f.written > 0
		if ok {
			f.written--
			f.fakeIRC.Deliver(ircd.Delivery{Command: d.Command, From: d.From, Target: d.Target, Text: d.Text})
		}
		if d.Sent != nil {
			d.Sent(ok)
		}
	}
	return true
}

// TestPositionStaysBeforeAnUnwrittenReplay: a replay queued whole whose
// lines the connection, closing, did not all write leaves the client's
// position before the earliest entry it was not given, though another
// conversation's entry after it was written first: its next connection is
// replayed them.
func TestPositionStaysBeforeAnUnwrittenReplay(t *testing.T) {
	r, st := historyRig(t)
	recordThree(t, r, st)
	// bob's conversation (one, three) goes first: only "one" is written.
	phoneIRC := &unwrittenReplayIRC{fakeIRC: newFakeIRC(), written: 1}
	phone := attachNamed(r, phoneIRC, "phone")
	readReplay(r, phone)
	if got := phoneIRC.said("one"); len(got) != 1 {
		t.Fatalf("the phone was shown %q, want one", got)
	}
	r.s.closed(phone)
	if got, want := replayedTo(r, st, "phone"), []string{"two", "three"}; !slices.Equal(got, want) {
		t.Errorf("the phone's next connection would be replayed %q, want %q", got, want)
	}
}
