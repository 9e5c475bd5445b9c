package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// captureStdout runs f with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	ferr := f()
	os.Stdout = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b), ferr
}

func TestVersionFlag(t *testing.T) {
	out, err := captureStdout(t, func() error { return run([]string{"-version"}, nil) })
	if err != nil || strings.TrimSpace(out) != versionLine() || !strings.HasPrefix(out, "msimircd "+version+" (") {
		t.Errorf("got %q, %v; want %q", out, err, versionLine())
	}
}

func TestDescribeBuild(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"from a clean checkout", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-30T19:00:00Z"}, {Key: "vcs.modified", Value: "false"},
		}}, " (module (devel), revision 0123456789ab 2026-11-30T19:00:00Z, go1.26.8)"},
		{"modified", debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"},
		}}, " (revision abc, modified, go1.26.8)"},
		{"a released module", debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, " (module v1.2.3, go1.26.8)"},
	} {
		if got := describeBuild(&tc.bi); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"extra"},
		{"-msim-account", "no-colon"},
		{"-listen", "nowhere"},
		{"-config", "/nonexistent/config.toml"},
		{"-debug-listen", "0.0.0.0:6060"},
	} {
		if err := run(args, strings.NewReader("")); err == nil {
			t.Errorf("run(%q): got no error", args)
		}
	}
}

func TestJSONLogging(t *testing.T) {
	log := newLogger(LogConfig{Level: "warn", Format: "json"})
	var buf bytes.Buffer
	log.Logger.SetOutput(&buf)
	log.Info("not shown")
	log.WithField("user", "alice").Warn("shown")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log output %q is not one JSON object: %v", buf.String(), err)
	}
	if line["msg"] != "shown" || line["user"] != "alice" || line["level"] != "warning" {
		t.Errorf("got %v", line)
	}
}

// TestDebugContention: -debug-contention samples lock contention and
// blocking, so the mutex and block profiles served at -debug-listen are not
// empty by construction; without it, the sampling stays off.
func TestDebugContention(t *testing.T) {
	if err := run([]string{"-debug-contention"}, strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "-debug-listen") {
		t.Errorf("-debug-contention without -debug-listen: got %v, want an error naming -debug-listen", err)
	}
	defer runtime.SetMutexProfileFraction(runtime.SetMutexProfileFraction(-1))
	defer runtime.SetBlockProfileRate(0)
	const before = 3 // neither 0 nor mutexFraction: serveDebug without contention leaves it
	for _, contention := range []bool{false, true} {
		runtime.SetMutexProfileFraction(before)
		addr, stop, err := serveDebug("127.0.0.1:0", contention)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + addr.String() + "/debug/pprof/mutex?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		stop()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("mutex profile: status %d", resp.StatusCode)
		}
		want := before
		if contention {
			want = mutexFraction
		}
		if got := runtime.SetMutexProfileFraction(-1); got != want {
			t.Errorf("contention %v: mutex profile fraction %d, want %d", contention, got, want)
		}
	}
}
