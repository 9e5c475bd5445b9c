package guard

import (
	"sync"
	"time"
)

// Quota allows at most N events per key in a sliding window, e.g. account
// creations per address per hour.
type Quota struct {
	n       int
	window  time.Duration
	clock   Clock
	maxKeys int
	mu      sync.Mutex
	keys    map[string][]time.Time // the times of the events still in the window
}

// NewQuota allows n events per key per window (n <= 0: unlimited); clock
// nil is the wall clock.
func NewQuota(n int, window time.Duration, clock Clock) *Quota {
	if clock == nil {
		clock = RealClock{}
	}
	return &Quota{n: n, window: window, clock: clock, maxKeys: 100000, keys: map[string][]time.Time{}}
}

// Allow records an event for key and reports whether it fits the quota; an
// event that does not fit is not recorded. An IPv6 /64 key (AddrKey) must
// fit its /48's quota too, SiteFactor times n, and is recorded there.
func (q *Quota) Allow(key string) bool {
	if q.n <= 0 {
		return true
	}
	site := siteKey(key)
	now := q.clock.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	ts := q.live(key, now)
	if len(ts) >= q.n {
		return false
	}
	var sts []time.Time
	if site != "" {
		if sts = q.live(site, now); len(sts) >= SiteFactor*q.n {
			return false
		}
	}
	q.record(key, ts, now, "")
	if site != "" {
		q.record(site, sts, now, key) // not at the cost of the event just recorded
	}
	return true
}

// record stores ts and now as key's events, dropping any one key but keep
// to make room when the table is full: it stays bounded (by one more than
// maxKeys at most). Caller holds q.mu.
func (q *Quota) record(key string, ts []time.Time, now time.Time, keep string) {
	if _, ok := q.keys[key]; !ok && len(q.keys) >= q.maxKeys {
		for k := range q.keys {
			if k != keep {
				delete(q.keys, k)
				break
			}
		}
	}
	q.keys[key] = append(ts, now)
}

// live returns key's events within the window. Caller holds q.mu.
func (q *Quota) live(key string, now time.Time) []time.Time {
	ts := q.keys[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= q.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(q.keys, key)
		return nil
	}
	q.keys[key] = ts
	return ts
}
