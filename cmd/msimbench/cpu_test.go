package main

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/procstat"
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
		{"calls and switches", cpuSample{gw: 100, self: 50, all: 1000, gwIO: ioCalls{10, 20, 30}, selfIO: ioCalls{1, 2, 3}, ok: true},
			cpuSample{gw: 250, self: 120, all: 1300, gwIO: ioCalls{110, 70, 330}, selfIO: ioCalls{11, 12, 13}, ok: true},
			stormCPU{Gateway: 1.5, Bench: 0.7, Others: 0.8, GatewayCalls: ioCalls{100, 50, 300}, BenchCalls: ioCalls{10, 10, 10}}},
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

// TestCostOf: a phase's cost is its CPU (clock ticks) and system calls
// per IM delivered, the server's and this process's.
func TestCostOf(t *testing.T) {
	s0 := cpuSample{gw: 100, self: 50, all: 1000, gwIO: ioCalls{10, 20, 5}, selfIO: ioCalls{30, 40, 7}, ok: true}
	s1 := cpuSample{gw: 150, self: 70, all: 1100, gwIO: ioCalls{1010, 520, 9005}, selfIO: ioCalls{2030, 1040, 3007}, ok: true}
	got := costOf(s0, s1, 2000)
	want := &phaseCost{ServerCPUus: 250, BenchCPUus: 100, MachineCPUus: 500, IMs: 2000,
		ServerReads: 0.5, ServerWrites: 0.25, BenchReads: 1, BenchWrites: 0.5, systemCallsSet: true,
		ServerSwitches: 4.5, BenchSwitches: 1.5, switchesSet: true}
	if got == nil || *got != *want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	noSwitches := s1
	noSwitches.selfIO.Switches = 0
	if c := costOf(s0, noSwitches, 2000); c == nil || !c.systemCallsSet || c.switchesSet || c.ServerSwitches != 0 || c.BenchReads != 1 {
		t.Errorf("without this process's switches: got %+v, want the calls without switches", c)
	}
	noIO := s1
	noIO.gwIO = ioCalls{}
	if c := costOf(s0, noIO, 2000); c == nil || c.systemCallsSet || c.ServerReads != 0 || c.ServerCPUus != 250 {
		t.Errorf("without the server's system calls: got %+v, want the CPU only", c)
	}
	for _, tc := range []struct {
		name   string
		s0, s1 cpuSample
		ims    int64
	}{{"first unread", cpuSample{}, s1, 2000}, {"second unread", s0, cpuSample{}, 2000}, {"no IMs", s0, s1, 0}} {
		if c := costOf(tc.s0, tc.s1, tc.ims); c != nil {
			t.Errorf("%s: got %+v, want nil", tc.name, c)
		}
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
		{"counted", ioCalls{10, 20, 100}, ioCalls{15, 50, 160}, ioCalls{5, 30, 60}},
		{"first unread", ioCalls{}, ioCalls{15, 50, 160}, ioCalls{}},
		{"second unread", ioCalls{10, 20, 100}, ioCalls{}, ioCalls{}},
		{"went back", ioCalls{10, 20, 100}, ioCalls{5, 30, 160}, ioCalls{}},
		{"switches went back", ioCalls{10, 20, 100}, ioCalls{15, 50, 90}, ioCalls{5, 30, 0}},
		{"switches unread before", ioCalls{10, 20, 0}, ioCalls{15, 50, 160}, ioCalls{5, 30, 0}},
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
	if c.Switches == 0 {
		t.Errorf("this process: got %+v, want some context switches", c)
	}
	// A thread that sleeps switches at least once each time. It stays
	// until it is counted: a thread that exits takes its count along.
	slept, counted := make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for range 20 {
			time.Sleep(time.Millisecond)
		}
		close(slept)
		<-counted
	}()
	<-slept
	c2 := procIO(os.Getpid())
	close(counted)
	if c2.Switches < c.Switches+20 {
		t.Errorf("after 20 sleeps: %d context switches, want at least %d", c2.Switches, c.Switches+20)
	}
}

func TestStatusSwitches(t *testing.T) {
	status := "Name:\tmsimircd\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n"
	if got := statusSwitches([]byte(status)); got != 127 {
		t.Errorf("got %d, want 127", got)
	}
	if got := statusSwitches([]byte("Name:\tx\nvoluntary_ctxt_switches:\tmany\n")); got != 0 {
		t.Errorf("unreadable count: got %d, want 0", got)
	}
}

// TestGatewayCPUCountsChildren: the gateway's CPU time includes its child
// processes' (its history writer), running or reaped.
func TestGatewayCPUCountsChildren(t *testing.T) {
	if _, err := procstat.Process(os.Getpid()); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	// A shell whose one child spins for a while and then sleeps, and
	// whose other child spins and exits (reaped by the shell's wait).
	spin := `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`
	cmd := exec.Command("sh", "-c", "("+spin+"; sleep 30) & ("+spin+") & wait")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sh: %v", err)
	}
	defer func() {
		for _, c := range procstat.Children(cmd.Process.Pid) {
			syscall.Kill(c, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	}()
	g := &gateway{pid: cmd.Process.Pid}
	deadline := time.Now().Add(20 * time.Second)
	for {
		own, err := procCPU(cmd.Process.Pid, false)
		if err != nil {
			t.Fatal(err)
		}
		all, err := g.cpuTicks()
		if err != nil {
			t.Fatal(err)
		}
		// Each spin takes well over 10 ticks (100 ms); the shell itself
		// next to nothing.
		if all-own >= 20 && len(procstat.Children(cmd.Process.Pid)) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway CPU %d ticks, its own %d, children %v: want the two spins' time counted", all, own, procstat.Children(cmd.Process.Pid))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestParseProcRSS: the resident and peak sizes come from a status file's
// VmRSS and VmHWM lines in bytes, and a file missing either is an error.
func TestParseProcRSS(t *testing.T) {
	status := "Name:\tmsimircd\nVmPeak:\t 2000000 kB\nVmHWM:\t  150000 kB\nVmRSS:\t   90000 kB\nThreads:\t9\n"
	rss, peak, err := parseProcRSS(strings.NewReader(status))
	if err != nil || rss != 90000<<10 || peak != 150000<<10 {
		t.Fatalf("got rss %d, peak %d, %v; want %d, %d", rss, peak, err, 90000<<10, 150000<<10)
	}
	for _, bad := range []string{"VmRSS:\t90000 kB\n", "VmHWM:\t150000 kB\n", "VmHWM:\tlots kB\nVmRSS:\t1 kB\n", ""} {
		if _, _, err := parseProcRSS(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
