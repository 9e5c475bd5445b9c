package server

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// watchedPair starts a server with cfg and logs in alice, then bob, who
// lists her: bob has her first presence from his login burst, which does
// not wait.
func watchedPair(t *testing.T, cfg Config) (alice, bob *client, aliceUID msim.UID) {
	t.Helper()
	srv, addr := startServer(t, cfg, NewMemStore())
	aliceUID = addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bobUID := addAccount(t, srv, "bob@example.com", "Secret1", "bob")
	if err := srv.store.PutContact(bobUID, Contact{UID: aliceUID, GroupName: "IM Friends", Visibility: 1}); err != nil {
		t.Fatal(err)
	}
	alice = login(t, addr, "alice@example.com", "Secret1")
	alice.status(msim.StatusOnline, "here")
	alice.sync()
	bob = login(t, addr, "bob@example.com", "Secret1")
	bob.expect("alice's presence in the login burst", isPresence(aliceUID, msim.StatusOnline))
	return alice, bob, aliceUID
}

// presenceText matches uid's presence with the status text want.
func presenceText(uid msim.UID, want string) func(*msim.Message) bool {
	return func(m *msim.Message) bool {
		if !isBM(msim.BMStatus, uid)(m) {
			return false
		}
		l, _ := m.List("msg")
		p, _ := msim.ParsePresence(l)
		return p.Text == want
	}
}

// TestPresenceWaitsToShareAWrite: presence changes fanned out to a watcher
// wait (up to PresenceDelay) for the ones after them, and go out together,
// in order, instead of one write each.
func TestPresenceWaitsToShareAWrite(t *testing.T) {
	const delay = 2 * time.Second
	alice, bob, uid := watchedPair(t, Config{PresenceDelay: delay})
	start := time.Now()
	texts := []string{"one", "two", "three"}
	for i, text := range texts {
		s := msim.StatusAway
		if i%2 == 1 {
			s = msim.StatusOnline
		}
		alice.status(s, text)
		time.Sleep(20 * time.Millisecond)
	}
	var at []time.Duration
	for _, text := range texts {
		bob.expect("alice's presence "+text, presenceText(uid, text))
		at = append(at, time.Since(start))
	}
	if at[0] < delay/2 {
		t.Errorf("the first change reached the watcher after %v: it did not wait for the others (delay %v)", at[0], delay)
	}
	if spread := at[len(at)-1] - at[0]; spread > delay/4 {
		t.Errorf("the changes reached the watcher %v apart: not in one write (arrivals %v)", spread, at)
	}
}

// TestPresenceGoesOutWithTheNextMessage: anything else queued for the
// watcher (here an IM) takes the waiting presence along at once, before
// it.
func TestPresenceGoesOutWithTheNextMessage(t *testing.T) {
	alice, bob, uid := watchedPair(t, Config{PresenceDelay: time.Hour})
	start := time.Now()
	alice.status(msim.StatusAway, "lunch")
	alice.bm(msim.BMIM, bob.uid, "back soon")
	m, err := bob.read()
	for err == nil && m.Is("ka") {
		m, err = bob.read()
	}
	if err != nil {
		t.Fatalf("waiting for the presence: %v", err)
	}
	if !presenceText(uid, "lunch")(m) {
		t.Fatalf("first message: got %v, want alice's presence \"lunch\"", m)
	}
	bob.expect("alice's IM", isBM(msim.BMIM, uid))
	if d := time.Since(start); d > testWait/2 {
		t.Errorf("presence and IM took %v", d)
	}
}

// TestPresenceWaitsForAtMostABatch: fewer than presenceBatch changes
// wait; the presenceBatch-th takes them all out without waiting for the
// delay.
func TestPresenceWaitsForAtMostABatch(t *testing.T) {
	alice, bob, uid := watchedPair(t, Config{PresenceDelay: time.Hour})
	for i := range presenceBatch - 1 {
		alice.status(msim.StatusAway, fmt.Sprint("change ", i))
	}
	alice.sync() // all handled: queued for bob
	_ = bob.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if m, err := bob.dec.Decode(); err == nil {
		t.Fatalf("with %d changes waiting bob got %v: they did not wait", presenceBatch-1, m)
	}
	// A read that timed out leaves the connection and decoder usable.
	alice.status(msim.StatusAway, fmt.Sprint("change ", presenceBatch-1))
	for i := range presenceBatch {
		bob.expect(fmt.Sprint("change ", i), presenceText(uid, fmt.Sprint("change ", i)))
	}
}

// TestPresenceWaitNeverFillsTheQueue: with a SendQ smaller than
// presenceBatch, the changes go out once half the SendQ waits (without
// that bound they would wait for the delay, and a few more would close
// the watcher for its queue).
func TestPresenceWaitNeverFillsTheQueue(t *testing.T) {
	const sendQ = 8
	alice, bob, uid := watchedPair(t, Config{PresenceDelay: time.Hour, SendQ: sendQ})
	for round := range 3 {
		first := round * sendQ / 2
		for i := first; i < first+sendQ/2; i++ {
			alice.status(msim.StatusAway, fmt.Sprint("change ", i))
		}
		for i := first; i < first+sendQ/2; i++ {
			bob.expect(fmt.Sprint("change ", i), presenceText(uid, fmt.Sprint("change ", i)))
		}
	}
}

// TestPresenceDelayConfig: Config.PresenceDelay's default, and a negative
// one queues a presence change as anything else (no wait).
func TestPresenceDelayConfig(t *testing.T) {
	for _, c := range []struct {
		set, want time.Duration
		wait      bool
	}{
		{0, defaultPresenceDelay, true},
		{time.Second, time.Second, true},
		{-1, -1, false},
	} {
		srv, _ := startServer(t, Config{PresenceDelay: c.set}, NewMemStore())
		if srv.cfg.PresenceDelay != c.want {
			t.Errorf("PresenceDelay %v: got %v, want %v", c.set, srv.cfg.PresenceDelay, c.want)
		}
		s := &session{srv: srv, wake: make(chan struct{}, 1)}
		if !s.enqueuePresence(presenceMsg(1, msim.Presence{Status: msim.StatusOnline})) {
			t.Fatalf("PresenceDelay %v: refused", c.set)
		}
		if got := !s.urgent && s.lazy; got != c.wait {
			t.Errorf("PresenceDelay %v: waits %v, want %v", c.set, got, c.wait)
		}
	}
}

// TestPresenceNotTakenByAnEmptyWake: a wake left over from an earlier
// take (the writer took the queue for another reason while it was
// pending) finds the queue empty; a presence change queued as the writer
// handles it still waits (for the delay, a batch or the next message)
// rather than going out alone, leaving the ones after it to wait anew.
// The wake and the change race: the test repeats the race many times.
func TestPresenceNotTakenByAnEmptyWake(t *testing.T) {
	srv, _ := startServer(t, Config{PresenceDelay: time.Hour}, NewMemStore())
	s, other := pipeWriter(t, srv)
	got := make(chan *msim.Message, 4)
	go func() {
		dec := msim.NewDecoder(other)
		for {
			m, err := dec.Decode()
			if err != nil {
				close(got)
				return
			}
			got <- m
		}
	}()
	flush := msim.Encode(msim.New("persistr", ""))
	for i := range 2000 {
		s.wake <- struct{}{} // left over: nothing is queued
		if !s.enqueuePresence(presenceMsg(1, msim.Presence{Status: msim.StatusOnline})) {
			t.Fatal("presence refused")
		}
		// Once the writer has taken two wakes after it, it has handled
		// the left-over one.
		s.wake <- struct{}{}
		s.wake <- struct{}{}
		s.qmu.Lock()
		waiting := len(s.q)
		s.qmu.Unlock()
		if waiting != 1 {
			t.Fatalf("round %d: got %d messages waiting, want the presence change", i, waiting)
		}
		s.enqueue(flush)
		for _, want := range []string{"bm", "persistr"} {
			if m, ok := <-got; !ok || !m.Is(want) {
				t.Fatalf("round %d: got %v, want %s", i, m, want)
			}
		}
	}
}

// pipeWriter starts the writer of a session on a pipe and returns the
// session and the pipe's other end; the session is closed as the test
// ends.
func pipeWriter(t *testing.T, srv *Server) (*session, net.Conn) {
	t.Helper()
	nc, other := net.Pipe()
	s := newSession(srv, nc, 1<<40)
	srv.wg.Add(1)
	go s.writeLoop()
	t.Cleanup(func() {
		s.closeNow()
		other.Close()
		<-s.writerDone
	})
	return s, other
}
