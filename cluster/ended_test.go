package cluster

import (
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// TestEndings: a logout is remembered for keep, a takeover is not taken
// for a logout, a new claim forgets, and no more than limit endings are
// kept, however many users log out.
func TestEndings(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const keep = 2 * time.Second
	type step struct {
		uid  msim.UID
		at   time.Duration // after t0
		op   string        // "logout", "kicked", "forget", or "ask"
		want bool          // of "ask": loggedOut
	}
	for _, tc := range []struct {
		name  string
		limit int
		steps []step
	}{
		{"remembered for keep", 4, []step{
			{uid: 1, at: 0, op: "logout"},
			{uid: 1, at: keep - time.Nanosecond, op: "ask", want: true},
			{uid: 1, at: keep, op: "ask", want: false},
			{uid: 2, at: 0, op: "ask", want: false},
		}},
		{"taken over, then released", 4, []step{
			{uid: 1, at: 0, op: "kicked"},
			{uid: 1, at: time.Millisecond, op: "logout"},
			{uid: 1, at: time.Millisecond, op: "ask", want: false},
		}},
		{"taken over long ago, then logged out", 4, []step{
			{uid: 1, at: 0, op: "kicked"},
			{uid: 1, at: keep, op: "logout"},
			{uid: 1, at: keep, op: "ask", want: true},
		}},
		{"claimed again", 4, []step{
			{uid: 1, at: 0, op: "kicked"},
			{uid: 1, at: 1, op: "forget"},
			{uid: 1, at: 2, op: "logout"},
			{uid: 1, at: 2, op: "ask", want: true},
		}},
		{"the oldest go past the limit", 2, []step{
			{uid: 1, at: 0, op: "logout"},
			{uid: 2, at: 1, op: "logout"},
			{uid: 3, at: 2, op: "logout"},
			{uid: 1, at: 2, op: "ask", want: false},
			{uid: 2, at: 2, op: "ask", want: true},
			{uid: 3, at: 2, op: "ask", want: true},
		}},
		{"a superseded ending does not expire the latest", 2, []step{
			{uid: 1, at: 0, op: "logout"},
			{uid: 1, at: keep - 1, op: "logout"},
			{uid: 1, at: keep, op: "ask", want: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndings(keep, tc.limit)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "logout", "kicked":
					e.note(s.uid, now, s.op == "kicked")
				case "forget":
					e.forget(s.uid)
				case "ask":
					if got := e.loggedOut(s.uid, now); got != s.want {
						t.Errorf("step %d: loggedOut(%d): got %v, want %v", i, s.uid, got, s.want)
					}
				}
			}
		})
	}
}

// TestEndingsBound: however many users log out, no more than limit
// endings are held, and none once keep is over.
func TestEndingsBound(t *testing.T) {
	const limit, keep = 64, time.Second
	t0 := time.Unix(1000, 0)
	e := newEndings(keep, limit)
	for i := range 10 * limit {
		e.note(msim.UID(i%(3*limit)+1), t0.Add(time.Duration(i)), false)
		if len(e.last) > limit || len(e.queue) > limit {
			t.Fatalf("after %d logouts: %d users and %d endings held, want at most %d", i+1, len(e.last), len(e.queue), limit)
		}
	}
	e.expire(t0.Add(keep + 10*limit))
	if len(e.last) != 0 || len(e.queue) != 0 {
		t.Errorf("after keep: %d users and %d endings held, want none", len(e.last), len(e.queue))
	}
}
