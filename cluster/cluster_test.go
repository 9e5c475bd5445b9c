package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/nats-io/nats.go"
)

// TestClusterChat: three users on three nodes see each other online, chat,
// see typing, get zaps and see a status change and a logout; nothing is
// stored offline for users who are online, and NATS traffic and cross-node
// latency are counted.
func TestClusterChat(t *testing.T) { forEngines(t, testClusterChat) }

func testClusterChat(t *testing.T, e engine) {
	nodes, store := startCluster(t, e, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob", "carol")
	alice := dial(t, nodes[0], "alice", acc["alice"])
	bob := dial(t, nodes[1], "bob", acc["bob"])
	carol := dial(t, nodes[2], "carol", acc["carol"])
	clients := map[string]*client{"alice": alice, "bob": bob, "carol": carol}
	for viewer, c := range clients {
		for name, a := range acc {
			if name != viewer {
				c.next(name+" online", presence(a.uid, msim.StatusOnline))
			}
		}
	}

	for _, tc := range []struct {
		name     string
		from, to string
		send     func(c *client, to msim.UID) error
		want     func(from msim.UID) func(msim.Event) bool
	}{
		{"IM", "alice", "bob", func(c *client, to msim.UID) error { return c.SendIM(ctxT(t), to, "hi bob") },
			func(from msim.UID) func(msim.Event) bool { return im(from, "hi bob") }},
		{"IM back", "bob", "alice", func(c *client, to msim.UID) error { return c.SendIM(ctxT(t), to, "hi alice") },
			func(from msim.UID) func(msim.Event) bool { return im(from, "hi alice") }},
		{"typing", "bob", "carol", func(c *client, to msim.UID) error { return c.SendTyping(ctxT(t), to, true) },
			func(from msim.UID) func(msim.Event) bool {
				return func(ev msim.Event) bool {
					e, ok := ev.(msim.TypingEvent)
					return ok && e.From == from && e.Typing
				}
			}},
		{"zap", "carol", "alice", func(c *client, to msim.UID) error { return c.SendZap(ctxT(t), to, markup.ZapHug) },
			func(from msim.UID) func(msim.Event) bool {
				return func(ev msim.Event) bool {
					e, ok := ev.(msim.ZapEvent)
					return ok && e.From == from && e.Zap == markup.ZapHug
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := clients[tc.from], clients[tc.to]
			if err := tc.send(from, acc[tc.to].uid); err != nil {
				t.Fatalf("send: %v", err)
			}
			to.next(tc.name+" from "+tc.from, tc.want(acc[tc.from].uid))
		})
	}

	if err := alice.SetStatus(ctxT(t), msim.StatusAway, "lunch"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{bob, carol} {
		ev := c.next("alice away", presence(acc["alice"].uid, msim.StatusAway)).(msim.PresenceEvent)
		if ev.Text != "lunch" {
			t.Errorf("%s: got status text %q, want %q", c.name, ev.Text, "lunch")
		}
	}
	alice.Close()
	for _, c := range []*client{bob, carol} {
		c.next("alice offline", presence(acc["alice"].uid, msim.StatusOffline))
	}
	for name, a := range acc {
		if got, err := store.TakeOffline(a.uid); err != nil || len(got) != 0 {
			t.Errorf("stored for %s: got %v (%v), want none", name, got, err)
		}
	}
	reg := nodes[0].metrics
	for _, tc := range []struct {
		name   string
		labels []string
	}{
		{"msimd_nats_messages_total", []string{"direction", "out", "kind", "deliver"}},
		{"msimd_nats_messages_total", []string{"direction", "in", "kind", "deliver"}},
		{"msimd_nats_messages_total", []string{"direction", "out", "kind", "presence"}},
		{"msimd_nats_messages_total", []string{"direction", "in", "kind", "heartbeat"}},
		{"msimd_cluster_request_duration_seconds", []string{"kind", "deliver"}},
	} {
		if v := promtest.Value(t, reg, tc.name, tc.labels...); v <= 0 {
			t.Errorf("%s%v = %v, want > 0", tc.name, tc.labels, v)
		}
	}
	if v := promtest.Value(t, reg, "msimd_cluster_peers"); v != 2 {
		t.Errorf("msimd_cluster_peers = %v, want 2", v)
	}
}

// TestClusterOfflineIM: IMs for a user connected nowhere are stored once,
// by the sender's node, and arrive at the next login on another node, once
// each and in order.
func TestClusterOfflineIM(t *testing.T) { forEngines(t, testClusterOfflineIM) }

func testClusterOfflineIM(t *testing.T, e engine) {
	nodes, store := startCluster(t, e, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	alice := dial(t, nodes[0], "alice", acc["alice"])
	texts := []string{"one", "two", "three"}
	for _, text := range texts {
		if err := alice.SendIM(ctxT(t), acc["bob"].uid, text); err != nil {
			t.Fatal(err)
		}
	}
	alice.sync() // the server has routed them
	bob := dial(t, nodes[2], "bob", acc["bob"])
	for _, text := range texts {
		ev := bob.next("offline IM "+text, im(acc["alice"].uid, text)).(msim.IMEvent)
		if !ev.Offline {
			t.Errorf("IM %q: got Offline false, want true", text)
		}
	}
	if extra := ims(bob.sync()); len(extra) != 0 {
		t.Errorf("got extra IMs %v, want none", extra)
	}
	if got, _ := store.TakeOffline(acc["bob"].uid); len(got) != 0 {
		t.Errorf("still stored: %v, want none", got)
	}
}

// TestClusterSecondLoginKicks: a second login on another node closes the
// first session with err 6; a buddy's IMs reach the new session and the
// buddy never sees the user go offline.
func TestClusterSecondLoginKicks(t *testing.T) { forEngines(t, testClusterSecondLoginKicks) }

func testClusterSecondLoginKicks(t *testing.T, e engine) {
	nodes, store := startCluster(t, e, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob")
	bob := dial(t, nodes[1], "bob", acc["bob"])
	first := dial(t, nodes[0], "alice", acc["alice"])
	bob.next("alice online", presence(acc["alice"].uid, msim.StatusOnline))
	second := dial(t, nodes[2], "alice again", acc["alice"])
	d := first.next("kick", isDisconnected).(msim.DisconnectedEvent)
	if d.Reason != msim.DisconnectKicked || !errors.Is(d.Err, msim.ErrLoggedInElsewhere) {
		t.Errorf("first session: got %v (%v), want kicked, logged in elsewhere", d.Reason, d.Err)
	}
	if err := bob.SendIM(ctxT(t), acc["alice"].uid, "where are you"); err != nil {
		t.Fatal(err)
	}
	second.next("IM at the new session", im(acc["bob"].uid, "where are you"))
	for _, ev := range bob.sync() {
		if presence(acc["alice"].uid, msim.StatusOffline)(ev) {
			t.Errorf("bob saw alice offline during the hand-over: %v", ev)
		}
	}
	if got, _ := store.TakeOffline(acc["alice"].uid); len(got) != 0 {
		t.Errorf("stored for alice: %v, want none (she was online)", got)
	}
}

// TestClusterNodeDies: a node cut off from NATS with no goodbye (as if it
// crashed) closes its sessions; its users are offline for buddies on other
// nodes within 10 s; IMs sent to them meanwhile are stored and arrive at
// their next login, once each.
func TestClusterNodeDies(t *testing.T) { forEngines(t, testClusterNodeDies) }

func testClusterNodeDies(t *testing.T, e engine) {
	nodes, store := startCluster(t, e, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob", "carol")
	alice := dial(t, nodes[0], "alice", acc["alice"])
	bob := dial(t, nodes[1], "bob", acc["bob"])
	carol := dial(t, nodes[2], "carol", acc["carol"])
	bob.next("alice online", presence(acc["alice"].uid, msim.StatusOnline))
	carol.next("alice online", presence(acc["alice"].uid, msim.StatusOnline))

	cut := time.Now()
	nodes[0].bus.Cut()
	d := alice.next("disconnect", isDisconnected).(msim.DisconnectedEvent)
	var se *msim.ServerError
	if !errors.As(d.Err, &se) || se.Code != server.ErrCodeNodeLost {
		t.Errorf("alice: got %v, want server error %d", d.Err, server.ErrCodeNodeLost)
	}
	bob.next("alice offline", presence(acc["alice"].uid, msim.StatusOffline))
	if took := time.Since(cut); took > wait {
		t.Errorf("alice offline for bob after %v, want within %v", took, wait)
	}
	texts := []string{"are you there", "hello?"}
	for _, text := range texts {
		if err := carol.SendIM(ctxT(t), acc["alice"].uid, text); err != nil {
			t.Fatal(err)
		}
	}
	for _, ev := range carol.sync() {
		if e, ok := ev.(msim.ErrorEvent); ok {
			t.Errorf("carol got error %v, want the IMs stored", e)
		}
	}
	nodes[0].stop()

	again := dial(t, nodes[1], "alice again", acc["alice"])
	for _, text := range texts {
		again.next("stored IM "+text, im(acc["carol"].uid, text))
	}
	if extra := ims(again.sync()); len(extra) != 0 {
		t.Errorf("got extra IMs %v, want none", extra)
	}
	carol.next("alice online again", presence(acc["alice"].uid, msim.StatusOnline))
}

// TestClusterPartition: a node whose NATS link is cut closes its sessions
// before the others count it dead; the others see its users offline and
// store their IMs; when the link is back the node rejoins under a new name
// and its old sessions stay gone (a buddy adding the user sees it offline)
// until the user logs in again, and gets the IMs once.
func TestClusterPartition(t *testing.T) { forEngines(t, testClusterPartition) }

func testClusterPartition(t *testing.T, e engine) {
	tn := newNet(t, e)
	store := tn.store
	px := startProxy(t, natsHostPort(t, tn.url))
	n1 := startNode(t, tn, px.url(), "n1")
	n2 := startNode(t, tn, tn.url, "n2")
	n3 := startNode(t, tn, tn.url, "n3")
	waitPeers(t, n1, n2, n3)
	acc := addAccounts(t, n1.srv, store, "alice", "bob", "carol")
	dave := account{email: "dave@example.com", password: "pw-dave"}
	var err error
	if dave.uid, err = n1.srv.AddAccount(dave.email, dave.password, "dave"); err != nil {
		t.Fatal(err)
	}
	alice := dial(t, n1, "alice", acc["alice"])
	bob := dial(t, n2, "bob", acc["bob"])
	carol := dial(t, n3, "carol", acc["carol"])
	bob.next("alice online", presence(acc["alice"].uid, msim.StatusOnline))
	oldName := n1.bus.Node()

	px.setCut(true)
	alice.next("disconnect", isDisconnected)
	bob.next("alice offline", presence(acc["alice"].uid, msim.StatusOffline))
	if err := carol.SendIM(ctxT(t), acc["alice"].uid, "missed you"); err != nil {
		t.Fatal(err)
	}
	carol.sync()
	if _, err := tryDial(t, n1, "alice cut off", acc["alice"]); err == nil {
		t.Error("a login on the cut-off node succeeded, want it refused")
	}

	px.setCut(false)
	waitPeers(t, n1, n2, n3)
	if n1.bus.Node() == oldName {
		t.Errorf("node came back as %s, want a new incarnation", oldName)
	}
	d := dial(t, n3, "dave", dave)
	if err := d.AddBuddy(ctxT(t), acc["alice"].uid, ""); err != nil {
		t.Fatal(err)
	}
	d.next("alice's presence", func(ev msim.Event) bool {
		p, ok := ev.(msim.PresenceEvent)
		if ok && p.UID == acc["alice"].uid && p.Status != msim.StatusOffline {
			t.Errorf("dave sees alice %v after the partition, want offline", p.Status)
		}
		return ok && p.UID == acc["alice"].uid
	})

	again := dial(t, n1, "alice again", acc["alice"])
	again.next("stored IM", im(acc["carol"].uid, "missed you"))
	if extra := ims(again.sync()); len(extra) != 0 {
		t.Errorf("got extra IMs %v, want none", extra)
	}
	bob.next("alice online again", presence(acc["alice"].uid, msim.StatusOnline))
	if err := bob.SendIM(ctxT(t), acc["alice"].uid, "welcome back"); err != nil {
		t.Fatal(err)
	}
	again.next("live IM", im(acc["bob"].uid, "welcome back"))
}

// TestClusterShortCutLeavesOneSession: a node's NATS link drops for less
// than it takes to fence, and meanwhile the user logs in again on another
// node, whose kick finds nobody to answer it. Once the link is back, the
// older session is closed as a second login closes it (logged in
// elsewhere), and the buddy's IMs reach the newer session only.
func TestClusterShortCutLeavesOneSession(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) { testClusterShortCutLeavesOneSession(t, e, false) })
}

// TestClusterKickBackAmongSeveralAnswers: as TestClusterShortCutLeavesOneSession,
// with a third node that holds the user too (a further cut's leftover) and
// answers the older session's kick first with no state. A kick reads only
// the first answer, so the newer session's node kicks again itself.
func TestClusterKickBackAmongSeveralAnswers(t *testing.T) {
	forEngines(t, func(t *testing.T, e engine) { testClusterShortCutLeavesOneSession(t, e, true) })
}

func testClusterShortCutLeavesOneSession(t *testing.T, e engine, quickAnswer bool) {
	tn := newNet(t, e)
	px := startProxy(t, natsHostPort(t, tn.url))
	n1 := startNode(t, tn, px.url(), "n1")
	n2 := startNode(t, tn, tn.url, "n2")
	n3 := startNode(t, tn, tn.url, "n3")
	waitPeers(t, n1, n2, n3)
	acc := addAccounts(t, n1.srv, tn.store, "alice", "bob")
	first := dial(t, n1, "alice on n1", acc["alice"])
	bob := dial(t, n3, "bob", acc["bob"])
	bob.next("alice online", presence(acc["alice"].uid, msim.StatusOnline))
	oldName := n1.bus.Node()

	px.setCut(true)
	time.Sleep(2 * testHeartbeat) // NATS has dropped n1's subscriptions
	type dialed struct {
		c   *client
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		c, err := tryDial(t, n2, "alice on n2", acc["alice"])
		done <- dialed{c, err}
	}()
	// The link is back as soon as n2 holds alice (its kick found nobody),
	// well before n1 would fence itself.
	for deadline := time.Now().Add(wait); !n2.bus.holds(acc["alice"].uid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("alice's login on n2 never claimed her")
		}
	}
	if quickAnswer {
		nc, err := nats.Connect(tn.url)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_, err = nc.Subscribe(n2.bus.subj.user(acc["alice"].uid), func(m *nats.Msg) {
			if len(m.Data) > 0 && m.Data[0] == opKick {
				_ = m.Respond(noState)
			}
		})
		if err == nil {
			err = nc.Flush()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	px.setCut(false)
	d := <-done
	if d.err != nil {
		t.Fatalf("alice on n2: %v", d.err)
	}
	second := d.c
	waitPeers(t, n1, n2, n3)
	if n1.bus.Node() != oldName {
		t.Fatalf("n1 fenced itself (now %s): the cut was too long for this test", n1.bus.Node())
	}

	kick := first.next("kick", isDisconnected).(msim.DisconnectedEvent)
	if kick.Reason != msim.DisconnectKicked || !errors.Is(kick.Err, msim.ErrLoggedInElsewhere) {
		t.Errorf("older session: got %v (%v), want kicked, logged in elsewhere", kick.Reason, kick.Err)
	}
	const sent = 10
	for i := range sent {
		if err := bob.SendIM(ctxT(t), acc["alice"].uid, fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.sync()
	if got := len(ims(second.sync())); got != sent {
		t.Errorf("the newer session got %d of bob's %d IMs", got, sent)
	}
	if got, _ := tn.store.TakeOffline(acc["alice"].uid); len(got) != 0 {
		t.Errorf("stored for alice: %v, want none (she was online)", got)
	}
}

// TestClusterPrivacy: a user's block list is honoured across nodes: the
// blocked user sees them offline and their IMs are dropped (neither
// delivered nor stored), while others see them and reach them.
func TestClusterPrivacy(t *testing.T) { forEngines(t, testClusterPrivacy) }

func testClusterPrivacy(t *testing.T, e engine) {
	nodes, store := startCluster(t, e, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob", "carol")
	err := store.UpdateAccount(acc["alice"].uid, func(a *server.Account) error {
		a.Block = []msim.UID{acc["bob"].uid}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bob := dial(t, nodes[1], "bob", acc["bob"])
	carol := dial(t, nodes[2], "carol", acc["carol"])
	alice := dial(t, nodes[0], "alice", acc["alice"])
	carol.next("alice online", presence(acc["alice"].uid, msim.StatusOnline))
	// Adding her again asks bob's node for her presence as bob sees it.
	if err := bob.AddBuddy(ctxT(t), acc["alice"].uid, ""); err != nil {
		t.Fatal(err)
	}
	for _, ev := range bob.sync() {
		if p, ok := ev.(msim.PresenceEvent); ok && p.UID == acc["alice"].uid && p.Status != msim.StatusOffline {
			t.Errorf("bob sees alice %v, want offline (she blocks him)", p.Status)
		}
	}
	if err := bob.SendIM(ctxT(t), acc["alice"].uid, "let me in"); err != nil {
		t.Fatal(err)
	}
	bob.sync()
	if err := carol.SendIM(ctxT(t), acc["alice"].uid, "hi"); err != nil {
		t.Fatal(err)
	}
	alice.next("carol's IM", im(acc["carol"].uid, "hi"))
	for _, m := range ims(alice.sync()) {
		if m.From == acc["bob"].uid {
			t.Errorf("alice got %q from bob, whom she blocks", m.Text)
		}
	}
	if got, _ := store.TakeOffline(acc["alice"].uid); len(got) != 0 {
		t.Errorf("stored for alice: %v, want none", got)
	}
}

// TestClusterAlerts: a friend request made on one node is an alert for the
// user on another node, online or not; taken on one node, it is gone from
// all.
func TestClusterAlerts(t *testing.T) { forEngines(t, testClusterAlerts) }

func testClusterAlerts(t *testing.T, e engine) {
	nodes, store := startCluster(t, e, 3)
	acc := addAccounts(t, nodes[0].srv, store, "alice", "bob", "carol")
	bob := dial(t, nodes[1], "bob", acc["bob"])
	alice := dial(t, nodes[0], "alice", acc["alice"])
	for _, name := range []string{"bob", "carol"} {
		if err := alice.AddBuddy(ctxT(t), acc[name].uid, ""); err != nil {
			t.Fatal(err)
		}
	}
	waitAlert(t, bob, "FriendRequest")
	carol := dial(t, nodes[2], "carol", acc["carol"])
	waitAlert(t, carol, "FriendRequest")
	// Node 2 heard of carol's alert, and then that node 3 handed it over:
	// it has none left for her.
	deadline := time.Now().Add(wait)
	for promtest.Value(t, nodes[1].metrics, "msimd_nats_messages_total", "direction", "in", "kind", "alert") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("node 2 did not hear of the alerts")
		}
		time.Sleep(testHeartbeat / 4)
	}
	carol.Close()
	carolAgain := dial(t, nodes[1], "carol again", acc["carol"])
	if got, err := carolAgain.CheckAlerts(ctxT(t)); err != nil || len(got) != 0 {
		t.Errorf("alerts after they were taken: got %v (%v), want none", got, err)
	}
}

// waitAlert polls c's alerts until want is among them: alerts reach the
// other nodes asynchronously.
func waitAlert(t *testing.T, c *client, want string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got, err := c.CheckAlerts(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got {
			if a == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: alerts %v, want %s", c.name, got, want)
		}
		time.Sleep(testHeartbeat / 4)
	}
}

// TestClusterLogoutDuringShortCut: a buddy logs out while a node's NATS
// link is down for less than it takes to fence. That node missed the
// offline state; once the link is back, its watchers see the buddy
// offline, not online for ever.
func TestClusterLogoutDuringShortCut(t *testing.T) {
	forEngines(t, testClusterLogoutDuringShortCut)
}

func testClusterLogoutDuringShortCut(t *testing.T, e engine) {
	tn := newNet(t, e)
	px := startProxy(t, natsHostPort(t, tn.url))
	n1 := startNode(t, tn, px.url(), "n1")
	n2 := startNode(t, tn, tn.url, "n2")
	waitPeers(t, n1, n2)
	acc := addAccounts(t, n1.srv, tn.store, "alice", "bob")
	alice := dial(t, n1, "alice", acc["alice"])
	bob := dial(t, n2, "bob", acc["bob"])
	alice.next("bob online", presence(acc["bob"].uid, msim.StatusOnline))
	oldName := n1.bus.Node()

	px.setCut(true)
	time.Sleep(2 * testHeartbeat) // NATS has dropped n1's subscriptions
	bob.Close()
	for deadline := time.Now().Add(wait); n2.bus.holds(acc["bob"].uid); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bob's logout never released him")
		}
	}
	px.setCut(false)
	waitPeers(t, n1, n2)
	if n1.bus.Node() != oldName {
		t.Fatalf("n1 fenced itself (now %s): the cut was too long for this test", n1.bus.Node())
	}
	alice.next("bob offline", presence(acc["bob"].uid, msim.StatusOffline))
}

// TestClusterShortCutOfBoth: both nodes lose the NATS link for a moment
// (a NATS server restart, say), and the node of alice gets it back first.
// Its fetch of bob's state finds nobody yet, because bob's node has not
// resubscribed: that is no logout, and alice must not see bob offline.
func TestClusterShortCutOfBoth(t *testing.T) { forEngines(t, testClusterShortCutOfBoth) }

func testClusterShortCutOfBoth(t *testing.T, e engine) {
	tn := newNet(t, e)
	px1 := startProxy(t, natsHostPort(t, tn.url))
	px2 := startProxy(t, natsHostPort(t, tn.url))
	n1 := startNode(t, tn, px1.url(), "n1")
	n2 := startNode(t, tn, px2.url(), "n2")
	waitPeers(t, n1, n2)
	acc := addAccounts(t, n1.srv, tn.store, "alice", "bob")
	alice := dial(t, n1, "alice", acc["alice"])
	dial(t, n2, "bob", acc["bob"])
	alice.next("bob online", presence(acc["bob"].uid, msim.StatusOnline))
	names := []string{n1.bus.Node(), n2.bus.Node()}

	probe, err := nats.Connect(tn.url)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	fetches := n1.bus.metrics.out[kindState]
	before := counterValue(t, fetches)

	px1.setCut(true)
	px2.setCut(true)
	time.Sleep(2 * testHeartbeat) // a reconnect at once would be refused
	for deadline := time.Now().Add(wait); ; time.Sleep(time.Millisecond) {
		_, err := probe.Request(n2.bus.subj.user(acc["bob"].uid), []byte{opState}, time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			break // NATS has dropped n2's subscriptions
		}
		if time.Now().After(deadline) {
			t.Fatal("NATS kept n2's subscription of bob")
		}
	}
	px1.setCut(false)
	for deadline := time.Now().Add(wait); counterValue(t, fetches) == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("n1 never fetched bob's state")
		}
	}
	time.Sleep(testHeartbeat / 2) // n1's fetch finds nobody, with n2 still cut
	px2.setCut(false)
	waitPeers(t, n1, n2)
	if n1.bus.Node() != names[0] || n2.bus.Node() != names[1] {
		t.Fatal("a node fenced itself: the cut was too long for this test")
	}
	time.Sleep(2 * testHeartbeat) // states under way land
	for _, ev := range alice.sync() {
		if presence(acc["bob"].uid, msim.StatusOffline)(ev) {
			t.Fatal("alice saw bob offline, though he never left n2")
		}
	}
}
