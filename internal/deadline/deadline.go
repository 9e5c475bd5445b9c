// Package deadline moves a connection's write deadline only when it has
// gone stale.
//
// Setting a deadline modifies a runtime timer under the poller's lock,
// which costs more than a small write on loopback. A writer that sets one
// before every write pays that for each batch; with Write it pays once per
// slack (a 64th of the timeout), and each write still has at least the
// timeout less the slack to complete.
//
// Ownership: each connection's writer (ircd's, the MSIM client's and the
// MSIM server's sessions) keeps one Write beside its connection and is the
// only one to call it. Whoever sets the connection's write deadline some
// other way (to cut a stuck write short, say) calls Forget, or owns the
// connection's last writes.
package deadline

import "time"

// Setter is the part of net.Conn that Write uses.
type Setter interface {
	SetWriteDeadline(t time.Time) error
}

// Write remembers the write deadline last set on one connection. The zero
// value has none.
type Write struct {
	armed time.Time
}

// Slack is how stale a deadline may go before Arm moves it: a write armed
// with timeout d has at least d − Slack(d) to complete.
func Slack(d time.Duration) time.Duration { return d / 64 }

// Arm makes sure the connection's write deadline falls between
// now + timeout − Slack(timeout) and now + timeout, setting it only when
// the one last set is older than that. It reports whether it set one.
func (w *Write) Arm(c Setter, now time.Time, timeout time.Duration) bool {
	due := now.Add(timeout)
	if d := due.Sub(w.armed); d >= 0 && d <= Slack(timeout) {
		return false
	}
	_ = c.SetWriteDeadline(due)
	w.armed = due
	return true
}

// Forget makes the next Arm set the deadline, after the caller set it
// itself.
func (w *Write) Forget() { w.armed = time.Time{} }
