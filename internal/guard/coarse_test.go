package guard

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/fakeclock"
)

// v6 is the address of host 1 in subnet sub (a /64) of the /48 site.
func v6(site string, sub int) net.Addr {
	return &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("%s:%x::1", site, sub)), Port: 1}
}

// TestQuotaCoarseIPv6: registrations (account creations) from many /64s
// of one IPv6 /48 stop at SiteFactor times the per-/64 quota; another /48
// has its own; IPv4 addresses each keep theirs, as before.
func TestQuotaCoarseIPv6(t *testing.T) {
	clk := fakeclock.New()
	const perKey = 2
	q := NewQuota(perKey, time.Hour, clk)
	allowed := 0
	const subnets = 40
	for sub := range subnets {
		for range perKey {
			if q.Allow(AddrKey(v6("2001:db8:1", sub))) {
				allowed++
			}
		}
	}
	t.Logf("%d of %d registrations from %d /64s of one /48 allowed", allowed, subnets*perKey, subnets)
	if want := SiteFactor * perKey; allowed != want {
		t.Errorf("one /48: got %d allowed, want %d (the /48's quota)", allowed, want)
	}
	// Another /48 is independent, and its /64s keep their own quota.
	for i := range perKey {
		if !q.Allow(AddrKey(v6("2001:db8:2", 0))) {
			t.Fatalf("another /48, registration %d: refused", i+1)
		}
	}
	if q.Allow(AddrKey(v6("2001:db8:2", 0))) {
		t.Error("another /48: its /64's quota must still hold")
	}
	// IPv4: one key per address, however many share a /24 or /16.
	for i := range 100 {
		a := &net.TCPAddr{IP: net.IPv4(10, 0, byte(i/10), byte(i)), Port: 1}
		for j := range perKey {
			if !q.Allow(AddrKey(a)) {
				t.Fatalf("IPv4 %v, registration %d: refused", a, j+1)
			}
		}
		if q.Allow(AddrKey(a)) {
			t.Fatalf("IPv4 %v: its quota must hold", a)
		}
	}
	// The window ends for the /48 too.
	clk.Advance(time.Hour)
	if !q.Allow(AddrKey(v6("2001:db8:1", 39))) {
		t.Error("after the window: the /48 refused")
	}
}

// TestConnLimiterCoarseIPv6: connections from many /64s of one /48 stop
// at SiteFactor times the per-address cap.
func TestConnLimiterCoarseIPv6(t *testing.T) {
	const perKey = 2
	l := NewConnLimiter(0, perKey)
	var releases []func()
	refused := 0
	for sub := range 40 {
		for range perKey {
			r, err := l.Acquire(AddrKey(v6("2001:db8:1", sub)))
			if err != nil {
				refused++
				continue
			}
			releases = append(releases, r)
		}
	}
	t.Logf("%d of %d connections from 40 /64s of one /48 let in", len(releases), 40*perKey)
	if want := SiteFactor * perKey; len(releases) != want {
		t.Fatalf("one /48: got %d let in, want %d", len(releases), want)
	}
	var cle *ConnLimitError
	if _, err := l.Acquire(AddrKey(v6("2001:db8:1", 99))); !errors.As(err, &cle) || !cle.PerKey || !errors.Is(err, ErrRefused) {
		t.Errorf("over the /48's cap: got %v, want a per-address ConnLimitError", err)
	}
	if _, err := l.Acquire(AddrKey(v6("2001:db8:2", 0))); err != nil {
		t.Errorf("another /48: %v", err)
	}
	releases[0]()
	releases[0]()
	if _, err := l.Acquire(AddrKey(v6("2001:db8:1", 99))); err != nil {
		t.Errorf("after a release: %v", err)
	}
	for i := range 50 {
		if _, err := l.Acquire(AddrKey(&net.TCPAddr{IP: net.IPv4(10, 0, 0, byte(i))})); err != nil {
			t.Fatalf("IPv4 %d: %v", i, err)
		}
	}
}

// TestQuotaFullTableKeepsTheEventJustRecorded: when the table is full, the
// /48's record makes room by dropping another key, never the /64's whose
// event it records with: that /64 would lose its count and pass its quota.
func TestQuotaFullTableKeepsTheEventJustRecorded(t *testing.T) {
	q := NewQuota(1, time.Hour, fakeclock.New())
	q.maxKeys = 1
	k := AddrKey(v6("2001:db8:1", 7))
	if !q.Allow(k) {
		t.Fatal("the first event refused")
	}
	if q.Allow(k) {
		t.Error("a second event of a /64 whose quota is 1 allowed: its count was dropped to make room for its /48's")
	}
}
