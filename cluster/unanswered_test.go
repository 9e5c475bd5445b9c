package cluster

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// TestUnansweredFetchMadeAgain: a watched user's state fetch that the
// user's node leaves unanswered (its shard slow, or the answer lost) is
// made again: the watcher is not left seeing the user offline until
// their state next changes.
func TestUnansweredFetchMadeAgain(t *testing.T) {
	url := startLocalNATS(t)
	n, err := Connect(Config{
		URL: url, Name: "n1", Heartbeat: testHeartbeat, DeadAfter: testDeadAfter,
		RequestTimeout: testHeartbeat, // the wait for the answer that never comes
	}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newRecPeer(0)
	n.Attach(p)
	defer n.Close()
	nc, err := nats.Connect(url) // the watched user's node
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const watched = 8
	st := &server.PeerState{UID: watched, Version: server.Version{Epoch: 1, Node: "other"}, Seq: 1, Online: true, Announced: true,
		Presence: msim.Presence{Status: msim.StatusOnline}}
	var asked atomic.Int32
	if _, err := nc.Subscribe(n.subj.user(watched), func(m *nats.Msg) {
		if len(m.Data) == 1 && m.Data[0] == opState && asked.Add(1) > 1 { // the first is left unanswered
			_ = m.Respond(encodeState(st))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n.Watch([]msim.UID{watched})
	if got := asked.Load(); got != 1 {
		t.Fatalf("Watch asked for the state %d times, want 1", got)
	}
	p.waitFor(t, "state fetched again after an unanswered fetch", func() bool { return p.states[watched] != nil })
}

// TestUnansweredFetchBackOff: a node that leaves every state fetch
// unanswered does not have its users fetched again at every heartbeat:
// each fetch made again waits twice as long as the one before, the
// fetches stop after fetchTries, and the users given up are counted and
// logged once.
func TestUnansweredFetchBackOff(t *testing.T) {
	url := startLocalNATS(t)
	log, hook := logtest.NewNullLogger()
	// Heartbeats by hand (recheckDue): the node's own come only at the start.
	n, err := Connect(Config{
		URL: url, Name: "n1", Heartbeat: time.Hour, DeadAfter: 3 * time.Hour,
		RequestTimeout: testHeartbeat, Metrics: prometheus.NewRegistry(),
	}, logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(newRecPeer(0))
	defer n.Close()
	nc, err := nats.Connect(url) // the watched users' node, stuck
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	uids := []msim.UID{8, 9}
	for _, u := range uids {
		if _, err := nc.Subscribe(n.subj.user(u), func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n.Watch(uids)
	unanswered := make(chan msim.UID, 16)
	n.setHook(func(point string, uid msim.UID) {
		if point == "unanswered" {
			unanswered <- uid
		}
	})
	for try := 1; try <= fetchTries; try++ {
		n.mu.Lock()
		var last time.Time
		for _, u := range uids {
			job, ok := n.recheck[makeUpKey{u, true}]
			switch {
			case !ok:
				n.mu.Unlock()
				t.Fatalf("try %d: the state of %d is not to be fetched again", try, u)
			case job.tries != try:
				t.Errorf("try %d: the state of %d is to be fetched again as try %d", try, u, job.tries)
			case job.due.Sub(start) < n.cfg.Heartbeat<<(try-1):
				t.Errorf("try %d: the state of %d is fetched again %v after the last, want at least %v", try, u, job.due.Sub(start), n.cfg.Heartbeat<<(try-1))
			}
			if job.due.After(last) {
				last = job.due
			}
		}
		n.recheckDue(time.Now()) // a heartbeat before they are due
		if len(n.recheck) != len(uids) {
			t.Errorf("try %d: %d fetches made again at a heartbeat before they were due", try, len(uids)-len(n.recheck))
		}
		start = time.Now()
		n.recheckDue(last)
		n.mu.Unlock()
		for range uids {
			select {
			case <-unanswered:
			case <-time.After(wait):
				t.Fatalf("try %d: the fetches made again did not time out within %v", try, wait)
			}
		}
	}
	n.mu.Lock()
	left := len(n.recheck) + len(n.pending.jobs) + len(n.retries.jobs)
	n.mu.Unlock()
	if left > 0 {
		t.Errorf("%d fetches still to be made again after %d tries, want none", left, fetchTries)
	}
	if got, want := counterValue(t, n.metrics.givenUp), float64(len(uids)); got != want {
		t.Errorf("msimd_cluster_state_fetches_given_up_total = %v, want %v", got, want)
	}
	warned := 0
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d users given up: %d warnings logged, want 1", len(uids), warned)
	}
}

// TestRetriesDoNotHoldUpMakeUps: the state fetches made again for the
// users of a node that leaves them unanswered (stuck) do not hold up the
// make-up of a user of another node: they are made by workers of their
// own.
func TestRetriesDoNotHoldUpMakeUps(t *testing.T) {
	url := startLocalNATS(t)
	// No fetch times out during the test: the stuck node's stay in
	// flight until it is let go. Heartbeats by hand (recheckDue).
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: time.Hour, DeadAfter: 3 * time.Hour, RequestTimeout: time.Hour}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newRecPeer(0)
	n.Attach(p)
	defer n.Close()
	stuck, err := nats.Connect(url) // the node that leaves its users' fetches unanswered
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	asked := make(chan *nats.Msg, fetchers)
	var stuckUIDs []msim.UID
	for u := msim.UID(100); u < 100+fetchers; u++ {
		if _, err := stuck.ChanSubscribe(n.subj.user(u), asked); err != nil {
			t.Fatal(err)
		}
		stuckUIDs = append(stuckUIDs, u)
	}
	var held []*nats.Msg
	defer func() { // let them go, so that the workers end before Close
		for _, m := range held {
			_ = m.Respond(noState)
		}
	}()
	fine, err := nats.Connect(url) // the node of the user whose make-up is due
	if err != nil {
		t.Fatal(err)
	}
	defer fine.Close()
	const watched = 7
	var seq atomic.Uint64
	if _, err := fine.Subscribe(n.subj.user(watched), func(m *nats.Msg) {
		_ = m.Respond(encodeState(&server.PeerState{UID: watched, Version: server.Version{Epoch: 1, Node: "fine"},
			Seq: seq.Add(1), Online: true, Announced: true, Presence: msim.Presence{Status: msim.StatusOnline}}))
	}); err != nil {
		t.Fatal(err)
	}
	for _, nc := range []*nats.Conn{stuck, fine} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	n.Watch([]msim.UID{watched})
	// The stuck node's users, watched here, each with a fetch left
	// unanswered already: as fetchAgain leaves them, due now.
	n.mu.Lock()
	for _, u := range stuckUIDs {
		c, _ := n.hold(n.watches, u, n.subj.presence(u))
		c.n++
		n.recheck[makeUpKey{u, true}] = makeUpJob{tries: 1}
	}
	n.recheckDue(time.Now())
	n.mu.Unlock()
	for range stuckUIDs {
		select {
		case m := <-asked:
			held = append(held, m)
		case <-time.After(wait):
			t.Fatalf("the fetches made again did not reach the stuck node within %v", wait)
		}
	}
	// Every fetch made again is in flight. Messages of watched dropped:
	// the shard reaches makeUp's mark.
	n.madeUp(watched, true)
	p.waitFor(t, "make-up of a user of another node while a stuck node's users are fetched again", func() bool {
		return p.states[watched] != nil && p.states[watched].Seq >= 2
	})
}

// TestUnansweredRequestsCounted: a request to another node left
// unanswered (that node stuck, or the answer lost) is counted by kind, so
// that an operator sees it; one that finds nobody (no responders) is not.
func TestUnansweredRequestsCounted(t *testing.T) {
	url := startLocalNATS(t)
	reg := prometheus.NewRegistry()
	n, err := Connect(Config{
		URL: url, Name: "n1", Heartbeat: time.Hour, DeadAfter: 3 * time.Hour,
		RequestTimeout: testHeartbeat, // the wait for the answer that never comes
		Metrics:        reg,
	}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(newRecPeer(0))
	defer n.Close()
	nc, err := nats.Connect(url) // the node of stuck, which answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const stuck, nobody = 7, 8
	if _, err := nc.Subscribe(n.subj.user(stuck), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	v := server.Version{Epoch: 1, Node: n.Node()}
	wire := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", 9).Add("msg", "hi"))
	for _, tc := range []struct {
		kind string
		ask  func(uid msim.UID)
	}{
		{kindDeliver, func(uid msim.UID) { _, _ = n.Deliver(uid, 9, wire) }},
		{kindState, func(uid msim.UID) { n.fetchOne(uid, makeUpJob{}) }},
		{kindKick, func(uid msim.UID) { n.kick(uid, v) }},
		{kindHandOn, func(uid msim.UID) { n.handOn(uid, v, &server.PeerState{UID: uid, Version: v}) }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			tc.ask(nobody)
			if got := promtest.Value(t, reg, "msimd_cluster_requests_unanswered_total", "kind", tc.kind); got != 0 {
				t.Errorf("after a request that found nobody: msimd_cluster_requests_unanswered_total{kind=%q} = %v, want 0", tc.kind, got)
			}
			tc.ask(stuck)
			if got := promtest.Value(t, reg, "msimd_cluster_requests_unanswered_total", "kind", tc.kind); got != 1 {
				t.Errorf("after a request left unanswered: msimd_cluster_requests_unanswered_total{kind=%q} = %v, want 1", tc.kind, got)
			}
		})
	}
}
