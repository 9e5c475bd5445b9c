package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
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
	if err != nil || strings.TrimSpace(out) != "msimircd "+version {
		t.Errorf("got %q, %v; want %q", out, err, "msimircd "+version)
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
