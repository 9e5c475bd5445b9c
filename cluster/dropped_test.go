package cluster

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// stuckPeer is a Peer whose Mailbox waits until release is closed.
type stuckPeer struct {
	release chan struct{}
	once    sync.Once
	stuck   chan struct{}
}

func (p *stuckPeer) Deliver(msim.UID, msim.UID, []byte, time.Time) bool { return false }
func (p *stuckPeer) Kick(msim.UID, server.Version) *server.PeerState    { return nil }
func (p *stuckPeer) State(msim.UID) *server.PeerState                   { return nil }
func (p *stuckPeer) HandOn(msim.UID, server.Version, *server.PeerState) {}
func (p *stuckPeer) PeerState(*server.PeerState)                        {}
func (p *stuckPeer) NodeDown(string)                                    {}
func (p *stuckPeer) Gone(msim.UID, time.Time)                           {}
func (p *stuckPeer) Fence()                                             {}
func (p *stuckPeer) Rescan()                                            {}
func (p *stuckPeer) Alert(msim.UID, string)                             {}
func (p *stuckPeer) AlertsTaken(msim.UID)                               {}
func (p *stuckPeer) Mailbox(msim.UID) {
	p.once.Do(func() { close(p.stuck) })
	<-p.release
}

// TestDroppedMessagesCounted: every message a stalled shard could not take
// is counted as dropped, not only the first of a burst.
func TestDroppedMessagesCounted(t *testing.T) {
	url := startLocalNATS(t)
	reg := prometheus.NewRegistry()
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: testHeartbeat, DeadAfter: testDeadAfter, Metrics: reg}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &stuckPeer{release: make(chan struct{}), stuck: make(chan struct{})}
	n.Attach(p)
	defer n.Close()
	defer close(p.release)
	const uid = 4 // every message on one shard
	if _, err := n.Claim(uid, server.Version{Epoch: 1, Node: n.Node()}); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(n.subj.user(uid), []byte{opMailbox}); err != nil {
		t.Fatal(err)
	}
	<-p.stuck
	const extra = 500
	for range shardQueue + extra {
		if err := nc.Publish(n.subj.user(uid), []byte{opMailbox}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	dropped := n.metrics.dropped
	deadline := time.Now().Add(wait)
	for counterValue(t, dropped) < extra && time.Now().Before(deadline) {
		time.Sleep(testHeartbeat)
	}
	if got := counterValue(t, dropped); got != extra {
		t.Errorf("msimd_nats_dropped_messages_total = %v, want %d", got, extra)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestHeartbeatDoesNotStallOnIdleSubscriptions: a heartbeat looks only
// at the subscriptions on which NATS dropped messages, and not under the
// node's lock, so claims, deliveries and watches are not held up by how
// many users the node follows.
func TestHeartbeatDoesNotStallOnIdleSubscriptions(t *testing.T) {
	url := startLocalNATS(t)
	// Its own heartbeats only at the start: the test makes the others.
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: time.Hour, DeadAfter: 3 * time.Hour}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(&stuckPeer{release: make(chan struct{}), stuck: make(chan struct{})})
	defer n.Close()
	const watched = 100000
	n.mu.Lock()
	var one *nats.Subscription
	for u := msim.UID(1); u <= watched; u++ {
		c, _ := n.hold(n.watches, u, n.subj.presence(u))
		c.n++
		one = c.sub
	}
	n.mu.Unlock()
	var looked, underLock atomic.Int32
	n.setHook(func(point string, _ msim.UID) {
		if point != "count dropped" {
			return
		}
		// The node's lock is free but for moments, unless the heartbeat
		// holds it.
		for deadline := time.Now().Add(wait); !n.mu.TryLock(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				underLock.Add(1)
				return
			}
		}
		looked.Add(1)
		n.mu.Unlock()
	})
	n.beat()
	if got := looked.Load() + underLock.Load(); got != 0 {
		t.Errorf("with %d idle subscriptions, a heartbeat looked at %d of them, want 0", watched, got)
	}
	n.markSlow(one) // as NATS's slow-consumer error does
	n.beat()
	if looked.Load()+underLock.Load() == 0 {
		t.Error("a heartbeat did not look at the subscription that dropped messages")
	}
	if got := underLock.Load(); got != 0 {
		t.Errorf("a heartbeat looked at %d subscriptions under the node's lock, want 0", got)
	}
}

// TestFinalDropCountedOnce: the drops counted as a subscription is let go
// are not counted again by a heartbeat when NATS reports them (a slow
// consumer) before the subscription is closed.
func TestFinalDropCountedOnce(t *testing.T) {
	const stall, watched, extra = 4, 8, 5 // one shard
	reg := prometheus.NewRegistry()
	n, p, nc := slowNode(t, stall, func(c *Config) {
		c.Heartbeat, c.DeadAfter, c.Metrics = time.Hour, 3*time.Hour, reg
		// NATS's slow-consumer reports are the test's (markSlow).
		c.Options = []nats.Option{nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	})
	n.Watch([]msim.UID{watched})
	fillShard(t, n, p, nc)
	for range extra {
		if err := nc.Publish(n.subj.presence(watched), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	dropsSeen(t, n, p, nc) // read, not yet reported
	n.mu.Lock()
	sub := n.watches[watched].sub
	n.mu.Unlock()
	// As drop counts them before it unsubscribes; NATS reports them,
	// and a heartbeat comes, before the unsubscription.
	n.countDropped(sub, true)
	n.markSlow(sub)
	n.countSlow()
	if got := counterValue(t, n.metrics.dropped); got != extra {
		t.Errorf("msimd_nats_dropped_messages_total = %v, want %d", got, extra)
	}
	n.Unwatch([]msim.UID{watched})
}

// TestBadFenceCounted: a fence with an unknown op, or naming no node, is a
// malformed message, counted as dropped.
func TestBadFenceCounted(t *testing.T) {
	url := startLocalNATS(t)
	reg := prometheus.NewRegistry()
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: time.Hour, DeadAfter: 3 * time.Hour, Metrics: reg}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newRecPeer(0)
	n.Attach(p)
	defer n.Close()
	// Attach does not wait for NATS to have its subscriptions: a fence
	// sent before the server has the node's would reach nobody.
	if err := n.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, msg := range [][]byte{
		encodeJSON('?', beat{Node: n.Node()}),
		encodeJSON(opHeartbeat, beat{}),
		encodeJSON(opHeartbeat, beat{Node: n.Node()}), // the one that fences, last
	} {
		if err := nc.Publish(n.subj.fence(), msg); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-p.fences:
	case <-time.After(wait):
		t.Fatalf("no fence within %v", wait)
	}
	if got := counterValue(t, n.metrics.dropped); got != 2 {
		t.Errorf("msimd_nats_dropped_messages_total = %v, want 2", got)
	}
}
