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
	"net/netip"
	"strings"
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

// AddrKey is the key of a remote address: its IP, without the port or the
// zone (an IPv6 address counts by its /64, which one host usually owns
// whole; an IPv4-mapped one as its IPv4 address). ConnLimiter and Quota
// count an IPv6 /64 key against its /48 too (SiteFactor).
func AddrKey(a net.Addr) string {
	if a == nil {
		return "addr:?"
	}
	host := a.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	// Without its zone: a link-local address's /64 is as much one
	// host's, and its zone (the interface) is the server's own.
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "addr:" + host
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is4() {
		return "addr:" + ip.String()
	}
	p, _ := ip.Prefix(64)
	return "addr:" + p.String()
}

// SiteFactor is how many times a per-address limit one IPv6 /48 may use
// in all, across its /64s: a Quota's events and a ConnLimiter's per-key
// cap (the failure limiter counts each /64 alone: a /48's threshold would
// let a few of its /64s have the whole /48 refused). Counting
// each /64 alone, one /48 (a tunnel broker gives them away) is 65,536
// addresses; counted by its /48, it is 8. A /48 is one site: a business
// with a few subnets, or an ISP's pool of /56 customers; 8 lets a few of
// its /64s use their whole limit at once before the /48 binds, and those
// limits are far above one person's use. IPv4 keeps one key per address.
const SiteFactor = 8

// siteKey is the key of the /48 that holds the IPv6 /64 of AddrKey's key
// ("addr:2001:db8:1::/48"), or "" for any other key.
func siteKey(key string) string {
	s, ok := strings.CutPrefix(key, "addr:")
	if !ok {
		return ""
	}
	if s, ok = strings.CutSuffix(s, "/64"); !ok {
		return ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ""
	}
	p, _ := a.Prefix(48)
	return "addr:" + p.String()
}
