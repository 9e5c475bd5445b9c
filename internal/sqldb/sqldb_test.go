package sqldb

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/msimircd/msimircd/internal/pgtest"
)

func TestRebind(t *testing.T) {
	cases := []struct {
		d    *Dialect
		in   string
		want string
	}{
		{SQLite, "SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = ? AND c = ?"},
		{Postgres, "SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{Postgres, "SELECT 1", "SELECT 1"},
	}
	for _, tc := range cases {
		if got := tc.d.Rebind(tc.in); got != tc.want {
			t.Errorf("%s Rebind(%q): got %q, want %q", tc.d.Name, tc.in, got, tc.want)
		}
	}
}

func TestIsPostgresURL(t *testing.T) {
	for in, want := range map[string]bool{
		"postgres://u@h/db": true, "postgresql://h/db": true, "/var/lib/msimd/msim.db": false,
		"msim.db": false, "host=/run/postgresql dbname=x": false,
	} {
		if got := IsPostgresURL(in); got != want {
			t.Errorf("IsPostgresURL(%q): got %v, want %v", in, got, want)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	cases := []struct {
		name    string
		files   []string
		want    int
		wantErr string
	}{
		{"in order", []string{"0001_a.sql", "0002_b.sql"}, 2, ""},
		{"a gap", []string{"0001_a.sql", "0003_c.sql"}, 0, "0002_"},
		{"no number", []string{"init.sql"}, 0, "0001_"},
		{"not sql", []string{"0001_a.txt"}, 0, "0001_"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tc.files {
				fsys["m/"+f] = &fstest.MapFile{Data: []byte("CREATE TABLE x (a INTEGER);")}
			}
			got, err := LoadMigrations(fsys, "m")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d migrations (%v), want %d", len(got), err, tc.want)
			}
		})
	}
}

// TestMigrateSQLite: migrations apply once each, in order, to the version
// asked; a database newer than the schema is refused; a uniqueness
// refusal names its column.
func TestMigrateSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.db")
	db, where, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !strings.Contains(where, path) {
		t.Errorf("where: got %q, want it to name %s", where, path)
	}
	s := Schema{Program: "testd", VersionTable: "t_version", Migrations: []string{
		"CREATE TABLE t (id {{id}}, name TEXT NOT NULL UNIQUE, b {{bytes}})",
		"ALTER TABLE t ADD COLUMN c INTEGER",
	}}
	for _, target := range []int{1, 1, 2} {
		if err := Migrate(ctx, db, SQLite, s, target); err != nil {
			t.Fatalf("migrate to %d: %v", target, err)
		}
		if v, err := Version(ctx, db, s); err != nil || v != target {
			t.Errorf("version: got %d (%v), want %d", v, err, target)
		}
	}
	if _, err := db.Exec("INSERT INTO t (name, c) VALUES ('a', 1)"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("INSERT INTO t (name, c) VALUES ('a', 2)")
	if name, ok := UniqueViolation(err); !ok || name != "t.name" {
		t.Errorf("UniqueViolation(%v): got %q, %v; want t.name, true", err, name, ok)
	}
	if _, ok := UniqueViolation(errors.New("other")); ok {
		t.Error("UniqueViolation of another error: got true")
	}
	s.Migrations = s.Migrations[:1]
	err = Migrate(ctx, db, SQLite, s, 1)
	var newer *NewerSchemaError
	if !errors.As(err, &newer) || newer.Database != 2 || newer.Binary != 1 || !strings.Contains(err.Error(), "upgrade testd") {
		t.Errorf("newer database: got %v, want a NewerSchemaError (2 > 1) saying upgrade testd", err)
	}
}

// TestSQLiteSettings: the connection OpenSQLite opens has the settings
// SQLiteParams promises, among them a statement journal kept in memory
// (temp_store 2): a statement of many rows inside a transaction (the
// history's batches) spills its journal past 64 KiB, to a temporary file
// otherwise, one write system call per page.
func TestSQLiteSettings(t *testing.T) {
	ctx := context.Background()
	db, _, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "t.db"), "cache_size(-4096)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
		{"temp_store", "2"},
		{"cache_size", "-4096"},
	} {
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s: got %s, want %s", c.pragma, got, c.want)
		}
	}
}

// TestPostgresKeepsABurstsConnections: after a burst that used every
// connection of the pool, the pool keeps them all for the next one.
func TestPostgresKeepsABurstsConnections(t *testing.T) {
	const conns = 8
	db, _, err := OpenPostgres(context.Background(), pgtest.DSN(t), conns)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	defer db.Close()
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
		hold    = make(chan struct{})
	)
	started.Add(conns)
	for range conns {
		wg.Go(func() {
			tx, err := db.Begin() // a connection each, held until all have one
			started.Done()
			if err != nil {
				t.Errorf("begin: %v", err)
				return
			}
			<-hold
			if err := tx.Rollback(); err != nil {
				t.Errorf("rollback: %v", err)
			}
		})
	}
	started.Wait()
	close(hold)
	wg.Wait()
	if st := db.Stats(); st.OpenConnections != conns || st.Idle != conns {
		t.Errorf("after a burst on %d connections: %d open, %d idle; want all %d kept", conns, st.OpenConnections, st.Idle, conns)
	}
}

// TestPostgresDSNErrorHidesPassword: a connection string that does not
// parse is refused without any of its text, as pgx's own redaction misses
// passwords it cannot place (spaces around '=', an escaped quote, an '@'
// in a URL's password) and pgx's own settings are parsed again by the
// driver.
func TestPostgresDSNErrorHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"host=h password = hunter2secret sslmode=bogus",
		"host=h port=abc password\t=hunter2secret",
		`host=h password='hunter2\' secret' sslmode=bogus`,
		"postgres://u:hunter2@secret@h/db?sslmode=bogus",
		"host=h password = hunter2secret statement_cache_capacity=abc",
		"postgres://u:hunter2secret@h/db?default_query_exec_mode=abc",
		"host=h password=hunter2 secret dbname=d",
	} {
		t.Run(dsn, func(t *testing.T) {
			_, _, err := OpenPostgres(context.Background(), dsn, 1)
			if err == nil {
				t.Fatal("got no error")
			}
			for _, part := range []string{"hunter2", "secret"} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("got %q, want an error without the password", err)
				}
			}
			if !strings.Contains(err.Error(), "postgres") {
				t.Errorf("got %q, want it to name postgres", err)
			}
		})
	}
}

// TestMigrateDamagedVersion: a version row no binary wrote (below zero)
// and a target beyond the schema are errors, not panics.
func TestMigrateDamagedVersion(t *testing.T) {
	ctx := context.Background()
	db, _, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := Schema{Program: "testd", VersionTable: "t_version", Migrations: []string{"CREATE TABLE t (a INTEGER)"}}
	if err := Migrate(ctx, db, SQLite, s, 1); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db, SQLite, s, 2); err == nil {
		t.Error("migrate beyond the schema: got no error")
	}
	if _, err := db.Exec("INSERT INTO t_version (id, version) VALUES (1, -1) ON CONFLICT (id) DO UPDATE SET version = -1"); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db, SQLite, s, 1); err == nil || !strings.Contains(err.Error(), "-1") {
		t.Errorf("version -1: got %v, want an error naming it", err)
	}
}

// TestIsKeyValueDSN: libpq's key=value connection strings are told from
// SQLite paths that hold '=' in a name libpq does not know.
func TestIsKeyValueDSN(t *testing.T) {
	for in, want := range map[string]bool{
		"host=/run/postgresql dbname=x": true, "dbname = x": true, "user=u password=p": true,
		"sslmode=disable": true, " Password\t=pw": true, "service=gw": true,
		"a=b.db": false, "data/x=y.db": false, "msim.db": false, "/var/lib/a b=c.db": false,
		"postgres://u@h/db?host=x": false, "": false, "./host=x.db": false,
		"hots=db pasword=s3cret": true, "oauth_client_secret=x": true, "a=b c=d.db": true,
	} {
		if got := IsKeyValueDSN(in); got != want {
			t.Errorf("IsKeyValueDSN(%q): got %v, want %v", in, got, want)
		}
	}
}
