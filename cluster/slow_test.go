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

	mu     sync.Mutex
	states map[msim.UID]*server.PeerState
	gone   map[msim.UID]bool
	wake   chan struct{}

	mailbox chan msim.UID
	kicks   chan server.Version
}

func newRecPeer(stall msim.UID) *recPeer {
	return &recPeer{
		stall: stall, stuck: make(chan struct{}), release: make(chan struct{}),
		states: map[msim.UID]*server.PeerState{}, gone: map[msim.UID]bool{}, wake: make(chan struct{}, 1),
		mailbox: make(chan msim.UID, shardQueue*2), kicks: make(chan server.Version, 16),
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
func (p *recPeer) Fence()                 {}
func (p *recPeer) Rescan()                {}
func (p *recPeer) Alert(msim.UID, string) {}
func (p *recPeer) AlertsTaken(msim.UID)   {}
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
// of the test's.
func slowNode(t *testing.T, stall msim.UID) (*Node, *recPeer, *nats.Conn) {
	t.Helper()
	url := startLocalNATS(t)
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: testHeartbeat, DeadAfter: testDeadAfter, RequestTimeout: time.Second}, testLog(t))
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
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
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
// up: the user's mailbox is looked at (an IM stored meanwhile, whose notice
// was dropped), the user's state is published again (for a node whose
// state fetch was dropped), and the node kicks again (a newer login's kick
// was dropped: the older session still goes).
func TestSlowConsumerUserMadeUp(t *testing.T) {
	const stall, uid = 4, 8 // one shard
	n, p, nc := slowNode(t, stall)
	mine := server.Version{Epoch: 10, Node: n.Node()}
	p.own = &server.PeerState{UID: uid, Version: mine, Seq: 3, Online: true, Announced: true, Presence: msim.Presence{Status: msim.StatusAway}}
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
		var v server.Version
		if len(m.Data) == 0 || m.Data[0] != opKick || decodeJSON(m.Data[1:], &v) != nil || v.Node != n.Node() {
			return // the test's own messages
		}
		kicked <- v
		_ = m.Respond(encodeJSON(opKick, newer)) // this login is newer
	}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	fillShard(t, n, p, nc)
	subject := n.subj.user(uid)
	for _, msg := range [][]byte{{opMailbox}, {opState}, encodeJSON(opKick, newer)} {
		if err := nc.PublishRequest(subject, nats.NewInbox(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p.unstall()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
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
	select {
	case v := <-kicked:
		if v != mine {
			t.Errorf("kicked with version %v, want %v", v, mine)
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
}
