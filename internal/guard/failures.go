package guard

import (
	"hash/maphash"
	"sync"
	"time"
)

// FailureConfig sets how a FailureLimiter slows guessing. Zero fields take
// the defaults of DefaultFailures.
type FailureConfig struct {
	Free     int           // failures within Window before attempts are delayed
	Delay    time.Duration // delay once Free failures are reached; doubles with each further one
	MaxDelay time.Duration // the delay's cap
	// RefuseAfter failures within Window refuse the key for RefuseFor;
	// negative = never refuse (delay only). 0 takes the default.
	RefuseAfter int
	RefuseFor   time.Duration
	Window      time.Duration // a key's failures are forgotten this long after its last one
	MaxKeys     int           // the table's bound; the stalest keys are dropped beyond it
	Clock       Clock
	// Shared, when set, keeps the failure counts too (a database), so
	// that they hold across restarts and across the processes sharing
	// it: a key's count is Shared's, and the limiter's own only while
	// Shared fails. Refusals stay the limiter's own.
	Shared SharedFailures
}

// SharedFailures keeps failure counts outside a FailureLimiter. Its
// methods may block (I/O): the limiter never calls them holding its lock.
type SharedFailures interface {
	// AddFailure counts a failure of key at now and returns its failures
	// within window (a key whose last failure is window or more before
	// now starts again at 1).
	AddFailure(key string, now time.Time, window time.Duration) (int, error)
	// Failures returns key's failures within window before now.
	Failures(key string, now time.Time, window time.Duration) (int, error)
	// ClearFailures forgets key's failures.
	ClearFailures(key string) error
}

// DefaultFailures: 3 free failures, then 1 s doubling up to 30 s; 20
// failures in 15 minutes refuse the key for 15 minutes.
func DefaultFailures() FailureConfig {
	return FailureConfig{
		Free: 3, Delay: time.Second, MaxDelay: 30 * time.Second,
		RefuseAfter: 20, RefuseFor: 15 * time.Minute,
		Window: 15 * time.Minute, MaxKeys: 100000, Clock: RealClock{},
	}
}

func (c FailureConfig) withDefaults() FailureConfig {
	d := DefaultFailures()
	if c.Free <= 0 {
		c.Free = d.Free
	}
	if c.Delay <= 0 {
		c.Delay = d.Delay
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = d.MaxDelay
	}
	if c.RefuseAfter == 0 {
		c.RefuseAfter = d.RefuseAfter
	}
	if c.RefuseFor <= 0 {
		c.RefuseFor = d.RefuseFor
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = d.MaxKeys
	}
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	return c
}

// FailureLimiter counts failed attempts per key. The caller asks Check
// before verifying a password, waits the delay it gives (bounded by its
// context), verifies, then reports Fail or Succeed.
type FailureLimiter struct {
	cfg  FailureConfig
	mu   sync.Mutex
	keys map[string]*failures
	// clean holds the keys whose failures in Shared are known to be none:
	// the latest Check found none there, and none was counted since.
	// Succeed need not clear them there. Bounded by MaxKeys; a key it
	// forgot is cleared, as every key used to be. A key is kept as its
	// hash (cleanKey): a Check of any key marks it, so a mark must not
	// cost what the key's length does.
	clean map[uint64]struct{}
	seed  maphash.Seed
	// asking holds the keys a Check is asking Shared about now: a
	// failure seen meanwhile keeps the answer from marking them clean.
	asking map[string]*asking
}

type asking struct {
	n      int  // the Checks asking
	failed bool // a failure was counted, or seen, meanwhile
}

type failures struct {
	n            int       // failures within the window
	last         time.Time // the latest failure
	refusedUntil time.Time
}

// NewFailureLimiter returns a limiter with cfg (zero fields: defaults).
func NewFailureLimiter(cfg FailureConfig) *FailureLimiter {
	return &FailureLimiter{cfg: cfg.withDefaults(), keys: map[string]*failures{}, clean: map[uint64]struct{}{},
		seed: maphash.MakeSeed(), asking: map[string]*asking{}}
}

// cleanKey is key's place in clean. Two keys of one hash share a mark: a
// failure of either clears it, and one's Succeed may then leave the
// other's failures in Shared, a cost to its owner, never a guess.
func (l *FailureLimiter) cleanKey(key string) uint64 { return maphash.String(l.seed, key) }

// entry returns the live record of key, forgetting an expired one. Caller
// holds l.mu.
func (l *FailureLimiter) entry(key string, now time.Time) *failures {
	f := l.keys[key]
	if f != nil && now.Sub(f.last) > l.cfg.Window && !now.Before(f.last) && now.After(f.refusedUntil) {
		delete(l.keys, key)
		return nil
	}
	return f
}

func (l *FailureLimiter) delayFor(n int) time.Duration {
	over := n - l.cfg.Free + 1
	if over <= 0 {
		return 0
	}
	d := l.cfg.Delay
	for i := 1; i < over && d < l.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxDelay)
}

// Check returns the delay to wait before verifying an attempt for keys (the
// largest any key asks), or ErrRefused while a key is refused.
func (l *FailureLimiter) Check(keys ...string) (time.Duration, error) {
	now := l.cfg.Clock.Now()
	l.startAsking(keys)
	shared := l.sharedCounts(keys, now, false)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, k := range keys {
		l.answered(k, shared[i] == 0)
	}
	var wait time.Duration
	for i, k := range keys {
		n := shared[i]
		if f := l.entry(k, now); f != nil {
			if now.Before(f.refusedUntil) {
				return 0, ErrRefused
			}
			if n < 0 {
				n = f.n
			}
		}
		wait = max(wait, l.delayFor(max(n, 0)))
	}
	return wait, nil
}

// sharedCounts asks Shared for each key's count, counting a failure first
// with add; -1 for each without Shared or when it fails.
func (l *FailureLimiter) sharedCounts(keys []string, now time.Time, add bool) []int {
	counts := make([]int, len(keys))
	for i := range counts {
		counts[i] = -1
	}
	sh := l.cfg.Shared
	if sh == nil {
		return counts
	}
	for i, k := range keys {
		var n int
		var err error
		if add {
			n, err = sh.AddFailure(k, now, l.cfg.Window)
		} else {
			n, err = sh.Failures(k, now, l.cfg.Window)
		}
		if err == nil {
			counts[i] = n
		}
	}
	return counts
}

// Outcome tells what a failure changed, so that a burst is logged once:
// Slowed is true on the failure that starts delaying the key, Refused on
// the one that starts refusing it.
type Outcome struct {
	Key             string
	Failures        int
	Slowed, Refused bool
}

// Fail records a failed attempt for every key and returns the keys whose
// state changed (started being slowed or refused).
func (l *FailureLimiter) Fail(keys ...string) []Outcome {
	now := l.cfg.Clock.Now()
	shared := l.sharedCounts(keys, now, true)
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Outcome
	for i, k := range keys {
		l.dirty(k)
		f := l.entry(k, now)
		if f == nil {
			if len(l.keys) >= l.cfg.MaxKeys {
				l.evict(now)
			}
			f = &failures{}
			l.keys[k] = f
		}
		f.n++
		if shared[i] >= 0 {
			f.n = shared[i] // which counts this failure
		}
		f.last = now
		o := Outcome{Key: k, Failures: f.n}
		if f.n == l.cfg.Free {
			o.Slowed = true
		}
		if l.cfg.RefuseAfter > 0 && f.n >= l.cfg.RefuseAfter && !now.Before(f.refusedUntil) {
			f.refusedUntil = now.Add(l.cfg.RefuseFor)
			f.n = l.cfg.Free // after the refusal, guessing starts slowed
			o.Refused = true
		}
		if o.Slowed || o.Refused {
			out = append(out, o)
		}
	}
	return out
}

// Succeed forgets the failures of keys (a right password on an account, or
// from an address). Callers Check a key before each attempt they report.
//
// Shared is asked to forget a key's failures unless they are known to be
// none: the latest Check of the key found none there, no failure was
// counted since, and no failure was counted or seen while that Check
// asked. A failure that another process counted after this attempt's
// Check came while the attempt was under way: it stays counted, as it
// would have had it come just after the Succeed. One counted before this
// attempt's Check was seen by it and kept the key from being clean, until
// another attempt's Succeed cleared it. Most right passwords follow no
// failure, and so cost Shared no request.
func (l *FailureLimiter) Succeed(keys ...string) {
	if l.cfg.Shared != nil {
		for _, k := range keys {
			l.mu.Lock()
			_, clean := l.clean[l.cleanKey(k)]
			l.mu.Unlock()
			if clean {
				continue
			}
			_ = l.cfg.Shared.ClearFailures(k) // a failure leaves a count that expires
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.keys, k)
	}
}

// startAsking notes that a Check asks Shared about keys.
func (l *FailureLimiter) startAsking(keys []string) {
	if l.cfg.Shared == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		a := l.asking[k]
		if a == nil {
			a = &asking{}
			l.asking[k] = a
		}
		a.n++
	}
}

// answered takes what Shared told a Check of key: none (clean) marks the
// key clean unless a failure was counted or seen while it asked. Caller
// holds l.mu.
func (l *FailureLimiter) answered(key string, clean bool) {
	a := l.asking[key]
	if a == nil {
		return // no Shared
	}
	if a.n--; a.n == 0 {
		delete(l.asking, key)
	}
	if !clean || a.failed {
		l.dirty(key)
		return
	}
	if len(l.clean) >= l.cfg.MaxKeys {
		clear(l.clean) // a forgotten key is cleared at Succeed: only a cost
	}
	l.clean[l.cleanKey(key)] = struct{}{}
}

// dirty notes that key may have failures in Shared. Caller holds l.mu.
func (l *FailureLimiter) dirty(key string) {
	delete(l.clean, l.cleanKey(key))
	if a := l.asking[key]; a != nil {
		a.failed = true
	}
}

// evict drops expired keys, and if none expired, the stalest one. Caller
// holds l.mu.
func (l *FailureLimiter) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, f := range l.keys {
		if now.Sub(f.last) > l.cfg.Window && now.After(f.refusedUntil) {
			delete(l.keys, k)
			continue
		}
		if oldest == "" || f.last.Before(oldestAt) {
			oldest, oldestAt = k, f.last
		}
	}
	if len(l.keys) >= l.cfg.MaxKeys && oldest != "" {
		delete(l.keys, oldest)
	}
}
