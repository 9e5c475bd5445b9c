package cluster

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
)

// TestClusterSimultaneousLogins: a user logs in on two nodes at the same
// moment. However the two claims interleave, one session is left: the
// older is closed.
func TestClusterSimultaneousLogins(t *testing.T) {
	nodes, _ := startCluster(t, memEngine, 2)
	const users, batch = 150, 25
	accs := make([]account, users)
	for i := range accs {
		a := account{email: fmt.Sprintf("u%d@example.com", i), password: fmt.Sprintf("pw-%d", i)}
		uid, err := nodes[0].srv.AddAccount(a.email, a.password, fmt.Sprintf("u%d", i))
		if err != nil {
			t.Fatal(err)
		}
		a.uid = uid
		accs[i] = a
	}
	for lo := 0; lo < users; lo += batch {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := lo; i < min(lo+batch, users); i++ {
			for _, n := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, _ = tryDial(t, n, fmt.Sprintf("u%d on %s", i, n.bus.cfg.Name), accs[i])
				}()
			}
		}
		close(start)
		wg.Wait()
	}
	time.Sleep(testDeadAfter) // kicks under way land
	both := 0
	for _, a := range accs {
		if nodes[0].srv.Online(a.uid) && nodes[1].srv.Online(a.uid) {
			both++
		}
	}
	if both > 0 {
		t.Errorf("%d of %d users have a session on both nodes, want none", both, users)
	}
}

// TestClusterSameNodeLoginsNewerWins: two logins of alice on one node at
// once, the older held after its claim while the newer one logs in. The
// newer login is the live session once both are done; the older one is
// ended (err 6), whichever of them reached the registry last.
func TestClusterSameNodeLoginsNewerWins(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid := acc["alice"].uid
	n1 := nodes[0]

	claimed, resume := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	n1.bus.setHook(func(point string, u msim.UID) {
		if u == uid && point == "claimed" && held.CompareAndSwap(false, true) {
			close(claimed)
			<-resume
		}
	})
	var resumeOnce sync.Once
	release := func() { resumeOnce.Do(func() { close(resume) }) }
	t.Cleanup(release)

	type dialed struct {
		c   *client
		err error
	}
	older := make(chan dialed, 1)
	go func() {
		c, err := tryDial(t, n1, "alice, older", acc["alice"])
		older <- dialed{c, err}
	}()
	<-claimed // the older login has claimed alice, and waits
	newer := dial(t, n1, "alice, newer", acc["alice"])
	release()
	// The older login is closed with err 6, during the client's login or
	// right after it.
	got := <-older
	if got.err == nil {
		got.err = got.c.next("kick", isDisconnected).(msim.DisconnectedEvent).Err
	}
	if err := got.err; !errors.Is(err, msim.ErrLoggedInElsewhere) {
		t.Errorf("the older login: got %v, want logged in elsewhere", err)
	}

	bob := dial(t, nodes[1], "bob", acc["bob"])
	if err := bob.SendIM(ctxT(t), uid, "hi"); err != nil {
		t.Fatal(err)
	}
	newer.next("bob's IM", im(acc["bob"].uid, "hi"))
	for _, ev := range newer.sync() {
		if isDisconnected(ev) {
			t.Errorf("the newer login was ended: %v", ev)
		}
	}
	if !n1.srv.Online(uid) || nodes[1].srv.Online(uid) {
		t.Errorf("alice online on n1, n2: %v, %v; want true, false", n1.srv.Online(uid), nodes[1].srv.Online(uid))
	}
}

// TestClusterSupersededLoginLeavesIMsToTheNewer: alice's login on n1 has
// claimed her and is held there, when a later login of hers on n2 kicks
// (finding nothing to take over) and goes live. An IM for her reaches
// both nodes: n2 takes it, and n1, whose login is closed once done, stays
// silent. Its "not taken", read first, would have the sender store an IM
// that n2 delivered, and alice would get it twice.
func TestClusterSupersededLoginLeavesIMsToTheNewer(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 2)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid, from := acc["alice"].uid, acc["bob"].uid
	n1 := nodes[0]

	claimed, resume := make(chan struct{}), make(chan struct{})
	var held, counting atomic.Bool
	taken := make(chan struct{}, 2) // n1's shard takes a message for alice
	n1.bus.setHook(func(point string, u msim.UID) {
		switch {
		case u != uid:
		case point == "claimed" && held.CompareAndSwap(false, true):
			close(claimed)
			<-resume
		case point == "message" && counting.Load():
			select {
			case taken <- struct{}{}:
			default:
			}
		}
	})
	var resumeOnce sync.Once
	release := func() { resumeOnce.Do(func() { close(resume) }) }
	t.Cleanup(release)

	older := make(chan error, 1)
	go func() {
		c, err := tryDial(t, n1, "alice on n1", acc["alice"])
		if err == nil {
			err = c.next("kick", isDisconnected).(msim.DisconnectedEvent).Err
		}
		older <- err
	}()
	<-claimed // n1 holds alice's claim; its login waits
	alice := dial(t, nodes[1], "alice on n2", acc["alice"])
	alice.sync()

	nc, err := nats.Connect(n1.bus.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, inbox := inboxOf(t, nc)
	counting.Store(true)
	if err := nc.PublishRequest(n1.bus.subj.user(uid), inbox, queuedIMs(from, 1)[0]); err != nil {
		t.Fatal(err)
	}
	alice.next("the IM", im(from, "im 0"))
	// A state fetch behind the IM: once n1's shard takes it, n1 has
	// answered the IM if it answers it at all.
	if err := nc.PublishRequest(n1.bus.subj.user(uid), nats.NewInbox(), []byte{opState}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		select {
		case <-taken:
		case <-time.After(wait):
			t.Fatalf("n1 took %d of the IM and the state fetch", i)
		}
	}
	for _, c := range []*nats.Conn{n1.bus.nc, nc} {
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	var answers []string
	for {
		m, err := sub.NextMsg(0)
		if err != nil {
			break
		}
		answers = append(answers, string(m.Data))
	}
	if len(answers) != 1 || answers[0] != string(replyTaken) {
		t.Errorf("the IM: got answers %q, want only %q (n2's)", answers, replyTaken)
	}
	release()
	if err := <-older; !errors.Is(err, msim.ErrLoggedInElsewhere) {
		t.Errorf("n1's login: got %v, want logged in elsewhere", err)
	}
}

// TestClusterKickedBackLoginLeavesIMsToTheNewer: alice's login on n1 waits
// while a later login of hers on n2 kicks (finding nobody: n1 has not
// subscribed yet) and goes live. A kick of n1's is then answered with
// n2's newer version, and from then on n1, whose login is closed once
// done, leaves alice's IMs to n2, not only once n2's follow-up kick
// (held here) reaches it.
func TestClusterKickedBackLoginLeavesIMsToTheNewer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first bool // n1's first kick is answered so (else its second)
	}{
		// n1's first kick found nobody; its second, once n1 has
		// subscribed, is answered with n2's version, and the IM comes
		// while n1's login is held after its claim.
		{"second kick", false},
		// n1's first kick is answered with n2's version; n1 subscribes,
		// and the IM comes while its second kick waits on n2's held
		// shard.
		{"first kick", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, store := startCluster(t, memEngine, 2)
			acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
			uid, from := acc["alice"].uid, acc["bob"].uid
			n1, n2 := nodes[0], nodes[1]

			// n2's follow-up kicks wait until the test's end.
			again := make(chan struct{})
			var againOnce sync.Once
			t.Cleanup(func() { againOnce.Do(func() { close(again) }) })
			holdAgain := func(point string, u msim.UID) {
				if point == "kick again" && u == uid {
					<-again
				}
			}
			n2.bus.setHook(holdAgain)

			// n1's login is held at each of these points once: the test
			// lets it go on from one to the next.
			points := []string{"kicked", "claimed"}
			if tc.first {
				points = []string{"claim", "kicked", "claimed"}
			}
			at, goOn := map[string]chan struct{}{}, map[string]chan struct{}{}
			held, goOnce := map[string]*atomic.Bool{}, map[string]*sync.Once{}
			for _, p := range points {
				at[p], goOn[p] = make(chan struct{}), make(chan struct{})
				held[p], goOnce[p] = new(atomic.Bool), new(sync.Once)
			}
			var counting atomic.Bool
			taken := make(chan struct{}, 2) // n1's shard takes a message for alice
			n1.bus.setHook(func(point string, u msim.UID) {
				if u != uid {
					return
				}
				if h := held[point]; h != nil && h.CompareAndSwap(false, true) {
					close(at[point])
					<-goOn[point]
				}
				if point == "message" && counting.Load() {
					select {
					case taken <- struct{}{}:
					default:
					}
				}
			})
			let := func(p string) { goOnce[p].Do(func() { close(goOn[p]) }) }
			t.Cleanup(func() {
				for _, p := range points {
					let(p)
				}
			})
			reach := func(p string) {
				t.Helper()
				select {
				case <-at[p]:
				case <-time.After(wait):
					t.Fatalf("n1's login did not reach %q", p)
				}
			}

			older := make(chan error, 1)
			go func() {
				c, err := tryDial(t, n1, "alice on n1", acc["alice"])
				if err == nil {
					err = c.next("kick", isDisconnected).(msim.DisconnectedEvent).Err
				}
				older <- err
			}()
			reach(points[0])
			alice := dial(t, n2, "alice on n2", acc["alice"])
			alice.sync()
			var releaseN2 func()
			if tc.first {
				let("claim")
				reach("kicked") // n2 answered n1's first kick with its version
				_, releaseN2 = holdShard(t, n2, uid, holdAgain)
				let("kicked")
				waitQueued(t, n2.bus, uid, 1) // n1's second kick: n1 has subscribed
			} else {
				let("kicked")
				reach("claimed") // n2 answered n1's second kick with its version
			}

			nc, err := nats.Connect(n1.bus.cfg.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			sub, inbox := inboxOf(t, nc)
			counting.Store(true)
			subject := n1.bus.subj.user(uid)
			if err := nc.PublishRequest(subject, inbox, queuedIMs(from, 1)[0]); err != nil {
				t.Fatal(err)
			}
			// A state fetch behind the IM: once n1's shard takes it, n1
			// has answered the IM if it answers it at all.
			if err := nc.PublishRequest(subject, nats.NewInbox(), []byte{opState}); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				select {
				case <-taken:
				case <-time.After(wait):
					t.Fatalf("n1 took %d of the IM and the state fetch", i)
				}
			}
			if releaseN2 != nil {
				releaseN2()
			}
			alice.next("the IM", im(from, "im 0"))
			var answers []string
			m, err := sub.NextMsg(wait) // one answer at least: n2's
			for err == nil {
				answers = append(answers, string(m.Data))
				if len(answers) == 1 {
					for _, c := range []*nats.Conn{n1.bus.nc, n2.bus.nc, nc} {
						if err := c.Flush(); err != nil {
							t.Fatal(err)
						}
					}
				}
				m, err = sub.NextMsg(0)
			}
			if len(answers) != 1 || answers[0] != string(replyTaken) {
				t.Errorf("the IM: got answers %q, want only %q (n2's)", answers, replyTaken)
			}
			for _, p := range points {
				let(p)
			}
			if err := <-older; !errors.Is(err, msim.ErrLoggedInElsewhere) {
				t.Errorf("n1's login: got %v, want logged in elsewhere", err)
			}
		})
	}
}
