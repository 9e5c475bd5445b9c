package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/msim"
)

// gatedStore is a Store whose AddOffline, once shut, waits until open is
// closed; entered hears of the first call that waits.
type gatedStore struct {
	Store
	shut    atomic.Bool
	entered chan struct{}
	open    chan struct{}
}

func (g *gatedStore) AddOffline(to msim.UID, m OfflineMessage, lim OfflineLimits) error {
	if g.shut.Load() {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-g.open
	}
	return g.Store.AddOffline(to, m, lim)
}

// floodUntilStored sends numbered IMs from alice to to, who does not read,
// until the server stores one (g shut, so that store waits), and returns a
// function that waits for the flood's end and says how many it sent. The
// flood runs on its own goroutine: alice's route may wait for the store,
// so her socket may fill and her writes wait too.
func floodUntilStored(t *testing.T, alice *client, to msim.UID, g *gatedStore) func() int {
	t.Helper()
	pad := strings.Repeat("x", 8<<10)
	stop := make(chan struct{})
	flooded := make(chan int, 1)
	go func() {
		sent := 0
		defer func() { flooded <- sent }()
		for ; sent < 5000; sent++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = alice.nc.SetWriteDeadline(time.Now().Add(time.Minute))
			bm := msim.NewInt("bm", msim.BMIM).AddInt("sesskey", alice.key).AddInt("t", int(to)).AddInt("cv", 673).
				Add("msg", fmt.Sprintf("%d %s", sent, pad))
			if _, err := alice.nc.Write(msim.Encode(bm)); err != nil {
				return
			}
		}
	}()
	select {
	case <-g.entered:
	case <-time.After(testWait):
		t.Fatal("IMs to a recipient who does not read, and nothing stored")
	}
	close(stop)
	return func() int { return <-flooded }
}

// newGatedStore returns a gatedStore over a memory store, opened when the
// test ends at the latest, and the function that opens it.
func newGatedStore(t *testing.T) (*gatedStore, func()) {
	g := &gatedStore{Store: NewMemStore(), entered: make(chan struct{}, 1), open: make(chan struct{})}
	var opened atomic.Bool
	release := func() {
		if opened.CompareAndSwap(false, true) {
			close(g.open)
		}
	}
	t.Cleanup(release)
	return g, release
}

// imIndex reads the number an IM of the flood begins with, -1 if m is none.
func imIndex(m *msim.Message, from msim.UID) int {
	if !isBM(msim.BMIM, from)(m) {
		return -1
	}
	body, _ := m.Str("msg")
	i := -1
	fmt.Sscanf(body, "%d", &i)
	return i
}

// TestRescueHoldsNoRoutingLock: when a recipient who does not read
// overflows its queue, the IMs its session did not write are stored for
// its next login while no routing waits on them (a store that hangs does
// not stop two other users' IMs), and they come back in the order sent,
// before an IM sent after them.
func TestRescueHoldsNoRoutingLock(t *testing.T) {
	g, release := newGatedStore(t)
	srv, addr := startFlooding(t, Config{SendQ: 8, OfflinePerRecipientBytes: -1, OfflinePerSenderBytes: -1}, g)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	addAccount(t, srv, "carol@example.com", "Secret3", "carol")
	dUID := addAccount(t, srv, "dave@example.com", "Secret4", "dave")
	alice := login(t, addr, "alice@example.com", "Secret1")
	bob := login(t, addr, "bob@example.com", "hunter2")
	_ = bob.nc.(*net.TCPConn).SetReadBuffer(16 << 10) // the server's queue fills sooner
	carol := login(t, addr, "carol@example.com", "Secret3")
	dave := login(t, addr, "dave@example.com", "Secret4")

	g.shut.Store(true)
	flooded := floodUntilStored(t, alice, bUID, g)
	// The store hangs with bob's IMs: carol's IM to dave still goes.
	carol.bm(msim.BMIM, dUID, "still routed")
	got := make(chan *msim.Message, 1)
	go func() {
		m, err := dave.read()
		for err == nil && !isBM(msim.BMIM, carol.uid)(m) {
			m, err = dave.read()
		}
		if err == nil {
			got <- m
		}
		close(got)
	}()
	select {
	case m := <-got:
		if body, _ := m.Str("msg"); body != "still routed" {
			t.Errorf("dave got %q", body)
		}
	case <-time.After(2 * time.Second):
		t.Error("carol's IM to dave waited for the store of bob's IMs")
	}
	release()
	<-got
	sent := flooded()
	alice.sync()
	alice.bm(msim.BMIM, bUID, fmt.Sprintf("%d after", sent))
	alice.sync()
	none(t, alice.takeSeen(), "an IM refused", func(m *msim.Message) bool { return m.Is("error") })

	seen := imsUntilClose(bob, alice.uid)
	live := len(seen)
	bob = login(t, addr, "bob@example.com", "hunter2")
	bob.sync()
	last := -1
	for _, m := range bob.takeSeen() {
		i := imIndex(m, alice.uid)
		if i < 0 {
			continue
		}
		if i < last {
			t.Errorf("stored IM %d came after %d", i, last)
		}
		last = i
		seen[i]++
	}
	for i := range sent + 1 {
		if seen[i] != 1 {
			t.Errorf("IM %d arrived %d times", i, seen[i])
		}
	}
	t.Logf("%d IMs sent, %d reached the socket, %d were stored", sent+1, live, len(seen)-live)
}

// TestRescueAfterATakeoverIsHandedOn: when another node took the account
// over (and its mailbox) while a session closed at once was storing the
// IMs it did not write, the node holding the account now is told they
// were stored, so they are not left for the login after.
func TestRescueAfterATakeoverIsHandedOn(t *testing.T) {
	bus := &fakeBus{}
	var live atomic.Bool // bob is logged in on the other node
	bus.deliver = func(msim.UID) (bool, error) { return live.Load(), nil }
	g, release := newGatedStore(t)
	srv, addr := startFlooding(t, Config{SendQ: 8, Bus: bus, OfflinePerRecipientBytes: -1, OfflinePerSenderBytes: -1}, g)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	bob := login(t, addr, "bob@example.com", "hunter2") // never reads
	_ = bob.nc.(*net.TCPConn).SetReadBuffer(16 << 10)

	g.shut.Store(true)
	flooded := floodUntilStored(t, alice, bUID, g)
	// bob logs in on the other node: it kicks this session and takes the
	// mailbox, while the rescued IMs wait for the store.
	bus.peer.Kick(bUID, Version{Epoch: 1 << 62, Node: "there"})
	if took, err := g.Store.TakeOffline(bUID); err != nil || len(took) != 0 {
		t.Fatalf("the other node's login took %d IMs (%v), want none yet", len(took), err)
	}
	live.Store(true)
	release()
	flooded()
	alice.sync()
	left, err := g.Store.TakeOffline(bUID)
	if err != nil || len(left) == 0 {
		t.Fatalf("stored after the takeover: %d IMs (%v), want the rescued ones", len(left), err)
	}
	bus.mu.Lock()
	told := slices.Contains(bus.stored, bUID)
	bus.mu.Unlock()
	if !told {
		t.Errorf("%d rescued IMs stored after the other node took the mailbox, and that node was not told", len(left))
	}
}

// takeHookStore is a Store that runs hook once, as the first TakeOffline
// begins.
type takeHookStore struct {
	Store
	hook func(to msim.UID)
	once sync.Once
}

func (h *takeHookStore) TakeOffline(to msim.UID) ([]OfflineMessage, error) {
	h.once.Do(func() { h.hook(to) })
	return h.Store.TakeOffline(to)
}

// A session that closes while it logs in (here a graceful shutdown, after
// the server took the stored IMs) stores again the ones it did not take:
// every stored IM is delivered or still stored.
func TestOfflineIMsKeptWhenTheLoginCloses(t *testing.T) {
	mem := NewMemStore()
	st := &takeHookStore{Store: mem}
	srv, addr := startServer(t, Config{}, st)
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	for i := 0; i < 3; i++ {
		if err := mem.AddOffline(bUID, OfflineMessage{From: aUID, Time: time.Now().UTC(), Body: fmt.Sprint("offline ", i)}, OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	shut := make(chan struct{})
	st.hook = func(to msim.UID) {
		// Shutdown begins now; it closes every session (closeAfterFlush).
		go func() { srv.Shutdown(context.Background()); close(shut) }()
		deadline := time.Now().Add(testWait)
		for time.Now().Before(deadline) {
			srv.mu.Lock()
			closing := false
			for s := range srv.conns {
				s.qmu.Lock()
				closing = closing || (s.uid == to && s.closing)
				s.qmu.Unlock()
			}
			srv.mu.Unlock()
			if closing {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	bob := dial(t, addr)
	resp, _ := msim.LoginResponse(bob.nonce, "bob@example.com", msim.HashPassword("hunter2"), nil)
	bob.send(msim.NewInt("login2", msim.LoginAlgorithm).Add("username", "bob@example.com").AddBase64("response", resp).
		AddInt("clientver", 673).AddInt("reconn", 0).AddInt("status", 100).AddInt("id", 1))
	got := 0
	for {
		m, err := bob.read()
		if err != nil {
			break
		}
		if isBM(msim.BMIM, aUID)(m) {
			got++
		}
	}
	<-shut // the server has finished with the session
	left, _ := mem.TakeOffline(bUID)
	if got+len(left) != 3 || len(left) == 0 {
		t.Errorf("3 offline IMs: %d delivered, %d still stored (want all stored: the session took none)", got, len(left))
	}
}

// TestRescueIgnoresTheOfflineCaps: the IMs a session closed at once did
// not write were delivered as far as their sender knows; they are stored
// for the next login even past the offline caps, which refuse only IMs
// for an offline user, with an error their sender gets. Every IM of a
// flood to a user who does not read is delivered once, or refused with
// an error to its sender.
func TestRescueIgnoresTheOfflineCaps(t *testing.T) {
	g, release := newGatedStore(t)
	srv, addr := startFlooding(t, Config{SendQ: 256, OfflinePerRecipientBytes: -1, OfflinePerSenderBytes: 32 << 10}, g)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	bob := login(t, addr, "bob@example.com", "hunter2") // reads nothing until it is closed
	_ = bob.nc.(*net.TCPConn).SetReadBuffer(16 << 10)

	g.shut.Store(true)
	flooded := floodUntilStored(t, alice, bUID, g)
	// alice reads from now on: the IMs of hers the server has yet to
	// route are refused once the store opens, many errors at once.
	const marker = 1 << 20 // the rid of a request sent after the flood
	refusals := make(chan int, 1)
	go func() {
		n := 0
		defer func() { refusals <- n }()
		for {
			m, err := alice.read()
			if err != nil || isPersistr(msim.PersistOwnIMInfo, marker)(m) {
				return
			}
			if isError(ErrCodeNotStored)(m) {
				n++
			}
		}
	}()
	release()
	sent := flooded()
	alice.send((&msim.Persist{Cmd: msim.CmdGet, DSN: msim.PersistOwnIMInfo.DSN, LID: msim.PersistOwnIMInfo.LID,
		UID: alice.uid, RID: marker}).Request(alice.key))
	refused := <-refusals

	seen := imsUntilClose(bob, alice.uid)
	live := len(seen)
	bob = login(t, addr, "bob@example.com", "hunter2")
	bob.sync()
	for _, m := range bob.takeSeen() {
		if i := imIndex(m, alice.uid); i >= 0 {
			seen[i]++
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("IM %d arrived %d times", i, n)
		}
	}
	if got := len(seen) + refused; got != sent {
		t.Errorf("%d IMs sent: %d arrived (%d live), %d refused with an error; %d are lost", sent, len(seen), live, refused, sent-got)
	}
}

// imsUntilClose counts, by index (imIndex), the IMs from uid that reach
// c's socket until it closes.
func imsUntilClose(c *client, from msim.UID) map[int]int {
	seen := map[int]int{}
	for {
		m, err := c.read()
		if err != nil {
			return seen
		}
		if i := imIndex(m, from); i >= 0 {
			seen[i]++
		}
	}
}

// mailboxStore is a Store that keeps, for one recipient, the bytes
// waiting for it and the most there ever were, and hears of every
// AddOffline for it (added, which drops what it cannot take).
type mailboxStore struct {
	Store
	to    msim.UID
	added chan struct{}

	mu          sync.Mutex
	bytes, most int64
}

func (b *mailboxStore) AddOffline(to msim.UID, m OfflineMessage, lim OfflineLimits) error {
	if to != b.to {
		return b.Store.AddOffline(to, m, lim)
	}
	b.mu.Lock()
	err := b.Store.AddOffline(to, m, lim)
	if err == nil {
		b.bytes += int64(len(m.Body))
		b.most = max(b.most, b.bytes)
	}
	b.mu.Unlock()
	select {
	case b.added <- struct{}{}:
	default:
	}
	return err
}

func (b *mailboxStore) TakeOffline(to msim.UID) ([]OfflineMessage, error) {
	if to != b.to {
		return b.Store.TakeOffline(to)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	got, err := b.Store.TakeOffline(to)
	if err == nil {
		b.bytes = 0
	}
	return got, err
}

func (b *mailboxStore) mostBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.most
}

// TestRescueIsBounded: a recipient whose client logs in again and again
// and reads nothing, while a sender floods it, has each session's unwritten
// IMs stored past the offline caps (TestRescueIgnoresTheOfflineCaps), but
// its mailbox never holds more than rescueFactor times the cap: the IMs
// past that are refused, and their sender told. Every IM sent is delivered
// once or refused with an error to its sender.
func TestRescueIsBounded(t *testing.T) {
	const (
		cycles   = 12
		capBytes = 256 << 10
		marker   = 1 << 20 // the rids of requests sent after each flood
	)
	mem := &mailboxStore{Store: NewMemStore(), added: make(chan struct{}, 1)}
	srv, addr := startFlooding(t, Config{SendQ: 256, OfflinePerRecipientBytes: capBytes, OfflinePerSenderBytes: -1}, mem)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	mem.to = addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")

	// alice reads throughout: the errors she gets, and the replies to the
	// requests that end each flood.
	refused := make(chan struct{}, 1<<16)
	replies := make(chan int, cycles)
	go func() {
		_ = alice.nc.SetReadDeadline(time.Time{})
		for {
			m, err := alice.dec.Decode()
			if err != nil {
				return
			}
			if isError(ErrCodeNotStored)(m) {
				refused <- struct{}{}
			} else if m.Is("persistr") {
				if p, err := msim.ParsePersist(m); err == nil && p.RID >= marker {
					replies <- p.RID - marker
				}
			}
		}
	}()

	pad := strings.Repeat("x", 32<<10)
	seen := map[int]int{}
	sent := 0
	for cycle := range cycles {
		select {
		case <-mem.added:
		default:
		}
		// bob reads nothing until his session is closed. His socket's
		// buffer is not made small: read after a long stall, a small one
		// lets the closed socket's rest come only slowly.
		bob := login(t, addr, "bob@example.com", "hunter2")
		// alice floods bob until his session overflows (the server
		// stores for him: the rescue, or IMs after it).
		stop := make(chan struct{})
		flooded := make(chan int, 1)
		go func(first int) {
			n := 0
			defer func() { flooded <- n }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = alice.nc.SetWriteDeadline(time.Now().Add(time.Minute))
				bm := msim.NewInt("bm", msim.BMIM).AddInt("sesskey", alice.key).AddInt("t", int(mem.to)).AddInt("cv", 673).
					Add("msg", fmt.Sprintf("%d %s", first+n, pad))
				if _, err := alice.nc.Write(msim.Encode(bm)); err != nil {
					return
				}
				n++
			}
		}(sent)
		select {
		case <-mem.added:
		case <-time.After(testWait):
			t.Fatalf("cycle %d: IMs to a recipient who does not read, and nothing stored", cycle)
		}
		close(stop)
		sent += <-flooded
		// One more IM: its route waits for the closed session's writer
		// to store (or refuse) what it did not write. It and every IM of
		// the flood are routed once the server answers the request after
		// it; the next cycle's login then finds what this one stored.
		alice.bm(msim.BMIM, mem.to, fmt.Sprintf("%d %s", sent, pad))
		sent++
		alice.send((&msim.Persist{Cmd: msim.CmdGet, DSN: msim.PersistOwnIMInfo.DSN, LID: msim.PersistOwnIMInfo.LID,
			UID: alice.uid, RID: marker + cycle}).Request(alice.key))
		select {
		case <-replies:
		case <-time.After(testWait):
			t.Fatalf("cycle %d: no reply to the request after the flood", cycle)
		}
		for i, n := range imsUntilClose(bob, alice.uid) {
			seen[i] += n
		}
	}

	// bob reads at last: what is stored, and what the last sessions'
	// writers store after it (handed to this session).
	bob := login(t, addr, "bob@example.com", "hunter2")
	ims := make(chan int, 1<<16)
	go func() {
		_ = bob.nc.SetReadDeadline(time.Time{})
		for {
			m, err := bob.dec.Decode()
			if err != nil {
				return
			}
			if i := imIndex(m, alice.uid); i >= 0 {
				ims <- i
			}
		}
	}()
	delivered, nrefused := 0, 0
	for k := range seen {
		delivered += seen[k]
	}
	for delivered+nrefused < sent {
		select {
		case i := <-ims:
			seen[i]++
			delivered++
		case <-refused:
			nrefused++
		case <-time.After(testWait):
			t.Fatalf("%d IMs sent: %d delivered, %d refused with an error; %d are lost", sent, delivered, nrefused, sent-delivered-nrefused)
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("IM %d arrived %d times", i, n)
		}
	}
	if most, ceiling := mem.mostBytes(), int64(rescueFactor*capBytes); most > ceiling {
		t.Errorf("bob's mailbox held %d bytes at most over %d cycles, want at most %d (%d times the cap)", most, cycles, ceiling, rescueFactor)
	}
	t.Logf("%d IMs sent: %d delivered, %d refused with an error; the mailbox held %d bytes at most", sent, delivered, nrefused, mem.mostBytes())
}

// TestRescueOfARemoteSendersIMsIsNotLost: IMs another node delivered here
// (its sender told nothing: Deliver said they were taken) that a session
// closed at once did not write must reach their recipient later, or their
// sender must hear they did not. The sender is not logged in on this node,
// so the refusal past the rescue ceiling tells nobody: every IM Deliver
// took must be seen by bob, live or at his next login, unless the
// mailbox reached the hard ceiling (untoldFactor): one past that is lost,
// and counted.
func TestRescueOfARemoteSendersIMsIsNotLost(t *testing.T) {
	bus := &fakeBus{}
	reg := prometheus.NewRegistry()
	const capBytes = 16 << 10
	srv, addr := startFlooding(t, Config{SendQ: 8, Bus: bus, Metrics: reg, OfflinePerRecipientBytes: capBytes, OfflinePerSenderBytes: -1}, NewMemStore())
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice") // logged in on the other node
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	bob := login(t, addr, "bob@example.com", "hunter2") // reads nothing until closed
	_ = bob.nc.(*net.TCPConn).SetReadBuffer(16 << 10)

	pad := strings.Repeat("x", 8<<10)
	taken := 0
	for ; taken < 5000; taken++ {
		wire := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(aUID)).AddInt("cv", 673).
			Add("msg", fmt.Sprintf("%d %s", taken, pad)))
		if !bus.peer.Deliver(bUID, aUID, wire, time.Time{}) {
			break // the session overflowed: the other node stores this one itself
		}
	}
	if taken == 5000 {
		t.Fatal("bob's session never overflowed")
	}
	seen := imsUntilClose(bob, aUID)
	live := len(seen)
	bob = login(t, addr, "bob@example.com", "hunter2")
	bob.sync()
	var storedBytes int64
	for _, m := range bob.takeSeen() {
		if i := imIndex(m, aUID); i >= 0 {
			seen[i]++
			body, _ := m.Str("msg")
			storedBytes += int64(len(body))
		}
	}
	var lost []int
	for i := range taken {
		if seen[i] != 1 {
			lost = append(lost, i)
		}
	}
	hard := int64(untoldFactor * capBytes)
	if storedBytes > hard {
		t.Errorf("%d bytes stored for bob, past the hard ceiling %d", storedBytes, hard)
	}
	if len(lost) > 0 && storedBytes+int64(len(pad)) <= hard {
		t.Errorf("%d IMs taken for delivery, %d reached the socket, %d stored (%d bytes, hard ceiling %d); got %d IMs neither delivered nor stored (their sender on another node was told nothing): %v, want none under the hard ceiling",
			taken, live, len(seen)-live, storedBytes, hard, len(lost), lost)
	}
	wantValues(t, reg, []wantValue{{"msimd_ims_lost_total", []string{"reason", "untold"}, float64(len(lost))}})
	t.Logf("%d IMs taken for delivery, %d reached the socket, %d stored (%d bytes), %d lost past the hard ceiling (%d bytes)",
		taken, live, len(seen)-live, storedBytes, len(lost), hard)
}

// TestRescueOfMalformedIMs: an IM a session closed at once had not written
// that does not parse (another node's, cut short or with bytes after its
// end) is not dropped: its text is stored for the next login when it can
// be read, its sender is told when it cannot, and one that names no
// sender is lost with nobody to tell; each is counted.
func TestRescueOfMalformedIMs(t *testing.T) {
	reg := prometheus.NewRegistry()
	mem := NewMemStore()
	srv, addr := startServer(t, Config{Metrics: reg}, mem)
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob") // logged out
	alice := login(t, addr, "alice@example.com", "Secret1")
	alice.sync()
	alice.takeSeen()

	f := strconv.Itoa(int(aUID))
	s := pipeSession(t, srv, bUID)
	// Queued with no sender known, as if from elsewhere: their bytes
	// alone say who sent them.
	w := writer{unsent: []queued{
		{b: msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(aUID)).AddInt("cv", 673).Add("msg", "whole"))},
		{b: []byte(`\bm\1\f\` + f + `\cv\673\msg\bytes after/2its end\final\x`)},
		{b: []byte(`\bm\1\f\` + f + `\msg\cut short`)},
		{b: []byte(`\bm\1\f\` + f + `\cv\67`)},    // cut before its text
		{b: []byte(`\bm\1\cv\673\msg\from whom`)}, // no sender
	}}
	s.storeUnwritten(&w)
	s.tellRefused()

	got, err := mem.TakeOffline(bUID)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, om := range got {
		if om.From != aUID {
			t.Errorf("stored IM %q from %d, want from %d", om.Body, om.From, aUID)
		}
		bodies = append(bodies, om.Body)
	}
	if want := []string{"whole", `bytes after\its end`, "cut short"}; !slices.Equal(bodies, want) {
		t.Errorf("stored for bob: got %q, want %q", bodies, want)
	}
	alice.sync()
	refusals := 0
	for _, m := range alice.takeSeen() {
		if isError(ErrCodeNotStored)(m) {
			refusals++
		}
	}
	if refusals != 1 {
		t.Errorf("alice got %d errors for IMs not stored, want 1 (the IM cut before its text)", refusals)
	}
	wantValues(t, reg, []wantValue{
		{"msimd_ims_malformed_total", []string{"result", "stored"}, 2},
		{"msimd_ims_malformed_total", []string{"result", "refused"}, 1},
		{"msimd_ims_malformed_total", []string{"result", "lost"}, 1},
		{"msimd_ims_stored_total", nil, 3},
	})
}

// TestRescueTellsTheQueuedSender: an IM routed to a session that closes
// at once before writing it keeps the sender the route knew, so what its
// bytes do not say is no loss: one that names no sender is stored from
// that sender, and one whose text cannot be read is refused to that
// sender.
func TestRescueTellsTheQueuedSender(t *testing.T) {
	reg := prometheus.NewRegistry()
	mem := NewMemStore()
	srv, addr := startServer(t, Config{Metrics: reg}, mem)
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	alice.sync()
	alice.takeSeen()

	// bob's session has no writer: what is routed to it stays queued.
	bob := pipeSession(t, srv, bUID)
	registerSession(t, srv, bob)
	for _, wire := range []string{
		`\bm\1\cv\673\msg\from whom\final\`, // parses, names no sender
		`\bm\1\cv\67`,                       // cut before its text
	} {
		if online, _ := srv.reg.deliver(bUID, aUID, []byte(wire)); !online {
			t.Fatalf("%q was not queued for bob", wire)
		}
	}
	srv.reg.mu.Lock()
	delete(srv.reg.byUID, bUID)
	srv.reg.mu.Unlock()
	bob.closeNow()
	bob.storeUnwritten(&writer{})
	bob.tellRefused()

	got, err := mem.TakeOffline(bUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].From != aUID || got[0].Body != "from whom" {
		t.Errorf("stored for bob: got %+v, want one IM from %d, \"from whom\"", got, aUID)
	}
	alice.sync()
	refusals := 0
	for _, m := range alice.takeSeen() {
		if isError(ErrCodeNotStored)(m) {
			refusals++
		}
	}
	if refusals != 1 {
		t.Errorf("alice got %d errors for IMs not stored, want 1 (the IM cut before its text)", refusals)
	}
	wantValues(t, reg, []wantValue{
		{"msimd_ims_lost_total", []string{"reason", "no_sender"}, 0},
		{"msimd_ims_malformed_total", []string{"result", "lost"}, 0},
	})
}

// TestRescuePastCeilingIsBounded: an IM a session closed at once did not
// write, refused by the rescue's ceiling, is stored past it when its
// sender cannot be told (not logged in here, or its session closing), but
// only up to the hard ceiling: past that it is lost, logged and counted,
// and the mailbox does not grow.
func TestRescuePastCeilingIsBounded(t *testing.T) {
	hard := untoldFactor * maxOffline
	for _, tc := range []struct {
		name   string
		here   bool // the sender is logged in here, its session closing
		before int  // IMs waiting for the recipient already
		stored bool // the IM is stored, else lost
	}{
		{"sender not logged in, at the hard ceiling", false, hard, false},
		{"sender not logged in, just under it", false, hard - 1, true},
		{"sender here but cannot be told, at the hard ceiling", true, hard, false},
		{"sender here but cannot be told, just under it", true, hard - 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			mem := NewMemStore()
			srv, _ := startServer(t, Config{Metrics: reg}, mem)
			aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
			bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
			for i := range tc.before {
				if err := mem.AddOffline(bUID, OfflineMessage{From: aUID, Time: time.Now().UTC(), Body: strconv.Itoa(i)}, OfflineLimits{}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.here {
				// alice is logged in, but her session is closing: she
				// cannot be told.
				alice := pipeSession(t, srv, aUID)
				alice.closeAfterFlush()
				registerSession(t, srv, alice)
			}
			nc, other := net.Pipe()
			t.Cleanup(func() { other.Close() })
			bob := newSession(srv, nc, 1<<41)
			bob.uid = bUID
			w := writer{unsent: []queued{{
				b:    msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(aUID)).AddInt("cv", 673).Add("msg", "one more")),
				from: aUID,
			}}}
			bob.storeUnwritten(&w)
			bob.tellRefused()

			got, err := mem.TakeOffline(bUID)
			if err != nil {
				t.Fatal(err)
			}
			want, lost, stored := tc.before, 1.0, 0.0
			if tc.stored {
				want, lost, stored = tc.before+1, 0, 1
			}
			if len(got) != want {
				t.Errorf("%d IMs waiting for bob, want %d (hard ceiling %d)", len(got), want, hard)
			}
			wantValues(t, reg, []wantValue{
				{"msimd_ims_lost_total", []string{"reason", "untold"}, lost},
				{"msimd_ims_stored_total", nil, stored},
			})
		})
	}
}

// TestRescueOfIMsTheRouteCountedAsIMs: an IM from another node whose
// bytes are cut just after its type, or whose type is written with a
// leading zero, is routed as an IM (bmType) and queued with its sender;
// when the session closes at once before writing it, it is not dropped
// without a word: the one whose text is read is stored, the other is
// refused to its sender, and each is counted.
func TestRescueOfIMsTheRouteCountedAsIMs(t *testing.T) {
	reg := prometheus.NewRegistry()
	mem := NewMemStore()
	srv, addr := startServer(t, Config{Metrics: reg}, mem)
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	alice.sync()
	alice.takeSeen()

	// bob's session has no writer: what is routed to it stays queued.
	bob := pipeSession(t, srv, bUID)
	registerSession(t, srv, bob)
	for _, wire := range []string{
		`\bm\01\cv\673\msg\a leading zero\final\`,
		`\bm\1`, // cut just after its type
	} {
		if typ := bmType([]byte(wire)); typ != msim.BMIM {
			t.Fatalf("%q is routed as bm %d, want an IM", wire, typ)
		}
		if online, _ := srv.reg.deliver(bUID, aUID, []byte(wire)); !online {
			t.Fatalf("%q was not queued for bob", wire)
		}
	}
	srv.reg.mu.Lock()
	delete(srv.reg.byUID, bUID)
	srv.reg.mu.Unlock()
	bob.closeNow()
	bob.storeUnwritten(&writer{})
	bob.tellRefused()

	got, err := mem.TakeOffline(bUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].From != aUID || got[0].Body != "a leading zero" {
		t.Errorf("stored for bob: got %+v, want one IM from %d, \"a leading zero\"", got, aUID)
	}
	alice.sync()
	refusals := 0
	for _, m := range alice.takeSeen() {
		if isError(ErrCodeNotStored)(m) {
			refusals++
		}
	}
	if refusals != 1 {
		t.Errorf("alice got %d errors for IMs not stored, want 1 (the IM cut after its type)", refusals)
	}
	wantValues(t, reg, []wantValue{
		{"msimd_ims_stored_total", nil, 1},
		{"msimd_ims_malformed_total", []string{"result", "refused"}, 1},
	})
}

// takeSignalStore is a Store that closes taken as the first TakeOffline
// of uid begins.
type takeSignalStore struct {
	Store
	uid   atomic.Uint64
	taken chan struct{}
	once  sync.Once
}

func (s *takeSignalStore) TakeOffline(to msim.UID) ([]OfflineMessage, error) {
	if uint64(to) == s.uid.Load() {
		s.once.Do(func() { close(s.taken) })
	}
	return s.Store.TakeOffline(to)
}

// TestRescueCountsTheIMsARestoreHolds: the stored IMs handed to a session
// that turns out to be closed at once are stored again (restore) once its
// writer has stored the IMs it did not write, and until then they are out
// of the store. The rescue's ceilings count them: its IMs do not take
// their room while the mailbox looks empty, to leave it past the ceilings
// once they are back. Past the ceiling a rescued IM is refused to its
// sender, logged in here; past the hard ceiling, with its sender not here
// to be told, it is lost and counted. The stored IMs are all kept, in
// order.
func TestRescueCountsTheIMsARestoreHolds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		here    bool // alice is logged in here, to be told
		waiting int  // IMs waiting for bob: a ceiling
	}{
		{"sender logged in, mailbox at the ceiling", true, rescueFactor * maxOffline},
		{"sender not logged in, mailbox at the hard ceiling", false, untoldFactor * maxOffline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			mem := NewMemStore()
			st := &takeSignalStore{Store: mem, taken: make(chan struct{})}
			srv, addr := startServer(t, Config{Metrics: reg}, st)
			aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
			bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
			st.uid.Store(uint64(bUID))
			var alice *client
			if tc.here {
				alice = login(t, addr, "alice@example.com", "Secret1")
				alice.sync()
				alice.takeSeen()
			}
			for i := range tc.waiting {
				if err := mem.AddOffline(bUID, OfflineMessage{From: aUID, Time: time.Now().UTC(), Body: strconv.Itoa(i)}, OfflineLimits{}); err != nil {
					t.Fatal(err)
				}
			}

			// bob's session is closed at once; its writer has yet to
			// store the IMs it did not write.
			bob := pipeSession(t, srv, bUID)
			registerSession(t, srv, bob)
			bob.closeNow()
			const unwritten = 5
			var w writer
			for i := range unwritten {
				w.unsent = append(w.unsent, queued{
					b:    msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("f", int(aUID)).AddInt("cv", 673).Add("msg", fmt.Sprint("unwritten ", i))),
					from: aUID,
				})
			}
			// IMs were stored for bob (elsewhere): the server hands him
			// his mailbox, which his session cannot take.
			handed := make(chan struct{})
			go func() {
				defer close(handed)
				peer{srv}.Mailbox(bUID)
			}()
			select {
			case <-st.taken:
			case <-time.After(testWait):
				t.Fatal("bob's mailbox was not taken")
			}
			// The writer ends, as writeLoop does: its store waits for
			// the take (offlineMu), the restore for the store.
			bob.storeUnwritten(&w)
			close(bob.writerDone)
			bob.tellRefused()
			select {
			case <-handed:
			case <-time.After(testWait):
				t.Fatal("the mailbox was not stored again")
			}

			got, err := mem.TakeOffline(bUID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > tc.waiting {
				t.Errorf("%d IMs waiting for bob after the rescue, past the ceiling %d", len(got), tc.waiting)
			}
			for i := range min(len(got), tc.waiting) {
				if got[i].Body != strconv.Itoa(i) {
					t.Errorf("stored IM %d is %q, want %q: the stored IMs are kept, in order", i, got[i].Body, strconv.Itoa(i))
					break
				}
			}
			rescued := len(got) - tc.waiting
			if tc.here {
				alice.sync()
				refusals := 0
				for _, m := range alice.takeSeen() {
					if isError(ErrCodeNotStored)(m) {
						refusals++
					}
				}
				if rescued+refusals != unwritten {
					t.Errorf("%d IMs unwritten: %d stored, %d refused with an error to their sender", unwritten, rescued, refusals)
				}
			} else {
				wantValues(t, reg, []wantValue{{"msimd_ims_lost_total", []string{"reason", "untold"}, float64(unwritten - max(rescued, 0))}})
			}
		})
	}
}

// TestAddOfflineCountsASendersHeldBytes: while a restore holds a sender's
// IMs out of a mailbox, a store of theirs to it counts those IMs' bytes
// against the sender's share, as it counts them against the mailbox's:
// once they are back, the sender holds no more than the share.
func TestAddOfflineCountsASendersHeldBytes(t *testing.T) {
	srv, _ := startServer(t, Config{}, NewMemStore())
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	cUID := addAccount(t, srv, "carol@example.com", "Secret3", "carol")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	lim := OfflineLimits{Messages: 100, Bytes: 1 << 20, SenderBytes: 100}
	held := []OfflineMessage{{From: aUID, Body: strings.Repeat("a", 60)}, {From: cUID, Body: "c"}}
	srv.offlineMu.Lock()
	defer srv.offlineMu.Unlock()
	srv.hold(bUID, held, 1)
	if err := srv.addOffline(bUID, OfflineMessage{From: aUID, Body: strings.Repeat("b", 50)}, lim); !errors.Is(err, errOfflineSenderFull) {
		t.Errorf("alice's 50 bytes beside her 60 held: got %v, want %v", err, errOfflineSenderFull)
	}
	if err := srv.addOffline(bUID, OfflineMessage{From: cUID, Body: strings.Repeat("b", 50)}, lim); err != nil {
		t.Errorf("carol's 50 bytes beside her 1 held: got %v, want it stored", err)
	}
	srv.hold(bUID, held, -1)
	if len(srv.held) != 0 {
		t.Errorf("held after the restore: %v, want nothing", srv.held)
	}
	if err := srv.addOffline(bUID, OfflineMessage{From: aUID, Body: strings.Repeat("b", 50)}, lim); err != nil {
		t.Errorf("alice's 50 bytes with nothing held: got %v, want it stored", err)
	}
}

// TestMailboxRestoredForTheNewerSession: stored IMs handed (Mailbox) to a
// session that turns out to be closed go back to the store once its
// writer is done (restore). A newer session that logged in meanwhile took
// the mailbox without them: it is handed them then, not at its next
// login.
func TestMailboxRestoredForTheNewerSession(t *testing.T) {
	mem := NewMemStore()
	st := &takeSignalStore{Store: mem, taken: make(chan struct{})}
	srv, addr := startServer(t, Config{}, st)
	aUID := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	st.uid.Store(uint64(bUID))
	const waiting = 3
	for i := range waiting {
		if err := mem.AddOffline(bUID, OfflineMessage{From: aUID, Time: time.Now().UTC(), CV: 673, Body: fmt.Sprint("stored ", i)}, OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	// bob's session is closed at once; its writer has yet to end.
	old := pipeSession(t, srv, bUID)
	registerSession(t, srv, old)
	old.closeNow()
	handed := make(chan struct{})
	go func() {
		defer close(handed)
		peer{srv}.Mailbox(bUID)
	}()
	select {
	case <-st.taken:
	case <-time.After(testWait):
		t.Fatal("bob's mailbox was not taken")
	}
	// While the restore waits for the old writer, bob logs in anew: his
	// new session takes the mailbox, empty.
	bob := login(t, addr, "bob@example.com", "hunter2")
	bob.sync()
	if srv.reg.session(bUID) == old {
		t.Fatal("bob's new session is not the registered one")
	}
	var w writer
	old.storeUnwritten(&w)
	close(old.writerDone)
	select {
	case <-handed:
	case <-time.After(testWait):
		t.Fatal("the mailbox was not stored again")
	}
	for i := range waiting {
		want := fmt.Sprint("stored ", i)
		m := bob.expect("stored IM "+strconv.Itoa(i), isBM(msim.BMIM, aUID))
		if got, _ := m.Str("msg"); !strings.Contains(got, want) {
			t.Errorf("bob's IM %d: got %q, want %q", i, got, want)
		}
	}
}

// pipeSession is a session of uid's on one end of a pipe nobody reads:
// it has no writer, so what is routed to it stays queued.
func pipeSession(t *testing.T, srv *Server, uid msim.UID) *session {
	t.Helper()
	nc, other := net.Pipe()
	t.Cleanup(func() { other.Close() })
	s := newSession(srv, nc, 1<<40)
	s.uid = uid
	return s
}

// registerSession makes s its uid's live session until the test ends.
func registerSession(t *testing.T, srv *Server, s *session) {
	t.Helper()
	srv.reg.mu.Lock()
	srv.reg.byUID[s.uid] = s
	srv.reg.mu.Unlock()
	t.Cleanup(func() {
		srv.reg.mu.Lock()
		if srv.reg.byUID[s.uid] == s {
			delete(srv.reg.byUID, s.uid)
		}
		srv.reg.mu.Unlock()
	})
}
