package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/msimircd/msimircd/internal/pgtest"
)

// TestLoginFailures: on each engine, failures of a key count up within the
// window and start again after it; another store on the same database (a
// restart, another instance) sees the count; clearing forgets it; and
// keys whose window has passed are deleted when a failure is counted.
func TestLoginFailures(t *testing.T) {
	const window = 15 * time.Minute
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			db := e.fresh(t)
			s := db.open(t, testKey(1))
			for i := 1; i <= 3; i++ {
				n, err := s.AddLoginFailure(ctx, "account:alice", t0.Add(time.Duration(i)*time.Minute), window)
				if err != nil || n != i {
					t.Fatalf("failure %d of alice: got %d, %v; want %d", i, n, err, i)
				}
			}
			if n, err := s.AddLoginFailure(ctx, "account:bob", t0, window); err != nil || n != 1 {
				t.Fatalf("bob's first failure: got %d, %v; want 1", n, err)
			}
			again := db.open(t, testKey(1)) // as after a restart, or on another instance
			if n, err := again.LoginFailures(ctx, "account:alice", t0.Add(5*time.Minute), window); err != nil || n != 3 {
				t.Errorf("alice's failures seen by another store: got %d, %v; want 3", n, err)
			}
			if n, err := again.LoginFailures(ctx, "account:alice", t0.Add(3*time.Minute+window), window); err != nil || n != 0 {
				t.Errorf("alice's failures a window after the last: got %d, %v; want 0", n, err)
			}
			if n, err := again.AddLoginFailure(ctx, "account:alice", t0.Add(3*time.Minute+window), window); err != nil || n != 1 {
				t.Errorf("alice's failure a window after the last: got %d, %v; want 1 (counted again from 1)", n, err)
			}
			var rows int
			if err := sqlOf(s).db.QueryRowContext(ctx, `SELECT COUNT(*) FROM login_failures WHERE name = 'account:bob'`).Scan(&rows); err != nil || rows != 0 {
				t.Errorf("bob's stale row after another key's failure: got %d rows, %v; want it deleted", rows, err)
			}
			if err := s.ClearLoginFailures(ctx, "account:alice"); err != nil {
				t.Fatal(err)
			}
			if n, err := again.LoginFailures(ctx, "account:alice", t0.Add(3*time.Minute+window), window); err != nil || n != 0 {
				t.Errorf("alice's failures after clearing: got %d, %v; want 0", n, err)
			}
			if err := s.ClearLoginFailures(ctx, "account:nobody"); err != nil {
				t.Errorf("clearing a key without failures: got %v, want no error", err)
			}
			if _, err := s.AddLoginFailure(ctx, "account:alice", t0, 0); err == nil {
				t.Error("a window of 0: got no error")
			}
		})
	}
}

// TestClearLoginFailuresOneStatement: on PostgreSQL, clearing a key's
// failures is one statement, one round trip, whether the key has some or
// not: a DELETE that finds nothing waits for no other writer there, so a
// read first would only add a round trip. (On SQLite it would take the
// database's one write lock, so there the read comes first:
// TestLoginNoneWritesNothing.)
func TestClearLoginFailuresOneStatement(t *testing.T) {
	const window = 15 * time.Minute
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	requireEngine(t, "postgres")
	relay, db := countPostgres(t, newPostgresDB(t))
	s := db.open(t, testKey(1))
	for _, has := range []bool{false, true} {
		if has {
			if _, err := s.AddLoginFailure(ctx, "account:alice", t0, window); err != nil {
				t.Fatal(err)
			}
		}
		relay.take("login_failures")
		if err := s.ClearLoginFailures(ctx, "account:alice"); err != nil {
			t.Fatalf("clear (failures there: %v): %v", has, err)
		}
		if got := relay.take("login_failures"); len(got) != 1 || !strings.HasPrefix(got[0], "DELETE") {
			t.Errorf("clear (failures there: %v): got statements %q, want one DELETE", has, got)
		}
		if n, err := s.LoginFailures(ctx, "account:alice", t0, window); err != nil || n != 0 {
			t.Errorf("failures after the clear: got %d, %v; want 0", n, err)
		}
	}
}

// TestClearLoginFailuresInterleaved: on SQLite a clear reads whether the
// key has failures before it deletes them. A failure counted between the
// two (here by another store on the same database, as another instance
// would) is never half lost: when the read found failures, the DELETE
// takes the key's row as it is then, that failure with the others, and
// no other key's; when it found none, the clear came first and the
// failure stays counted. (PostgreSQL clears in one statement, with
// nothing between: TestClearLoginFailuresOneStatement.)
func TestClearLoginFailuresInterleaved(t *testing.T) {
	const window = 15 * time.Minute
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			if e.name != "sqlite" {
				t.Skip("one statement on PostgreSQL: nothing comes between a read and the delete (TestClearLoginFailuresOneStatement)")
			}
			db := e.fresh(t)
			s, other := db.open(t, testKey(1)), db.open(t, testKey(1))
			// add runs on the store's goroutine too (in the hook): it
			// reports, never ends the test.
			add := func(key string, at time.Time) int {
				t.Helper()
				n, err := other.AddLoginFailure(ctx, key, at, window)
				if err != nil {
					t.Errorf("AddLoginFailure(%s): %v", key, err)
				}
				return n
			}
			var reads []bool
			testHookClearRead = func(has bool) {
				reads = append(reads, has)
				add("account:alice", t0.Add(3*time.Minute))
			}
			defer func() { testHookClearRead = nil }()

			add("account:alice", t0.Add(time.Minute))
			add("account:alice", t0.Add(2*time.Minute))
			add("account:bob", t0.Add(2*time.Minute))
			check(t, "ClearLoginFailures", s.ClearLoginFailures(ctx, "account:alice"))
			if len(reads) != 1 || !reads[0] {
				t.Fatalf("the clear's read of a key with failures: got %v, want [true]", reads)
			}
			if n, err := s.LoginFailures(ctx, "account:alice", t0.Add(4*time.Minute), window); err != nil || n != 0 {
				t.Errorf("alice's failures after a clear that found some, one counted between its read and its delete: got %d, %v; want 0 (cleared with the others)", n, err)
			}
			if n, err := s.LoginFailures(ctx, "account:bob", t0.Add(4*time.Minute), window); err != nil || n != 1 {
				t.Errorf("bob's failures after alice's clear: got %d, %v; want 1", n, err)
			}

			reads = nil
			check(t, "ClearLoginFailures", s.ClearLoginFailures(ctx, "account:alice"))
			if len(reads) != 1 || reads[0] {
				t.Fatalf("the clear's read of a key without failures: got %v, want [false]", reads)
			}
			if n, err := s.LoginFailures(ctx, "account:alice", t0.Add(4*time.Minute), window); err != nil || n != 1 {
				t.Errorf("alice's failures after a clear that found none, one counted after its read: got %d, %v; want 1 (the clear came first)", n, err)
			}
			testHookClearRead = nil
			if n := add("account:alice", t0.Add(4*time.Minute)); n != 2 {
				t.Errorf("alice's next failure: got %d, want 2 (the one counted during the clear kept)", n)
			}
		})
	}
}

// TestLoginFailuresAtOnce: failures counted at once at many keys, each
// deleting the others' stale rows, all succeed, each counted afresh. On
// PostgreSQL two such deletes in one transaction with the upsert of their
// own key each held the other's key: a deadlock, one of them failing.
func TestLoginFailuresAtOnce(t *testing.T) {
	const window, keys = time.Minute, 16
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			s := e.fresh(t).open(t, testKey(1))
			for round := range 20 {
				stale := t0.Add(time.Duration(round) * 2 * window)
				for k := range keys {
					if _, err := s.AddLoginFailure(ctx, fmt.Sprint("account:", k), stale, window); err != nil {
						t.Fatal(err)
					}
				}
				errs := make(chan error, keys)
				for k := range keys {
					go func() {
						n, err := s.AddLoginFailure(ctx, fmt.Sprint("account:", k), stale.Add(window), window)
						if err == nil && n != 1 {
							err = fmt.Errorf("key %d: got %d failures, want 1 (its last a window ago)", k, n)
						}
						errs <- err
					}()
				}
				for range keys {
					if err := <-errs; err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
				}
			}
		})
	}
}

// TestLoginFailuresStaleDeletesAtOnce: on PostgreSQL, two instances
// counting failures at once each delete the same stale rows, and may scan
// them in different orders: here one by the time of their last failure
// (the index), the other as they are stored, laid out in the opposite
// order. Neither waits for the other in a cycle: no deadlock, every
// failure counted.
func TestLoginFailuresStaleDeletesAtOnce(t *testing.T) {
	const window, stale, rounds = time.Minute, 2000, 20
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	requireEngine(t, "postgres")
	db := newPostgresDB(t)
	byLast, asStored := db, db
	for _, p := range [][2]string{{"enable_seqscan", "off"}, {"enable_bitmapscan", "off"}} {
		byLast.dsn = pgtest.WithParam(t, byLast.dsn, p[0], p[1])
	}
	for _, p := range [][2]string{{"enable_indexscan", "off"}, {"enable_bitmapscan", "off"}} {
		asStored.dsn = pgtest.WithParam(t, asStored.dsn, p[0], p[1])
	}
	stores := []Store{byLast.open(t, testKey(1)), asStored.open(t, testKey(1))}
	raw, _ := db.raw(t)
	for round := range rounds {
		now := t0.Add(time.Duration(round) * 2 * window)
		// Stored in the order of their last failures, latest first.
		if _, err := raw.ExecContext(ctx, `INSERT INTO login_failures (name, failures, last)
			SELECT 'stale:' || i, 1, CAST($1 AS BIGINT) - i FROM generate_series(1, $2) AS i`, micros(now.Add(-window)), stale); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		errs := make(chan error, len(stores))
		for i, s := range stores {
			go func() {
				<-start
				n, err := s.AddLoginFailure(ctx, fmt.Sprint("account:", i), now, window)
				if err == nil && n != 1 {
					err = fmt.Errorf("account %d: got %d failures, want 1 (its last two windows ago)", i, n)
				}
				errs <- err
			}()
		}
		close(start)
		for range stores {
			if err := <-errs; err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "40P01" {
					t.Fatalf("round %d: deadlock: %v", round, err)
				}
				t.Fatalf("round %d: %v", round, err)
			}
		}
		var left int
		if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM login_failures WHERE name LIKE 'stale:%'`).Scan(&left); err != nil || left != 0 {
			t.Fatalf("round %d: %d stale rows left, %v; want none", round, left, err)
		}
	}
}

// TestLoginFailuresUnreadableStale: a key whose row's last failure or
// count does not read (text in SQLite's integer column, NULL in
// PostgreSQL's) counts as stale: no failures, and its next failure
// counts from 1 and writes the row anew, which then reads. Kept counting,
// the key would be delayed or refused for good.
func TestLoginFailuresUnreadableStale(t *testing.T) {
	const window = 15 * time.Minute
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range engines {
		for _, column := range []string{"last", "failures"} {
			t.Run(e.name+"/"+column, func(t *testing.T) {
				requireEngine(t, e.name)
				db := e.fresh(t)
				s := db.open(t, testKey(1))
				const key = "account:alice"
				for range 3 {
					_, err := s.AddLoginFailure(ctx, key, t0, window)
					check(t, "AddLoginFailure", err)
				}
				unreadable(t, db, "login_failures", column, "name = ?", key)
				if n, err := s.LoginFailures(ctx, key, t0.Add(time.Minute), window); err != nil || n != 0 {
					t.Errorf("LoginFailures with an unreadable %s: got %d, %v; want 0 (stale)", column, n, err)
				}
				if n, err := s.AddLoginFailure(ctx, key, t0.Add(2*time.Minute), window); err != nil || n != 1 {
					t.Errorf("AddLoginFailure with an unreadable %s: got %d, %v; want 1 (counted again from 1)", column, n, err)
				}
				if n, err := s.LoginFailures(ctx, key, t0.Add(3*time.Minute), window); err != nil || n != 1 {
					t.Errorf("LoginFailures after the row was written anew: got %d, %v; want 1", n, err)
				}
				if n, err := s.AddLoginFailure(ctx, key, t0.Add(4*time.Minute), window); err != nil || n != 2 {
					t.Errorf("the next failure: got %d, %v; want 2", n, err)
				}
			})
		}
		// A key whose last failure does not read and that never fails
		// again goes with the next sweep of stale rows, as an old one does.
		t.Run(e.name+"/swept", func(t *testing.T) {
			requireEngine(t, e.name)
			db := e.fresh(t)
			s := db.open(t, testKey(1))
			for _, key := range []string{"account:alice", "account:bob"} {
				_, err := s.AddLoginFailure(ctx, key, t0, window)
				check(t, "AddLoginFailure", err)
			}
			unreadable(t, db, "login_failures", "last", "name = ?", "account:alice")
			_, err := s.AddLoginFailure(ctx, "account:carol", t0.Add(time.Minute), window)
			check(t, "AddLoginFailure", err)
			r, d := db.raw(t)
			var left int
			if err := r.QueryRow(d.Rebind(`SELECT count(*) FROM login_failures WHERE name = ?`), "account:alice").Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 {
				t.Error("the row whose last failure does not read was not swept with the stale ones")
			}
			if n, err := s.LoginFailures(ctx, "account:bob", t0.Add(time.Minute), window); err != nil || n != 1 {
				t.Errorf("a live key beside it: got %d, %v; want 1 (kept)", n, err)
			}
		})
	}
}
