package server

import (
	"math"
	"sync"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// Flood control: what an account's sessions send once logged in is read
// no faster, on average, than inflowRate bytes a second, with inflowBurst
// bytes at once: a token bucket over each request's bytes, charged before
// the request is handled (session.throttle). A request that leaves the
// bucket in debt is handled once the debt is paid: the session's reader
// waits until then. The sender is slowed, as ircd's FloodRate slows an IRC
// client; nothing it sent is refused or dropped.
//
// It counts bytes, not messages, because bytes are what a flood costs a
// recipient: the memory its send queue holds, and the time its link
// takes. A queue bounded in messages (Config.SendQ) fills with the
// largest messages long before small ones fill it: without flood control
// one sender could have a recipient whose link is slower than the
// sender's closed for "send queue exceeded" at every login, each time
// with its queue holding SendQ of the largest messages. Now a recipient
// whose link carries inflowRate keeps up with any one sender, and one
// that reads nothing is dropped by its write timeout before one sender's
// largest messages fill its queue (TestFloodBudgetWithinSendQ).
// Against a recipient slower than that, or several senders at once, the
// queue's bound and the write timeout stay what they were.
//
// The bucket is the account's, not the session's (floodControl): a login
// replaces the account's session, and logging in again and again would
// otherwise refill it each time.
//
// inflowRate is sized for a gateway's session, which relays one user's
// IMs as fast as they come: above what the busiest session carries in the
// benchmark (msimbench, whose quick run puts the whole load through a few
// sessions), IMs of a line of text each, in the bursts it sends them in
// (TestNormalBurstsPassWithoutFloodWait). inflowBurst takes the rest of a
// faster machine's benchmark phases, and lets a good many of the largest
// messages a client may send (Config.MaxMessage by default) through at
// once.
const (
	inflowRate  = 2 << 20 // bytes per second
	inflowBurst = 8 << 20 // bytes
)

// inflow is an account's flood control bucket, in bytes.
type inflow struct {
	mu    sync.Mutex
	avail float64   // bytes that may be read without a wait; negative: owed
	at    time.Time // when avail was last brought up to date; zero: never (full)
	refs  int       // sessions holding it (floodControl.mu)
}

// charge takes n bytes at now and returns how long the reader must wait
// before it handles them: 0 unless that leaves the bucket in debt.
func (f *inflow) charge(now time.Time, n int) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refill(now)
	f.avail -= float64(n)
	if f.avail >= 0 {
		return 0
	}
	return time.Duration(math.Ceil(-f.avail / inflowRate * float64(time.Second)))
}

// refill brings avail up to date at now. The caller holds f.mu.
func (f *inflow) refill(now time.Time) {
	switch {
	case f.at.IsZero():
		f.avail, f.at = inflowBurst, now
	case now.After(f.at):
		f.avail = min(inflowBurst, f.avail+now.Sub(f.at).Seconds()*inflowRate)
		f.at = now
	}
}

// full reports whether the bucket is full at now: it is then the same as
// none.
func (f *inflow) full(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refill(now)
	return f.avail >= inflowBurst
}

// floodControl holds the buckets of the accounts with a session here, and
// of those whose last session ended while their bucket was not yet full
// again (until it is: they are swept as the map grows).
type floodControl struct {
	mu    sync.Mutex
	m     map[msim.UID]*inflow
	swept int // len(m) after the last sweep
}

// acquire returns uid's bucket for a session that has logged in.
func (fc *floodControl) acquire(uid msim.UID) *inflow {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	f := fc.m[uid]
	if f == nil {
		if fc.m == nil {
			fc.m = map[msim.UID]*inflow{}
		}
		f = &inflow{}
		fc.m[uid] = f
	}
	f.refs++
	return f
}

// release lets go of a session's bucket as it ends. A bucket no session
// holds is kept until it is full; the map is swept of those that are
// whenever it has doubled since the last sweep.
func (fc *floodControl) release(uid msim.UID, f *inflow, now time.Time) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	f.refs--
	if f.refs == 0 && f.full(now) {
		delete(fc.m, uid)
	}
	if len(fc.m) < 2*fc.swept+64 {
		return
	}
	for u, g := range fc.m {
		if g.refs == 0 && g.full(now) {
			delete(fc.m, u)
		}
	}
	fc.swept = len(fc.m)
}

// throttle charges the request m, before it is handled, to the account's
// bucket once the session has logged in, and waits while the bucket
// cannot pay for it. It reports false if the session closed meanwhile:
// the request is then not handled, as if it had not been read. The
// requests before the login are slowed by the failed-login limiters
// instead.
func (s *session) throttle(m *msim.Message) bool {
	if s.in == nil {
		return true
	}
	d := s.in.charge(s.srv.now(), wireSize(m))
	if d <= 0 {
		return true
	}
	if !s.slowed {
		s.slowed = true
		s.logger().Info("the client sends faster than flood control allows: its requests are read more slowly")
	}
	return s.srv.inflowWait(d, s.done)
}

// wireSize is the size of m on the wire.
func wireSize(m *msim.Message) int {
	n := len(`\final\`)
	for _, f := range m.Fields() {
		n += 2 + len(f.Key) + len(f.Value)
	}
	return n
}
