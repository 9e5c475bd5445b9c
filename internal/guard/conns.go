package guard

import (
	"fmt"
	"sync"
)

// ConnLimiter caps open connections in total and per key (address). An
// IPv6 /64 key (AddrKey) counts against its /48 too, capped at SiteFactor
// times the per-key cap: else one /48 is 65,536 addresses, enough to take
// the whole total and shut everyone else out.
type ConnLimiter struct {
	total, perKey int // <= 0: no cap
	mu            sync.Mutex
	n             int
	byKey         map[string]int
}

// NewConnLimiter caps connections at total, and at perKey per key; a cap
// <= 0 is no cap.
func NewConnLimiter(total, perKey int) *ConnLimiter {
	return &ConnLimiter{total: total, perKey: perKey, byKey: map[string]int{}}
}

// ConnLimitError says which cap refused a connection.
type ConnLimitError struct {
	PerKey bool // the per-address cap, else the total
	Site   bool // PerKey, for the IPv6 /48 of the address (SiteFactor)
	Limit  int
}

func (e *ConnLimitError) Error() string {
	if e.Site {
		return fmt.Sprintf("too many connections from your network (limit %d)", e.Limit)
	}
	if e.PerKey {
		return fmt.Sprintf("too many connections from your address (limit %d)", e.Limit)
	}
	return fmt.Sprintf("too many connections to this server (limit %d)", e.Limit)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *ConnLimitError) Unwrap() error { return ErrRefused }

// Acquire counts a new connection for key; the returned release (safe to
// call more than once) uncounts it. An error (*ConnLimitError) refuses it.
func (l *ConnLimiter) Acquire(key string) (release func(), err error) {
	site := ""
	if l.perKey > 0 {
		site = siteKey(key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.n >= l.total {
		return nil, &ConnLimitError{Limit: l.total}
	}
	if l.perKey > 0 && l.byKey[key] >= l.perKey {
		return nil, &ConnLimitError{PerKey: true, Limit: l.perKey}
	}
	if site != "" && l.byKey[site] >= SiteFactor*l.perKey {
		return nil, &ConnLimitError{PerKey: true, Site: true, Limit: SiteFactor * l.perKey}
	}
	l.n++
	l.byKey[key]++
	if site != "" {
		l.byKey[site]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.n--
			l.uncount(key)
			if site != "" {
				l.uncount(site)
			}
		})
	}, nil
}

// uncount drops one connection of key. Caller holds l.mu.
func (l *ConnLimiter) uncount(key string) {
	if l.byKey[key]--; l.byKey[key] <= 0 {
		delete(l.byKey, key)
	}
}

// Open is the number of connections counted now.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
