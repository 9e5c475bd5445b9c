package fakeclock

import (
	"slices"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := New()
	start := c.Now()
	var ran []string
	c.AfterFunc(2*time.Second, func() { ran = append(ran, "two") })
	stop := c.AfterFunc(time.Second, func() { ran = append(ran, "stopped") })
	c.AfterFunc(time.Second, func() { ran = append(ran, "one") })
	if !stop() || stop() {
		t.Fatal("stop: got false the first time or true the second")
	}
	if got := c.Pending(); !slices.Equal(got, []time.Duration{2 * time.Second, time.Second}) {
		t.Fatalf("Pending: got %v", got)
	}
	c.Advance(time.Second)
	if !slices.Equal(ran, []string{"one"}) {
		t.Fatalf("after 1s: ran %v, want [one]", ran)
	}
	c.Advance(time.Second)
	if !slices.Equal(ran, []string{"one", "two"}) || c.Now().Sub(start) != 2*time.Second {
		t.Fatalf("after 2s: ran %v at %v", ran, c.Now().Sub(start))
	}
	if got := c.Pending(); len(got) != 0 {
		t.Fatalf("Pending at the end: got %v", got)
	}
}
