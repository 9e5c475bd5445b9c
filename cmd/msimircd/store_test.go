package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// TestStateDirDefault: msimircd run with no -state and no config keeps its
// state in $XDG_STATE_HOME/msimircd, made mode 0700 at the start, with the
// gateway's database, its key file (0600) and the embedded network's data
// in it; its first log line names the directory.
func TestStateDirDefault(t *testing.T) {
	bin := binary(t, ".")
	xdg := filepath.Join(t.TempDir(), "xdg") // made by msimircd too
	p := startProcEnv(t, "msimircd", []string{"XDG_STATE_HOME=" + xdg}, bin, "-listen", "127.0.0.1:0")
	p.waitLog(ircOnRE)
	dir := filepath.Join(xdg, "msimircd")
	if first := p.lines()[0]; !strings.Contains(first, "state in "+dir+" (store: sqlite msimircd.db") {
		t.Errorf("first log line: got %q, want it to say \"state in %s (store: sqlite msimircd.db…\"", first, dir)
	}
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("state directory: got %v, %v; want a directory of mode 0700", st, err)
	}
	for _, f := range []struct {
		name string
		mode fs.FileMode
	}{
		{"msimircd.db", 0o600}, {"store.key", 0o600}, {"msim.db", 0o600}, {"msim.db.key", 0o600}, {"msim.db.irc-key", 0o600},
	} {
		st, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil || st.Mode().Perm() != f.mode {
			t.Errorf("%s: got %v, %v; want a file of mode %04o", f.name, st, err, f.mode)
		}
	}
}

// TestCorruptStoreStopsStart: a database file that is damaged or cannot be
// opened stops msimircd at the start, with an error naming the file; the
// file is left as it was (never reset), and the embedded network is not
// started (the store is opened before anything else).
func TestCorruptStoreStopsStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, db string)
		want  string
	}{
		{"garbage", func(t *testing.T, db string) {
			if err := os.WriteFile(db, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"damaged pages", func(t *testing.T, db string) {
			key, err := store.LoadOrCreateKey(filepath.Join(filepath.Dir(db), "store.key"))
			if err != nil {
				t.Fatal(err)
			}
			st, err := store.Open(context.Background(), "sqlite", db, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			for i := 100; i < len(b); i++ { // all but SQLite's file header
				b[i] = byte(i * 7)
			}
			if err := os.WriteFile(db, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"a directory", func(t *testing.T, db string) {
			if err := os.Mkdir(db, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "msimircd.db")
			tc.spoil(t, db)
			before := readIfFile(t, db)
			err := run([]string{"-state", dir, "-listen", "127.0.0.1:0"}, strings.NewReader(""))
			if err == nil || !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s (and %q)", err, db, tc.want)
			}
			t.Logf("the start stopped: %v", err)
			if after := readIfFile(t, db); !bytes.Equal(after, before) {
				t.Errorf("the database file changed at the failed start (%d bytes, was %d); want it left as it was", len(after), len(before))
			}
			if _, err := os.Stat(filepath.Join(dir, "msim.db")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the embedded network's data exists (%v): it was opened before the store", err)
			}
		})
	}
}

// readIfFile returns the file's bytes, nil for a directory.
func readIfFile(t *testing.T, path string) []byte {
	t.Helper()
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoreKeyFileMode: the first start makes the state directory (0700)
// and the store's key file (0600, a key's size); the next start reads the
// same key; a key file group or others may read stops the start, saying
// how to fix it; store.key_file puts the key elsewhere.
func TestStoreKeyFileMode(t *testing.T) {
	start := func(t *testing.T, cfg Config) error {
		t.Helper()
		cfg.IRC.Listen = []string{"127.0.0.1:0"}
		g, _, err := buildCfg(t, cfg)
		if err == nil {
			g.close()
		}
		return err
	}
	for _, tc := range []struct {
		name    string
		keyFile func(stateDir string) string // "" = the default
	}{
		{"in the state directory", func(string) string { return "" }},
		{"store.key_file", func(string) string { return filepath.Join(t.TempDir(), "gw.key") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Store.StateDir = filepath.Join(t.TempDir(), "new", "state")
			cfg.Store.KeyFile = tc.keyFile(cfg.Store.StateDir)
			key := cfg.Store.KeyFile
			if key == "" {
				key = filepath.Join(cfg.Store.StateDir, "store.key")
			}
			if err := start(t, cfg); err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(cfg.Store.StateDir); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("state directory: got %v, %v; want mode 0700", st, err)
			}
			st, err := os.Stat(key)
			if err != nil || st.Mode().Perm() != 0o600 || st.Size() != store.KeySize {
				t.Fatalf("key file: got %v, %v; want %d bytes of mode 0600", st, err, store.KeySize)
			}
			first, _ := os.ReadFile(key)
			if err := start(t, cfg); err != nil {
				t.Fatalf("second start: %v", err)
			}
			if again, _ := os.ReadFile(key); !bytes.Equal(again, first) {
				t.Error("the second start replaced the key file")
			}
			if err := os.Chmod(key, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := start(t, cfg); err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("key file of mode 0644: got %v, want a refusal naming %s and saying chmod 600", err, key)
			}
		})
	}
}

// TestMemoryOnlyWithoutStateDir: serve with a Config that has no state
// directory (as most tests here pass it) writes nothing to disk: the
// gateway and the embedded network keep everything in memory.
func TestMemoryOnlyWithoutStateDir(t *testing.T) {
	cfg := Defaults()
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	g, _ := mustBuild(t, cfg)
	defer g.close()
	if g.st != nil {
		t.Errorf("got a store (%T), want none", g.st)
	}
	if got, want := fmt.Sprintf("%T", g.emb.store), fmt.Sprintf("%T", server.NewMemStore()); got != want {
		t.Errorf("embedded network's store: got %s, want %s", got, want)
	}
}
