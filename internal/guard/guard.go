// Package guard limits abuse of the servers' front doors: password guessing
// (a growing delay per key, then a temporary refusal), connection floods
// (a total and a per-address cap) and creation sprees (a quota per key per
// window). It knows nothing about IRC or MSIM: ircd, the MSIM server and the
// bridge each hold their own limiters and pick the keys ("addr:1.2.3.4",
// "account:alice").
//
// Ownership: every type here is safe for concurrent use; each guards its
// own small table with a mutex, bounded in size. Time comes from a Clock so
// state machines are tested with a fake one.
package guard

import (
	"errors"
	"net"
	"time"
)

// Clock tells the time. Production uses RealClock; tests step a fake one.
type Clock interface{ Now() time.Time }

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// ErrRefused is returned while a key is refused after too many failures, or
// when a connection or quota limit is reached.
var ErrRefused = errors.New("guard: too many attempts; try again later")

// AddrKey is the key of a remote address: its IP, without the port (an IPv6
// address counts by its /64, which one host usually owns whole).
func AddrKey(a net.Addr) string {
	if a == nil {
		return "addr:?"
	}
	host := a.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return "addr:" + host
}
