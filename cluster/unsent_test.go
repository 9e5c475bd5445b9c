package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// TestBadReplies: an answer to a request that does not read is counted as
// a malformed message. One to a delivery that is neither "taken" nor "not
// taken" is not taken (the sender stores the IM: a duplicate at worst,
// never a loss), and an error, which the sender logs.
func TestBadReplies(t *testing.T) {
	url := startLocalNATS(t)
	reg := prometheus.NewRegistry()
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: testHeartbeat, DeadAfter: testDeadAfter, RequestTimeout: time.Second, Metrics: reg}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(newRecPeer(0))
	defer n.Close()
	other, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const to = 7
	if _, err := other.Subscribe(n.subj.user(to), func(m *nats.Msg) { _ = m.Respond([]byte("yes")) }); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name string
		ask  func(t *testing.T)
	}{
		{"deliver", func(t *testing.T) {
			taken, err := n.Deliver(to, 8, msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", 8).Add("msg", "hi")))
			if taken || !errors.Is(err, errBadMessage) {
				t.Errorf("Deliver: got %v, %v; want false and a malformed-message error", taken, err)
			}
		}},
		{"state", func(*testing.T) { n.fetchOne(to, makeUpJob{}) }},
		{"kick", func(*testing.T) { n.kick(to, server.Version{Epoch: 1, Node: n.Node()}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ask(t)
			if got, want := counterValue(t, n.metrics.dropped), float64(i+1); got != want {
				t.Errorf("msimd_nats_dropped_messages_total = %v, want %v", got, want)
			}
		})
	}
}

// TestStoredNoticeNotLost: a notice that an IM was stored for a user on
// another node, published while the link is down and cannot be buffered,
// is counted, and sent once the link is back: that user's session gets
// the IM then, not at their next login.
func TestStoredNoticeNotLost(t *testing.T) {
	url := startLocalNATS(t)
	px := startProxy(t, natsHostPort(t, url))
	reg := prometheus.NewRegistry()
	n, err := Connect(Config{
		URL: px.url(), Name: "n1", Heartbeat: testHeartbeat, DeadAfter: testDeadAfter, RequestTimeout: time.Second, Metrics: reg,
		Options: []nats.Option{nats.ReconnectBufSize(-1)}, // no buffer: what is published while the link is down fails
	}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(newRecPeer(0))
	defer n.Close()
	other, err := nats.Connect(url) // the node of the IM's recipient
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const to = 7
	notices := make(chan []byte, 16)
	if _, err := other.Subscribe(n.subj.user(to), func(m *nats.Msg) { notices <- m.Data }); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	down := n.nc.StatusChanged(nats.RECONNECTING)
	px.setCut(true)
	select {
	case <-down:
	case <-time.After(wait):
		t.Fatalf("the link is not down within %v", wait)
	}
	before := counterValue(t, n.metrics.unsent) // heartbeats fail too while the link is cut
	n.Stored(to)
	if got := counterValue(t, n.metrics.unsent) - before; got < 1 {
		t.Errorf("msimd_nats_unsent_messages_total grew by %v at the notice, want at least 1", got)
	}
	px.setCut(false)
	select {
	case b := <-notices:
		if len(b) != 1 || b[0] != opMailbox {
			t.Errorf("got %q, want the mailbox notice", b)
		}
	case <-time.After(wait):
		t.Fatalf("no mailbox notice for %d within %v of the link's return", to, wait)
	}
}

// TestOwedPastCapLoggedOnce: once the mailbox notices owed while the link
// is down reach their bound, a further one is logged once, not once
// each: the others are counted, and their number logged when the link is
// back.
func TestOwedPastCapLoggedOnce(t *testing.T) {
	url := startLocalNATS(t)
	log, hook := logtest.NewNullLogger()
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: time.Hour, DeadAfter: 3 * time.Hour, Metrics: prometheus.NewRegistry()}, logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	// Not attached yet: no heartbeat runs, whose first, at once, would
	// send what is owed (the link is up here; in an outage it is not).
	defer n.Close()
	n.mu.Lock()
	for u := range maxOwed {
		n.owed[msim.UID(u+1)] = struct{}{}
	}
	n.mu.Unlock()
	const extra = 5
	for u := range extra {
		n.owe(msim.UID(maxOwed + 1 + u))
	}
	logged := 0
	for _, e := range hook.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			logged++
		}
	}
	if logged != 1 {
		t.Errorf("%d notices past the bound: %d warnings or errors logged, want 1", extra, logged)
	}
	hook.Reset()
	// The link is back: the first heartbeat, or resync, takes the owed
	// notices and logs how many were lost.
	n.Attach(newRecPeer(0))
	n.resync()
	found := false
	for deadline := time.Now().Add(5 * time.Second); !found && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, e := range hook.AllEntries() {
			if e.Data["notices"] == extra {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("the link back: no log of the %d notices lost (entries: %v)", extra, hook.AllEntries())
	}
}

// A message NATS refuses for itself (too large) is warned about each time
// and does not silence the warning of a later outage; messages lost in
// one outage are warned about once.
func TestNotSentWarningsByCause(t *testing.T) {
	url := startLocalNATS(t)
	log, hook := logtest.NewNullLogger()
	n, err := Connect(Config{URL: url, Name: "n1", Heartbeat: time.Hour, DeadAfter: 3 * time.Hour, Metrics: prometheus.NewRegistry()}, logrus.NewEntry(log))
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(newRecPeer(0))
	defer n.Close()
	warnings := func() int {
		w := 0
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.WarnLevel && strings.HasPrefix(e.Message, "NATS message not sent") {
				w++
			}
		}
		hook.Reset()
		return w
	}
	n.notSent(nats.ErrMaxPayload, "a")
	n.notSent(nats.ErrMaxPayload, "b")
	if got := warnings(); got != 2 {
		t.Fatalf("two messages too large: %d warnings, want 2", got)
	}
	n.notSent(nats.ErrReconnectBufExceeded, "c")
	n.notSent(nats.ErrReconnectBufExceeded, "d")
	if got := warnings(); got != 1 {
		t.Fatalf("two messages lost in an outage: %d warnings, want 1", got)
	}
	if got := counterValue(t, n.metrics.unsent); got != 4 {
		t.Fatalf("msimd_nats_unsent_messages_total = %v, want 4", got)
	}
}
