package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpgradeBoltFile: a data file the old bbolt store wrote (hashes
// sealed under its key file) becomes a SQLite database at the same path,
// under the same key file, with everything in it; the old file is kept,
// unchanged, beside it; a second call leaves the database alone.
func TestUpgradeBoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msim.db")
	want := writeOldFile(t, path)
	oldFile, _ := os.ReadFile(path)
	oldKey, _ := os.ReadFile(path + ".key")
	st, upgraded, err := UpgradeBoltFile(context.Background(), path)
	if err != nil || !upgraded {
		t.Fatalf("upgrade: got %v, %v; want it upgraded", upgraded, err)
	}
	if got := (ImportStats{Accounts: 3, Contacts: 3, Offline: 3}); st != got {
		t.Errorf("stats: got %+v, want %+v (hashes copied as sealed: the same key)", st, got)
	}
	if kept, _ := os.ReadFile(path + ".bolt-imported"); !bytes.Equal(kept, oldFile) {
		t.Error("the old file was not kept as it was")
	}
	if key, _ := os.ReadFile(path + ".key"); !bytes.Equal(key, oldKey) {
		t.Error("the key file changed")
	}
	if _, err := os.Stat(path + ".importing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the import's working file is left (%v)", err)
	}
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for uid, a := range want.accounts {
		got, err := s.Account(uid)
		if err != nil {
			t.Fatal(err)
		}
		sameAccount(t, got, a)
	}
	if got, _ := s.TakeOffline(want.bob); len(got) != len(want.offline) {
		t.Errorf("offline IMs: got %d, want %d", len(got), len(want.offline))
	}
	if !loginWorks(t, s, "alice@example.com", "Secret1") {
		t.Error("login after the upgrade failed")
	}
	s.Close()
	before, _ := os.ReadFile(path)
	if _, upgraded, err := UpgradeBoltFile(context.Background(), path); upgraded || err != nil {
		t.Errorf("second call: got %v, %v; want nothing done", upgraded, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("the second call changed the database")
	}
}

// TestUpgradeBoltFileInterrupted: an upgrade stopped midway (a half-made
// database left beside the old file, or the new one not yet moved into
// place) is done whole by the next call.
func TestUpgradeBoltFileInterrupted(t *testing.T) {
	t.Run("while filling", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "msim.db")
		writeOldFile(t, path)
		for _, p := range []string{path + ".importing", path + ".importing-wal"} {
			if err := os.WriteFile(p, []byte("half a database"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, upgraded, err := UpgradeBoltFile(context.Background(), path); err != nil || !upgraded {
			t.Fatalf("upgrade: got %v, %v", upgraded, err)
		}
		if !loginWorks(t, openStore(t, path, StoreOptions{}), "bob@example.com", "hunter2") {
			t.Error("login after the upgrade failed")
		}
	})
	t.Run("between the moves", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "msim.db")
		writeOldFile(t, path)
		if _, _, err := UpgradeBoltFile(context.Background(), path); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path, path+".importing"); err != nil { // as if stopped before the last move
			t.Fatal(err)
		}
		if _, upgraded, err := UpgradeBoltFile(context.Background(), path); err != nil || !upgraded {
			t.Fatalf("finishing: got %v, %v", upgraded, err)
		}
		if !loginWorks(t, openStore(t, path, StoreOptions{}), "bob@example.com", "hunter2") {
			t.Error("login after the upgrade failed")
		}
	})
}

// TestUpgradeBoltFileRefused: an upgrade that cannot be done says why and
// leaves everything as it was: no database, no key file made.
func TestUpgradeBoltFileRefused(t *testing.T) {
	cases := []struct {
		name string
		prep func(t *testing.T, path string) func()
		say  string
		is   error
	}{
		{"its key file missing", func(t *testing.T, path string) func() {
			if err := os.Remove(path + ".key"); err != nil {
				t.Fatal(err)
			}
			return nil
		}, "missing", nil},
		{"a kept file in the way", func(t *testing.T, path string) func() {
			if err := os.WriteFile(path+".bolt-imported", []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return nil
		}, "move it away", nil},
		{"in use", func(t *testing.T, path string) func() {
			s, err := openBoltStore(path)
			if err != nil {
				t.Fatal(err)
			}
			return func() { s.Close() }
		}, "stop the msimd", ErrStoreInUse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "msim.db")
			writeOldFile(t, path)
			if release := tc.prep(t, path); release != nil {
				defer release()
			}
			before, _ := os.ReadDir(dir)
			oldFile, _ := os.ReadFile(path)
			_, upgraded, err := UpgradeBoltFile(context.Background(), path)
			if err == nil || upgraded || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.say) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("got %v, %v; want an error naming %s and saying %q", upgraded, err, path, tc.say)
			}
			after, _ := os.ReadDir(dir)
			if len(after) != len(before) {
				t.Errorf("files: got %v, want %v (nothing made)", after, before)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, oldFile) {
				t.Error("the old file changed")
			}
		})
	}
}
