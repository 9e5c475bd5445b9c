package deadline

import (
	"testing"
	"time"
)

type setter struct {
	sets int
	last time.Time
}

func (s *setter) SetWriteDeadline(t time.Time) error {
	s.sets++
	s.last = t
	return nil
}

func TestArmSetsOnlyWhenStale(t *testing.T) {
	const timeout = 64 * time.Second // slack: one second
	start := time.Unix(1000, 0)
	var w Write
	var c setter
	for i := range 1000 { // 1,000 writes within the slack
		now := start.Add(time.Duration(i) * time.Millisecond)
		w.Arm(&c, now, timeout)
		if lo, hi := now.Add(timeout-Slack(timeout)), now.Add(timeout); c.last.Before(lo) || c.last.After(hi) {
			t.Fatalf("write %d at %v: deadline %v outside [%v, %v]", i, now, c.last, lo, hi)
		}
	}
	if c.sets != 1 {
		t.Fatalf("1,000 writes in 1 s: %d deadlines set, want 1", c.sets)
	}
	// Past the slack the deadline moves once, then holds again.
	now := start.Add(time.Second + time.Millisecond)
	if !w.Arm(&c, now, timeout) || !c.last.Equal(now.Add(timeout)) {
		t.Fatalf("after the slack: sets %d, deadline %v, want it moved to %v", c.sets, c.last, now.Add(timeout))
	}
	if w.Arm(&c, now.Add(time.Millisecond), timeout) {
		t.Fatal("moved again right after being moved")
	}
}

func TestArmMovesAnEarlierOrLaterDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	var w Write
	var c setter
	w.Arm(&c, now, time.Minute)
	// A shorter timeout than the one armed: the deadline comes closer.
	if !w.Arm(&c, now, time.Second) || !c.last.Equal(now.Add(time.Second)) {
		t.Fatalf("shorter timeout: deadline %v, want %v", c.last, now.Add(time.Second))
	}
	// Forget: the caller set the deadline itself; the next Arm sets it.
	w.Forget()
	if !w.Arm(&c, now, time.Second) {
		t.Fatal("Arm after Forget did not set the deadline")
	}
}
