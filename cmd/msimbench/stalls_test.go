package main

import (
	"math"
	"testing"
	"time"
)

func TestFindStalls(t *testing.T) {
	ms := func(f float64) int64 { return int64(f * float64(time.Millisecond)) }
	var s []rateSample
	// Steady traffic on 20 flows, 1 ms apart, fast.
	for i := range 2000 {
		s = append(s, rateSample{flow: i % 20, sent: ms(float64(i)), lat: ms(0.5)})
	}
	// A stall: everything sent from 100 to 130 ms waits until 140 ms.
	for i := range s {
		if at := s[i].sent; at >= ms(100) && at < ms(130) {
			s[i].lat = ms(140) - at
		}
	}
	// Two IMs slow on their own, far from it and from each other.
	s[500].lat, s[1500].lat = ms(5), ms(7)
	// Slow IMs of one flow close together: not a stall (one conversation).
	for i := range 11 {
		s = append(s, rateSample{flow: 3, sent: ms(800+5*float64(i)) + 1, lat: ms(3)})
	}
	slow, stalls, in := findStalls(s)
	if slow != 30+2+11 || stalls != 1 || math.Abs(in-30.0/43) > 1e-9 {
		t.Errorf("got %d slow, %d stalls, %.3f in stalls; want 43, 1, %.3f", slow, stalls, in, 30.0/43)
	}
	if slow, stalls, in := findStalls(s[:50]); slow != 0 || stalls != 0 || in != 0 {
		t.Errorf("fast IMs: got %d slow, %d stalls, %.3f; want none", slow, stalls, in)
	}
}
