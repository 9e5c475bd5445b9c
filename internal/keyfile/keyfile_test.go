package keyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	if _, err := Read(path, 32); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing file: got %v, want fs.ErrNotExist", err)
	}
	key, created, err := LoadOrCreate(path, 32)
	if err != nil || !created || len(key) != 32 {
		t.Fatalf("LoadOrCreate: got %d bytes, created %v, %v", len(key), created, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %04o, want 0600", st.Mode().Perm())
	}
	again, created, err := LoadOrCreate(path, 32)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Fatalf("second LoadOrCreate: created %v, same %v, %v", created, bytes.Equal(again, key), err)
	}
	if _, err := Create(path, 32); err == nil {
		t.Error("Create over an existing file: got no error")
	}
	for _, tc := range []struct {
		name string
		prep func(p string)
		want string
	}{
		{"readable by others", func(p string) { _ = os.Chmod(p, 0o644) }, "chmod 600"},
		{"wrong size", func(p string) { _ = os.WriteFile(p, []byte("short"), 0o600) }, "damaged"},
		{"a directory", func(p string) { _ = os.Remove(p); _ = os.Mkdir(p, 0o700) }, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "k")
			if _, err := Create(p, 32); err != nil {
				t.Fatal(err)
			}
			tc.prep(p)
			if _, err := Read(p, 32); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestLoadOrCreateRace: processes starting at once all get the one key.
func TestLoadOrCreateRace(t *testing.T) {
	for range 50 {
		path := filepath.Join(t.TempDir(), "k")
		keys := make(chan []byte, 8)
		errs := make(chan error, 8)
		for range 8 {
			go func() {
				k, _, err := LoadOrCreate(path, 32)
				keys <- k
				errs <- err
			}()
		}
		var first []byte
		for range 8 {
			k, err := <-keys, <-errs
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = k
			} else if !bytes.Equal(first, k) {
				t.Fatal("two starts got different keys")
			}
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Fatalf("left %d files, want only the key", len(entries))
		}
	}
}

// TestReadFIFO: a named pipe at the key's path is refused as not a
// regular file, rather than waiting for a writer that never comes (open
// of a pipe blocks until one does).
func TestReadFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if _, err := Read(path, 32); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("got %v, want an error saying not a regular file", err)
	}
}

// TestReadOwner: a key file owned by another user (not root) is refused,
// as ssh and PostgreSQL refuse such key files: its owner could read or
// replace the key, or make it readable by all at any time. root reads any
// owner's key; a key of root's may let its group read it (0640), one of
// the reader's may not. Read as another user where the test cannot chown.
func TestReadOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	if _, err := Create(path, 32); err != nil {
		t.Fatal(err)
	}
	me := os.Geteuid()
	defer func() { geteuid = os.Geteuid }()
	for _, tc := range []struct {
		name  string
		euid  int
		perm  os.FileMode
		valid string // "" if Read takes the key
	}{
		{"the reader's, 0600", me, 0o600, ""},
		{"the reader's, 0400", me, 0o400, ""},
		{"the reader's, group may read", me, 0o640, "chmod 600"},
		{"another user's", me + 1, 0o600, fmt.Sprintf("owned by user %d", me)},
		{"another user's, read by root", 0, 0o600, ""},
	} {
		if me == 0 && (tc.euid == me+1 || tc.perm == 0o640) {
			continue // the reader's is root's: see the cases below
		}
		geteuid = func() int { return tc.euid }
		check(t, tc.name, path, tc.perm, tc.valid)
	}
	geteuid = os.Geteuid

	// The owner checks need the file given to root and to another user:
	// as access sees them, and, when the test runs as root, on disk.
	for _, tc := range []struct {
		name      string
		uid, euid int
		perm      os.FileMode
		valid     string
	}{
		{"root's, its group may read", 0, 1000, 0o640, ""},
		{"root's, read-only for its group", 0, 1000, 0o440, ""},
		{"root's, its group may write", 0, 1000, 0o660, "chmod 640"},
		{"root's, others may read", 0, 1000, 0o644, "chmod 640"},
		{"another user's, read by a third", 65534, 1000, 0o600, "owned by user 65534"},
		{"another user's, read by root", 65534, 0, 0o600, ""},
		{"another user's, group may read, read by root", 65534, 0, 0o640, "chmod 600"},
	} {
		err := access(path, tc.perm, tc.uid, tc.euid)
		if (err == nil) != (tc.valid == "") || (err != nil && !strings.Contains(err.Error(), tc.valid)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.valid)
		}
	}
	if me != 0 {
		return
	}
	for _, tc := range []struct {
		uid   int
		euid  int
		perm  os.FileMode
		valid string
	}{
		{65534, 1000, 0o600, "owned by user 65534"},
		{0, 1000, 0o640, ""},
		{65534, 0, 0o600, ""},
	} {
		if err := os.Chown(path, tc.uid, tc.uid); err != nil {
			t.Skipf("chown: %v", err)
		}
		geteuid = func() int { return tc.euid }
		check(t, fmt.Sprintf("uid %d read by %d", tc.uid, tc.euid), path, tc.perm, tc.valid)
		geteuid = os.Geteuid
	}
}

// check reads the key at path with its mode set to perm, and checks that
// Read took it (valid "") or refused it with an error holding valid.
func check(t *testing.T, name, path string, perm os.FileMode, valid string) {
	t.Helper()
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	_, err := Read(path, 32)
	if (err == nil) != (valid == "") || (err != nil && !strings.Contains(err.Error(), valid)) {
		t.Errorf("%s: got %v, want %q", name, err, valid)
	}
}

// TestCreateWithoutHardLinks: on a file system that has no hard links
// (FAT, some FUSE and network ones) Create still writes the key, once.
func TestCreateWithoutHardLinks(t *testing.T) {
	link = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
	}
	t.Cleanup(func() { link = os.Link })
	path := filepath.Join(t.TempDir(), "k")
	key, err := Create(path, 32)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if got, err := Read(path, 32); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("Read: same key %v, %v", bytes.Equal(got, key), err)
	}
	if _, err := Create(path, 32); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file: got %v, want fs.ErrExist", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("left %d files, want only the key", len(entries))
	}
}
