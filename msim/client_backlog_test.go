package msim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim/markup"
)

// streamIMs writes n IMs from 2001, one every gap: a server handing over a
// backlog of offline IMs before it answers what it was asked.
func streamIMs(fc *fakeConn, n int, gap time.Duration) {
	for i := range n {
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)))
		time.Sleep(gap)
	}
}

// takeIMs reads events until n IMs came, skipping the others, and checks
// their texts are 0…n-1 in order.
func takeIMs(t *testing.T, c *Client, n int) {
	t.Helper()
	for i := 0; i < n; {
		ev := nextEvent(t, c)
		im, ok := ev.(IMEvent)
		if !ok {
			continue
		}
		if im.Text != strconv.Itoa(i) {
			t.Fatalf("IM %d: got %q, want %q (every IM once, in order)", i, im.Text, strconv.Itoa(i))
		}
		i++
	}
}

// TestLoginWaitsBehindABacklog: a server that hands over a backlog of IMs
// for several times DialTimeout before it answers the login's requests is
// busy, not stuck. The login succeeds with the own profile and the contact
// list loaded, and every IM is an event, in order. (A fixed deadline for
// the whole login dropped the link, and with it the IMs the server had
// already handed over and no longer stored.)
func TestLoginWaitsBehindABacklog(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.DialTimeout, cfg.RequestTimeout = time.Second, time.Second
	ch := dialAsync(cfg)
	fc := f.accept()
	const n = 40
	own := defaultResponders()[PersistOwnProfile]
	fc.override(PersistOwnProfile, func(fc *fakeConn, p *Persist) Dict {
		streamIMs(fc, n, 100*time.Millisecond) // 4 s: four times DialTimeout
		return own(fc, p)
	})
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if got := c.Self().DisplayName; got != "Alice" {
		t.Errorf("own profile's display name: got %q, want Alice (answered after the backlog)", got)
	}
	if got := len(c.Contacts()); got != 3 {
		t.Errorf("got %d contacts, want 3", got)
	}
	takeIMs(t, c, n)
}

// TestLoginFailsOnceTheServerFallsSilent: the login still has a bound. A
// server that sends a while and then nothing, never answering the contact
// list, fails the login DialTimeout after its last message, as a timeout.
func TestLoginFailsOnceTheServerFallsSilent(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.DialTimeout = 400 * time.Millisecond // RequestTimeout stays waitLimit: the silence ends the login
	ch := dialAsync(cfg)
	fc := f.accept()
	own := defaultResponders()[PersistOwnProfile]
	fc.override(PersistOwnProfile, func(fc *fakeConn, p *Persist) Dict {
		streamIMs(fc, 10, 40*time.Millisecond)
		return own(fc, p)
	})
	fc.override(PersistContactList, nil)
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded without a contact list")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "nothing received for 400ms") {
		t.Errorf("Dial: got %v, want a timeout after 400ms of silence", err)
	}
	fc.waitEOF()
}

// TestLoginGivesUpUnansweredLookups: the user names the contact list lacks
// are looked up at login, but the session can do without them, as without
// the replies awaitOptional waits for. A server that never answers the
// lookup of a contact (the spec does not say how it answers one for an
// unknown uid) leaves that contact without a name, not the user without a
// session.
func TestLoginGivesUpUnansweredLookups(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.DialTimeout = 2 * time.Second // a quarter of it without a reply gives the lookup up
	ch := dialAsync(cfg)
	fc := f.accept()
	fc.override(PersistProfile, nil) // bob (2001) is listed without a user name
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: got %v, want a session without bob's user name", err)
	}
	bob, ok := c.Contact(2001)
	if !ok || bob.UserName != "" || bob.Group != "Friends" {
		t.Errorf("Contact(2001): got %+v, %v; want bob's entry, without a user name", bob, ok)
	}
	if carol, ok := c.Contact(2002); !ok || carol.UserName != "carol" {
		t.Errorf("Contact(2002): got %+v, %v; want carol", carol, ok)
	}
}

// TestRequestWaitsBehindTraffic: the server answers in order, so a reply
// behind other messages is not late; a request fails with ErrTimeout only
// once the server has sent nothing for RequestTimeout.
func TestRequestWaitsBehindTraffic(t *testing.T) {
	t.Parallel()
	// The gaps between IMs are a tenth of the timeout, whose length keeps
	// them apart on a loaded machine (with 300 ms, a 30 ms gap once grew
	// past it while other packages' tests ran).
	c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.RequestTimeout = time.Second })
	lookup := defaultResponders()[PersistLookup]
	const n = 30
	fc.override(PersistLookup, func(fc *fakeConn, p *Persist) Dict {
		streamIMs(fc, n, 100*time.Millisecond) // 3 s: three times RequestTimeout
		return lookup(fc, p)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	defer cancel()
	p, err := c.LookupUser(ctx, "bob")
	if err != nil || p.UID != 2001 {
		t.Fatalf("LookupUser behind %d IMs: got (%v, %v), want bob", n, p.UID, err)
	}
	takeIMs(t, c, n)

	fc.override(PersistLookup, nil)
	if _, err := c.LookupUser(ctx, "bob"); !errors.Is(err, ErrTimeout) {
		t.Errorf("LookupUser never answered: got %v, want ErrTimeout", err)
	}
}

// TestFailedLoginGivesItsIMs: a login that fails after the server handed
// over IMs returns them with its error (UndeliveredError), in order, with
// Notify and without (with more IMs than the Events channel holds: nobody
// reads it while the failed login closes); the error is still the timeout
// it was.
func TestFailedLoginGivesItsIMs(t *testing.T) {
	t.Parallel()
	const n = 10
	for _, notify := range []bool{true, false} {
		f := newFake(t)
		cfg := testConfig(t, f.addr())
		cfg.DialTimeout = 400 * time.Millisecond
		cfg.EventQueue = 4
		if notify {
			cfg.Notify = func() {}
		}
		ch := dialAsync(cfg)
		fc := f.accept()
		own := defaultResponders()[PersistOwnProfile]
		fc.override(PersistOwnProfile, func(fc *fakeConn, p *Persist) Dict {
			streamIMs(fc, n, 0)
			return own(fc, p)
		})
		fc.override(PersistContactList, nil)
		fc.login("alice")
		_, err := waitDial(t, ch)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("notify %v: Dial got %v, want a timeout", notify, err)
		}
		ims := Undelivered(err)
		if len(ims) != n {
			t.Fatalf("notify %v: got %d IMs with the error, want %d (%v)", notify, len(ims), n, err)
		}
		for i, ev := range ims {
			if im, ok := ev.(IMEvent); !ok || im.From != 2001 || im.Text != strconv.Itoa(i) {
				t.Errorf("notify %v: IM %d: got %#v", notify, i, ev)
			}
		}
	}
	if Undelivered(errors.New("refused")) != nil {
		t.Error("Undelivered of another error: got IMs, want none")
	}
}

// TestDroppedLoginIsNoTimeout: a link the server drops during the login's
// setup fails it with the link's error, not as a cancel or a timeout, and
// the IMs received before the drop come with it.
func TestDroppedLoginIsNoTimeout(t *testing.T) {
	t.Parallel()
	for _, notify := range []bool{true, false} {
		f := newFake(t)
		cfg := testConfig(t, f.addr())
		if notify {
			cfg.Notify = func() {}
		}
		ch := dialAsync(cfg)
		fc := f.accept()
		fc.override(PersistContactList, func(fc *fakeConn, p *Persist) Dict {
			streamIMs(fc, 3, 0)
			fc.hangUp()
			return nil
		})
		fc.login("alice")
		_, err := waitDial(t, ch)
		if err == nil {
			t.Fatalf("notify %v: Dial succeeded over a dropped link", notify)
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("notify %v: Dial got %v, want the link's error alone", notify, err)
		}
		if got := len(Undelivered(err)); got != 3 {
			t.Errorf("notify %v: got %d IMs with the error, want 3", notify, got)
		}
	}
}

// TestLoginHasALimit: a server that keeps sending but never answers the
// login's requests does not hold it forever: the login fails once its
// limit has passed, as a timeout that says so.
func TestLoginHasALimit(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.DialTimeout = 300 * time.Millisecond
	cfg.loginLimit = time.Second
	ch := dialAsync(cfg)
	fc := f.accept()
	fc.override(PersistOwnProfile, func(fc *fakeConn, p *Persist) Dict {
		streamIMs(fc, 60, 50*time.Millisecond) // 3 s, never silent for DialTimeout
		return nil
	})
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded without an own profile")
	}
	if !errors.Is(err, context.DeadlineExceeded) || strings.Count(err.Error(), "login took longer than 1s") != 1 {
		t.Errorf("Dial: got %v, want a timeout at the login's limit of 1s, said once", err)
	}
}

// TestDroppedLoginGivesEveryIM: a login whose link the server drops after
// handing over more IMs, or zaps, than the Events channel holds returns
// every one of them with its error: none is dropped to make room for the
// end of the stream.
func TestDroppedLoginGivesEveryIM(t *testing.T) {
	t.Parallel()
	for _, n := range []int{4, 5, 10, 14} {
		for _, zaps := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d zaps=%v", n, zaps), func(t *testing.T) {
				t.Parallel()
				f := newFake(t)
				cfg := testConfig(t, f.addr())
				cfg.EventQueue = 4
				ch := dialAsync(cfg)
				fc := f.accept()
				fc.override(PersistContactList, func(fc *fakeConn, p *Persist) Dict {
					for i := range n {
						if zaps {
							fc.write(NewInt("bm", BMAction).AddInt("f", 2001).Add("msg", markup.ZapSmooch.Payload()))
						} else {
							fc.write(NewInt("bm", BMIM).AddInt("f", 2001).Add("msg", strconv.Itoa(i)))
						}
					}
					fc.hangUp()
					return nil
				})
				fc.login("alice")
				_, err := waitDial(t, ch)
				if got := len(Undelivered(err)); got != n {
					t.Errorf("got %d of %d with the error (%v)", got, n, err)
				}
			})
		}
	}
}

// TestLoginOverflowNamesTheDroppedIMs: a login whose events overflow the
// backlog before it completes (a long backlog of offline IMs nobody takes
// yet) fails with the IMs it queued, and names those it dropped: the
// server no longer stores any of them.
func TestLoginOverflowNamesTheDroppedIMs(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.Notify = func() {}
	cfg.EventBacklog = 4
	ch := dialAsync(cfg)
	fc := f.accept()
	fc.override(PersistContactList, func(fc *fakeConn, p *Persist) Dict {
		streamIMs(fc, 4, 0)
		fc.write(NewInt("bm", BMIM).AddInt("f", 2002).Add("msg", "past the backlog"))
		return nil
	})
	fc.login("alice")
	_, err := waitDial(t, ch)
	if !errors.Is(err, ErrEventOverflow) {
		t.Fatalf("Dial got %v, want an overflow", err)
	}
	var ue *UndeliveredError
	if !errors.As(err, &ue) {
		t.Fatalf("Dial got %v, want an UndeliveredError", err)
	}
	if len(ue.Events) != 4 || ue.DroppedIMs != 1 || !slices.Equal(ue.DroppedFrom, []UID{2002}) {
		t.Errorf("got %d IMs and %d dropped from %v, want 4 and 1 from [2002]", len(ue.Events), ue.DroppedIMs, ue.DroppedFrom)
	}
}

// TestFailedLoginGivesItsUnreadableIMs: an IM the client could not read
// during a login that fails (reported as its own ErrorEvent) comes with
// the login's error, in its place among the IMs, with Notify and without.
func TestFailedLoginGivesItsUnreadableIMs(t *testing.T) {
	t.Parallel()
	for _, notify := range []bool{true, false} {
		f := newFake(t)
		cfg := testConfig(t, f.addr())
		if notify {
			cfg.Notify = func() {}
		}
		ch := dialAsync(cfg)
		fc := f.accept()
		fc.override(PersistContactList, func(fc *fakeConn, p *Persist) Dict {
			streamIMs(fc, 1, 0)
			fc.write(NewInt("bm", BMIM).Add("f", "tom").Add("msg", "who am I"))
			streamIMs(fc, 1, 0)
			fc.hangUp()
			return nil
		})
		fc.login("alice")
		_, err := waitDial(t, ch)
		if err == nil {
			t.Fatalf("notify %v: Dial succeeded over a dropped link", notify)
		}
		evs := Undelivered(err)
		if len(evs) != 3 {
			t.Fatalf("notify %v: got %#v with the error, want 2 IMs and an ErrorEvent", notify, evs)
		}
		if e, ok := evs[1].(ErrorEvent); !ok || e.Code != 0 || !strings.Contains(e.Message, "who am I") {
			t.Errorf("notify %v: got %#v second, want the ErrorEvent telling of the IM from \"tom\"", notify, evs[1])
		}
		if !strings.Contains(err.Error(), "after 2 IMs or zaps, 1 unreadable") {
			t.Errorf("notify %v: got error %q, want it to count the 2 IMs and the unreadable one", notify, err)
		}
	}
}
