// Package pgtest gives tests a PostgreSQL schema of their own in the
// database MSIMIRCD_TEST_POSTGRES names, or skips them, saying how to run
// them, when it is unset. Ownership: test helpers only.
package pgtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver
)

// Env names the variable that holds the PostgreSQL connection string.
const Env = "MSIMIRCD_TEST_POSTGRES"

// DSN returns a connection string for a schema made for this test in
// the database Env names, dropped when the test ends (after every cleanup
// registered later, so after the test's own handles are closed). It skips
// the test when Env is unset, or fails it under .ci/run (CI=true), which
// always sets Env.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		msg := fmt.Sprintf("PostgreSQL not tested: set %s to a connection string (e.g. postgres://postgres@127.0.0.1:54329/msimircd_test?sslmode=disable) to run this test against it", Env)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (.ci/run sets it)")
		}
		t.Skip(msg)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("postgres %s: %v", Env, err)
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
	return WithSearchPath(t, dsn, schema)
}

// WithSearchPath adds search_path to a DSN in either of pgx's forms.
func WithSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	return WithParam(t, dsn, "search_path", schema)
}

// WithParam adds a run-time parameter (a setting of the connection's
// session) to a DSN in either of pgx's forms.
func WithParam(t testing.TB, dsn, name, value string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("postgres: %s is not a URL: %v", Env, err)
		}
		q := u.Query()
		q.Set(name, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + name + "=" + value
}
