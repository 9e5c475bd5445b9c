package server

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/msim"
)

// The durable Store is one implementation over database/sql for both
// engines of internal/sqldb: a SQLite file (msimd -data, the embedded
// network's msim.db) and PostgreSQL (msimd -db postgres://…, which several
// msimd nodes share). Its schema is migrations/*.sql.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schema is the store's versioned schema; its tables start with msim_.
func schema() sqldb.Schema {
	m, err := sqldb.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded files are part of the binary; a test reads them
	}
	return sqldb.Schema{Program: "msimd", VersionTable: "msim_schema_version", LockKey: 7306215870412536, Migrations: m}
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(schema().Migrations) }

// ErrOldDataFile reports a data file of an earlier msimd (a bbolt file)
// where a SQLite database is expected: ImportBolt carries it over.
var ErrOldDataFile = errors.New("msim/server: the data file is an earlier msimd's (bbolt)")

// StoreOptions tune OpenStore. Zero fields take the defaults.
type StoreOptions struct {
	// KeyFile holds the key sealing the password hashes. For a SQLite file
	// it defaults to the file's path + ".key"; PostgreSQL needs one (every
	// node sharing the database uses the same key). It is created, mode
	// 0600, when the database has nothing sealed yet; a key file others may
	// read is refused.
	KeyFile string
}

// opTimeout bounds one store operation (the Store's methods take no
// context): a database that stops answering fails them rather than
// holding sessions forever.
const opTimeout = 30 * time.Second

// Pool sizes: SQLite has one writer and a few readers (WAL lets them read
// while it writes); PostgreSQL one pool for both.
const (
	sqliteReaders = 4
	postgresConns = 16
)

// OpenStore opens (or creates) the durable store dsn names: a PostgreSQL
// connection URL (postgres://… or postgresql://…) or a SQLite database
// file's path (created mode 0600 if missing; its directory must exist).
// The schema is created or migrated as needed. A database that is damaged
// or cannot be read, is newer than this binary, or was sealed under
// another key (ErrWrongKey) is refused with an error naming it; it is
// never reset. A bbolt data file of an earlier msimd is refused with
// ErrOldDataFile.
func OpenStore(ctx context.Context, dsn string, o StoreOptions) (Store, error) {
	if sqldb.IsPostgresURL(dsn) {
		if o.KeyFile == "" {
			return nil, errors.New("msim/server: a PostgreSQL store needs a key file (StoreOptions.KeyFile, msimd -key)")
		}
		db, where, err := sqldb.OpenPostgres(ctx, dsn, postgresConns)
		if err != nil {
			return nil, fmt.Errorf("msim/server: %w", err)
		}
		return initSQLStore(ctx, sqldb.Postgres, db, db, where, o.KeyFile)
	}
	if o.KeyFile == "" {
		o.KeyFile = dsn + ".key"
	}
	if IsBoltFile(dsn) {
		return nil, fmt.Errorf("%w: %s (carry it over with: msimd -data NEW.db import %s)", ErrOldDataFile, dsn, dsn)
	}
	w, where, err := sqldb.OpenSQLite(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("msim/server: %w", err)
	}
	r, err := sqldb.OpenSQLiteReaders(dsn, sqliteReaders)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("msim/server: %w", err)
	}
	return initSQLStore(ctx, sqldb.SQLite, w, r, where, o.KeyFile)
}

// OpenFileStore opens (or creates) the SQLite store at path, its hashes
// sealed under the key file path + ".key". Accounts, contact lists and
// pending offline messages survive a restart.
func OpenFileStore(path string) (Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return OpenStore(ctx, path, StoreOptions{})
}

// sqlStore is the durable Store.
type sqlStore struct {
	d     *sqldb.Dialect
	w     *sql.DB // writes and transactions
	r     *sql.DB // reads outside transactions (w itself on PostgreSQL)
	where string  // names the database in errors
	keys  sealer
	key   []byte // the sealing key (ImportBolt compares it with the old file's)
	decoy []byte // opened for unknown e-mail addresses, like a real record
	stmts map[*sql.DB]map[string]*sql.Stmt
}

func initSQLStore(ctx context.Context, d *sqldb.Dialect, w, r *sql.DB, where, keyFile string) (_ Store, err error) {
	s := &sqlStore{d: d, w: w, r: r, where: where}
	defer func() {
		if err != nil {
			s.closeDBs()
			err = fmt.Errorf("msim/server: %s: %w", where, err)
		}
	}()
	sch := schema()
	if err := sqldb.Migrate(ctx, w, d, sch, len(sch.Migrations)); err != nil {
		return nil, err
	}
	if _, err := w.ExecContext(ctx, d.Rebind(`INSERT INTO msim_counters (name, value) VALUES ('next_uid', ?) ON CONFLICT (name) DO NOTHING`), int64(FirstUID)); err != nil {
		return nil, err
	}
	if err := s.initKey(ctx, keyFile); err != nil {
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// initKey loads (or, for a database with nothing sealed yet, creates) the
// key file and checks it against the database's key check value.
func (s *sqlStore) initKey(ctx context.Context, keyFile string) error {
	const q = `SELECT value FROM msim_meta WHERE name = 'key_check'`
	var check []byte
	err := s.w.QueryRowContext(ctx, q).Scan(&check)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("key check: %w", err)
	}
	// A database with accounts but no key check (removed by hand) is
	// checked against its first account's hash instead.
	var (
		firstUID    int64
		firstSealed []byte
	)
	err = s.w.QueryRowContext(ctx, `SELECT uid, sealed_hash FROM msim_accounts ORDER BY uid LIMIT 1`).Scan(&firstUID, &firstSealed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("key check: %w", err)
	}
	key, created, err := loadKey(keyFile, check != nil || firstSealed != nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && created {
			os.Remove(keyFile) // nothing was sealed under it
		}
	}()
	if s.keys, err = newSealer(key); err != nil {
		return fmt.Errorf("key file %s: %w", keyFile, err)
	}
	s.key = key
	s.decoy = s.keys.seal(keyCheckUID, msim.PasswordHash{})
	if check == nil && firstSealed != nil {
		if _, err = s.keys.open(msim.UID(firstUID), firstSealed); err != nil {
			return fmt.Errorf("%w (key file %s)", ErrWrongKey, keyFile)
		}
	}
	if check == nil {
		// Another node starting at once may win the race; its value is
		// then the one checked.
		if _, err = s.w.ExecContext(ctx, s.d.Rebind(`INSERT INTO msim_meta (name, value) VALUES ('key_check', ?) ON CONFLICT (name) DO NOTHING`), s.decoy); err != nil {
			return fmt.Errorf("key check: %w", err)
		}
		if err = s.w.QueryRowContext(ctx, q).Scan(&check); err != nil {
			return fmt.Errorf("key check: %w", err)
		}
	}
	if _, err = s.keys.open(keyCheckUID, check); err != nil {
		return fmt.Errorf("%w (key file %s)", ErrWrongKey, keyFile)
	}
	return nil
}

// prepare prepares every query of the store on its databases, so none is
// parsed again at each call (and none is prepared on SQLite's one writer
// connection while a transaction holds it).
func (s *sqlStore) prepare(ctx context.Context) error {
	s.stmts = map[*sql.DB]map[string]*sql.Stmt{}
	for _, db := range []*sql.DB{s.w, s.r} {
		if s.stmts[db] != nil {
			continue
		}
		m := map[string]*sql.Stmt{}
		s.stmts[db] = m
		for _, q := range queries {
			st, err := db.PrepareContext(ctx, s.d.Rebind(strings.Replace(q, lockMarker, s.d.LockRow, 1)))
			if err != nil {
				return fmt.Errorf("prepare %q: %w", q, err)
			}
			m[q] = st
		}
	}
	return nil
}

// stmt returns query's statement for db, or for tx when tx is not nil.
func (s *sqlStore) stmt(ctx context.Context, db *sql.DB, tx *sql.Tx, query string) *sql.Stmt {
	st := s.stmts[db][query]
	if st == nil {
		panic("msim/server: query not in queries: " + query) // a programming error a test catches
	}
	if tx != nil {
		return tx.StmtContext(ctx, st)
	}
	return st
}

func (s *sqlStore) closeDBs() error {
	for _, m := range s.stmts {
		for _, st := range m {
			st.Close()
		}
	}
	var err error
	if s.r != s.w {
		err = s.r.Close()
	}
	if s.d == sqldb.SQLite {
		// Leaves the WAL empty, so the database is its main file alone.
		_, _ = s.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	}
	return errors.Join(err, s.w.Close())
}

func (s *sqlStore) Close() error { return s.closeDBs() }

// inTx runs f in a write transaction and commits it if f returns nil; f's
// own error is returned as it is.
func (s *sqlStore) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap("begin", err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return s.wrap("commit", tx.Commit())
}

func (s *sqlStore) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("msim/server: store %s: %s: %w", s.where, op, err)
}

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// checkText refuses a string a PostgreSQL TEXT column cannot hold, on
// every engine alike.
func checkText(what, v string) error {
	if !validText(v) {
		return fmt.Errorf("msim/server: the %s is not valid UTF-8 text", what)
	}
	return nil
}

func validText(v string) bool {
	return utf8.ValidString(v) && strings.IndexByte(v, 0) < 0
}
