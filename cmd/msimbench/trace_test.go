package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTrace: with a profile directory, the gateway's execution trace of
// the time asked (rounded up to whole seconds) is saved as
// <prefix>-trace.out; without one, nothing is asked.
func TestTrace(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery)
		_, _ = w.Write([]byte("trace bytes"))
	}))
	defer srv.Close()
	g := &gateway{debugAddr: strings.TrimPrefix(srv.URL, "http://")}
	dir := t.TempDir()
	g.trace(dir, "im-rate", 1500*time.Millisecond)()
	got, err := os.ReadFile(filepath.Join(dir, "im-rate-trace.out"))
	if err != nil || string(got) != "trace bytes" {
		t.Fatalf("trace file: %q, %v", got, err)
	}
	g.trace("", "im-rate", time.Second)()
	if len(asked) != 1 || asked[0] != "/debug/pprof/trace?seconds=2" {
		t.Errorf("asked %q, want one trace of 2 s", asked)
	}
}

// TestDebugArgs: a profiling run asks a gateway that can for sampled lock
// contention and blocking (-debug-contention), so its mutex and block
// profiles are not empty; otherwise, or with an older gateway, it asks
// only for the debug endpoints.
func TestDebugArgs(t *testing.T) {
	dir := t.TempDir()
	fake := func(name, usage string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\ncat <<'END'\n"+usage+"END\nexit 2\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := fake("now", "Usage of msimircd:\n  -debug-contention\n    \twith -debug-listen: sample...\n  -debug-listen string\n")
	old := fake("old", "Usage of msimircd:\n  -debug-listen string\n")
	for _, tc := range []struct {
		bin        string
		contention bool
		want       string
	}{
		{now, true, "-debug-listen 127.0.0.1:1 -debug-contention"},
		{now, false, "-debug-listen 127.0.0.1:1"},
		{old, true, "-debug-listen 127.0.0.1:1"},
	} {
		if got := strings.Join(debugArgs(tc.bin, "127.0.0.1:1", tc.contention), " "); got != tc.want {
			t.Errorf("%s, contention %v: got %q, want %q", filepath.Base(tc.bin), tc.contention, got, tc.want)
		}
	}
}
