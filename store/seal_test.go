package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store.key")
	key, err := LoadOrCreateKey(path)
	check(t, "LoadOrCreateKey (create)", err)
	if len(key) != KeySize || bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatalf("new key: got %x, want %d random bytes", key, KeySize)
	}
	st, err := os.Stat(path)
	check(t, "stat", err)
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode: got %04o, want 0600", perm)
	}
	again, err := LoadOrCreateKey(path)
	check(t, "LoadOrCreateKey (load)", err)
	if !bytes.Equal(again, key) {
		t.Errorf("second load: got %x, want the key created first %x", again, key)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".key-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	other, err := LoadOrCreateKey(filepath.Join(dir, "other.key"))
	check(t, "LoadOrCreateKey (another)", err)
	if bytes.Equal(other, key) {
		t.Error("two new keys are equal, want random ones")
	}
}

// TestLoadOrCreateKeyRace: starts that create the key at the same moment
// all get the one key that was written.
func TestLoadOrCreateKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.key")
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(path) })
	}
	wg.Wait()
	onDisk, err := LoadOrCreateKey(path)
	check(t, "LoadOrCreateKey after the race", err)
	for i := range n {
		if errs[i] != nil || !bytes.Equal(keys[i], onDisk) {
			t.Errorf("start %d: got %x, %v, want the key on disk %x", i, keys[i], errs[i], onDisk)
		}
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(path string) error
		want string
	}{
		// Writable by the group: refused whoever owns it (a key of root's,
		// as the tests' is when they run as root, may let its group read it).
		{"writable by group", func(p string) error { return os.WriteFile(p, make([]byte, KeySize), 0o660) }, "mode 0660"},
		{"readable by others", func(p string) error { return os.WriteFile(p, make([]byte, KeySize), 0o604) }, "mode 0604"},
		{"too short", func(p string) error { return os.WriteFile(p, make([]byte, KeySize-1), 0o600) }, "want exactly 32 bytes, found 31"},
		{"too long", func(p string) error { return os.WriteFile(p, make([]byte, KeySize+1), 0o600) }, "want exactly 32 bytes, found 33"},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }, "found 0"},
		{"a directory", func(p string) error { return os.Mkdir(p, 0o700) }, "not a regular file"},
		{"no such directory", func(p string) error { return nil }, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.key")
			if c.name == "no such directory" {
				path = filepath.Join(t.TempDir(), "missing", "store.key")
			}
			if err := c.make(path); err != nil {
				t.Fatal(err)
			}
			if c.name != "no such directory" && c.name != "a directory" {
				// WriteFile's mode is cut by the umask; set it exactly.
				st, _ := os.Stat(path)
				check(t, "chmod", os.Chmod(path, st.Mode().Perm()|modeOf(c.want)))
			}
			key, err := LoadOrCreateKey(path)
			if err == nil {
				t.Fatalf("LoadOrCreateKey: got key %x, want an error saying %q", key, c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("LoadOrCreateKey: got %q, want it to name %s and say %q", err, path, c.want)
			}
		})
	}
}

// modeOf reads the mode a case expects ("mode 0660") so the file gets it
// whatever the umask.
func modeOf(want string) os.FileMode {
	switch want {
	case "mode 0660":
		return 0o660
	case "mode 0604":
		return 0o604
	}
	return 0
}

func TestSealer(t *testing.T) {
	s, err := newSealer(testKey(1))
	check(t, "newSealer", err)
	ad := passwordAD("alice", "a@example.com")
	sealed, err := s.seal([]byte("hunter2"), ad)
	check(t, "seal", err)
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatalf("sealed value holds the password in clear: %x", sealed)
	}
	again, _ := s.seal([]byte("hunter2"), ad)
	if bytes.Equal(sealed, again) {
		t.Error("sealing twice gave the same bytes, want a fresh nonce each time")
	}
	plain, err := s.open(sealed, ad)
	if err != nil || string(plain) != "hunter2" {
		t.Fatalf("open: got %q, %v, want hunter2", plain, err)
	}
	wrong, _ := newSealer(testKey(2))
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for _, c := range []struct {
		name   string
		s      *sealer
		sealed []byte
		ad     string
		want   error
	}{
		{"another key", wrong, sealed, ad, ErrWrongKey},
		{"another account", s, sealed, passwordAD("alice", "b@example.com"), ErrWrongKey},
		{"another user", s, sealed, passwordAD("bob", "a@example.com"), ErrWrongKey},
		{"altered", s, flipped, ad, ErrWrongKey},
		{"truncated", s, sealed[:20], ad, nil},
		{"unknown format", s, append([]byte{9}, sealed[1:]...), ad, nil},
		{"empty", s, nil, ad, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.s.open(c.sealed, c.ad)
			if err == nil {
				t.Fatalf("open: got %q, want an error", got)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("open: got %v, want %v", err, c.want)
			}
		})
	}
}
