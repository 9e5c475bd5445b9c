package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/internal/sqldb"
)

// Open opens the store, creating and migrating its schema as needed.
// driver is "sqlite" (dsn: the database file's path; the file is created
// with mode 0600 if missing, its directory must exist) or "postgres" (dsn:
// a PostgreSQL connection string). key is the sealing key from
// LoadOrCreateKey. A database that cannot be read, is corrupt, is newer
// than this binary or was sealed under another key is refused with an
// error naming it; it is never reset. opts tune the store (see Option).
func Open(ctx context.Context, driver, dsn string, key []byte, opts ...Option) (Store, error) {
	d := dialects[driver]
	if d == nil {
		return nil, fmt.Errorf("store: unknown driver %q (want sqlite or postgres)", driver)
	}
	o := options{maxHistory: DefaultMaxHistoryPerUser}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxHistory < 1 {
		return nil, fmt.Errorf("store: max history per user %d: want 1 or more", o.maxHistory)
	}
	sl, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	var (
		db    *sql.DB
		where string
	)
	if d == sqldb.SQLite {
		pragmas := []string{"wal_autocheckpoint(" + walCheckpointPages + ")"}
		if o.cacheKiB > 0 {
			pragmas = append(pragmas, fmt.Sprintf("cache_size(-%d)", o.cacheKiB))
		}
		db, where, err = sqldb.OpenSQLite(ctx, dsn, pragmas...)
	} else {
		db, where, err = sqldb.OpenPostgres(ctx, dsn, postgresConns+1) // and the lease listener's
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &sqlStore{db: db, d: d, sl: sl, maxHistory: int64(o.maxHistory)}
	if err := migrate(ctx, db, d, SchemaVersion()); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	if err := s.checkKey(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	conns := postgresConns
	if d == sqldb.SQLite {
		conns = 1
	} else if _, err := s.scope(ctx); err != nil { // read now: a lease note inside a transaction needs it
		s.Close()
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	own := onOwnGoroutines(s, conns, stepped)
	s.turn = own.take
	return own, nil
}

// dialects are the engines, by the driver name Open takes.
var dialects = map[string]*sqldb.Dialect{
	sqldb.SQLite.Name:   sqldb.SQLite,
	sqldb.Postgres.Name: sqldb.Postgres,
}

// postgresConns is how many PostgreSQL connections the store's operations
// use at once: its goroutines (ownGoroutines), and its pool but for one
// more that a lease listener holds while it listens. SQLite has one
// connection (sqldb.OpenSQLite), so one writer and no lock waits between
// the store's own connections, and one goroutine.
const postgresConns = 16

// sqliteParams are those sqldb.OpenSQLite opens the file with: WAL, every
// commit synced (an accepted IM survives a crash of the machine, not only
// of the process), foreign keys, and write transactions that take the
// lock when they begin.
const sqliteParams = sqldb.SQLiteParams

// walCheckpointPages is the store's connections' wal_autocheckpoint
// (SQLite's default is 1,000). History's appends rewrite the last pages
// of the same indexes batch after batch; a checkpoint copies each page
// once however many times the WAL holds it, so four times fewer
// checkpoints copy fewer pages: fewer reads, writes and CPU per entry
// (BenchmarkAppendHistoryBatch; the figures are in the benchmark record).
// Every connection of the store has it, the gateway's and its history
// process's, so the one appending history checkpoints, not the other
// when its own commit finds the WAL past a smaller mark.
const walCheckpointPages = "4000"

// querier is what *sql.DB and *sql.Tx share.
type querier = sqldb.Querier

type sqlStore struct {
	db         *sql.DB
	d          *sqldb.Dialect
	sl         *sealer
	maxHistory int64     // entries kept per user
	stmts      sync.Map  // query → *sql.Stmt
	notes      noteScope // where lease notes go (PostgreSQL)
	// now is the leases' clock (tests step it); nil: the database's.
	now func() time.Time
	// turn runs a step of a long operation (see step); nil: straight
	// away. Open sets it to its goroutines' take.
	turn func(ctx context.Context, op string, f func()) error
	// batchRetries counts the history batches appended again one entry
	// at a time after their transaction failed (the tests want none).
	batchRetries atomic.Int64
	retryErr     atomic.Pointer[error] // the last of those failures
}

// Option tunes a store at Open.
type Option func(*options)

type options struct {
	maxHistory int
	cacheKiB   int
}

// WithSQLiteCache sets the page cache of a SQLite store's connection, in
// KiB (SQLite's default is 2,000 KiB; no effect on PostgreSQL). The
// history writer process, which does nothing but append, takes a larger
// one: index pages it would otherwise read again at every batch, with a
// system call each, stay in memory.
func WithSQLiteCache(kib int) Option {
	return func(o *options) { o.cacheKiB = kib }
}

// WithMaxHistoryPerUser sets how many history entries a user keeps (1 or
// more; DefaultMaxHistoryPerUser if not given): an append beyond it
// deletes the user's oldest entries, so one user cannot fill the disk.
func WithMaxHistoryPerUser(n int) Option {
	return func(o *options) { o.maxHistory = n }
}

// stepped are the operations made of steps that each take their turn on
// the store's goroutines (step), rather than holding one for the whole
// operation: PruneHistory (a transaction per chunk of a user's entries)
// and the appends (a failed batch is appended again one entry at a time,
// a transaction and a sync each). An operation that calls step must be
// here: run whole on one of the store's goroutines, its step would wait
// for a turn that goroutine can never give.
var stepped = map[string]bool{opPruneHistory: true, opAppendBatch: true, opAppendHistory: true}

// step runs one step of a long operation (a transaction): through s.turn
// when the store runs on goroutines of its own, so the others waiting get
// their turns between its steps; straight away otherwise.
func (s *sqlStore) step(ctx context.Context, op string, f func() error) error {
	if s.turn == nil {
		return f()
	}
	var err error
	if e := s.turn(ctx, op, func() { err = f() }); e != nil {
		return e
	}
	return err
}

// Ping runs a trivial query: it waits for a connection, and for its turn
// on the store's goroutines, like any other operation, so a database that
// is gone or held up fails it.
func (s *sqlStore) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

func (s *sqlStore) Close() error {
	s.stmts.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	return s.db.Close()
}

// shortRead is the context for a short read of one user's rows by key: a
// user's state at login and the login's reads of their held and queued
// IMs, notes and a client's position. On SQLite the read cannot be cut
// short once under way. Each statement run under a context that can end
// costs two goroutines (the driver's, which would interrupt SQLite, and
// database/sql's, which would close the rows), started and ended again:
// more than the read's own work. And a read in WAL mode does not wait for
// writers, so there is nothing to cut short. A context that has ended
// already still stops the read before it starts. PostgreSQL keeps ctx: a
// query there can wait on the network or a lock.
func (s *sqlStore) shortRead(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.d != sqldb.SQLite {
		return ctx, nil
	}
	return context.WithoutCancel(ctx), nil
}

// exec, query and queryRow run one of the package's fixed queries as a
// prepared statement, rebound for the dialect and prepared once per store:
// SQLite would otherwise parse the query at every call.
func (s *sqlStore) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	st, err := s.stmt(ctx, q, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return q.ExecContext(ctx, s.d.Rebind(query), args...)
	}
	return st.ExecContext(ctx, args...)
}

func (s *sqlStore) query(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, q, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return q.QueryContext(ctx, s.d.Rebind(query), args...)
	}
	return st.QueryContext(ctx, args...)
}

// queryRow's Scan returns the error of preparing the statement, if any.
func (s *sqlStore) queryRow(ctx context.Context, q querier, query string, args ...any) rowScanner {
	st, err := s.stmt(ctx, q, query)
	if err != nil {
		return errRow{err}
	}
	if st == nil {
		return q.QueryRowContext(ctx, s.d.Rebind(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

type rowScanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// stmt returns the prepared statement of query, for the transaction if q
// is one, preparing it first if needed; nil (run it unprepared) for a
// transaction's query that was not prepared before: preparing it on the
// database would wait for the transaction's connection, SQLite's only one.
// Open prepares txQueries.
func (s *sqlStore) stmt(ctx context.Context, q querier, query string) (*sql.Stmt, error) {
	if b, ok := q.(*boundTx); ok {
		if st := b.stmts[query]; st != nil {
			return st, nil
		}
		st, err := s.stmt(ctx, b.Tx, query)
		if st != nil {
			b.stmts[query] = st
		}
		return st, err
	}
	st, ok := s.stmts.Load(query)
	tx, inTx := q.(*sql.Tx)
	if !ok {
		if inTx {
			return nil, nil
		}
		prepared, err := s.db.PrepareContext(ctx, s.d.Rebind(query))
		if err != nil {
			return nil, err
		}
		var loaded bool
		if st, loaded = s.stmts.LoadOrStore(query, prepared); loaded {
			prepared.Close()
		}
	}
	if inTx {
		return tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	return st.(*sql.Stmt), nil
}

// boundTx is a transaction that keeps its statements, bound to it once,
// for one that runs the same few queries many times (a history batch):
// binding a prepared statement to a transaction is itself an allocation
// and a lock every time.
type boundTx struct {
	*sql.Tx
	stmts map[string]*sql.Stmt
}

func bind(tx *sql.Tx) *boundTx { return &boundTx{Tx: tx, stmts: map[string]*sql.Stmt{}} }

// txQueries are the queries run inside transactions, prepared by Open.
var txQueries = []string{
	qUserID, qAccountID, qInsertAccount, qInsertAccountBounded, qInsertAccountSetting,
}

func (s *sqlStore) prepare(ctx context.Context) error {
	for _, q := range slices.Concat(txQueries, historyTxQueries) {
		if _, err := s.stmt(ctx, s.db, q); err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return nil
}

// inTx runs f in a transaction and commits it if f returns nil.
func (s *sqlStore) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// checkKey seals a random value into a new database, and opens it in an
// existing one: a wrong key is refused at Open rather than at the first
// account read.
func (s *sqlStore) checkKey(ctx context.Context) error {
	for range 2 {
		var sealed []byte
		err := s.queryRow(ctx, s.db, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&sealed)
		if err == nil {
			_, err = s.sl.open(sealed, keyCheckAD)
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("key check: %w", err)
		}
		token := make([]byte, 16)
		if _, err := rand.Read(token); err != nil {
			return fmt.Errorf("key check: %w", err)
		}
		if sealed, err = s.sl.seal(token, keyCheckAD); err != nil {
			return err
		}
		// Another start may win the race; the loop then reads its value.
		if _, err := s.exec(ctx, s.db, `INSERT INTO meta (name, value) VALUES ('key_check', ?) ON CONFLICT (name) DO NOTHING`, sealed); err != nil {
			return fmt.Errorf("key check: %w", err)
		}
	}
	return errors.New("key check: no value after writing it")
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us) }

const (
	qUserID    = `SELECT id FROM users WHERE name = ?`
	qAccountID = `SELECT a.id FROM accounts a JOIN users u ON u.id = a.user_id WHERE u.name = ? AND a.email = ?`
)

// userID returns the id of the named user, ErrNotFound if none.
func (s *sqlStore) userID(ctx context.Context, q querier, name string) (int64, error) {
	var id int64
	err := s.queryRow(ctx, q, qUserID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return id, err
}

// lockedUserID is userID for a write bounded by what the user holds
// (MaxAccounts, MaxNotes, MaxClientPositions): on PostgreSQL, which runs
// such writes side by side, it locks the user's row until the end of tx
// (qLockUser), so the writes of one user take turns and each counts
// those before it; SQLite runs one write at a time and needs no lock.
func (s *sqlStore) lockedUserID(ctx context.Context, tx querier, name string) (int64, error) {
	if s.d == sqldb.SQLite {
		return s.userID(ctx, tx, name)
	}
	var id int64
	err := s.queryRow(ctx, tx, qLockUser, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return id, err
}

// accountID returns the id of the user's account, ErrNotFound if none.
func (s *sqlStore) accountID(ctx context.Context, q querier, user, email string) (int64, error) {
	var id int64
	err := s.queryRow(ctx, q, qAccountID, user, email).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("account %q of user %q: %w", email, user, ErrNotFound)
	}
	return id, err
}

// accountSelect names an account by user name and e-mail as the source of
// an INSERT … SELECT: its two parameters follow those of the select list.
const accountSelect = ` FROM accounts a JOIN users u ON u.id = a.user_id WHERE u.name = ? AND a.email = ?`

// mustAffect turns "no row changed" into ErrNotFound.
func mustAffect(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s: %w", op, err)
}
