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

// The login failure operations' op labels (see metrics.go).
const (
	opAddLoginFailure    = "add_login_failure"
	opLoginFailures      = "login_failures"
	opClearLoginFailures = "clear_login_failures"
)

var failureOps = []string{opAddLoginFailure, opLoginFailures, opClearLoginFailures}

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
