package main

import (
	"os"
	"testing"
)

func TestStormCPUSince(t *testing.T) {
	tests := []struct {
		name   string
		s0, s1 cpuSample
		want   stormCPU
	}{
		{"split", cpuSample{gw: 100, self: 50, all: 1000, ok: true}, cpuSample{gw: 250, self: 120, all: 1300, ok: true},
			stormCPU{Gateway: 1.5, Bench: 0.7, Others: 0.8}},
		{"no others", cpuSample{gw: 0, self: 0, all: 0, ok: true}, cpuSample{gw: 100, self: 100, all: 150, ok: true},
			stormCPU{Gateway: 1, Bench: 1}},
		{"first unread", cpuSample{}, cpuSample{gw: 100, ok: true}, stormCPU{}},
		{"second unread", cpuSample{ok: true}, cpuSample{gw: 100}, stormCPU{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s1.since(tc.s0); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMachineCPU(t *testing.T) {
	a, err := machineCPU()
	if err != nil {
		t.Skipf("no /proc/stat here: %v", err)
	}
	b, err := machineCPU()
	if err != nil || b < a {
		t.Errorf("second reading: got %d, %v; want at least %d", b, err, a)
	}
}

func TestIOCallsMinus(t *testing.T) {
	tests := []struct {
		name   string
		c0, c1 ioCalls
		want   ioCalls
	}{
		{"counted", ioCalls{10, 20}, ioCalls{15, 50}, ioCalls{5, 30}},
		{"first unread", ioCalls{}, ioCalls{15, 50}, ioCalls{}},
		{"second unread", ioCalls{10, 20}, ioCalls{}, ioCalls{}},
		{"went back", ioCalls{10, 20}, ioCalls{5, 30}, ioCalls{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c1.minus(tc.c0); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestProcIO(t *testing.T) {
	if got := procIO(0); got != (ioCalls{}) {
		t.Errorf("pid 0: got %+v, want zero", got)
	}
	c := procIO(os.Getpid())
	if c == (ioCalls{}) {
		t.Skip("no /proc/PID/io here")
	}
	if c.Reads == 0 {
		t.Errorf("this process: got %+v, want some reads", c)
	}
}
