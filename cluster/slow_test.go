package cluster

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// recPeer is a Peer that records what the node hands it. Its Mailbox of
// stall waits, the first time, until unstall is called: the shard of
// stall is held meanwhile.
type recPeer struct {
	stall   msim.UID
	stuck   chan struct{}
	release chan struct{}
	once    sync.Once
	free    sync.Once
	own     *server.PeerState // State's answer
	closed  *server.PeerState // Kick's answer

	mu     sync.Mutex
	states map[msim.UID]*server.PeerState
	gone   map[msim.UID]bool
	wake   chan struct{}

	mailbox chan msim.UID
	kicks   chan server.Version
	alerts  chan msim.UID
	fences  chan struct{}
}

func newRecPeer(stall msim.UID) *recPeer {
	return &recPeer{
		stall: stall, stuck: make(chan struct{}), release: make(chan struct{}),
		states: map[msim.UID]*server.PeerState{}, gone: map[msim.UID]bool{}, wake: make(chan struct{}, 1),
		mailbox: make(chan msim.UID, shardQueue*2), kicks: make(chan server.Version, 16),
		alerts: make(chan msim.UID, 16), fences: make(chan struct{}, 16),
	}
}

func (p *recPeer) unstall() { p.free.Do(func() { close(p.release) }) }

func (p *recPeer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *recPeer) Deliver(msim.UID, msim.UID, []byte, time.Time) bool { return false }
func (p *recPeer) Kick(_ msim.UID, by server.Version) *server.PeerState {
	p.kicks <- by
	if p.closed != nil {
		st := *p.closed
		return &st
	}
	return nil
}
func (p *recPeer) State(uid msim.UID) *server.PeerState {
	if p.own != nil && p.own.UID == uid {
		st := *p.own
		return &st
	}
	return nil
}
func (p *recPeer) HandOn(msim.UID, server.Version, *server.PeerState) {}
func (p *recPeer) PeerState(st *server.PeerState) {
	p.mu.Lock()
	if cur := p.states[st.UID]; cur == nil || cur.Seq < st.Seq {
		p.states[st.UID] = st
	}
	p.mu.Unlock()
	p.poke()
}
func (p *recPeer) NodeDown(string) {}
func (p *recPeer) Gone(uid msim.UID, _ time.Time) {
	p.mu.Lock()
	p.gone[uid] = true
	p.mu.Unlock()
	p.poke()
}
func (p *recPeer) Fence()                       { p.fences <- struct{}{} }
func (p *recPeer) Rescan()                      {}
func (p *recPeer) Alert(uid msim.UID, _ string) { p.alerts <- uid }
func (p *recPeer) AlertsTaken(msim.UID)         {}
func (p *recPeer) Mailbox(uid msim.UID) {
	if uid == p.stall {
		p.once.Do(func() {
			close(p.stuck)
			<-p.release
		})
		return
	}
	p.mailbox <- uid
}

// waitFor waits until ok, read under p.mu, holds.
func (p *recPeer) waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		p.mu.Lock()
		done := ok()
		p.mu.Unlock()
		if done {
			return
		}
		select {
		case <-p.wake:
		case <-timeout.C:
			t.Fatalf("no %s within %v", what, wait)
		}
	}
}

// slowNode is a node on its own NATS server with a recPeer whose Mailbox
// holds the shard of stall, which the node claims, and a NATS connection
// of the test's. tune, if any, changes the node's Config.
func slowNode(t *testing.T, stall msim.UID, tune ...func(*Config)) (*Node, *recPeer, *nats.Conn) {
	t.Helper()
	url := startLocalNATS(t)
	cfg := Config{URL: url, Name: "n1", Heartbeat: testHeartbeat, DeadAfter: testDeadAfter, RequestTimeout: time.Second}
	for _, f := range tune {
		f(&cfg)
	}
	n, err := Connect(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newRecPeer(stall)
	n.Attach(p)
	t.Cleanup(func() { n.Close() })
	t.Cleanup(p.unstall) // before the Close
	if _, err := n.Claim(stall, server.Version{Epoch: 1, Node: n.Node()}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return n, p, nc
}

// fillShard holds the shard of stall (the recPeer's Mailbox) and fills its
// queue: what comes for that shard next is dropped by NATS (a slow
// consumer) until it is let go.
func fillShard(t *testing.T, n *Node, p *recPeer, nc *nats.Conn) {
	t.Helper()
	subject := n.subj.user(p.stall)
	if err := nc.Publish(subject, []byte{opMailbox}); err != nil {
		t.Fatal(err)
	}
	<-p.stuck
	for range shardQueue {
		if err := nc.Publish(subject, []byte{opMailbox}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, n, p.stall, shardQueue)
}

// dropsSeen waits until the node has read every message the test sent
// so far (those for a full shard dropped and counted by NATS, not left
// for the shard once it is let go), and notes the subscriptions to the
// presence subjects of watched as slow, as NATS's slow-consumer report
// does.
func dropsSeen(t *testing.T, n *Node, p *recPeer, nc *nats.Conn, watched ...msim.UID) {
	t.Helper()
	// An alert: NATS hands the node's messages over in order.
	if err := nc.Publish(n.subj.alert(), encodeJSON(opAlert, alertMsg{UID: 1, Key: "k", Node: "test"})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.alerts:
	case <-time.After(wait):
		t.Fatal("the alert sent after the messages to drop did not come")
	}
	for _, u := range watched {
		n.mu.Lock()
		sub := n.watches[u].sub
		n.mu.Unlock()
		if d, err := sub.Dropped(); err != nil || d == 0 {
			t.Fatalf("subscription to %s dropped %d messages (%v), want some", sub.Subject, d, err)
		}
		n.markSlow(sub)
	}
}

// unstallTaken lets the shard of stall go (unstall), and waits until it
// has taken the messages fillShard queued: it has room again. It sets the
// node's hook.
func unstallTaken(t *testing.T, n *Node, p *recPeer) {
	t.Helper()
	taken := make(chan struct{})
	var k atomic.Int32
	n.setHook(func(point string, uid msim.UID) {
		if point == "message" && uid == p.stall && k.Add(1) == shardQueue { // behind the one holding it
			close(taken)
		}
	})
	p.unstall()
	select {
	case <-taken:
	case <-time.After(wait):
		t.Fatalf("the shard of %d did not take its messages within %v", p.stall, wait)
	}
}

// through waits until the shard of uid, a user the node claims, has taken
// every message queued on it so far: a mailbox notice behind them is
// handed over.
func through(t *testing.T, n *Node, p *recPeer, nc *nats.Conn, uid msim.UID) {
	t.Helper()
	if err := nc.Publish(n.subj.user(uid), []byte{opMailbox}); err != nil {
		t.Fatal(err)
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		select {
		case u := <-p.mailbox:
			if u == uid {
				return
			}
		case <-timeout.C:
			t.Fatalf("the shard of %d did not take its messages within %v", uid, wait)
		}
	}
}

// TestSlowConsumerPresenceMadeUp: a presence change NATS dropped on a
// watched user's subject (the node's shard was full) is not lost for good:
// once the shard catches up, the node fetches the user's state again, and
// a user gone offline meanwhile is not left online.
func TestSlowConsumerPresenceMadeUp(t *testing.T) {
	for _, online := range []bool{true, false} {
		name := "away"
		if !online {
			name = "offline"
		}
		t.Run(name, func(t *testing.T) {
			const stall, watched = 4, 8 // one shard
			n, p, nc := slowNode(t, stall)
			first := &server.PeerState{UID: watched, Version: server.Version{Epoch: 1, Node: "other"}, Seq: 1, Online: true, Announced: true,
				Presence: msim.Presence{Status: msim.StatusOnline}}
			latest := *first
			latest.Seq, latest.Presence = 2, msim.Presence{Status: msim.StatusAway, Text: "lunch"}
			// The test's connection is the watched user's node: it
			// answers state fetches with the user's state, or not at
			// all once the user has logged out (no responders).
			var cur atomic.Pointer[server.PeerState]
			cur.Store(first)
			if online {
				sub, err := nc.Subscribe(n.subj.user(watched), func(m *nats.Msg) {
					if len(m.Data) > 0 && m.Data[0] == opState {
						_ = m.Respond(encodeState(cur.Load()))
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Unsubscribe()
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
			} else {
				latest.Online, latest.Presence = false, msim.Presence{}
			}
			n.Watch([]msim.UID{watched})
			if err := nc.Publish(n.subj.presence(watched), encodeState(first)); err != nil {
				t.Fatal(err)
			}
			p.waitFor(t, "first state", func() bool { return p.states[watched] != nil })
			cur.Store(&latest)
			fillShard(t, n, p, nc)
			if err := nc.Publish(n.subj.presence(watched), encodeState(&latest)); err != nil {
				t.Fatal(err)
			}
			dropsSeen(t, n, p, nc)
			p.unstall()
			if online {
				p.waitFor(t, "state dropped by NATS made up", func() bool { return p.states[watched].Seq == latest.Seq })
			} else {
				p.waitFor(t, "logout dropped by NATS made up", func() bool { return p.states[watched].Seq == latest.Seq || p.gone[watched] })
			}
		})
	}
}

// TestSlowConsumerUserMadeUp: requests and notices NATS dropped on a user's
// subject (the node's shard was full) are made up once the shard catches
// up: the node kicks again (a login elsewhere's kick may have been
// dropped: of two sessions the older still goes), the user's mailbox is
// looked at (an IM stored meanwhile, whose notice was dropped), and the
// user's state is published again (for a node whose state fetch was
// dropped).
func TestSlowConsumerUserMadeUp(t *testing.T) {
	const stall, uid = 4, 8 // one shard
	n, p, nc := slowNode(t, stall)
	mine := server.Version{Epoch: 10, Node: n.Node()}
	p.own = &server.PeerState{UID: uid, Version: mine, Seq: 3, Online: true, Announced: true, Presence: msim.Presence{Status: msim.StatusAway}}
	if _, err := n.Claim(uid, mine); err != nil {
		t.Fatal(err)
	}
	// obs is another node, which follows uid's state and holds a claim
	// of uid with no session (it answers kicks with nothing).
	obs, err := nats.Connect(n.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	published := make(chan *server.PeerState, 16)
	if _, err := obs.Subscribe(n.subj.presence(uid), func(m *nats.Msg) {
		if st, err := decodeState(m.Data, uid); err == nil {
			published <- st
		}
	}); err != nil {
		t.Fatal(err)
	}
	kicked := make(chan server.Version, 16)
	if _, err := obs.Subscribe(n.subj.user(uid), func(m *nats.Msg) {
		if len(m.Data) == 0 || m.Data[0] != opKick {
			return // the test's own messages
		}
		if v, err := decodeVersion(m.Data[1:]); err == nil && v == mine {
			kicked <- v
			_ = m.Respond(noState)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	fillShard(t, n, p, nc)
	subject := n.subj.user(uid)
	for _, msg := range [][]byte{{opMailbox}, {opState}} {
		if err := nc.PublishRequest(subject, nats.NewInbox(), msg); err != nil {
			t.Fatal(err)
		}
	}
	dropsSeen(t, n, p, nc)
	p.unstall()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	select {
	case <-kicked:
	case <-timeout.C:
		t.Fatal("a kick dropped by NATS was not made up: the node did not kick again")
	}
	select {
	case u := <-p.mailbox:
		if u != uid {
			t.Errorf("mailbox of %d looked at, want %d", u, uid)
		}
	case <-timeout.C:
		t.Fatal("a mailbox notice dropped by NATS was not made up: the mailbox was not looked at")
	}
	select {
	case st := <-published:
		if st.Version != mine || st.Seq != p.own.Seq {
			t.Errorf("published %+v, want the state of version %v seq %d", st, mine, p.own.Seq)
		}
	case <-timeout.C:
		t.Fatal("a state fetch dropped by NATS was not made up: the state was not published again")
	}
}

// TestSlowConsumerKickMadeUp: a newer login's kick that NATS dropped on a
// local user's subject is made up: the node kicks again, before anything
// else, and the newer login's node kicks back. The session here is
// closed, and its state handed on to the newer login; the mailbox is not
// handed to the session here, nor its state published again.
func TestSlowConsumerKickMadeUp(t *testing.T) {
	const stall, uid = 4, 8 // one shard
	n, p, nc := slowNode(t, stall)
	mine := server.Version{Epoch: 10, Node: n.Node()}
	p.own = &server.PeerState{UID: uid, Version: mine, Seq: 3, Online: true, Announced: true, Presence: msim.Presence{Status: msim.StatusAway}}
	p.closed = p.own
	if _, err := n.Claim(uid, mine); err != nil {
		t.Fatal(err)
	}
	newer := server.Version{Epoch: 20, Node: "other"}
	// obs is the node of uid's newer login, and follows uid's state.
	obs, err := nats.Connect(n.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	published := make(chan *nats.Msg, 16)
	if _, err := obs.ChanSubscribe(n.subj.presence(uid), published); err != nil {
		t.Fatal(err)
	}
	kicked := make(chan int, 16) // the mailboxes looked at before each kick
	handedOn := make(chan handOnMsg, 16)
	if _, err := obs.Subscribe(n.subj.user(uid), func(m *nats.Msg) {
		if len(m.Data) == 0 {
			return
		}
		switch m.Data[0] {
		case opKick:
			if v, err := decodeVersion(m.Data[1:]); err == nil && v == mine {
				kicked <- len(p.mailbox)
				_ = m.Respond(encodeJSON(opKick, newer)) // this login is newer
			}
		case opHandOn:
			if to, st, err := decodeHandOn(m.Data[1:], uid); err == nil {
				handedOn <- handOnMsg{To: to, State: st}
			}
			_ = m.Respond(noState)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	fillShard(t, n, p, nc)
	subject := n.subj.user(uid)
	for _, msg := range [][]byte{{opMailbox}, encodeJSON(opKick, newer)} {
		if err := nc.PublishRequest(subject, nats.NewInbox(), msg); err != nil {
			t.Fatal(err)
		}
	}
	dropsSeen(t, n, p, nc)
	p.unstall()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	select {
	case looked := <-kicked:
		if looked > 0 {
			t.Error("the mailbox was handed to the session here before the kick, which a newer login answers")
		}
	case <-timeout.C:
		t.Fatal("a kick dropped by NATS was not made up: the node did not kick again")
	}
	select {
	case v := <-p.kicks:
		if v != newer {
			t.Errorf("the session here was kicked by %v, want %v", v, newer)
		}
	case <-timeout.C:
		t.Fatal("the older session here was not closed for the newer login")
	}
	select {
	case h := <-handedOn:
		if h.To != newer || h.State.Version != mine || h.State.Seq != p.own.Seq {
			t.Errorf("handed on %+v to %v, want the state of version %v seq %d to %v", h.State, h.To, mine, p.own.Seq, newer)
		}
	case <-timeout.C:
		t.Fatal("the state of the session closed here was not handed on to the newer login")
	}
	n.Close() // once the make-up is over; what it published has reached NATS
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(p.mailbox) > 0 {
		t.Error("the mailbox was handed to a session that a newer login superseded")
	}
	if len(published) > 0 {
		t.Error("the state of a session that a newer login superseded was published again")
	}
}

// TestSlowConsumerManyMadeUp: make-ups are not rationed per heartbeat.
// With many subscriptions owing dropped messages at once, and state
// fetches slow to be answered, one heartbeat has them all made up: once
// the shard has reached a subscription's mark, the make-up waits for a
// worker, not for another heartbeat.
func TestSlowConsumerManyMadeUp(t *testing.T) {
	const stall, owed = 4, 10 * fetchers
	// Heartbeats by hand (beat): the node's own come only at the start.
	n, p, nc := slowNode(t, stall, func(c *Config) {
		c.Heartbeat, c.DeadAfter, c.RequestTimeout = time.Hour, 3*time.Hour, wait
	})
	uids := make([]msim.UID, owed)
	for i := range uids {
		uids[i] = msim.UID(stall * (i + 2)) // the shard of stall
	}
	sentinel := msim.UID(stall * (owed + 2))
	if _, err := n.Claim(sentinel, server.Version{Epoch: 1, Node: n.Node()}); err != nil {
		t.Fatal(err)
	}
	n.Watch(uids)
	fillShard(t, n, p, nc)
	other := server.Version{Epoch: 1, Node: "other"}
	for _, u := range uids {
		st := &server.PeerState{UID: u, Version: other, Seq: 1, Online: true, Announced: true}
		if err := nc.Publish(n.subj.presence(u), encodeState(st)); err != nil {
			t.Fatal(err)
		}
	}
	dropsSeen(t, n, p, nc, uids...)
	unstallTaken(t, n, p)
	// The users' node answers state fetches only once the shard has
	// taken every mark: until then each worker waits on its fetch.
	gate := make(chan struct{})
	var open sync.Once
	opened := func() { open.Do(func() { close(gate) }) }
	t.Cleanup(opened)
	for _, u := range uids {
		st := &server.PeerState{UID: u, Version: other, Seq: 2, Online: true, Announced: true}
		if _, err := nc.Subscribe(n.subj.user(u), func(m *nats.Msg) {
			if len(m.Data) == 1 && m.Data[0] == opState {
				<-gate
				_ = m.Respond(encodeState(st))
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n.beat()
	through(t, n, p, nc, sentinel)
	opened()
	madeUp := func() (k int) {
		for _, u := range uids {
			if st := p.states[u]; st != nil && st.Seq == 2 {
				k++
			}
		}
		return k
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		p.mu.Lock()
		k := madeUp()
		p.mu.Unlock()
		if k == owed {
			return
		}
		select {
		case <-p.wake:
		case <-timeout.C:
			t.Fatalf("after one heartbeat, %d of %d subscriptions owing dropped states made up within %v", k, owed, wait)
		}
	}
}

// TestSlowConsumerNowhereAskedAgain: a watched user whose state fetch,
// made up for a presence change NATS dropped, finds nobody is not gone at
// once: their node may be losing its NATS link for a moment. The user is
// asked for again once DeadAfter is over, found, and kept online.
func TestSlowConsumerNowhereAskedAgain(t *testing.T) {
	const stall, watched = 4, 8 // one shard
	n, p, nc := slowNode(t, stall)
	first := &server.PeerState{UID: watched, Version: server.Version{Epoch: 1, Node: "other"}, Seq: 1, Online: true, Announced: true,
		Presence: msim.Presence{Status: msim.StatusOnline}}
	latest := *first
	latest.Seq, latest.Presence = 2, msim.Presence{Status: msim.StatusAway, Text: "lunch"}
	n.Watch([]msim.UID{watched})
	if err := nc.Publish(n.subj.presence(watched), encodeState(first)); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "first state", func() bool { return p.states[watched] != nil })
	fillShard(t, n, p, nc)
	if err := nc.Publish(n.subj.presence(watched), encodeState(&latest)); err != nil {
		t.Fatal(err)
	}
	dropsSeen(t, n, p, nc)
	// The user's node is back once the make-up's fetch has found nobody.
	var back sync.Once
	n.setHook(func(point string, uid msim.UID) {
		if point != "found nowhere" || uid != watched {
			return
		}
		back.Do(func() {
			if _, err := nc.Subscribe(n.subj.user(watched), func(m *nats.Msg) {
				if len(m.Data) == 1 && m.Data[0] == opState {
					_ = m.Respond(encodeState(&latest))
				}
			}); err != nil {
				t.Error(err)
			}
			if err := nc.Flush(); err != nil {
				t.Error(err)
			}
		})
	})
	p.unstall()
	p.waitFor(t, "state dropped by NATS made up", func() bool { return p.gone[watched] || p.states[watched].Seq == latest.Seq })
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone[watched] {
		t.Error("the user was gone after a single state fetch found nobody")
	}
}
