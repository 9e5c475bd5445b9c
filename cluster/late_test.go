package cluster

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// TestClusterLateIMIsDeliveredOnce: alice's shard on n1 is held while bob,
// on n2, sends her an IM. n2's request times out and n2 stores the IM (its
// nudge of alice's mailbox queues on n1 behind the IM). Once the shard
// goes on, n1 does not deliver the IM live, its sender's deadline past:
// alice gets it once, from her mailbox.
func TestClusterLateIMIsDeliveredOnce(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	bus := nodes[0].bus
	alice := dial(t, nodes[0], "alice", acc["alice"])
	bob := dial(t, nodes[1], "bob", acc["bob"])
	alice.next("bob online", presence(from, msim.StatusOnline))
	bob.next("alice online", presence(uid, msim.StatusOnline))
	alice.sync()

	taken := make(chan struct{}, 8)
	nc, release := holdShard(t, nodes[0], uid, func(point string, u msim.UID) {
		if point == "message" && u == uid {
			taken <- struct{}{}
		}
	})
	if err := bob.SendIM(ctxT(t), uid, "late"); err != nil {
		t.Fatal(err)
	}
	// The IM, then n2's nudge of alice's mailbox: n2 gave up on its
	// request and stored the IM.
	waitQueued(t, bus, uid, 2)
	// A marker behind them: once n1 takes it, it has seen to both.
	if err := nc.PublishRequest(bus.subj.user(uid), nc.NewInbox(), []byte{opState}); err != nil {
		t.Fatal(err)
	}
	const queued = 3
	waitQueued(t, bus, uid, queued)
	release()
	for i := range queued {
		select {
		case <-taken:
		case <-time.After(wait):
			t.Fatalf("n1 took %d of its %d messages for alice", i, queued)
		}
	}
	alice.next("the IM", im(from, "late"))
	got := 1
	for _, m := range ims(alice.sync()) {
		if m.From == from && m.Text == "late" {
			got++
		}
	}
	if got != 1 {
		t.Errorf("alice got the IM %d times, want once", got)
	}
	if left, err := store.TakeOffline(uid); err != nil || len(left) != 0 {
		t.Errorf("stored for alice: got %v (%v), want none (her mailbox took the IM)", left, err)
	}
}

// TestClusterLateIMIsAnswered: an IM for alice that reaches n1 with less
// than lateMargin left before its sender's deadline is not delivered, and
// is answered "not taken" at once: a sender still waiting stores it. A
// typing notice as late, which no sender stores, is delivered.
func TestClusterLateIMIsAnswered(t *testing.T) {
	alice, nc, bus, uid, from := aliceOnFirstNode(t)
	for _, tc := range []struct {
		name  string
		bm    *msim.Message
		reply []byte
	}{
		{"IM", msim.NewInt("bm", msim.BMIM).AddInt("f", int(from)).Add("msg", "late"), replyNotTaken},
		{"typing", msim.NewInt("bm", msim.BMAction).AddInt("f", int(from)).Add("msg", markup.Typing), replyTaken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deadline := time.Now().Add(lateMargin(bus.cfg.RequestTimeout) / 2)
			m, err := nc.Request(bus.subj.user(uid), encodeDeliver(deadline, from, msim.Encode(tc.bm)), wait)
			switch {
			case err != nil:
				t.Fatalf("the late %s: %v, want an answer", tc.name, err)
			case !bytes.Equal(m.Data, tc.reply):
				t.Fatalf("the late %s: got %q, want %q", tc.name, m.Data, tc.reply)
			}
			evs := alice.sync()
			if got := ims(evs); len(got) != 0 {
				t.Errorf("alice got %v, want no IM (the sender stores it)", got)
			}
			if delivered := bytes.Equal(tc.reply, replyTaken); delivered != slices.ContainsFunc(evs, isTyping(from)) {
				t.Errorf("alice got events %v, want the typing notice %v", evs, delivered)
			}
		})
	}
}

func isTyping(from msim.UID) func(msim.Event) bool {
	return func(ev msim.Event) bool {
		e, ok := ev.(msim.TypingEvent)
		return ok && e.From == from && e.Typing
	}
}

// TestClusterOlderNodesIMNotTaken: an IM in the payload of a node that
// predates the deadline, sent to a node of this version holding alice, is
// not answered "taken" (its sender would then not store it) unless alice
// got it as sent.
func TestClusterOlderNodesIMNotTaken(t *testing.T) {
	alice, nc, bus, uid, from := aliceOnFirstNode(t)
	wire := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(from)).Add("msg", "from an older node"))
	older := append(binary.AppendUvarint([]byte{opDeliver}, uint64(from)), wire...)
	m, err := nc.Request(bus.subj.user(uid), older, time.Second)
	if err == nil && bytes.Equal(m.Data, replyTaken) {
		t.Logf("the older IM was answered %q (taken): its older sender stores nothing", m.Data)
		var ok bool
		for _, im := range ims(alice.sync()) {
			if im.From == from && im.Text == "from an older node" {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the older IM: answered %q (taken: its sender stores nothing), but alice did not get it from %d; want it refused or delivered whole", m.Data, from)
		}
	}
}

// aliceOnFirstNode starts two nodes with the accounts alice and bob, logs
// alice in on the first, and returns her client, a raw connection to the
// bus (to send requests as another node would), the first node's bus,
// and alice's and bob's uids.
func aliceOnFirstNode(t *testing.T) (alice *client, nc *nats.Conn, bus *Node, uid, from msim.UID) {
	t.Helper()
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from = acc["alice"].uid, acc["bob"].uid
	bus = nodes[0].bus
	alice = dial(t, nodes[0], "alice", acc["alice"])
	alice.sync()
	nc, err := nats.Connect(bus.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return alice, nc, bus, uid, from
}
