package cluster

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
)

// waitReleased waits until bus no longer holds a claim of uid.
func waitReleased(t *testing.T, bus *Node, uid msim.UID) {
	t.Helper()
	for deadline := time.Now().Add(wait); bus.holds(uid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds %d", bus.Node(), uid)
		}
	}
}

// TestClusterLogoutAnswersLateDeliveries: an IM for alice sent while her
// subject still led to n1, and taken there after she logged out, is
// answered "not taken" at once when no other node holds her, so that its
// sender stores it now and not once its request has timed out.
func TestClusterLogoutAnswersLateDeliveries(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	bus := nodes[0].bus
	alice := dial(t, nodes[0], "alice", acc["alice"])
	nc, release := holdShard(t, nodes[0], uid, nil)
	sub, inbox := inboxOf(t, nc)
	if err := nc.PublishRequest(bus.subj.user(uid), inbox, queuedIMs(from, 1)[0]); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, bus, uid, 1)
	alice.Close() // a logout
	waitReleased(t, bus, uid)
	release()
	// Shorter than the sender's request timeout: the answer must come
	// before the sender gives up on it.
	m, err := sub.NextMsg(bus.cfg.RequestTimeout / 2)
	switch {
	case err != nil:
		t.Fatalf("an IM taken after the logout: %v, want an answer within %v", err, bus.cfg.RequestTimeout/2)
	case !bytes.Equal(m.Data, replyNotTaken):
		t.Fatalf("an IM taken after the logout: got %q, want %q (not taken)", m.Data, replyNotTaken)
	}
}

// TestClusterLogoutLeavesLateDeliveriesToTheNewNode: an IM for alice that
// reached both n1, where she is logging out, and n2, where she logged in
// meanwhile, is answered by n2 alone ("taken", and delivered), and n1,
// which finds her held on n2, stays silent: it is never both delivered
// live and stored offline. An IM that reaches n1 after her session there
// was taken over by n2 is left to n2 without a look.
func TestClusterLogoutLeavesLateDeliveriesToTheNewNode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		logout bool // alice logs out on n1 (else n2's kick closes her session there)
	}{
		{"logged out", true},
		{"taken over", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, store := startCluster(t, memEngine, 2)
			acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
			uid, from := acc["alice"].uid, acc["bob"].uid
			bus := nodes[0].bus
			alice1 := dial(t, nodes[0], "alice on n1", acc["alice"])
			taken, probes := make(chan struct{}, 8), make(chan struct{}, 8)
			nc, release := holdShard(t, nodes[0], uid, func(point string, u msim.UID) {
				switch {
				case u != uid:
				case point == "message":
					taken <- struct{}{}
				case point == "probe":
					probes <- struct{}{}
				}
			})
			// n2's kicks (one before it subscribes, one after) queue
			// on n1, unanswered: n2 logs alice in once they time out.
			alice2 := dial(t, nodes[1], "alice on n2", acc["alice"])
			alice2.sync()
			sub, inbox := inboxOf(t, nc)
			subject := bus.subj.user(uid)
			if err := nc.PublishRequest(subject, inbox, queuedIMs(from, 1)[0]); err != nil {
				t.Fatal(err)
			}
			m, err := sub.NextMsg(wait)
			if err != nil {
				t.Fatalf("the IM: %v, want n2's answer", err)
			}
			if !bytes.Equal(m.Data, replyTaken) {
				t.Fatalf("the IM: got %q, want %q (taken, by n2)", m.Data, replyTaken)
			}
			alice2.next("the IM", im(from, "im 0"))
			// A marker behind the IM on n1 (n1 answers it with nothing
			// once alice's session there is over): once n1 takes it,
			// it has seen to the IM.
			if err := nc.PublishRequest(subject, nats.NewInbox(), []byte{opState}); err != nil {
				t.Fatal(err)
			}
			const queued = 4 // two kicks, the IM, the marker
			waitQueued(t, bus, uid, queued)
			if tc.logout {
				alice1.Close()
				waitReleased(t, bus, uid)
			}
			release()
			for i := range queued {
				select {
				case <-taken:
				case <-time.After(wait):
					t.Fatalf("n1 took %d of its %d messages for alice", i, queued)
				}
			}
			if !tc.logout {
				alice1.next("the kick", isDisconnected)
			}
			bus.probes.Wait()
			for _, c := range []*nats.Conn{bus.nc, nc} { // n1's answers, if any, have reached the test
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if k, _, _ := sub.Pending(); k != 0 {
				m, _ := sub.NextMsg(0)
				t.Errorf("the IM: got a second answer %q (from n1), want none", m.Data)
			}
			if p := len(probes); tc.logout && p != 1 || !tc.logout && p != 0 {
				t.Errorf("n1 looked whether another node holds alice %d times, want %d", p, map[bool]int{true: 1}[tc.logout])
			}
		})
	}
}

// inboxOf subscribes to a fresh inbox on nc: every answer to a request sent
// to it is read there, not only the first.
func inboxOf(t *testing.T, nc *nats.Conn) (*nats.Subscription, string) {
	t.Helper()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub, inbox
}

// TestClusterLogoutProbesOncePerUser: IMs for alice taken after she logged
// out of n1 wait together for one look at whether another node holds her,
// not one each (a burst of them would otherwise start as many waits), and
// each of them is still answered "not taken".
func TestClusterLogoutProbesOncePerUser(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	bus := nodes[0].bus
	alice := dial(t, nodes[0], "alice", acc["alice"])
	const ims = 16
	var probes, joined atomic.Int32
	gate := make(chan struct{}) // closed once every IM has joined the first probe, or a second probe began
	var gateOnce sync.Once
	open := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(open)
	nc, release := holdShard(t, nodes[0], uid, func(point string, u msim.UID) {
		switch {
		case u != uid:
		case point == "probe" && probes.Add(1) == 1:
			<-gate // the first probe is under way until the others came
		case point == "probe":
			open()
		case point == "probe joined" && joined.Add(1) == ims-1:
			open()
		}
	})
	sub, inbox := inboxOf(t, nc)
	for _, req := range queuedIMs(from, ims) {
		if err := nc.PublishRequest(bus.subj.user(uid), inbox, req); err != nil {
			t.Fatal(err)
		}
	}
	waitQueued(t, bus, uid, ims)
	alice.Close() // a logout
	waitReleased(t, bus, uid)
	release()
	for i := range ims {
		m, err := sub.NextMsg(wait)
		switch {
		case err != nil:
			t.Fatalf("%d of %d IMs taken after the logout answered: %v", i, ims, err)
		case !bytes.Equal(m.Data, replyNotTaken):
			t.Fatalf("an IM taken after the logout: got %q, want %q (not taken)", m.Data, replyNotTaken)
		}
	}
	bus.probes.Wait()
	if p := probes.Load(); p != 1 {
		t.Errorf("n1 looked whether another node holds alice %d times for %d IMs, want once", p, ims)
	}
}

// TestClusterLogoutProbeBound: past the bound of the IMs waiting for a
// look at whether another node holds their user, an IM for alice taken
// after she logged out of n1 is left unanswered, so that its sender stores
// it once its request times out, and counted; the IMs within the bound
// are answered "not taken".
func TestClusterLogoutProbeBound(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	bus := nodes[0].bus
	const bound, over = 4, 2
	bus.mu.Lock()
	bus.maxProbeIMs = bound
	bus.mu.Unlock()
	alice := dial(t, nodes[0], "alice", acc["alice"])
	var taken atomic.Int32
	gate := make(chan struct{}) // closed once n1 took every IM
	nc, release := holdShard(t, nodes[0], uid, func(point string, u msim.UID) {
		switch {
		case u != uid:
		case point == "probe":
			<-gate // the probe is under way until every IM came
		case point == "message" && taken.Add(1) == bound+over+1:
			close(gate) // the marker: n1 has seen to every IM before it
		}
	})
	sub, inbox := inboxOf(t, nc)
	subject := bus.subj.user(uid)
	for _, req := range queuedIMs(from, bound+over) {
		if err := nc.PublishRequest(subject, inbox, req); err != nil {
			t.Fatal(err)
		}
	}
	// A marker behind the IMs, answered with nothing once alice's
	// session is over.
	if err := nc.PublishRequest(subject, nats.NewInbox(), []byte{opState}); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, bus, uid, bound+over+1)
	alice.Close() // a logout
	waitReleased(t, bus, uid)
	release()
	for i := range bound {
		m, err := sub.NextMsg(wait)
		switch {
		case err != nil:
			t.Fatalf("%d of the %d IMs within the bound answered: %v", i, bound, err)
		case !bytes.Equal(m.Data, replyNotTaken):
			t.Fatalf("an IM within the bound: got %q, want %q (not taken)", m.Data, replyNotTaken)
		}
	}
	bus.probes.Wait()
	for _, c := range []*nats.Conn{bus.nc, nc} { // n1's answers, if any, have reached the test
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if k, _, _ := sub.Pending(); k != 0 {
		t.Errorf("IMs past the bound: got %d answers, want none (their senders time out and store them)", k)
	}
	if got := counterValue(t, bus.metrics.unprobedIMs); got != over {
		t.Errorf("msimd_cluster_late_ims_unanswered_total = %v, want %v", got, over)
	}
}
