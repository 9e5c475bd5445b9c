package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"sync"

	"github.com/msimircd/msimircd/internal/sqldb"
)

// migrationFiles are the schema's versions: NNNN_name.sql takes the
// database from version NNNN-1 to NNNN.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// loadSchema returns the store's versioned schema, run by internal/sqldb.
// What sets it apart from msimd's, which may share a PostgreSQL database
// with it: its version table (schema_version, from before the two shared
// code), its own advisory lock number and the program named in a
// NewerSchemaError.
var loadSchema = sync.OnceValues(func() (sqldb.Schema, error) {
	m, err := sqldb.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		return sqldb.Schema{}, err
	}
	return sqldb.Schema{
		Program:      program,
		VersionTable: "schema_version",
		LockKey:      7306215870412535, // a number of msimircd's own
		Migrations:   m,
	}, nil
})

// program names this binary in a NewerSchemaError.
const program = "msimircd"

// migrations returns the migration scripts in order; migrations()[i]
// brings a database to version i+1.
func migrations() ([]string, error) {
	s, err := loadSchema()
	return s.Migrations, err
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int {
	m, err := migrations()
	if err != nil {
		panic(err) // the embedded files are part of the binary; a test reads them
	}
	return len(m)
}

// NewerSchemaError refuses a database written by a newer msimircd.
type NewerSchemaError struct {
	Database, Binary int // schema versions
}

func (e *NewerSchemaError) Error() string {
	return (&sqldb.NewerSchemaError{Program: program, Database: e.Database, Binary: e.Binary}).Error()
}

// migrate brings the database to version target, one transaction per
// version. A database newer than this binary is refused with a
// *NewerSchemaError.
func migrate(ctx context.Context, db *sql.DB, d *sqldb.Dialect, target int) error {
	s, err := loadSchema()
	if err != nil {
		return err
	}
	err = sqldb.Migrate(ctx, db, d, s, target)
	var ne *sqldb.NewerSchemaError
	if errors.As(err, &ne) {
		return &NewerSchemaError{Database: ne.Database, Binary: ne.Binary}
	}
	return err
}

// schemaVersion reads the version row; 0 if the database has none yet.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	s, err := loadSchema()
	if err != nil {
		return 0, err
	}
	return sqldb.Version(ctx, q, s)
}
