package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// hashForms are the ways a password hash could show in a file: raw, hex,
// base64 and as the JSON array encoding/json writes for a byte array.
func hashForms(pw string) map[string][]byte {
	h := msim.HashPassword(pw)
	j, _ := json.Marshal(h)
	return map[string][]byte{
		"raw":    h[:],
		"hex":    []byte(hex.EncodeToString(h[:])),
		"HEX":    []byte(strings.ToUpper(hex.EncodeToString(h[:]))),
		"base64": []byte(base64.StdEncoding.EncodeToString(h[:])),
		"json":   j,
	}
}

// noHashIn fails if the file at path (or a SQLite WAL beside it) holds
// pw's hash in any form.
func noHashIn(t *testing.T, path, pw string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if wal, err := os.ReadFile(path + "-wal"); err == nil {
		b = append(b, wal...)
	}
	for form, h := range hashForms(pw) {
		if bytes.Contains(b, h) {
			t.Errorf("%s holds the hash of %q (%s)", filepath.Base(path), pw, form)
		}
	}
}

func openStore(t *testing.T, path string, o StoreOptions) Store {
	t.Helper()
	s, err := OpenStore(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// loginWorks serves store and reports whether email can log in with pw.
func loginWorks(t *testing.T, store Store, email, pw string) bool {
	t.Helper()
	srv, err := New(Config{}, store, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, serve(t, srv))
	return c.tryLogin(email, pw).Is("lc")
}

func writeKey(t *testing.T, path string, mode os.FileMode, n int) {
	t.Helper()
	key := make([]byte, n)
	_, _ = rand.Read(key)
	if err := os.WriteFile(path, key, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSealedHashAtRest: the data file holds no password hash; its key file
// is made 0600 at first start; a copy of the data file opens only with the
// right key, so the copy alone lets nobody log in.
func TestSealedHashAtRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "msim.db")
	store := openStore(t, path, StoreOptions{})
	srv, err := New(Config{}, store, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	if err := store.UpdateAccount(FirstUID, func(a *Account) error { a.DisplayName = "Alice"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	noHashIn(t, path, "Secret1")
	st, err := os.Stat(path + ".key")
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != KeySize {
		t.Fatalf("key file: got %v, %v; want mode 0600, %d bytes", st, err, KeySize)
	}

	other := filepath.Join(t.TempDir(), "other.key")
	writeKey(t, other, 0o600, KeySize)
	cases := []struct {
		name    string
		keyFile string
		wantErr string // "" = opens
	}{
		{"another key", other, ErrWrongKey.Error()},
		{"no key (a copy without it)", filepath.Join(t.TempDir(), "missing.key"), "missing"},
		{"the right key", path + ".key", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "copy.db")
			copyFile(t, path, cp)
			s, err := OpenStore(context.Background(), cp, StoreOptions{KeyFile: tc.keyFile})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("open: got %v, want an error saying %q", err, tc.wantErr)
				}
				if _, err := os.Stat(tc.keyFile); tc.wantErr == "missing" && err == nil {
					t.Error("a key file was created for a sealed data file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if !loginWorks(t, s, "alice@example.com", "Secret1") {
				t.Error("login with the right key failed")
			}
		})
	}
}

// TestSealedRecordNeedsItsKey: with the key check removed from a copy,
// the sealed hashes themselves refuse another key.
func TestSealedRecordNeedsItsKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msim.db")
	store := openStore(t, path, StoreOptions{})
	if err := store.CreateAccount(&Account{Email: "alice@example.com", Hash: msim.HashPassword("Secret1")}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`DELETE FROM msim_meta WHERE name = 'key_check'`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	writeKey(t, other, 0o600, KeySize)
	if _, err := OpenStore(context.Background(), path, StoreOptions{KeyFile: other}); !errors.Is(err, ErrWrongKey) {
		t.Errorf("open with another key: got %v, want ErrWrongKey", err)
	}
	s := openStore(t, path, StoreOptions{})
	defer s.Close()
	if !loginWorks(t, s, "alice@example.com", "Secret1") {
		t.Error("login with the right key failed")
	}
}

// TestKeyFileRefused: a key file others may read, or of the wrong size, is
// refused with a clear error.
func TestKeyFileRefused(t *testing.T) {
	cases := []struct {
		name    string
		mode    os.FileMode
		size    int
		wantErr string
	}{
		{"readable by others", 0o644, KeySize, "chmod 600"},
		// Writable by the group: refused whoever owns it (a key of root's,
		// as the test's is when it runs as root, may let its group read it).
		{"writable by the group", 0o660, KeySize, "chmod 600"},
		{"too short", 0o600, 16, "want exactly 32 bytes"},
		{"too long", 0o600, 64, "want exactly 32 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			key := filepath.Join(dir, "msim.key")
			writeKey(t, key, tc.mode, tc.size)
			s, err := OpenStore(context.Background(), filepath.Join(dir, "msim.db"), StoreOptions{KeyFile: key})
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), key) {
				t.Errorf("got %v, want an error naming %s and saying %q", err, key, tc.wantErr)
			}
		})
	}
}
