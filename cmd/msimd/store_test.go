package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/msim/server/servertest"
)

// TestImportCommand: "msimd -data NEW import OLD" carries an earlier
// msimd's data file over: its accounts log in, with their user names, and
// the offline IM waiting is delivered. A second import into the same
// database is refused, saying why.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	old, data := filepath.Join(dir, "old.db"), filepath.Join(dir, "msim.db")
	servertest.WriteBoltFile(t, old, false)
	logs, err := cli("", "-data", data, "import", old)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, logs)
	}
	for _, want := range []string{"data file imported", "accounts=2", "contacts=1", "offline_ims=1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the import's log does not say %q:\n%s", want, logs)
		}
	}
	if _, err := cli("", "-data", data, "import", old); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second import: got %v, want an error saying the store is not empty", err)
	}
	addr, _ := start(t, "-data", data)
	if _, m := login(t, addr, "alice@example.com", "Secret1"); !m.Is("lc") || m.StrOr("uniquenick", "") != "alice" {
		t.Errorf("alice's login: got %v, want lc 2 as alice", m)
	}
	c, m := login(t, addr, "bob@example.com", "hunter2")
	if !m.Is("lc") {
		t.Fatalf("bob's login: got %v, want lc 2", m)
	}
	im := c.next(func(m *msim.Message) bool { f, _ := m.Int("f"); return m.Is("bm") && f == int(server.FirstUID) })
	if got := im.StrOr("msg", ""); got != servertest.OldOfflineIM {
		t.Errorf("offline IM: got %q, want the one the old file held", got)
	}
}

// TestImportUsage: import's arguments and its own -key (before or after
// the old file's name) reach it; a missing store or file is a usage error.
func TestImportUsage(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.db")
	servertest.WriteBoltFile(t, old, true)
	key := filepath.Join(dir, "other.key")
	writeFile(t, key, strings.Repeat("k", server.KeySize), 0o600)
	cases := []struct {
		name  string
		args  []string
		usage bool
		say   []string
	}{
		{"no store", []string{"import", old}, true, []string{"-data PATH or -db DSN"}},
		{"no file", []string{"-data", filepath.Join(dir, "a.db"), "import"}, true, nil},
		{"two files", []string{"-data", filepath.Join(dir, "b.db"), "import", old, old}, true, nil},
		{"the old key file by default", []string{"-data", filepath.Join(dir, "c.db"), "import", old}, false, []string{old + ".key", "missing"}},
		{"-key after the file", []string{"-data", filepath.Join(dir, "d.db"), "import", old, "-key", key}, false, []string{key, "does not open"}},
		{"-key before the file", []string{"-data", filepath.Join(dir, "e.db"), "import", "-key", key, old}, false, []string{key, "does not open"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cli("", tc.args...)
			if err == nil || errors.Is(err, errUsage) != tc.usage {
				t.Fatalf("got %v, want an error (usage error: %v)", err, tc.usage)
			}
			for _, w := range tc.say {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestStoreFlags: -data and -db name one store; PostgreSQL needs -key; a
// SQLite path given to -db works as -data does; an earlier msimd's data
// file is refused with the way to import it.
func TestStoreFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		say  string
	}{
		{"both", []string{"-data", "a.db", "-db", "b.db"}, "give one"},
		{"a URL for -data", []string{"-data", "postgres://localhost/msimd"}, "-db"},
		{"postgres without -key", []string{"-db", "postgres://localhost/msimd"}, "needs -key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cli("", append([]string{"-listen", "127.0.0.1:0"}, tc.args...)...)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.say) {
				t.Errorf("got %v, want a usage error saying %q", err, tc.say)
			}
		})
	}
	t.Run("a SQLite path for -db", func(t *testing.T) {
		db := filepath.Join(dir, "net.db")
		if logs, err := cli("pw1\n", "-db", db, "adduser", "ann@example.com"); err != nil {
			t.Fatalf("adduser: %v\n%s", err, logs)
		}
		addr, _ := start(t, "-db", db)
		if _, m := login(t, addr, "ann@example.com", "pw1"); !m.Is("lc") {
			t.Errorf("login: got %v, want lc 2", m)
		}
	})
	t.Run("an earlier msimd's file", func(t *testing.T) {
		old := filepath.Join(dir, "old.db")
		servertest.WriteBoltFile(t, old, false)
		_, err := cli("", "-listen", "127.0.0.1:0", "-data", old)
		if !errors.Is(err, server.ErrOldDataFile) || !strings.Contains(err.Error(), "import "+old) {
			t.Errorf("got %v, want ErrOldDataFile saying how to import %s", err, old)
		}
	})
}

// TestPostgresStore: with MSIMIRCD_TEST_POSTGRES set, adduser and the
// server work on PostgreSQL (-db URL -key FILE).
func TestPostgresStore(t *testing.T) {
	dsn := os.Getenv("MSIMIRCD_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("PostgreSQL not tested: set MSIMIRCD_TEST_POSTGRES to a postgres:// URL")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "msimd_cmd_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	key := filepath.Join(t.TempDir(), "msimd.key")
	if logs, err := cli("pw1\n", "-db", u.String(), "-key", key, "adduser", "ann@example.com"); err != nil {
		t.Fatalf("adduser: %v\n%s", err, logs)
	}
	addr, logs := start(t, "-db", u.String(), "-key", key)
	if _, m := login(t, addr, "ann@example.com", "pw1"); !m.Is("lc") {
		t.Errorf("login: got %v, want lc 2", m)
	}
	if strings.Contains(logs.String(), u.String()) || !strings.Contains(logs.String(), "store=postgres") {
		t.Errorf("the log names the store other than as postgres:\n%s", logs)
	}
}

// TestKeyValueDSNRefused: a PostgreSQL connection string of key=value
// pairs (as msimircd's store.dsn takes) given to -db is refused, and not
// shown (it may hold a password): it is not a SQLite file's path to make
// a database at, and log.
func TestKeyValueDSNRefused(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	const secret = "s3cretPW"
	for _, dsn := range []string{"host=db.invalid password=" + secret, "dbname=msimd password = " + secret} {
		t.Run(dsn, func(t *testing.T) {
			logs, err := cli("pw1\n", "-db", dsn, "adduser", "ann@example.com")
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "postgres://") {
				t.Errorf("got %v, want a usage error asking for a postgres:// URL", err)
			}
			if strings.Contains(logs, secret) || err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("got %v and logs %q, want the password in neither", err, logs)
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 0 {
				t.Errorf("got %v made in the working directory, want nothing", ents)
			}
		})
	}
}

// TestSQLitePathWithEquals: a SQLite file's path with '=' in it ("a=b.db")
// is a path, not a key=value connection string: adduser makes the
// database there.
func TestSQLitePathWithEquals(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, flag := range []string{"-data", "-db"} {
		t.Run(flag, func(t *testing.T) {
			path := strings.TrimPrefix(flag, "-") + "=b.db"
			if out, err := cli("pw1\n", flag, path, "adduser", "ann@example.com"); err != nil {
				t.Fatalf("%s %s: %v\n%s", flag, path, err, out)
			}
			if _, err := os.Stat(filepath.Join(dir, path)); err != nil {
				t.Errorf("no database at %s: %v", path, err)
			}
		})
	}
}
