package cluster

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// TestClusterCloseAnswersQueuedKicks: kicks that reached a node shutting
// down but were still queued for its shard when it closed are answered
// (there is nothing left to hand over: no state), not left for the
// claimers to time out on.
func TestClusterCloseAnswersQueuedKicks(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice")
	uid := acc["alice"].uid
	dial(t, nodes[0], "alice", acc["alice"])

	n1 := nodes[0].bus
	entered, release := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	n1.setHook(func(point string, u msim.UID) {
		if point == "message" && u == uid {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
	})
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	nc, err := nats.Connect(nodes[0].bus.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := n1.subj.user(uid)
	// A state fetch holds alice's shard; the kicks queue behind it.
	if err := nc.PublishRequest(subject, nats.NewInbox(), []byte{opState}); err != nil {
		t.Fatal(err)
	}
	<-entered
	const kicks = 16
	answers := make(chan error, kicks)
	for i := range kicks {
		kick := encodeJSON(opKick, server.Version{Epoch: int64(i + 1), Node: "claimer"})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := nc.RequestWithContext(ctx, subject, kick)
			answers <- err
		}()
	}
	for deadline := time.Now().Add(wait); len(n1.shard(uid)) < kicks; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // queued, not yet taken
			t.Fatalf("%d kicks queued, want %d", len(n1.shard(uid)), kicks)
		}
	}
	stopped := make(chan struct{})
	go func() { nodes[0].stop(); close(stopped) }()
	<-n1.done // Shutdown is over and Close under way
	releaseOnce.Do(func() { close(release) })
	<-stopped
	for range kicks {
		if err := <-answers; err != nil {
			t.Errorf("a kick queued at the close: %v, want an answer", err)
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

	n1 := nodes[0].bus
	entered, release := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	n1.setHook(func(point string, u msim.UID) {
		if point == "message" && u == uid {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
	})
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	nc, err := nats.Connect(n1.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := n1.subj.user(uid)
	// A state fetch holds alice's shard; the deliveries queue behind it.
	if err := nc.PublishRequest(subject, nats.NewInbox(), []byte{opState}); err != nil {
		t.Fatal(err)
	}
	<-entered
	const ims = 16
	type answer struct {
		data []byte
		err  error
	}
	answers := make(chan answer, ims)
	for i := range ims {
		bm := msim.NewInt("bm", msim.BMIM).AddInt("f", int(from)).Add("msg", fmt.Sprintf("im %d", i))
		req := encodeDeliver(from, msim.Encode(bm))
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			m, err := nc.RequestWithContext(ctx, subject, req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			answers <- answer{data: m.Data}
		}()
	}
	for deadline := time.Now().Add(wait); len(n1.shard(uid)) < ims; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // queued, not yet taken
			t.Fatalf("%d IMs queued, want %d", len(n1.shard(uid)), ims)
		}
	}
	stopped := make(chan struct{})
	go func() { nodes[0].stop(); close(stopped) }()
	<-n1.done // Shutdown is over and Close under way
	releaseOnce.Do(func() { close(release) })
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
// queued at the close waits out its timeout; the IMs queued for one user
// wait for theirs together, so the close takes one timeout, not one per
// IM.
func TestClusterCloseProbesTogether(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	dial(t, nodes[0], "alice", acc["alice"])

	n1 := nodes[0].bus
	const ims = 8
	entered, release := make(chan struct{}), make(chan struct{})
	probes, probesFree := make(chan struct{}, ims), make(chan struct{})
	var once, releaseOnce, probesOnce sync.Once
	n1.setHook(func(point string, u msim.UID) {
		switch {
		case point == "message" && u == uid:
			once.Do(func() {
				close(entered)
				<-release
			})
		case point == "probe" && u == uid:
			probes <- struct{}{}
			<-probesFree
		}
	})
	t.Cleanup(func() {
		releaseOnce.Do(func() { close(release) })
		probesOnce.Do(func() { close(probesFree) })
	})

	nc, err := nats.Connect(n1.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := n1.subj.user(uid)
	if err := nc.PublishRequest(subject, nats.NewInbox(), []byte{opState}); err != nil {
		t.Fatal(err)
	}
	<-entered
	for i := range ims {
		bm := msim.NewInt("bm", msim.BMIM).AddInt("f", int(from)).Add("msg", fmt.Sprintf("im %d", i))
		if err := nc.PublishRequest(subject, nats.NewInbox(), encodeDeliver(from, msim.Encode(bm))); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(wait); len(n1.shard(uid)) < ims; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d IMs queued, want %d", len(n1.shard(uid)), ims)
		}
	}
	stopped := make(chan struct{})
	go func() { nodes[0].stop(); close(stopped) }()
	<-n1.done
	releaseOnce.Do(func() { close(release) })
	for i := range ims { // every probe begins while the first is held
		select {
		case <-probes:
		case <-time.After(wait):
			t.Fatalf("%d of %d IMs' state fetches began while the first was under way", i, ims)
		}
	}
	probesOnce.Do(func() { close(probesFree) })
	<-stopped
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
			if d, timeout := time.Since(t0), nodes[1].bus.cfg.RequestTimeout; d >= timeout {
				t.Errorf("the login took %v, want less than the request timeout (%v): it waited for nodes that hold no claim of alice", d, timeout)
			}
		})
	}
}
