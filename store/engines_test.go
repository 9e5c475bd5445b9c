package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/internal/sqldb"
)

// postgresEnv names the variable that holds a PostgreSQL DSN for the
// suite; unset, the PostgreSQL runs are skipped.
const postgresEnv = "MSIMIRCD_TEST_POSTGRES"

// testDB is an empty database of one engine made for one test.
type testDB struct {
	driver string
	dsn    string
	path   string // the SQLite file; "" for PostgreSQL
}

func testKey(b byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// engines make a fresh empty database each: SQLite always, PostgreSQL
// when postgresEnv is set (else its runs skip, saying why).
var engines = []struct {
	name  string
	fresh func(testing.TB) testDB
}{
	{"sqlite", newSQLiteDB},
	{"postgres", newPostgresDB},
}

func newSQLiteDB(t testing.TB) testDB {
	path := filepath.Join(t.TempDir(), "msimircd.db")
	return testDB{driver: "sqlite", dsn: path, path: path}
}

// requireEngine skips the test, saying why, if the engine cannot be
// tested here; for PostgreSQL it returns the DSN.
func requireEngine(t testing.TB, name string) string {
	t.Helper()
	if name != "postgres" {
		return ""
	}
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skipf("PostgreSQL not tested: set %s to a connection string (e.g. postgres://postgres@127.0.0.1:54329/msimircd_test?sslmode=disable) to run the suite against it", postgresEnv)
	}
	return dsn
}

// newPostgresDB makes a schema of its own in the database the DSN names
// and drops it when the test ends, so runs and tests never collide.
func newPostgresDB(t testing.TB) testDB {
	t.Helper()
	dsn := requireEngine(t, "postgres")
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("postgres %s: %v", postgresEnv, err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "msimircd_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("postgres: create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("postgres: drop schema %s: %v", schema, err)
		}
	})
	return testDB{driver: "postgres", dsn: withSearchPath(t, dsn, schema)}
}

// withSearchPath adds search_path to a DSN in either of pgx's forms.
func withSearchPath(t testing.TB, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("postgres: %s is not a URL: %v", postgresEnv, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// open opens the store on the database, closed when the test ends.
func (db testDB) open(t testing.TB, key []byte) *sqlStore {
	t.Helper()
	s, err := Open(context.Background(), db.driver, db.dsn, key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*sqlStore)
}

// raw opens the database without the store, for tests that look under it
// or set it up by hand.
func (db testDB) raw(t testing.TB) (*sql.DB, *sqldb.Dialect) {
	t.Helper()
	d := dialects[db.driver]
	dsn := db.dsn
	if db.driver == "sqlite" {
		dsn += sqliteParams
	}
	r, err := sql.Open(d.Driver, dsn)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	if db.driver == "sqlite" {
		r.SetMaxOpenConns(1)
	}
	t.Cleanup(func() { r.Close() })
	return r, d
}
