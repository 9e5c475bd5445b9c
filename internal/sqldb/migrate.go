package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Schema is one store's versioned schema.
type Schema struct {
	// Program names the binary in NewerSchemaError ("msimd").
	Program string
	// VersionTable is the table holding the schema's version row: one of
	// its own, so stores can share a PostgreSQL database.
	VersionTable string
	// LockKey is the PostgreSQL advisory lock that keeps two processes
	// from migrating the schema at once.
	LockKey int64
	// Migrations are the scripts in order: Migrations[i] takes the
	// database from version i to i+1.
	Migrations []string
}

// LoadMigrations reads dir of fsys: files named NNNN_name.sql, numbered
// from 0001 without gaps.
func LoadMigrations(fsys fs.FS, dir string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries { // ReadDir sorts by name
		num, _, ok := strings.Cut(e.Name(), "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n != len(out)+1 || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration %s: want a file named %04d_….sql", e.Name(), len(out)+1)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, string(b))
	}
	return out, nil
}

// NewerSchemaError refuses a database written by a newer binary.
type NewerSchemaError struct {
	Program          string
	Database, Binary int // schema versions
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this %s (%d); upgrade %s", e.Database, e.Program, e.Binary, e.Program)
}

// Migrate brings the database to version target, one transaction per
// version. A database newer than the schema is refused with a
// *NewerSchemaError.
func Migrate(ctx context.Context, db *sql.DB, d *Dialect, s Schema, target int) error {
	if target < 0 || target > len(s.Migrations) {
		return fmt.Errorf("migration to schema version %d: %s knows versions 0 to %d", target, s.Program, len(s.Migrations))
	}
	for {
		done, err := migrateStep(ctx, db, d, s, target)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next migration if the database is below target,
// and reports whether it was at target already.
func migrateStep(ctx context.Context, db *sql.DB, d *Dialect, s Schema, target int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if d == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", s.LockKey); err != nil {
			return false, fmt.Errorf("migration lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.VersionTable+` (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
)`); err != nil {
		return false, fmt.Errorf("schema version table: %w", err)
	}
	v, err := Version(ctx, tx, s)
	if err != nil {
		return false, err
	}
	if v > len(s.Migrations) {
		return false, &NewerSchemaError{Program: s.Program, Database: v, Binary: len(s.Migrations)}
	}
	if v >= target {
		return true, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, d.Types.Replace(s.Migrations[v])); err != nil {
		return false, fmt.Errorf("migration to schema version %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO `+s.VersionTable+` (id, version) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version`), v+1); err != nil {
		return false, fmt.Errorf("migration to schema version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migration to schema version %d: %w", v+1, err)
	}
	return false, nil
}

// Version reads the schema's version row; 0 if the database has none yet,
// an error if the row holds a version below 0.
func Version(ctx context.Context, q Querier, s Schema) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM `+s.VersionTable+` WHERE id = 1`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	if v < 0 { // no binary writes one: migrating would index below the first
		return 0, fmt.Errorf("schema version %d: the version row is damaged", v)
	}
	return v, nil
}
