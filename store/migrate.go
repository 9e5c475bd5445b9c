package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// migrationFiles are the schema's versions: NNNN_name.sql takes the
// database from version NNNN-1 to NNNN.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the migration scripts in order; migrations()[i]
// brings a database to version i+1.
func migrations() ([]string, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries { // ReadDir sorts by name
		num, _, ok := strings.Cut(e.Name(), "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n != len(out)+1 {
			return nil, fmt.Errorf("migration %s: want a file named %04d_….sql", e.Name(), len(out)+1)
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, string(b))
	}
	return out, nil
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int {
	m, err := migrations()
	if err != nil {
		panic(err) // the embedded files are part of the binary; a test reads them
	}
	return len(m)
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_version (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
)`

// migrate brings the database to version target, one transaction per
// version. A database newer than this binary is refused.
func migrate(ctx context.Context, db *sql.DB, d *dialect, target int) error {
	all, err := migrations()
	if err != nil {
		return err
	}
	for {
		done, err := migrateStep(ctx, db, d, all, target)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next migration if the database is below target,
// and reports whether it was at target already.
func migrateStep(ctx context.Context, db *sql.DB, d *dialect, all []string, target int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if d.lock != "" {
		if _, err := tx.ExecContext(ctx, d.lock); err != nil {
			return false, fmt.Errorf("migration lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, createVersionTable); err != nil {
		return false, fmt.Errorf("schema version table: %w", err)
	}
	v, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	if v > len(all) {
		return false, &NewerSchemaError{Database: v, Binary: len(all)}
	}
	if v >= target {
		return true, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, d.types.Replace(all[v])); err != nil {
		return false, fmt.Errorf("migration to schema version %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, d.rebind(`INSERT INTO schema_version (id, version) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version`), v+1); err != nil {
		return false, fmt.Errorf("migration to schema version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migration to schema version %d: %w", v+1, err)
	}
	return false, nil
}

// schemaVersion reads the version row; 0 if the database has none yet.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE id = 1`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}
