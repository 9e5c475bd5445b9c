package server

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/msimircd/msimircd/internal/fakeclock"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// countingStore counts the offline IMs it stored.
type countingStore struct {
	Store
	stored atomic.Int64
}

func (c *countingStore) AddOffline(to msim.UID, m OfflineMessage, lim OfflineLimits) error {
	err := c.Store.AddOffline(to, m, lim)
	if err == nil {
		c.stored.Add(1)
	}
	return err
}

// TestBMFloodDoesNotKick: alice floods bob with IMs as large as a message
// may be, far more than bob's send queue holds, while bob reads nothing at
// first and then one IM for each flood wait of alice's (a link no faster
// than flood control lets her send at). Flood control holds alice back:
// bob stays connected, and every IM alice sent is delivered (or stored, or
// refused with alice told: none is lost untold).
func TestBMFloodDoesNotKick(t *testing.T) {
	const n = 2000
	pad := strings.Repeat("x", 60<<10)
	reg := prometheus.NewRegistry()
	store := &countingStore{Store: NewMemStore()}
	srv, err := New(Config{Metrics: reg}, store, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	// Flood control's time stands still: whatever alice sends past the
	// burst waits, and each wait ends once bob has read one more IM.
	clock := fakeclock.New()
	srv.now = clock.Now
	var waits atomic.Int64
	permit := make(chan struct{}, n+1) // a wait lets bob read one IM
	readOne := make(chan struct{}, n+1)
	srv.inflowWait = func(_ time.Duration, done <-chan struct{}) bool {
		waits.Add(1)
		permit <- struct{}{}
		select {
		case <-readOne:
		case <-done:
			return false
		case <-time.After(testWait): // bob has nothing to read: the test fails below
		}
		return true
	}
	addr := serve(t, srv)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	bob := login(t, addr, "bob@example.com", "hunter2")

	// bob reads nothing until alice's first flood wait, then one IM per
	// wait; once alice is done, all he can.
	free := make(chan struct{})
	var delivered atomic.Int64
	var dupMu sync.Mutex
	got := map[int]int{}
	bobDone := make(chan error, 1)
	go func() {
		for delivered.Load() < n {
			paced := false
			select {
			case <-permit:
				paced = true
			case <-free:
			}
			for {
				_ = bob.nc.SetReadDeadline(time.Now().Add(time.Minute))
				m, err := bob.dec.Decode()
				if err != nil {
					bobDone <- err
					return
				}
				if i := imIndex(m, alice.uid); i >= 0 {
					dupMu.Lock()
					got[i]++
					dupMu.Unlock()
					delivered.Add(1)
					break
				}
			}
			if paced {
				readOne <- struct{}{}
			}
		}
		bobDone <- nil
	}()

	// alice reads her socket throughout: the refusals of IMs, and the
	// reply that says the server has handled all she sent.
	const marker = 1 << 20
	var refused atomic.Int64
	handled := make(chan struct{})
	go func() {
		for {
			_ = alice.nc.SetReadDeadline(time.Time{})
			m, err := alice.dec.Decode()
			if err != nil {
				return
			}
			switch {
			case isError(ErrCodeNotStored)(m):
				refused.Add(1)
			case isPersistr(msim.PersistOwnIMInfo, marker)(m):
				close(handled)
			}
		}
	}()
	sendErr := make(chan error, 1)
	go func() {
		_ = alice.nc.SetWriteDeadline(time.Now().Add(2 * time.Minute))
		for i := range n {
			bm := msim.NewInt("bm", msim.BMIM).AddInt("sesskey", alice.key).AddInt("t", int(bUID)).AddInt("cv", 673).
				Add("msg", fmt.Sprintf("%d %s", i, pad))
			if _, err := alice.nc.Write(msim.Encode(bm)); err != nil {
				sendErr <- err
				return
			}
		}
		p := &msim.Persist{Cmd: msim.CmdGet, DSN: msim.PersistOwnIMInfo.DSN, LID: msim.PersistOwnIMInfo.LID, UID: alice.uid, RID: marker}
		_, err := alice.nc.Write(msim.Encode(p.Request(alice.key)))
		sendErr <- err
	}()
	if err := <-sendErr; err != nil {
		t.Fatalf("alice's flood: %v", err)
	}
	select {
	case <-handled:
	case <-time.After(2 * time.Minute):
		t.Fatal("the server did not handle alice's flood")
	}
	close(free)

	// Every IM is accounted for: delivered, stored, or refused with alice
	// told (a closed session's refusals come as its writer ends).
	total := func() int64 { return delivered.Load() + store.stored.Load() + refused.Load() }
	last, lastAt := total(), time.Now()
	for total() < n && time.Since(lastAt) < testWait {
		time.Sleep(10 * time.Millisecond)
		if t := total(); t != last {
			last, lastAt = t, time.Now()
		}
	}
	var bobErr error
	select {
	case bobErr = <-bobDone:
	case <-time.After(testWait):
	}
	t.Logf("flood waits %d; delivered %d, stored %d, refused (alice told) %d; bob's reader: %v",
		waits.Load(), delivered.Load(), store.stored.Load(), refused.Load(), bobErr)
	if bobErr != nil || !srv.Online(bUID) {
		t.Errorf("bob was disconnected by the flood (%v)", bobErr)
	} else {
		bob.sync() // the same connection still answers
	}
	if w := waits.Load(); w < n-inflowBurst/int64(len(pad)) {
		t.Errorf("alice's flood took %d flood waits, want at least %d", w, n-inflowBurst/int64(len(pad)))
	}
	if got := total(); got != n {
		t.Errorf("%d IMs delivered, stored or refused, want %d: %d lost untold", got, n, n-got)
	}
	if d := delivered.Load(); d != n {
		t.Errorf("%d IMs delivered to bob, want all %d", d, n)
	}
	for i, c := range got {
		if c > 1 {
			t.Errorf("IM %d delivered %d times", i, c)
		}
	}
	wantValues(t, reg, []wantValue{
		{"msimd_ims_lost_total", []string{"reason", "untold"}, 0},
		{"msimd_ims_lost_total", []string{"reason", "no_sender"}, 0},
	})
}

// countedFloodWaits serves a server whose flood control reads clock (it
// stands still until advanced) and whose flood waits end at once, each
// counted in waits, with the accounts alice and bob (bUID) made; no one
// is logged in.
func countedFloodWaits(t *testing.T) (addr string, bUID msim.UID, clock *fakeclock.Clock, waits *atomic.Int64) {
	t.Helper()
	srv, err := New(Config{}, NewMemStore(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	clock = fakeclock.New()
	srv.now = clock.Now
	waits = new(atomic.Int64)
	srv.inflowWait = func(time.Duration, <-chan struct{}) bool {
		waits.Add(1)
		return true
	}
	addr = serve(t, srv)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID = addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	return addr, bUID, clock, waits
}

// TestNormalBurstsPassWithoutFloodWait: IMs of the benchmark's size, sent
// eight at a time as its gateway sends them, at more than the most one
// session has carried in the benchmark, never wait for flood control, even
// with the burst spent first. Flood control's clock is stepped by hand
// with the bursts.
func TestNormalBurstsPassWithoutFloodWait(t *testing.T) {
	const (
		perBurst = 8 // the benchmark's IMs in flight per direction
		// Above the most one session has carried: msimbench -quick, ten
		// clients on a shared two-core machine, about 10,000 IMs/s each.
		imsPerSecond = 12000
		seconds      = 2
	)
	addr, bUID, clock, waits := countedFloodWaits(t)
	alice := login(t, addr, "alice@example.com", "Secret1")
	bob := login(t, addr, "bob@example.com", "hunter2")

	// The burst is spent first, on the largest IMs it pays for whole: what
	// follows is paid by the rate alone.
	big := msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", alice.key).AddInt("t", int(bUID)).
		AddInt("cv", 697).Add("msg", strings.Repeat("x", 60<<10)))
	for range inflowBurst / len(big) {
		alice.write(big)
		bob.expect("a large IM", isBM(msim.BMIM, alice.uid))
	}
	if w := waits.Load(); w != 0 {
		t.Fatalf("%d flood waits within the burst, want none", w)
	}

	// The benchmark's line: a sequence number, a time stamp in
	// nanoseconds and 40 characters, as the gateway writes it (markup).
	text := markup.FromPlain("123456 1767225600000000000 " + strings.Repeat("abcdefghij", 4))
	var burst []byte
	for range perBurst {
		burst = append(burst, msim.Encode(msim.NewInt("bm", msim.BMIM).AddInt("sesskey", alice.key).
			AddInt("t", int(bUID)).AddInt("cv", 697).Add("msg", text))...)
	}
	step := time.Second * perBurst / imsPerSecond
	for range seconds * imsPerSecond / perBurst {
		clock.Advance(step)
		alice.write(burst)
		for range perBurst {
			bob.expect("an IM of the burst", isBM(msim.BMIM, alice.uid))
		}
	}
	if w := waits.Load(); w != 0 {
		t.Errorf("%d flood waits for %d IMs/s of %d bytes in bursts of %d, want none", w, imsPerSecond, len(burst)/perBurst, perBurst)
	}
}

// TestFloodBudgetWithinSendQ checks the defaults' arithmetic (no server
// runs): what flood control lets one sender's largest IMs bring in before
// a recipient who reads nothing hits its write timeout is fewer messages
// than its queue holds, so the timeout, not "send queue exceeded", ends it.
// TestBMFloodDoesNotKick runs the flood itself.
func TestFloodBudgetWithinSendQ(t *testing.T) {
	var cfg Config
	cfg.defaults()
	bytes := inflowBurst + inflowRate*int64(writeTimeout/time.Second)
	if msgs := bytes / int64(cfg.MaxMessage); msgs >= int64(cfg.SendQ) {
		t.Errorf("one sender queues %d messages of %d bytes within the write timeout, want fewer than SendQ %d",
			msgs, cfg.MaxMessage, cfg.SendQ)
	}
}

// TestFloodControlSurvivesRelogin: the bucket is the account's: a new
// login, which replaces the session, does not refill it; time does.
func TestFloodControlSurvivesRelogin(t *testing.T) {
	addr, bUID, clock, waits := countedFloodWaits(t)
	bob := login(t, addr, "bob@example.com", "hunter2")
	pad := strings.Repeat("x", 60<<10)
	alice := login(t, addr, "alice@example.com", "Secret1")
	for i := 0; i <= inflowBurst/len(pad); i++ { // one more than the burst holds
		alice.bm(msim.BMIM, bUID, fmt.Sprintf("%d %s", i, pad))
		bob.expect("alice's IM", isBM(msim.BMIM, alice.uid))
	}
	if w := waits.Load(); w != 1 {
		t.Fatalf("%d flood waits past the burst, want 1", w)
	}
	alice = login(t, addr, "alice@example.com", "Secret1") // the first session is replaced
	alice.bm(msim.BMIM, bUID, "hi")
	bob.expect("alice's IM", isBM(msim.BMIM, alice.uid))
	if w := waits.Load(); w != 2 {
		t.Errorf("after a new login, %d flood waits in all, want 2: the login refilled the bucket", w)
	}
	clock.Advance(2 * inflowBurst / inflowRate * time.Second) // the debt is paid, the bucket full
	alice.bm(msim.BMIM, bUID, pad)
	bob.expect("alice's IM", isBM(msim.BMIM, alice.uid))
	if w := waits.Load(); w != 2 {
		t.Errorf("after the bucket refilled, %d flood waits in all, want 2", w)
	}
}

// TestFloodControlForgetsFullBuckets: the buckets of accounts with no
// session go once they are full again, so the map holds the accounts
// logged in and those that were in debt lately, not every account that
// ever logged in.
func TestFloodControlForgetsFullBuckets(t *testing.T) {
	var fc floodControl
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const step = 10 * time.Millisecond
	refill := 2 * inflowBurst / inflowRate * time.Second // from the debt charged below to full
	held := fc.acquire(1)                                // held throughout: never dropped
	held.charge(now, 2*inflowBurst)
	for i := range 10000 {
		uid := msim.UID(100 + i)
		f := fc.acquire(uid)
		f.charge(now, 2*inflowBurst) // one burst in debt
		fc.release(uid, f, now)
		now = now.Add(step)
	}
	inDebt := int(refill / step) // the buckets released within the refill time
	if n := len(fc.m); n > 3*inDebt+64 {
		t.Errorf("%d buckets kept, want at most %d", n, 3*inDebt+64)
	}
	if fc.m[1] != held {
		t.Error("a bucket a session holds was dropped")
	}
	f := fc.acquire(100 + 9999) // released in debt just now: kept
	if d := f.charge(now, 1); d <= 0 {
		t.Error("a bucket in debt was dropped: a new login refilled it")
	}
	fc.release(100+9999, f, now.Add(refill+time.Second))
	if _, ok := fc.m[100+9999]; ok {
		t.Error("a full bucket no session holds was kept")
	}
}

// noFloodWaits makes srv's flood waits end at once (requests are still
// charged); call it before srv serves. For the tests that flood a
// recipient who reads nothing until its queue overflows (the rescue's,
// which flood control would slow to seconds each), and the benchmarks,
// which measure the server's cost of an IM rather than the rate flood
// control allows a session.
func noFloodWaits(srv *Server) {
	srv.inflowWait = func(time.Duration, <-chan struct{}) bool { return true }
}

// startFlooding is startServer with noFloodWaits.
func startFlooding(t testing.TB, cfg Config, store Store) (*Server, string) {
	t.Helper()
	srv, err := New(cfg, store, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	noFloodWaits(srv)
	return srv, serve(t, srv)
}
