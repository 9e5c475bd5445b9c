package cluster

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msimircd/msimircd/msim"
)

// TestClusterKickBackPassesStateOn: alice, away on n1, logs in on n2, whose
// first kick takes her session and its state over from n1; before n2
// subscribes, she logs in again (on n1 again, or on a third node), and that
// login, finding nobody to kick, claims her first. n2's second kick finds
// the newer login, and n2's login is closed. The state n2 carried is not
// lost with it: the newest login takes it over, so bob, who follows alice
// from a fourth node, never sees her offline, and one session is left.
func TestClusterKickBackPassesStateOn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		again int // the node of the third login
	}{
		{"the first node claims again", 0},
		{"a third node claims", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, store := startCluster(t, memEngine, 4)
			acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
			uid := acc["alice"].uid
			dial(t, nodes[0], "alice on n1", acc["alice"], func(c *msim.ClientConfig) {
				c.Status, c.StatusText = msim.StatusAway, "lunch"
			})
			bob := dial(t, nodes[3], "bob", acc["bob"])
			bob.next("alice away", presence(uid, msim.StatusAway))

			third := nodes[tc.again]
			claimed, resume := make(chan struct{}), make(chan struct{})
			var thirdOnce sync.Once
			third.bus.setHook(func(point string, u msim.UID) {
				if u == uid && point == "claimed" {
					thirdOnce.Do(func() {
						close(claimed)
						<-resume
					})
				}
			})
			type dialed struct {
				c   *client
				err error
			}
			last := make(chan dialed, 1)
			var secondOnce sync.Once
			nodes[1].bus.setHook(func(point string, u msim.UID) {
				if u != uid || point != "kicked" {
					return
				}
				secondOnce.Do(func() {
					go func() {
						c, err := tryDial(t, third, "alice again", acc["alice"])
						last <- dialed{c, err}
					}()
					<-claimed // the third login holds alice, n2 does not yet
				})
			})
			var resumeOnce sync.Once
			release := func() { resumeOnce.Do(func() { close(resume) }) }
			t.Cleanup(release)
			// n2's login is closed with err 6 once done, during the
			// client's login or right after it.
			second, err := tryDial(t, nodes[1], "alice on n2", acc["alice"])
			if err == nil {
				d := second.next("kick", isDisconnected).(msim.DisconnectedEvent)
				err = d.Err
			}
			if !errors.Is(err, msim.ErrLoggedInElsewhere) {
				t.Errorf("n2's session: got %v, want logged in elsewhere", err)
			}
			release()
			got := <-last
			if got.err != nil {
				t.Fatalf("the third login: %v", got.err)
			}
			got.c.sync()
			bob.next("alice online", presence(uid, msim.StatusOnline)) // the newest client's own status
			for _, ev := range bob.sync() {
				if presence(uid, msim.StatusOffline)(ev) {
					t.Errorf("bob saw alice offline during the hand-over: %v", ev)
				}
			}
			for i, n := range nodes {
				if want := n == third; n.srv.Online(uid) != want {
					t.Errorf("alice online on n%d: %v, want %v", i+1, !want, want)
				}
			}
		})
	}
}

// setHook sets the node's test hook (see Node.hook).
func (n *Node) setHook(h func(point string, uid msim.UID)) { n.hook.Store(&h) }

// TestClusterKickWaitsForTheState: alice, away on n1, logs in on n2 while
// another subscriber of her subject (as a node whose claim of her has no
// session) answers n2's kick first, with nothing. n2 takes the state n1's
// answer brings all the same: bob, who follows alice from n3, never sees
// her offline, and one session is left.
func TestClusterKickWaitsForTheState(t *testing.T) {
	nodes, store := startCluster(t, memEngine, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	uid := acc["alice"].uid
	dial(t, nodes[0], "alice on n1", acc["alice"], func(c *msim.ClientConfig) {
		c.Status, c.StatusText = msim.StatusAway, "lunch"
	})
	bob := dial(t, nodes[2], "bob", acc["bob"])
	bob.next("alice away", presence(uid, msim.StatusAway))

	// The empty answer is sent before n1 takes the kick.
	nc, err := nats.Connect(nodes[0].bus.cfg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	answered := make(chan struct{})
	var answeredOnce sync.Once
	if _, err := nc.Subscribe(nodes[0].bus.subj.user(uid), func(m *nats.Msg) {
		if len(m.Data) > 0 && m.Data[0] == opKick {
			_ = m.Respond(noState)
			_ = nc.Flush()
			answeredOnce.Do(func() { close(answered) })
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var heldOnce sync.Once
	nodes[0].bus.setHook(func(point string, u msim.UID) {
		if point == "message" && u == uid {
			heldOnce.Do(func() {
				select {
				case <-answered:
				case <-time.After(wait):
				}
			})
		}
	})

	second := dial(t, nodes[1], "alice on n2", acc["alice"])
	second.sync()
	bob.next("alice online", presence(uid, msim.StatusOnline)) // n2's client's own status
	for _, ev := range bob.sync() {
		if presence(uid, msim.StatusOffline)(ev) {
			t.Errorf("bob saw alice offline during the hand-over: %v", ev)
		}
	}
	for i, n := range nodes {
		if want := i == 1; n.srv.Online(uid) != want {
			t.Errorf("alice online on n%d: %v, want %v", i+1, !want, want)
		}
	}
}
