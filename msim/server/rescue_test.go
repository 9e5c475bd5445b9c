package server

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
	g := &gatedStore{Store: NewMemStore(), entered: make(chan struct{}, 1), open: make(chan struct{})}
	srv, addr := startServer(t, Config{SendQ: 8, OfflinePerRecipientBytes: -1, OfflinePerSenderBytes: -1}, g)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	addAccount(t, srv, "carol@example.com", "Secret3", "carol")
	dUID := addAccount(t, srv, "dave@example.com", "Secret4", "dave")
	alice := login(t, addr, "alice@example.com", "Secret1")
	bob := login(t, addr, "bob@example.com", "hunter2")
	carol := login(t, addr, "carol@example.com", "Secret3")
	dave := login(t, addr, "dave@example.com", "Secret4")
	var opened atomic.Bool
	release := func() {
		if opened.CompareAndSwap(false, true) {
			close(g.open)
		}
	}
	t.Cleanup(release)

	g.shut.Store(true)
	pad := strings.Repeat("x", 8<<10)
	sent := 0
	for waiting := false; !waiting; {
		if sent == 5000 {
			t.Fatal("5,000 IMs to a recipient who does not read, and nothing stored")
		}
		alice.bm(msim.BMIM, bUID, fmt.Sprintf("%d %s", sent, pad))
		sent++
		select {
		case <-g.entered:
			waiting = true
		default:
		}
	}
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
	alice.sync()
	alice.bm(msim.BMIM, bUID, fmt.Sprintf("%d after", sent))
	alice.sync()
	none(t, alice.takeSeen(), "an IM refused", func(m *msim.Message) bool { return m.Is("error") })

	seen := map[int]int{}
	for { // what reached bob's socket, up to the close
		m, err := bob.read()
		if err != nil {
			break
		}
		if i := imIndex(m, alice.uid); i >= 0 {
			seen[i]++
		}
	}
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
