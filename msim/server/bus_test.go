package server

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// fakeBus is a Bus whose other nodes the test plays.
type fakeBus struct {
	mu      sync.Mutex
	peer    Peer
	claim   func(uid msim.UID, v Version) (*PeerState, error) // nil: no other node has uid
	deliver func(to msim.UID) (bool, error)                   // nil: connected nowhere
	states  []*PeerState
	stored  []msim.UID
	watched map[msim.UID]int
}

func (b *fakeBus) Attach(p Peer)    { b.peer = p }
func (b *fakeBus) Node() string     { return "here" }
func (b *fakeBus) Release(msim.UID) {}
func (b *fakeBus) Claim(uid msim.UID, v Version) (*PeerState, error) {
	if b.claim == nil {
		return nil, nil
	}
	return b.claim(uid, v)
}
func (b *fakeBus) Deliver(to, _ msim.UID, _ []byte) (bool, error) {
	if b.deliver == nil {
		return false, nil
	}
	return b.deliver(to)
}
func (b *fakeBus) Publish(st *PeerState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.states = append(b.states, st)
}
func (b *fakeBus) Watch(uids []msim.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.watched == nil {
		b.watched = map[msim.UID]int{}
	}
	for _, u := range uids {
		b.watched[u]++
	}
}
func (b *fakeBus) Unwatch(uids []msim.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range uids {
		b.watched[u]--
	}
}
func (b *fakeBus) Stored(uid msim.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stored = append(b.stored, uid)
}
func (b *fakeBus) Alert(msim.UID, string) {}
func (b *fakeBus) AlertsTaken(msim.UID)   {}

func (b *fakeBus) watching(uid msim.UID) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.watched[uid]
}

// TestBusRoute: an IM for a user on no local session goes to the bus; only
// when no node takes it (or the bus fails) is it stored, once, and the
// recipient's mailbox nudged.
func TestBusRoute(t *testing.T) {
	for _, tc := range []struct {
		name   string
		taken  bool
		err    error
		stored int
	}{
		{"taken by another node", true, nil, 0},
		{"connected nowhere", false, nil, 1},
		{"bus failed", false, errors.New("timeout"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := &fakeBus{deliver: func(msim.UID) (bool, error) { return tc.taken, tc.err }}
			store := NewMemStore()
			srv, addr := startServer(t, Config{Bus: bus}, store)
			addAccount(t, srv, "alice@example.com", "pw-a", "alice")
			bob := addAccount(t, srv, "bob@example.com", "pw-b", "bob")
			alice := login(t, addr, "alice@example.com", "pw-a")
			alice.bm(msim.BMIM, bob, "hi")
			alice.sync()
			none(t, alice.takeSeen(), "error", func(m *msim.Message) bool { return m.Is("error") })
			got, _ := store.TakeOffline(bob)
			bus.mu.Lock()
			nudged := len(bus.stored)
			bus.mu.Unlock()
			if len(got) != tc.stored || nudged != tc.stored {
				t.Errorf("got %d stored, %d nudges; want %d of each", len(got), nudged, tc.stored)
			}
		})
	}
}

// aliceListsBob starts a server on a fakeBus with accounts alice (who lists
// bob, so her sessions watch him) and bob, for tests of what alice sees of
// bob's states from elsewhere.
func aliceListsBob(t *testing.T) (bus *fakeBus, srv *Server, addr string, alice, bob msim.UID) {
	t.Helper()
	bus = &fakeBus{}
	store := NewMemStore()
	srv, addr = startServer(t, Config{Bus: bus}, store)
	alice = addAccount(t, srv, "alice@example.com", "pw-a", "alice")
	bob = addAccount(t, srv, "bob@example.com", "pw-b", "bob")
	if err := store.PutContact(alice, Contact{UID: bob, GroupName: "IM Friends", Position: 1000, Visibility: 1}); err != nil {
		t.Fatal(err)
	}
	return bus, srv, addr, alice, bob
}

// presencesSeen returns the statuses of uid's presences c was sent up to
// now (c.sync), and forgets what c was sent.
func presencesSeen(c *client, uid msim.UID) []msim.Status {
	c.sync()
	var got []msim.Status
	for _, m := range c.takeSeen() {
		if isBM(msim.BMStatus, uid)(m) {
			l, _ := m.List("msg")
			p, _ := msim.ParsePresence(l)
			got = append(got, p.Status)
		}
	}
	return got
}

// TestBusRemoteState: a local session sees a remote user's states as the
// bus brings them: online, hidden by the remote user's block list, back,
// then offline when the remote node is declared down; a stale state
// changes nothing. What the session lists is watched, and unwatched at
// logout.
func TestBusRemoteState(t *testing.T) {
	bus, srv, addr, alice, bob := aliceListsBob(t)
	c := login(t, addr, "alice@example.com", "pw-a")
	if n := bus.watching(bob); n != 1 {
		t.Fatalf("bob watched %d times, want 1", n)
	}
	ver := Version{Epoch: 1, Node: "there"}
	st := func(seq uint64, hide ...msim.UID) *PeerState {
		return &PeerState{UID: bob, Version: ver, Seq: seq, Online: true, Announced: true,
			Presence: msim.Presence{Status: msim.StatusOnline, Text: "hi"}, Hide: hide}
	}
	for _, step := range []struct {
		name string
		do   func()
		want msim.Status // -1: no presence message
	}{
		{"online", func() { bus.peer.PeerState(st(1)) }, msim.StatusOnline},
		{"blocks alice", func() { bus.peer.PeerState(st(2, alice)) }, msim.StatusOffline},
		{"stale", func() { bus.peer.PeerState(st(1)) }, -1},
		{"unblocks alice", func() { bus.peer.PeerState(st(3)) }, msim.StatusOnline},
		{"node down", func() { bus.peer.NodeDown("there") }, msim.StatusOffline},
		{"other node down", func() { bus.peer.NodeDown("elsewhere") }, -1},
	} {
		step.do()
		got := presencesSeen(c, bob)
		switch {
		case step.want < 0 && len(got) != 0:
			t.Errorf("%s: got presences %v, want none", step.name, got)
		case step.want >= 0 && (len(got) != 1 || got[0] != step.want):
			t.Errorf("%s: got presences %v, want [%v]", step.name, got, step.want)
		}
	}
	c.send(msim.New("logout", "").AddInt("sesskey", c.key))
	c.expectClosed()
	if err := srv.Shutdown(t.Context()); err != nil { // the logout is done
		t.Fatal(err)
	}
	if n := bus.watching(bob); n != 0 {
		t.Errorf("bob watched %d times after the logout, want 0", n)
	}
}

// TestBusSupersededLogin: when a later login on another node claims the
// account while this node's login is under way, this login completes and
// is then closed with err 6, and is not the account's session here.
func TestBusSupersededLogin(t *testing.T) {
	bus := &fakeBus{}
	bus.claim = func(uid msim.UID, v Version) (*PeerState, error) {
		later := Version{Epoch: v.Epoch + 1, Node: "there"}
		if st := bus.peer.Kick(uid, later); st != nil {
			t.Errorf("kick during the claim closed a session: %+v", st)
		}
		return nil, nil
	}
	srv, addr := startServer(t, Config{Bus: bus}, NewMemStore())
	uid := addAccount(t, srv, "alice@example.com", "pw-a", "alice")
	c := login(t, addr, "alice@example.com", "pw-a")
	c.expect("err 6", isError(msim.ErrCodeElsewhere))
	c.expectClosed()
	if st := bus.peer.State(uid); st != nil {
		t.Errorf("got a session here with state %+v, want none", st)
	}
}

// TestBusKickHandsOver: a kick from a later login elsewhere closes the
// session here with err 6 and hands back its presence; an older one
// closes nothing.
func TestBusKickHandsOver(t *testing.T) {
	bus := &fakeBus{}
	srv, addr := startServer(t, Config{Bus: bus}, NewMemStore())
	uid := addAccount(t, srv, "alice@example.com", "pw-a", "alice")
	c := login(t, addr, "alice@example.com", "pw-a")
	c.status(msim.StatusAway, "lunch")
	c.sync()
	if st := bus.peer.Kick(uid, Version{Epoch: 1, Node: "there"}); st != nil {
		t.Errorf("an older login kicked the session: %+v", st)
	}
	st := bus.peer.Kick(uid, Version{Epoch: 1 << 62, Node: "there"})
	if st == nil || st.Presence.Status != msim.StatusAway || st.Presence.Text != "lunch" || !st.Announced {
		t.Fatalf("got state %+v, want away, lunch, announced", st)
	}
	c.expect("err 6", isError(msim.ErrCodeElsewhere))
	c.expectClosed()
}

// takenHookStore is a Store that runs hook once, as the first TakeOffline
// of uid has taken the mailbox.
type takenHookStore struct {
	Store
	uid  msim.UID
	hook func()
	once sync.Once
}

func (h *takenHookStore) TakeOffline(to msim.UID) ([]OfflineMessage, error) {
	msgs, err := h.Store.TakeOffline(to)
	if to == h.uid {
		h.once.Do(h.hook)
	}
	return msgs, err
}

// TestBusMailboxDuringLogin: an IM stored by another node after this
// node's login took the mailbox, and announced (Stored) before the login
// registered the session, reaches that session: the nudge waits for the
// login instead of finding no session and leaving the IM stored.
func TestBusMailboxDuringLogin(t *testing.T) {
	bus := &fakeBus{}
	mem := NewMemStore()
	st := &takenHookStore{Store: mem}
	srv, addr := startServer(t, Config{Bus: bus}, st)
	alice := addAccount(t, srv, "alice@example.com", "pw-a", "alice")
	bob := addAccount(t, srv, "bob@example.com", "pw-b", "bob")
	st.uid = bob
	st.hook = func() {
		// Another node, which found bob connected nowhere, stores an
		// IM and nudges bob's node.
		if err := mem.AddOffline(bob, OfflineMessage{From: alice, Time: time.Now().UTC(), Body: "meanwhile"}, OfflineLimits{}); err != nil {
			t.Error(err)
		}
		done := make(chan struct{})
		go func() { bus.peer.Mailbox(bob); close(done) }()
		select {
		case <-done:
		case <-time.After(200 * time.Millisecond): // waits for the login
		}
	}
	c := login(t, addr, "bob@example.com", "pw-b")
	c.expect("the IM stored during the login", isBM(msim.BMIM, alice))
}

// TestBusRescueAfterATakeoverHere: in a cluster, the IMs a session did not
// write, stored after a newer login on the same node took the mailbox,
// reach that newer session as they do without a cluster: the bus does not
// echo a node's own Stored to it.
func TestBusRescueAfterATakeoverHere(t *testing.T) {
	bus := &fakeBus{}
	mem := NewMemStore()
	srv, addr := startFlooding(t, Config{Bus: bus, OfflinePerRecipientBytes: -1, OfflinePerSenderBytes: -1}, mem)
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	old := login(t, addr, "bob@example.com", "hunter2") // never reads
	_ = old.nc.(*net.TCPConn).SetReadBuffer(16 << 10)
	pad := strings.Repeat("x", 8<<10)
	for i := range 1000 { // more than the sockets hold, less than SendQ
		alice.bm(msim.BMIM, bUID, fmt.Sprint(i, pad))
	}
	alice.sync()
	bob := login(t, addr, "bob@example.com", "hunter2")
	old.nc.Close() // the old session's writes fail: what it holds is stored
	bob.expect("an IM the old session did not write", isBM(msim.BMIM, aUID))
}

// TestBusKickDuringLoginPassesStateOn: a later login elsewhere that claims
// the account while this node's login, which took over a session from a
// third node, is still under way gets that session's state: the presence
// carried by the login here is not lost with it.
func TestBusKickDuringLoginPassesStateOn(t *testing.T) {
	bus := &fakeBus{}
	bus.claim = func(uid msim.UID, _ Version) (*PeerState, error) {
		return &PeerState{
			UID: uid, Version: Version{Epoch: 1, Node: "first"}, Seq: 3, Online: true, Announced: true,
			Presence: msim.Presence{Status: msim.StatusAway, Text: "lunch"},
		}, nil
	}
	store := &takenHookStore{Store: NewMemStore()}
	srv, addr := startServer(t, Config{Bus: bus}, store)
	uid := addAccount(t, srv, "alice@example.com", "pw-a", "alice")
	store.uid = uid
	var got *PeerState
	store.hook = func() { // the claim is done, the session not yet registered
		got = bus.peer.Kick(uid, Version{Epoch: 1 << 62, Node: "later"})
	}
	c := login(t, addr, "alice@example.com", "pw-a")
	c.expect("err 6", isError(msim.ErrCodeElsewhere))
	c.expectClosed()
	if got == nil || !got.Online || !got.Announced || got.Presence.Status != msim.StatusAway || got.Presence.Text != "lunch" {
		t.Fatalf("the later login got state %+v, want online, announced, away, lunch", got)
	}
}

// TestBusNodeDownDuringTakeOver: a user whose login here takes over a
// session from another node that goes down meanwhile (its goodbye right
// after the hand-over) shows online again to the watchers here once the
// login is done, with the presence it took over: they are not left with
// the offline state the node's going down gave them.
func TestBusNodeDownDuringTakeOver(t *testing.T) {
	bus, _, addr, _, bob := aliceListsBob(t)
	c := login(t, addr, "alice@example.com", "pw-a")
	there := &PeerState{UID: bob, Version: Version{Epoch: 1, Node: "there"}, Seq: 2, Online: true, Announced: true,
		Presence: msim.Presence{Status: msim.StatusAway, Text: "lunch"}}
	bus.peer.PeerState(there)
	bus.claim = func(uid msim.UID, _ Version) (*PeerState, error) {
		if uid != bob {
			return nil, nil
		}
		bus.peer.NodeDown("there") // gone right after handing bob over
		return there, nil
	}
	b := login(t, addr, "bob@example.com", "pw-b")
	b.sync()
	got := presencesSeen(c, bob)
	want := []msim.Status{msim.StatusAway, msim.StatusOffline, msim.StatusAway}
	if !slices.Equal(got, want) {
		t.Errorf("alice saw bob's presences %v, want %v", got, want)
	}
}

// TestBusMailboxPastSendQ: the IMs stored for a user while another node
// thought them connected nowhere (a login there at the same moment, a
// node cut off for a while) go to the session here when the bus says so
// (Mailbox), up to the mailbox's own bound as at a login: more than the
// send queue holds does not close a session that reads.
func TestBusMailboxPastSendQ(t *testing.T) {
	bus, mem, _, alice, bob, c := mailboxRig(t)
	const stored = 100
	for i := range stored {
		if err := mem.AddOffline(bob, OfflineMessage{From: alice, Time: time.Now().UTC(), Body: fmt.Sprint("stored ", i)}, OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	bus.peer.Mailbox(bob)
	for i := range stored {
		m := c.expect(fmt.Sprint("stored IM ", i), func(m *msim.Message) bool { return isBM(msim.BMIM, alice)(m) || m.Is("error") })
		if body, _ := m.Str("msg"); !m.Is("bm") || body != fmt.Sprint("stored ", i) {
			t.Fatalf("stored IM %d: got %v", i, m)
		}
	}
	c.sync()
	if left, _ := mem.TakeOffline(bob); len(left) != 0 {
		t.Errorf("%d IMs still stored, want none", len(left))
	}
}

// TestBusMailboxDoesNotRaiseTheQueueLimitForGood: the room a mailbox's
// burst is given lasts while its IMs wait in the queue; a session handed
// many mailboxes over its life keeps SendQ as its bound for what waits.
func TestBusMailboxDoesNotRaiseTheQueueLimitForGood(t *testing.T) {
	bus, mem, srv, alice, bob, c := mailboxRig(t)
	ss := srv.reg.session(bob)
	limit := func() int {
		ss.qmu.Lock()
		defer ss.qmu.Unlock()
		return srv.cfg.SendQ + ss.burst
	}
	const mailboxes = 500
	for i := range mailboxes { // one IM at a time, each read before the next
		if err := mem.AddOffline(bob, OfflineMessage{From: alice, Time: time.Now().UTC(), Body: fmt.Sprint("stored ", i)}, OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
		bus.peer.Mailbox(bob)
		m := c.expect(fmt.Sprint("stored IM ", i), func(m *msim.Message) bool { return isBM(msim.BMIM, alice)(m) || m.Is("error") })
		if body, _ := m.Str("msg"); !m.Is("bm") || body != fmt.Sprint("stored ", i) {
			t.Fatalf("stored IM %d: got %v", i, m)
		}
	}
	c.sync()
	if got := limit(); got != srv.cfg.SendQ {
		t.Errorf("send queue limit %d after %d single-IM mailboxes, all written; want SendQ, %d", got, mailboxes, srv.cfg.SendQ)
	}
}

// mailboxRig is a server of SendQ 4 on a fake bus, with alice and bob,
// bob logged in as c.
func mailboxRig(t *testing.T) (*fakeBus, Store, *Server, msim.UID, msim.UID, *client) {
	t.Helper()
	bus := &fakeBus{}
	mem := NewMemStore()
	srv, addr := startServer(t, Config{Bus: bus, SendQ: 4}, mem)
	alice := addAccount(t, srv, "alice@example.com", "pw-a", "alice")
	bob := addAccount(t, srv, "bob@example.com", "pw-b", "bob")
	c := login(t, addr, "bob@example.com", "pw-b")
	c.sync()
	return bus, mem, srv, alice, bob, c
}

// TestBMTypeOfBMsOnly: bmType reads a bm's type, and gives 0 for any
// other message, whatever its bytes after the fourth: routing and the
// rescue take for an IM the same messages.
func TestBMTypeOfBMsOnly(t *testing.T) {
	for wire, want := range map[string]int{
		`\bm\1\sesskey\1\t\2\msg\hi\final\`:   msim.BMIM,
		`\bm\121\sesskey\1\t\2\msg\hi\final\`: msim.BMAction,
		`\bm\01\t\2\final\`:                   msim.BMIM,
		`\bm\1`:                               msim.BMIM,
		`\xx\1\sesskey\1\t\2\msg\hi\final\`:   0,
		`\status\1\final\`:                    0,
		`\bm`:                                 0,
		``:                                    0,
	} {
		if got := bmType([]byte(wire)); got != want {
			t.Errorf("bmType(%q) = %d, want %d", wire, got, want)
		}
	}
}
