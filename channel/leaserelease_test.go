package channel_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// releaseHold is a store whose ReleaseLease of a user whose name holds
// the text given to hold waits until the test frees it, after saying which
// lease it was given; released says when such a release is through.
type releaseHold struct {
	store.Store
	holding  atomic.Pointer[string]
	entered  chan store.Lease
	released chan store.Lease
	release  chan struct{}
	once     sync.Once
}

func newReleaseHold(st store.Store) *releaseHold {
	return &releaseHold{Store: st, entered: make(chan store.Lease, 16), released: make(chan store.Lease, 16), release: make(chan struct{})}
}

func (h *releaseHold) ReleaseLease(ctx context.Context, l store.Lease) (bool, error) {
	if match := h.holding.Load(); match == nil || !strings.Contains(l.User, *match) {
		return h.Store.ReleaseLease(ctx, l)
	}
	select {
	case h.entered <- l:
	default:
	}
	<-h.release
	ok, err := h.Store.ReleaseLease(ctx, l)
	select {
	case h.released <- l:
	default:
	}
	return ok, err
}

// hold holds from now on the releases of users whose name holds match.
func (h *releaseHold) hold(match string) { h.holding.Store(&match) }

// free lets the held releases through.
func (h *releaseHold) free() { h.once.Do(func() { close(h.release) }) }

// held waits until a release has begun and returns its lease.
func (h *releaseHold) held(t *testing.T) store.Lease {
	t.Helper()
	select {
	case l := <-h.entered:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no ReleaseLease began")
		return store.Lease{}
	}
}

// through waits until the held release of user's lease is through.
func (h *releaseHold) through(t *testing.T, user string) {
	t.Helper()
	for {
		select {
		case l := <-h.released:
			if l.User == user {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the release of %s's lease did not end", user)
		}
	}
}

// takenOver checks that instance b cannot take user's lease while a's
// release is held, and can once it is through.
func takenOver(t *testing.T, rh *releaseHold, user string) {
	t.Helper()
	ctx := context.Background()
	var he *store.LeaseHeldError
	if _, err := rh.Store.AcquireLease(ctx, user, "b", time.Minute); !errors.As(err, &he) || he.Holder != "a" {
		t.Errorf("another instance taking %s's lease while its release is held: got %v, want it held by a", user, err)
	}
	rh.free()
	rh.through(t, user)
	if l, err := rh.Store.AcquireLease(ctx, user, "b", time.Minute); err != nil || l.Instance != "b" {
		t.Errorf("another instance taking %s's lease once released: got %+v, %v; want it b's", user, l, err)
	}
}

// withLeases makes a self-service gateway instance a among several. Its
// sessions end with their last client (not always on), so that identify
// takes the user over here rather than joining their session.
func withLeases(cfg *channel.Config) {
	cfg.Instance, cfg.LeaseTTL, cfg.HandOverWait = "a", time.Minute, time.Second
}

// TestDropReleasesTheLeaseOffTheSession: a confirmed drop gives the
// user's lease up in the store off the session goroutine: while the store
// is slow to release it, the session answers what the user types; once
// released, another instance can take the name.
func TestDropReleasesTheLeaseOffTheSession(t *testing.T) {
	rh := newReleaseHold(openStore(t))
	ss := startSelfServiceOn(t, rh, channel.RegistrationOpen, fastFailures(), withLeases)
	t.Cleanup(rh.free) // before the gateway stops
	fay, _ := registeredBuddies(t, ss)
	fay.private("drop fay-pw", "Type yes within a minute")
	rh.hold("fay")
	fay.send("PRIVMSG root :yes")
	fay.expectAll(func(m *irc.Message) bool { return m.Command == "PART" && m.Param(0) == "&fay" },
		saysRoot("are deleted"))
	if l := rh.held(t); l.User != "fay" {
		t.Fatalf("lease released after the drop: got %s's, want fay's", l.User)
	}
	fay.private("account list", "no MSIM accounts")
	takenOver(t, rh, "fay")
}

// TestBecomeUserReleasesTheLeaseOffTheSession: register and identify
// give the lease of the user the session was (its accounts gone) up in
// the store off the session goroutine: while the store is slow to release
// it, the session loads the new user's accounts and answers what the user
// types; once released, another instance can take the old user's name.
func TestBecomeUserReleasesTheLeaseOffTheSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		// start connects a client to switch to kim with cmd, from a user
		// whose name holds old, logged in to MSIM.
		start    func(t *testing.T, ss *selfService) *ircClient
		cmd, old string
	}{
		{"register", func(t *testing.T, ss *selfService) *ircClient {
			c := dial(t, ss.gw.ircAddr, "kim", "", allCaps...)
			c.joinedControl("&kim")
			c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
			return c
		}, "register kim-pw", "demo/kim+"},
		{"identify", func(t *testing.T, ss *selfService) *ircClient {
			c := dial(t, ss.gw.ircAddr, "kim", "", allCaps...)
			c.joinedControl("&kim")
			c.private("register kim-pw", "is registered")
			c.joinedControl("&kim")
			c.quit()
			for deadline := time.Now().Add(10 * time.Second); ss.gw.bridge.SessionLoops("kim") >= 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("kim's first session did not end")
				}
			}
			c = dial(t, ss.gw.ircAddr, "guest", "", allCaps...)
			c.joinedControl("&guest")
			c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
			c.send("NICK kim")
			c.expect("NICK", nil)
			c.nick = "kim"
			return c
		}, "identify kim-pw", "demo/guest+"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rh := newReleaseHold(openStore(t))
			ss := startSelfServiceOn(t, rh, channel.RegistrationOpen, fastFailures(), withLeases)
			t.Cleanup(rh.free) // before the gateway stops
			c := tc.start(t, ss)
			rh.hold(tc.old)
			c.send("PRIVMSG root :" + tc.cmd)
			l := rh.held(t)
			c.joinedControl("&kim")
			c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
			c.private("help", "Commands:")
			takenOver(t, rh, l.User)
		})
	}
}
