package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/msimircd/msimircd/internal/sqldb"
)

// LoginFailureStore counts failed logins per key (an account's name, as
// the caller spells it), so that the delays they call for hold across
// restarts and across the gateway instances sharing the database. Only
// counts and times are kept, never what was tried. Part of Store.
type LoginFailureStore interface {
	// AddLoginFailure counts a failure of key at now and returns the
	// key's failures within window: a key whose last failure is window or
	// more before now starts again at 1. Keys whose last failure is that
	// old are deleted meanwhile, so the table holds only live keys.
	AddLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (int, error)
	// LoginFailures returns the key's failures within window before now
	// (0 if none).
	LoginFailures(ctx context.Context, key string, now time.Time, window time.Duration) (int, error)
	// ClearLoginFailures forgets the key's failures (none is no error).
	ClearLoginFailures(ctx context.Context, key string) error
}

// The deletes of other keys' stale rows, those whose last failure is old
// or does not read (NULL; on SQLite text, which sorts after every
// integer), each found through the index on last. Two calls at once delete
// the same rows, each in the order its plan scans them, and on PostgreSQL
// a delete waits for a row another holds: in opposite orders, a deadlock.
// There the rows are locked first, skipping those another call holds (it
// deletes them), so a delete never waits. SQLite has one writer at a time.
const (
	qDeleteStaleFailures   = `DELETE FROM login_failures WHERE (last <= ? OR last IS NULL OR last >= '') AND name <> ?`
	qDeleteStaleFailuresPG = `DELETE FROM login_failures WHERE name IN
		(SELECT name FROM login_failures WHERE (last <= ? OR last IS NULL) AND name <> ? FOR UPDATE SKIP LOCKED)`
)

// qAddFailure and qFailures count and read a key's failures. A row
// whose last or failures does not read (failureReads: text in SQLite's
// integer column, NULL in PostgreSQL's where a NOT NULL was dropped:
// another tool or a bad migration) counts as stale: it has no failures,
// and the key's next failure counts from 1 and writes it anew. Compared
// as it is, it would never be stale (SQLite sorts text after every
// integer) or fail every read (NULL), and the key would be delayed or
// refused for good.
const (
	// failureReads is true where both of the row's numbers read as
	// integers: the test unreadableSent makes of history's sent, one text
	// for both engines.
	failureReads = `NOT (login_failures.last IS NULL OR login_failures.last <> CAST(login_failures.last AS BIGINT))
		AND NOT (login_failures.failures IS NULL OR login_failures.failures <> CAST(login_failures.failures AS BIGINT))`
	qAddFailure = `INSERT INTO login_failures (name, failures, last) VALUES (?, 1, ?)
		ON CONFLICT (name) DO UPDATE SET
		failures = CASE WHEN login_failures.last > ? AND ` + failureReads + ` THEN login_failures.failures + 1 ELSE 1 END,
		last = CASE WHEN login_failures.last >= excluded.last AND ` + failureReads + ` THEN login_failures.last ELSE excluded.last END
		RETURNING failures`
	qFailures = `SELECT failures FROM login_failures WHERE name = ? AND last > ? AND ` + failureReads
)

func checkWindow(window time.Duration) error {
	if window <= 0 {
		return fmt.Errorf("window %s: want more than 0", window)
	}
	return nil
}

func (s *sqlStore) AddLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	if err := checkWindow(window); err != nil {
		return 0, wrap("add login failure", err)
	}
	if err := checkText("key", key); err != nil {
		return 0, wrap("add login failure", err)
	}
	stale := micros(now.Add(-window))
	// Two statements, not one transaction: a transaction would hold the
	// stale rows it deleted while it waits to upsert its own key, which
	// another call's delete may hold while it waits for those (on
	// PostgreSQL, a deadlock).
	deleteStale := qDeleteStaleFailures
	if s.d == sqldb.Postgres {
		deleteStale = qDeleteStaleFailuresPG
	}
	if _, err := s.exec(ctx, s.db, deleteStale, stale, key); err != nil {
		return 0, wrap("add login failure", err)
	}
	var n int
	err := s.queryRow(ctx, s.db, qAddFailure, key, micros(now), stale).Scan(&n)
	if err != nil {
		return 0, wrap("add login failure", err)
	}
	return n, nil
}

func (s *sqlStore) LoginFailures(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	if err := checkWindow(window); err != nil {
		return 0, wrap("login failures", err)
	}
	ctx, err := s.shortRead(ctx) // asked at every login
	if err != nil {
		return 0, wrap("login failures", err)
	}
	var n int
	err = s.queryRow(ctx, s.db, qFailures, key, micros(now.Add(-window))).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("login failures", err)
	}
	return n, nil
}

func (s *sqlStore) ClearLoginFailures(ctx context.Context, key string) error {
	if s.d != sqldb.SQLite {
		// A DELETE that finds nothing waits for no other writer here:
		// one statement, one round trip.
		if _, err := s.exec(ctx, s.db, `DELETE FROM login_failures WHERE name = ?`, key); err != nil {
			return wrap("clear login failures", err)
		}
		return nil
	}
	// On SQLite a DELETE takes the database's one write lock even when it
	// deletes nothing, and a clear may find nothing (another login
	// cleared the key meanwhile, or the caller could not tell): a read,
	// in process, says so without waiting for another writer.
	rctx, err := s.shortRead(ctx)
	if err != nil {
		return wrap("clear login failures", err)
	}
	var has bool
	if err := s.queryRow(rctx, s.db, `SELECT EXISTS (SELECT 1 FROM login_failures WHERE name = ?)`, key).Scan(&has); err != nil {
		return wrap("clear login failures", err)
	}
	// Whatever comes between the read and what follows it is ordered
	// before or after the clear as a whole: found none, the clear came
	// first and a failure counted meanwhile stays; found some, the DELETE
	// by name takes the key's row as it is then, a failure counted
	// meanwhile with it, and no other key's.
	if testHookClearRead != nil {
		testHookClearRead(has)
	}
	if !has {
		return nil
	}
	if _, err := s.exec(ctx, s.db, `DELETE FROM login_failures WHERE name = ?`, key); err != nil {
		return wrap("clear login failures", err)
	}
	return nil
}

// testHookClearRead, if set, runs in ClearLoginFailures on SQLite between
// its read of whether the key has failures and what follows (the DELETE,
// or the return when it found none), with what the read found.
var testHookClearRead func(has bool)
