package store

import (
	"context"
	"sync"
	"time"
)

// The lease operations' op labels (see metrics.go).
const (
	opAcquireLease = "acquire_lease"
	opRenewLeases  = "renew_leases"
	opReleaseLease = "release_lease"
	opLease        = "lease"
	opAskLease     = "ask_lease"
	opListenLeases = "listen_leases" // the time until the notes come (or it fails)
)

var leaseOps = []string{opAcquireLease, opRenewLeases, opReleaseLease, opLease, opAskLease, opListenLeases}

func (m *timedStore) AcquireLease(ctx context.Context, user, instance string, ttl time.Duration) (Lease, error) {
	defer m.since(opAcquireLease, time.Now())
	return m.st.AcquireLease(ctx, user, instance, ttl)
}

func (m *timedStore) RenewLeases(ctx context.Context, instance string, ttl time.Duration, held []Lease) ([]Lease, error) {
	defer m.since(opRenewLeases, time.Now())
	return m.st.RenewLeases(ctx, instance, ttl, held)
}

func (m *timedStore) ReleaseLease(ctx context.Context, l Lease) (bool, error) {
	defer m.since(opReleaseLease, time.Now())
	return m.st.ReleaseLease(ctx, l)
}

func (m *timedStore) Lease(ctx context.Context, user string) (Lease, error) {
	defer m.since(opLease, time.Now())
	return m.st.Lease(ctx, user)
}

func (m *timedStore) AskLease(ctx context.Context, user, holder, from string) error {
	defer m.since(opAskLease, time.Now())
	return m.st.AskLease(ctx, user, holder, from)
}

// ListenLeases times the start of listening, not its whole life: once, at
// the first note (LeaseListening) or when it fails before.
func (m *timedStore) ListenLeases(ctx context.Context, instance string, f func(LeaseNote)) error {
	start := time.Now()
	var once sync.Once
	observe := func() { once.Do(func() { m.since(opListenLeases, start) }) }
	defer observe()
	return m.st.ListenLeases(ctx, instance, func(n LeaseNote) {
		if n.Kind == LeaseListening {
			observe()
		}
		f(n)
	})
}
