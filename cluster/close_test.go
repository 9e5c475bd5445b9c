package cluster

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// queuedAnswer is the answer of a request queued at a node's close.
type queuedAnswer struct {
	data []byte
	err  error
}

// holdShard holds the shard of uid on n with a state fetch (the node's
// hook holds it until release is called; it is called at the test's end
// too), and returns a NATS connection of the test's. extra, when not nil,
// is the hook for the other points and messages.
func holdShard(t *testing.T, n *node, uid msim.UID, extra func(point string, u msim.UID)) (nc *nats.Conn, release func()) {
	t.Helper()
	bus := n.bus
	entered, free := make(chan struct{}), make(chan struct{})
	var once, freeOnce sync.Once
	bus.setHook(func(point string, u msim.UID) {
		if point == "message" && u == uid {
			held := false
			once.Do(func() {
				held = true
				close(entered)
				<-free
			})
			if held {
				return
			}
		}
		if extra != nil {
			extra(point, u)
		}
	})
	release = func() { freeOnce.Do(func() { close(free) }) }
	t.Cleanup(release)
	nc, err := nats.Connect(bus.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := nc.PublishRequest(bus.subj.user(uid), nats.NewInbox(), []byte{opState}); err != nil {
		t.Fatal(err)
	}
	<-entered
	return nc, release
}

// waitQueued waits until k messages are queued (not yet taken) for the
// shard of uid on bus.
func waitQueued(t *testing.T, bus *Node, uid msim.UID, k int) {
	t.Helper()
	for deadline := time.Now().Add(wait); len(bus.shard(uid)) < k; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages queued, want %d", len(bus.shard(uid)), k)
		}
	}
}

// closeWithQueued holds the shard of uid on n (holdShard), sends reqs on
// uid's subject so that they queue behind it, and stops n, letting the
// shard go once n's Close is under way. extra, when not nil, is the hook
// for the other points. It returns the requests' answers (one each, in
// any order) and a channel closed once n has stopped.
func closeWithQueued(t *testing.T, n *node, uid msim.UID, reqs [][]byte, extra func(point string, u msim.UID)) (<-chan queuedAnswer, <-chan struct{}) {
	t.Helper()
	bus := n.bus
	nc, release := holdShard(t, n, uid, extra)
	subject := bus.subj.user(uid)
	answers := make(chan queuedAnswer, len(reqs))
	for _, req := range reqs {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			m, err := nc.RequestWithContext(ctx, subject, req)
			if err != nil {
				answers <- queuedAnswer{err: err}
				return
			}
			answers <- queuedAnswer{data: m.Data}
		}()
	}
	waitQueued(t, bus, uid, len(reqs))
	stopped := make(chan struct{})
	go func() { n.stop(); close(stopped) }()
	<-bus.done // Shutdown is over and Close under way
	release()
	return answers, stopped
}

// queuedIMs are n IMs from a user to another, as a node delivers them,
// their sender waiting for an answer as long as the tests wait.
func queuedIMs(from msim.UID, n int) [][]byte {
	var reqs [][]byte
	deadline := time.Now().Add(wait)
	for i := range n {
		bm := msim.NewInt("bm", msim.BMIM).AddInt("f", int(from)).Add("msg", fmt.Sprintf("im %d", i))
		reqs = append(reqs, encodeDeliver(deadline, from, msim.Encode(bm)))
	}
	return reqs
}

// TestClusterCloseAnswersQueuedKicks: kicks that reached a node shutting
// down but were still queued for its shard when it closed are answered
// (there is nothing left to hand over: no state), not left for the
// claimers to time out on.
func TestClusterCloseAnswersQueuedKicks(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice")
	uid := acc["alice"].uid
	dial(t, nodes[0], "alice", acc["alice"])
	const kicks = 16
	var reqs [][]byte
	for i := range kicks {
		reqs = append(reqs, encodeJSON(opKick, server.Version{Epoch: int64(i + 1), Node: "claimer"}))
	}
	answers, stopped := closeWithQueued(t, nodes[0], uid, reqs, nil)
	<-stopped
	for range kicks {
		if a := <-answers; a.err != nil {
			t.Errorf("a kick queued at the close: %v, want an answer", a.err)
		}
	}
}

// TestClusterCloseAnswersQueuedDeliveries: IMs for alice that reached her
// node as it shut down, queued for its shard at the close, are answered at
// once: not taken (her session there has ended and no other node holds
// her), so each sender stores its IM now instead of after its request
// times out.
func TestClusterCloseAnswersQueuedDeliveries(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	dial(t, nodes[0], "alice", acc["alice"])
	const ims = 16
	answers, stopped := closeWithQueued(t, nodes[0], uid, queuedIMs(from, ims), nil)
	<-stopped
	for range ims {
		switch a := <-answers; {
		case a.err != nil:
			t.Errorf("an IM queued at the close: %v, want an answer", a.err)
		case !bytes.Equal(a.data, replyNotTaken):
			t.Errorf("an IM queued at the close: got %q, want %q (not taken)", a.data, replyNotTaken)
		}
	}
}

// TestClusterCloseProbesTogether: with other nodes up, each silent for a
// user it does not hold, the state fetch that decides the answer of an IM
// queued at the close may wait out its timeout; the IMs queued for one
// user wait for one such fetch together, so the close takes one timeout,
// not one per IM, and starts one probe, not one per IM.
func TestClusterCloseProbesTogether(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	dial(t, nodes[0], "alice", acc["alice"])
	const ims = 8
	var probes, joined atomic.Int32
	gate := make(chan struct{}) // closed once every IM has joined the first probe, or a second probe began
	var gateOnce sync.Once
	open := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(open)
	answers, stopped := closeWithQueued(t, nodes[0], uid, queuedIMs(from, ims), func(point string, u msim.UID) {
		switch {
		case u != uid:
		case point == "probe" && probes.Add(1) == 1:
			<-gate
		case point == "probe":
			open()
		case point == "probe joined" && joined.Add(1) == ims-1:
			open()
		}
	})
	<-stopped
	for range ims {
		switch a := <-answers; {
		case a.err != nil:
			t.Errorf("an IM queued at the close: %v, want an answer", a.err)
		case !bytes.Equal(a.data, replyNotTaken):
			t.Errorf("an IM queued at the close: got %q, want %q (not taken)", a.data, replyNotTaken)
		}
	}
	if p := probes.Load(); p != 1 {
		t.Errorf("the closing node looked whether another node holds alice %d times for %d IMs, want once", p, ims)
	}
}

// TestClusterKickSilentNodes: a kick answered with nothing by a node that
// holds a claim of alice but no session waits only a short grace for an
// answer that carries a state, not for the nodes that hold no claim of
// her: they hear no kick, and never answer.
func TestClusterKickSilentNodes(t *testing.T) {
	for _, k := range []int{2, 3} {
		t.Run(fmt.Sprint(k, " nodes"), func(t *testing.T) {
			nodes, store := startCluster(t, memEngine, k)
			acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
			uid := acc["alice"].uid
			nc, err := nats.Connect(nodes[0].bus.cfg.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Subscribe(nodes[0].bus.subj.user(uid), func(m *nats.Msg) {
				if len(m.Data) > 0 && m.Data[0] == opKick {
					_ = m.Respond(noState) // a claim without a session
				}
			}); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			dial(t, nodes[1], "alice on n2", acc["alice"]).sync()
			// Waiting for the nodes that never answer takes two request
			// timeouts (Claim kicks twice); a busy machine slows a login
			// well within that.
			if d, timeout := time.Since(t0), nodes[1].bus.cfg.RequestTimeout; d >= timeout*3/2 {
				t.Errorf("the login took %v, want less than 1.5 request timeouts (%v): it waited for nodes that hold no claim of alice", d, timeout)
			}
		})
	}
}
