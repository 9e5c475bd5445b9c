package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// assertFilesLack fails if the SQLite file or its WAL holds s, byte-wise.
func assertFilesLack(t testing.TB, path, s string) {
	t.Helper()
	found := 0
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		found++
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%s holds %q in clear", p, s)
		}
	}
	if found == 0 {
		t.Fatalf("no database file at %s", path)
	}
}

// TestSQLiteFileHasNoPassword searches the database file and its WAL,
// byte-wise, for an MSIM password, while the store is open (the WAL has
// the latest writes) and after it is closed (checkpointed into the file).
func TestSQLiteFileHasNoPassword(t *testing.T) {
	const secret = "Kx7-msim-password-in-clear?"
	db := newSQLiteDB(t)
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: "a@example.com", Password: secret, Channel: "&a"})
	check(t, "UpdateAccount", s.UpdateAccount(context.Background(), "alice", Account{Email: "a@example.com", Password: secret + "2", Channel: "&a"}))
	// The check must be able to fail: other text written is there.
	b, _ := os.ReadFile(db.path + "-wal")
	if !bytes.Contains(b, []byte("a@example.com")) {
		t.Fatalf("the WAL does not hold the account's e-mail: the search would prove nothing")
	}
	assertFilesLack(t, db.path, secret)
	check(t, "Close", s.Close())
	b, _ = os.ReadFile(db.path)
	if !bytes.Contains(b, []byte("a@example.com")) {
		t.Fatalf("the checkpointed file does not hold the account's e-mail: the search would prove nothing")
	}
	assertFilesLack(t, db.path, secret)
}

// TestSQLiteSettings: the file is private to its owner, in WAL mode, with
// foreign keys on, every commit synced and the WAL checkpointed every
// walCheckpointPages pages.
func TestSQLiteSettings(t *testing.T) {
	db := newSQLiteDB(t)
	s := db.open(t, testKey(1))
	st, err := os.Stat(db.path)
	check(t, "stat", err)
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode: got %04o, want 0600", perm)
	}
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "10000"},
		{"wal_autocheckpoint", walCheckpointPages},
	} {
		var got string
		if err := sqlOf(s).db.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s: got %s, want %s", c.pragma, got, c.want)
		}
	}
}

// TestSQLiteCache: WithSQLiteCache sets the connection's page cache, and
// without it SQLite's default stays.
func TestSQLiteCache(t *testing.T) {
	for _, c := range []struct {
		opts []Option
		want string
	}{
		{nil, "-2000"},
		{[]Option{WithSQLiteCache(32 * 1024)}, "-32768"},
	} {
		s := newSQLiteDB(t).open(t, testKey(1), c.opts...)
		var got string
		check(t, "cache_size", sqlOf(s).db.QueryRow("PRAGMA cache_size").Scan(&got))
		if got != c.want {
			t.Errorf("PRAGMA cache_size with %d options: got %s, want %s", len(c.opts), got, c.want)
		}
	}
}

// TestSQLiteRefusesBadFile: a file that is not a database, is damaged or
// cannot be opened stops Open with an error naming it, and is left as it
// was (never reset).
func TestSQLiteRefusesBadFile(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(t *testing.T, path string)
		want string // in the error, besides the path
	}{
		{"garbage", func(t *testing.T, path string) {
			garbage := bytes.Repeat([]byte("this is not an SQLite database\x00\xff"), 300)
			check(t, "write", os.WriteFile(path, garbage, 0o600))
		}, "not a database"},
		{"damaged page", func(t *testing.T, path string) {
			db := testDB{driver: "sqlite", dsn: path, path: path}
			s := db.open(t, testKey(1))
			user, email := userWithAccount(t, s)
			for i := range 300 {
				_, err := s.HoldIM(context.Background(), user, email, HeldIM{Seq: int64(i), Text: strings.Repeat("x", 200)})
				check(t, "HoldIM", err)
			}
			check(t, "Close", s.Close())
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			check(t, "open", err)
			defer f.Close()
			st, _ := f.Stat()
			if st.Size() < 8*4096 {
				t.Fatalf("database of %d bytes: too small to damage a page in the middle", st.Size())
			}
			_, err = f.WriteAt(bytes.Repeat([]byte{0xA5}, 4096), 5*4096)
			check(t, "damage", err)
		}, "damaged"},
		{"a directory", func(t *testing.T, path string) {
			check(t, "mkdir", os.Mkdir(path, 0o700))
		}, "directory"},
		{"no such directory", func(t *testing.T, path string) {}, "no such file"},
		{"unreadable", func(t *testing.T, path string) {
			if os.Geteuid() == 0 {
				t.Skip("root reads any file: run as another user to test an unreadable database")
			}
			db := testDB{driver: "sqlite", dsn: path, path: path}
			check(t, "Close", db.open(t, testKey(1)).Close())
			check(t, "chmod", os.Chmod(path, 0))
		}, "permission denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "msimircd.db")
			if c.name == "no such directory" {
				path = filepath.Join(t.TempDir(), "missing", "msimircd.db")
			}
			c.make(t, path)
			before, _ := os.ReadFile(path)
			s, err := Open(context.Background(), "sqlite", path, testKey(1))
			if err == nil {
				s.Close()
				t.Fatalf("Open: got no error, want one naming %s", path)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: got %q, want it to name %s and say %q", err, path, c.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Errorf("the file changed after a refused Open: got %d bytes, want the %d it had", len(after), len(before))
			}
		})
	}
}

func TestOpenArguments(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, driver, dsn string
		key               []byte
		want              string
	}{
		{"unknown driver", "mysql", filepath.Join(dir, "a.db"), testKey(1), `unknown driver "mysql"`},
		{"short key", "sqlite", filepath.Join(dir, "b.db"), make([]byte, 16), "key of 16 bytes"},
		{"no path", "sqlite", "", testKey(1), "no database file"},
		{"query in path", "sqlite", filepath.Join(dir, "c.db?mode=ro"), testKey(1), "plain path"},
		{"bad postgres DSN", "postgres", "postgres://[::1", testKey(1), "postgres"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(context.Background(), c.driver, c.dsn, c.key)
			if err == nil {
				s.Close()
				t.Fatalf("Open: got no error, want one saying %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: got %q, want it to say %q", err, c.want)
			}
		})
	}
}

// TestLoginNoneWritesNothing: what a login clears that is not there (the
// notes of a user who has none, the failures of a user who made none) is
// only read, so it does not wait for another connection's write
// transaction (as each login would, one after another).
func TestLoginNoneWritesNothing(t *testing.T) {
	db := newSQLiteDB(t)
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	r, _ := db.raw(t)
	tx, err := r.BeginTx(ctx, nil) // _txlock=immediate: holds the write lock
	check(t, "begin", err)
	defer tx.Rollback()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	notes, err := s.TakeNotes(short, "alice")
	if err != nil || len(notes) != 0 {
		t.Errorf("TakeNotes with none, another write open: got %q, %v; want none at once", notes, err)
	}
	if err := s.ClearLoginFailures(short, "account:alice"); err != nil {
		t.Errorf("ClearLoginFailures with none, another write open: got %v, want none at once", err)
	}
}
