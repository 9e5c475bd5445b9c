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
