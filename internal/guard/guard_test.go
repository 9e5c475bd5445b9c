package guard

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/fakeclock"
)

func mustCheck(t *testing.T, l *FailureLimiter, keys ...string) time.Duration {
	t.Helper()
	d, err := l.Check(keys...)
	if err != nil {
		t.Fatalf("Check(%v): %v", keys, err)
	}
	return d
}

func TestFailureLimiterGrowsThenRefuses(t *testing.T) {
	clk := fakeclock.New()
	l := NewFailureLimiter(FailureConfig{Free: 2, Delay: time.Second, MaxDelay: 4 * time.Second, RefuseAfter: 6, RefuseFor: time.Minute, Window: time.Hour, Clock: clk})
	want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := mustCheck(t, l, "addr:a"); got != w {
			t.Fatalf("attempt %d: got delay %v, want %v", i+1, got, w)
		}
		out := l.Fail("addr:a")
		if i == 1 && (len(out) != 1 || !out[0].Slowed) {
			t.Fatalf("failure %d: got %+v, want the burst to start", i+1, out)
		}
		if i == 5 && (len(out) != 1 || !out[0].Refused) {
			t.Fatalf("failure %d: got %+v, want a refusal", i+1, out)
		}
	}
	if _, err := l.Check("addr:a"); !errors.Is(err, ErrRefused) {
		t.Fatalf("after 6 failures: got %v, want ErrRefused", err)
	}
	if got := mustCheck(t, l, "addr:b"); got != 0 {
		t.Fatalf("another key: got delay %v, want 0", got)
	}
	clk.Advance(time.Minute + time.Second)
	if got := mustCheck(t, l, "addr:a"); got != time.Second {
		t.Fatalf("after the refusal: got delay %v, want 1s (still slowed)", got)
	}
}

func TestFailureLimiterDelayOnlyAndSuccess(t *testing.T) {
	clk := fakeclock.New()
	l := NewFailureLimiter(FailureConfig{Free: 1, Delay: time.Second, MaxDelay: 2 * time.Second, RefuseAfter: -1, Window: time.Minute, Clock: clk})
	for range 50 {
		l.Fail("account:alice")
	}
	if got := mustCheck(t, l, "account:alice"); got != 2*time.Second {
		t.Fatalf("got %v, want the capped delay 2s and no refusal", got)
	}
	l.Succeed("account:alice")
	if got := mustCheck(t, l, "account:alice"); got != 0 {
		t.Fatalf("after success: got %v, want 0", got)
	}
	l.Fail("account:alice")
	l.Fail("account:alice")
	clk.Advance(2 * time.Minute)
	if got := mustCheck(t, l, "account:alice"); got != 0 {
		t.Fatalf("after the window: got %v, want 0", got)
	}
}

func TestFailureLimiterBounded(t *testing.T) {
	clk := fakeclock.New()
	l := NewFailureLimiter(FailureConfig{MaxKeys: 10, Clock: clk})
	for i := range 1000 {
		clk.Advance(time.Millisecond)
		l.Fail(string(rune('a'+i%26)) + string(rune(i)))
	}
	if n := len(l.keys); n > 10 {
		t.Fatalf("got %d keys, want at most 10", n)
	}
}

func TestConnLimiter(t *testing.T) {
	l := NewConnLimiter(3, 2)
	r1, err := l.Acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire("a"); err != nil {
		t.Fatal(err)
	}
	var cle *ConnLimitError
	if _, err := l.Acquire("a"); !errors.As(err, &cle) || !cle.PerKey || !errors.Is(err, ErrRefused) {
		t.Fatalf("third from a: got %v, want the per-address cap", err)
	}
	if _, err := l.Acquire("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire("c"); !errors.As(err, &cle) || cle.PerKey {
		t.Fatalf("fourth in all: got %v, want the total cap", err)
	}
	r1()
	r1() // idempotent
	if got := l.Open(); got != 2 {
		t.Fatalf("got %d open, want 2", got)
	}
	if _, err := l.Acquire("c"); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}

func TestQuota(t *testing.T) {
	clk := fakeclock.New()
	q := NewQuota(2, time.Hour, clk)
	for i := range 2 {
		if !q.Allow("a") {
			t.Fatalf("call %d: got refused, want the first two to fit", i+1)
		}
	}
	if q.Allow("a") {
		t.Fatal("the third in the hour must not fit")
	}
	if !q.Allow("b") {
		t.Fatal("another key has its own quota")
	}
	clk.Advance(time.Hour)
	if !q.Allow("a") {
		t.Fatal("after the window it fits again")
	}
}

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5}, "addr:10.1.2.3"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5}, "addr:2001:db8::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::2:1"), Port: 6}, "addr:2001:db8::/64"},
		{nil, "addr:?"},
		// An IPv4-mapped address is its IPv4 address.
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 5}, "addr:10.1.2.3"},
		// A link-local address with its zone counts by its /64 too: a
		// neighbour on the link picks any of 2^64 addresses.
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 5, Zone: "eth0"}, "addr:fe80::/64"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::2:3"), Port: 5, Zone: "eth0"}, "addr:fe80::/64"},
	} {
		if got := AddrKey(tc.addr); got != tc.want {
			t.Errorf("AddrKey(%v): got %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// sharedCounts is a SharedFailures in memory, as another process's
// database would be; fail makes it fail.
type sharedCounts struct {
	n    map[string]int
	fail bool
}

func (s *sharedCounts) AddFailure(key string, _ time.Time, _ time.Duration) (int, error) {
	if s.fail {
		return 0, errors.New("down")
	}
	s.n[key]++
	return s.n[key], nil
}

func (s *sharedCounts) Failures(key string, _ time.Time, _ time.Duration) (int, error) {
	if s.fail {
		return 0, errors.New("down")
	}
	return s.n[key], nil
}

func (s *sharedCounts) ClearFailures(key string) error {
	delete(s.n, key)
	return nil
}

// TestFailureLimiterShared: a limiter with Shared counts the failures
// another limiter recorded there, and a success in either forgets them for
// both; while Shared fails, its own count decides and goes on counting.
func TestFailureLimiterShared(t *testing.T) {
	clk := fakeclock.New()
	sh := &sharedCounts{n: map[string]int{}}
	cfg := FailureConfig{Free: 1, Delay: time.Second, MaxDelay: 8 * time.Second, RefuseAfter: -1, Window: time.Hour, Clock: clk, Shared: sh}
	first, second := NewFailureLimiter(cfg), NewFailureLimiter(cfg)
	first.Fail("account:alice")
	first.Fail("account:alice")
	if got := mustCheck(t, second, "account:alice"); got != 2*time.Second {
		t.Fatalf("another limiter after 2 failures: got %v, want 2s", got)
	}
	if out := second.Fail("account:alice"); len(out) != 0 {
		t.Errorf("the third failure: got %+v, want no new burst (it started at the first)", out)
	}
	if got := mustCheck(t, first, "account:alice"); got != 4*time.Second {
		t.Fatalf("the first limiter after the other's failure: got %v, want 4s", got)
	}
	second.Succeed("account:alice")
	if got := mustCheck(t, first, "account:alice"); got != 0 {
		t.Errorf("the first limiter after the other's success: got %v, want 0", got)
	}
	sh.fail = true
	if got := mustCheck(t, first, "account:alice"); got != 2*time.Second {
		t.Errorf("own count while Shared fails: got %v, want 2s (its own 2 failures)", got)
	}
	first.Fail("account:alice")
	if got := mustCheck(t, first, "account:alice"); got != 4*time.Second {
		t.Errorf("own count after a failure while Shared fails: got %v, want 4s (its own 3 failures)", got)
	}
}

// countedShared is a SharedFailures in memory that counts the requests it
// gets; held, when set, runs in Failures once the count is read, before
// it is returned (a request under way).
type countedShared struct {
	mu                  sync.Mutex
	n                   map[string]int
	adds, reads, clears int
	fail                bool
	held                func()
}

func (s *countedShared) AddFailure(key string, _ time.Time, _ time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adds++
	if s.fail {
		return 0, errors.New("down")
	}
	s.n[key]++
	return s.n[key], nil
}

func (s *countedShared) Failures(key string, _ time.Time, _ time.Duration) (int, error) {
	s.mu.Lock()
	s.reads++
	n, fail, held := s.n[key], s.fail, s.held
	s.mu.Unlock()
	if held != nil {
		held()
	}
	if fail {
		return 0, errors.New("down")
	}
	return n, nil
}

func (s *countedShared) ClearFailures(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clears++
	delete(s.n, key)
	return nil
}

func (s *countedShared) counts() (clears, failures int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clears, s.n["account:alice"]
}

// TestFailureLimiterSucceedClearsWhatMayBeThere: a right password after a
// Check that found no failures in Shared asks Shared nothing more; it
// clears them there whenever some may be: found by its Check (another
// limiter's), counted since, counted or found by another Check while its
// Check asked, or when Shared could not tell.
func TestFailureLimiterSucceedClearsWhatMayBeThere(t *testing.T) {
	const key = "account:alice"
	for _, tc := range []struct {
		name string
		// attempt runs one attempt up to its Succeed; other is another
		// limiter on the same Shared.
		attempt    func(t *testing.T, l, other *FailureLimiter, sh *countedShared)
		wantClears int
	}{
		{"no failures", func(t *testing.T, l, _ *FailureLimiter, _ *countedShared) {
			mustCheck(t, l, key)
		}, 0},
		{"no failures, again", func(t *testing.T, l, _ *FailureLimiter, _ *countedShared) {
			mustCheck(t, l, key)
			l.Succeed(key)
			mustCheck(t, l, key)
		}, 0},
		{"another limiter's failure", func(t *testing.T, l, other *FailureLimiter, _ *countedShared) {
			other.Fail(key)
			mustCheck(t, l, key)
		}, 1},
		{"another limiter's failure after a clean Check", func(t *testing.T, l, other *FailureLimiter, _ *countedShared) {
			mustCheck(t, l, key)
			l.Succeed(key)
			other.Fail(key)
			mustCheck(t, l, key)
		}, 1},
		{"a failure here since the Check", func(t *testing.T, l, _ *FailureLimiter, _ *countedShared) {
			mustCheck(t, l, key)
			l.Fail(key)
		}, 1},
		{"Shared down at the Check", func(t *testing.T, l, _ *FailureLimiter, sh *countedShared) {
			sh.mu.Lock()
			sh.fail = true
			sh.mu.Unlock()
			mustCheck(t, l, key)
			sh.mu.Lock()
			sh.fail = false
			sh.mu.Unlock()
		}, 1},
		{"a failure here while the Check asked", func(t *testing.T, l, _ *FailureLimiter, sh *countedShared) {
			whileAsking(t, l, sh, func() { l.Fail(key) })
		}, 1},
		{"another Check found failures while this one asked", func(t *testing.T, l, other *FailureLimiter, sh *countedShared) {
			whileAsking(t, l, sh, func() {
				other.Fail(key)
				mustCheck(t, l, key)
			})
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := &countedShared{n: map[string]int{}}
			cfg := FailureConfig{Free: 1, Delay: time.Second, RefuseAfter: -1, Window: time.Hour, Clock: fakeclock.New(), Shared: sh}
			l, other := NewFailureLimiter(cfg), NewFailureLimiter(cfg)
			tc.attempt(t, l, other, sh)
			before, _ := sh.counts()
			l.Succeed(key)
			clears, left := sh.counts()
			if got := clears - before; got != tc.wantClears {
				t.Errorf("got %d requests to clear at Succeed, want %d", got, tc.wantClears)
			}
			if left != 0 {
				t.Errorf("got %d failures left in Shared, want 0", left)
			}
		})
	}
}

// whileAsking runs during while a Check of l is asking sh (after sh read
// its count), then lets the Check finish.
func whileAsking(t *testing.T, l *FailureLimiter, sh *countedShared, during func()) {
	t.Helper()
	asking, release := make(chan struct{}), make(chan struct{})
	sh.mu.Lock()
	sh.held = func() {
		close(asking)
		<-release
	}
	sh.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := l.Check("account:alice")
		done <- err
	}()
	<-asking
	sh.mu.Lock()
	sh.held = nil
	sh.mu.Unlock()
	during()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFailureLimiterRefusalKeepsNoAsking: a Check refused for one key
// still takes Shared's answers for the others, so that a failure of one
// later does not keep it from being clean for good.
func TestFailureLimiterRefusalKeepsNoAsking(t *testing.T) {
	sh := &countedShared{n: map[string]int{}}
	l := NewFailureLimiter(FailureConfig{Free: 1, RefuseAfter: 1, RefuseFor: time.Hour, Window: time.Hour, Clock: fakeclock.New(), Shared: sh})
	l.Fail("addr:a")
	if _, err := l.Check("addr:a", "account:alice"); !errors.Is(err, ErrRefused) {
		t.Fatalf("got %v, want ErrRefused", err)
	}
	l.Fail("account:alice")
	l.Succeed("account:alice")
	mustCheck(t, l, "account:alice")
	before, _ := sh.counts()
	l.Succeed("account:alice")
	if clears, _ := sh.counts(); clears != before {
		t.Errorf("a right password after a Check that found no failures: got %d requests to clear, want 0", clears-before)
	}
}

// TestFailureLimiterCleanMarksBounded: the marks of keys whose Check
// found no failures are bounded by MaxKeys.
func TestFailureLimiterCleanMarksBounded(t *testing.T) {
	sh := &countedShared{n: map[string]int{}}
	l := NewFailureLimiter(FailureConfig{MaxKeys: 100, Shared: sh, Clock: fakeclock.New()})
	for i := range 1000 {
		mustCheck(t, l, fmt.Sprint("account:", i))
	}
	l.mu.Lock()
	n := len(l.clean)
	l.mu.Unlock()
	if n > 100 {
		t.Errorf("clean marks after 1,000 Checks with MaxKeys 100: %d", n)
	}
}

// TestFailureLimiterCleanMarksHoldNoKeys: a Check of any key, failures or
// not, may mark it; the mark does not keep the key, however long (a
// guesser names the keys).
func TestFailureLimiterCleanMarksHoldNoKeys(t *testing.T) {
	sh := &countedShared{n: map[string]int{}}
	l := NewFailureLimiter(FailureConfig{Shared: sh, Clock: fakeclock.New()})
	const checks, keyLen = 1000, 1200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range checks {
		mustCheck(t, l, fmt.Sprintf("account:%d:%s", i, strings.Repeat("x", keyLen)))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > checks*keyLen/4 {
		t.Errorf("the heap grew by %d bytes after %d Checks of %d-byte keys that found no failures, want well under the keys' %d", grew, checks, keyLen, checks*keyLen)
	}
	runtime.KeepAlive(l)
}
