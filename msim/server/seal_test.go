package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

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

// noHashIn fails if the file at path holds pw's hash in any form.
func noHashIn(t *testing.T, path, pw string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for form, h := range hashForms(pw) {
		if bytes.Contains(b, h) {
			t.Errorf("%s holds the hash of %q (%s)", filepath.Base(path), pw, form)
		}
	}
}

func openStore(t *testing.T, path string, o FileStoreOptions) Store {
	t.Helper()
	s, err := OpenFileStoreWith(path, o)
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
	store := openStore(t, path, FileStoreOptions{})
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
			s, err := OpenFileStoreWith(cp, FileStoreOptions{KeyFile: tc.keyFile})
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
	store := openStore(t, path, FileStoreOptions{})
	if err := store.CreateAccount(&Account{Email: "alice@example.com", Hash: msim.HashPassword("Secret1")}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Delete(keyCheck) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	writeKey(t, other, 0o600, KeySize)
	if _, err := OpenFileStoreWith(path, FileStoreOptions{KeyFile: other}); !errors.Is(err, ErrWrongKey) {
		t.Errorf("open with another key: got %v, want ErrWrongKey", err)
	}
	s := openStore(t, path, FileStoreOptions{})
	defer s.Close()
	if !loginWorks(t, s, "alice@example.com", "Secret1") {
		t.Error("login with the right key failed")
	}
}

// TestSealMigration: a data file from before sealing (hashes in clear, no
// offline counts) is sealed and compacted on open: no copy of the hash is
// left, logins work, and its stored offline mail counts toward the caps.
func TestSealMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	writeLegacyFile(t, path)
	s := openStore(t, path, FileStoreOptions{})
	err := s.AddOffline(FirstUID+1, OfflineMessage{From: FirstUID, Body: strings.Repeat("z", 20)}, OfflineLimits{SenderBytes: 60})
	if !errors.Is(err, errOfflineSenderFull) {
		t.Errorf("offline mail after migration: got %v, want errOfflineSenderFull (50 bytes were waiting)", err)
	}
	s.Close()
	noHashIn(t, path, "Secret1")
	noHashIn(t, path, "hunter2")
	s = openStore(t, path, FileStoreOptions{})
	defer s.Close()
	if !loginWorks(t, s, "bob@example.com", "hunter2") {
		t.Error("login after migration failed")
	}
}

// writeLegacyFile writes a data file the way the store did before hashes
// were sealed: alice and bob, their hashes in clear, and 50 bytes of
// offline mail from alice to bob.
func writeLegacyFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bAccounts, bEmail, bName, bContacts, bOffline} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for _, a := range []Account{
			{UID: FirstUID, Email: "alice@example.com", UserName: "alice", Hash: msim.HashPassword("Secret1")},
			{UID: FirstUID + 1, Email: "bob@example.com", UserName: "bob", Hash: msim.HashPassword("hunter2")},
		} {
			if err := putJSON(tx.Bucket(bAccounts), uidKey(a.UID), a); err != nil {
				return err
			}
			if err := tx.Bucket(bEmail).Put([]byte(a.Email), uidKey(a.UID)); err != nil {
				return err
			}
			if _, err := tx.Bucket(bAccounts).NextSequence(); err != nil {
				return err
			}
		}
		m := OfflineMessage{From: FirstUID, Body: strings.Repeat("m", 50)}
		return putJSON(tx.Bucket(bOffline), binary.BigEndian.AppendUint64(uidKey(FirstUID+1), 1), m)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, hashForms("Secret1")["json"]) {
		t.Fatal("the legacy file does not hold the hash in clear; the test proves nothing")
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
		{"readable by the group", 0o640, KeySize, "chmod 600"},
		{"too short", 0o600, 16, "want exactly 32 bytes"},
		{"too long", 0o600, 64, "want exactly 32 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			key := filepath.Join(dir, "msim.key")
			writeKey(t, key, tc.mode, tc.size)
			s, err := OpenFileStoreWith(filepath.Join(dir, "msim.db"), FileStoreOptions{KeyFile: key})
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), key) {
				t.Errorf("got %v, want an error naming %s and saying %q", err, key, tc.wantErr)
			}
		})
	}
}

// TestStoreInUse: a second open of a held data file says it is in use.
func TestStoreInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "msim.db")
	s := openStore(t, path, FileStoreOptions{})
	defer s.Close()
	_, err := OpenFileStoreWith(path, FileStoreOptions{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrStoreInUse) || !strings.Contains(err.Error(), path) {
		t.Errorf("second open: got %v, want ErrStoreInUse naming the file", err)
	}
}
