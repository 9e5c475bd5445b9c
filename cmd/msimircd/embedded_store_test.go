package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/msim/server/servertest"
)

// buildCfg validates cfg (failing the test if it is invalid) and builds
// msimircd from it, logging to the hook it returns.
func buildCfg(t *testing.T, cfg Config) (*gateway, *logtest.Hook, error) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l, hook := logtest.NewNullLogger()
	g, err := build(context.Background(), cfg, logrus.NewEntry(l))
	return g, hook, err
}

// mustBuild is buildCfg, failing the test if the build fails.
func mustBuild(t *testing.T, cfg Config) (*gateway, *logtest.Hook) {
	t.Helper()
	g, hook, err := buildCfg(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g, hook
}

// startState builds msimircd on the state directory dir and returns it
// and its log.
func startState(t *testing.T, dir string) (*gateway, *logtest.Hook, error) {
	t.Helper()
	cfg := Defaults()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	cfg.Store.StateDir = dir
	return buildCfg(t, cfg)
}

func logged(hook *logtest.Hook, text string) bool {
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// TestEmbeddedImportsOldDataFile: an earlier msimircd's msim.db (bbolt)
// in the state directory is imported at the start: its accounts log in,
// the offline IM waits, msim.db is SQLite now and the old file is kept as
// msim.db.bolt-imported. The next start imports nothing.
func TestEmbeddedImportsOldDataFile(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "msim.db")
	servertest.WriteBoltFile(t, data, false)
	old, _ := os.ReadFile(data)
	g, hook, err := startState(t, dir)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if !logged(hook, "imported into SQLite") {
		t.Error("no log line about the import")
	}
	if err := g.emb.srv.CheckPassword("alice@example.com", "Secret1"); err != nil {
		t.Errorf("alice after the import: %v", err)
	}
	if got, err := g.emb.store.TakeOffline(server.FirstUID + 1); err != nil || len(got) != 1 || got[0].Body != servertest.OldOfflineIM {
		t.Errorf("bob's offline IMs: got %+v, %v", got, err)
	}
	g.close()
	if kept, _ := os.ReadFile(data + ".bolt-imported"); !bytes.Equal(kept, old) {
		t.Error("the old file is not kept as msim.db.bolt-imported")
	}
	if server.IsBoltFile(data) {
		t.Error("msim.db is still a bbolt file")
	}
	if st, err := os.Stat(data + ".key"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: got %v, %v; want mode 0600", st, err)
	}

	g, hook, err = startState(t, dir)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	defer g.close()
	if logged(hook, "imported") {
		t.Error("the second start imported again")
	}
	if err := g.emb.srv.CheckPassword("bob@example.com", "hunter2"); err != nil {
		t.Errorf("bob at the second start: %v", err)
	}
}

// TestEmbeddedOldDataFileRefused: an old data file that cannot be
// imported (its key file is missing) stops the start with an error naming
// it, and is left as it was; no key file is made for it.
func TestEmbeddedOldDataFileRefused(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "msim.db")
	servertest.WriteBoltFile(t, data, true)
	old, _ := os.ReadFile(data)
	g, _, err := startState(t, dir)
	if err == nil {
		g.close()
		t.Fatal("started; want the start refused")
	}
	if !strings.Contains(err.Error(), data) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("got %v, want an error naming %s and saying its key file is missing", err, data)
	}
	if now, _ := os.ReadFile(data); !bytes.Equal(now, old) {
		t.Error("the old file changed")
	}
	for _, f := range []string{data + ".key", data + ".bolt-imported", data + ".importing"} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (%v)", filepath.Base(f), err)
		}
	}
}
