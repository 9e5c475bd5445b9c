package guard

import (
	"fmt"
	"sync"
)

// ConnLimiter caps open connections in total and per key (address).
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
	Limit  int
}

func (e *ConnLimitError) Error() string {
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
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.n >= l.total {
		return nil, &ConnLimitError{Limit: l.total}
	}
	if l.perKey > 0 && l.byKey[key] >= l.perKey {
		return nil, &ConnLimitError{PerKey: true, Limit: l.perKey}
	}
	l.n++
	l.byKey[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.n--
			if l.byKey[key]--; l.byKey[key] <= 0 {
				delete(l.byKey, key)
			}
		})
	}, nil
}

// Open is the number of connections counted now.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
