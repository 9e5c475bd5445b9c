package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"
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
