package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/msimircd/msimircd/internal/pgtest"
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
	requireEngine(t, "postgres")
	return testDB{driver: "postgres", dsn: pgtest.DSN(t)}
}

// open opens the store on the database, closed when the test ends.
func (db testDB) open(t testing.TB, key []byte, opts ...Option) Store {
	t.Helper()
	s, err := Open(context.Background(), db.driver, db.dsn, key, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sqlOf is the sqlStore under what Open returned, for tests that look at
// its fields.
func sqlOf(s Store) *sqlStore {
	return s.(*ownGoroutines).st.(*sqlStore)
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
