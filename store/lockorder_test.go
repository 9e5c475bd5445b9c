package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/pgtest"
)

// TestDeleteByIDLockOrder (PostgreSQL, which runs deletes side by side):
// two deletes of an account's held or queued IMs whose lists overlap, in
// different orders, and each longer than one chunk, both succeed and take
// every row: neither is chosen as a deadlock's victim (the caller would
// deliver those IMs again, or send them twice). The interleaving that
// deadlocked is forced: a row both need second is held by a third
// transaction until both deletes wait, each having deleted its first
// chunk.
func TestDeleteByIDLockOrder(t *testing.T) {
	requireEngine(t, "postgres")
	for _, tc := range []struct {
		name   string
		insert string // rows of the account (the first argument), ids ascending
		del    func(s Store, user, email string, ids ...int64) error
	}{
		{"held", `INSERT INTO held_ims (account_id, seq, sender, text, sent, offline)
			SELECT ?, g, 7, 'hi', 0, FALSE FROM generate_series(1, ?) g ORDER BY g RETURNING id`,
			func(s Store, user, email string, ids ...int64) error { return s.DeleteHeld(ctx, user, email, ids...) }},
		{"queued", `INSERT INTO queued_ims (account_id, recipient, nick, text, typed)
			SELECT ?, 7, 'bob', 'hi', g FROM generate_series(1, ?) g ORDER BY g RETURNING id`,
			func(s Store, user, email string, ids ...int64) error { return s.DeleteQueued(ctx, user, email, ids...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newPostgresDB(t)
			var b [6]byte
			_, _ = rand.Read(b[:])
			app := "lockorder_" + hex.EncodeToString(b[:])
			s := testDB{driver: db.driver, dsn: pgtest.WithParam(t, db.dsn, "application_name", app)}.open(t, testKey(1))
			user, email := userWithAccount(t, s)
			r, d := db.raw(t)
			var acct int64
			check(t, "account id", r.QueryRow(d.Rebind(`SELECT id FROM accounts WHERE email = ?`), email).Scan(&acct))
			var ids []int64
			rows, err := r.Query(d.Rebind(tc.insert), acct, 1+2*deleteChunk)
			check(t, "insert", err)
			for rows.Next() {
				var id int64
				check(t, "insert: id", rows.Scan(&id))
				ids = append(ids, id)
			}
			check(t, "insert", rows.Err())
			slices.Sort(ids)
			// shared, the lowest id, is the first row of each delete's
			// second chunk; p and q are their first chunks.
			shared, p, q := ids[0], ids[1:1+deleteChunk], ids[1+deleteChunk:]
			first := slices.Concat(p, []int64{shared}, q[:deleteChunk-1])
			second := slices.Concat(q, []int64{shared}, p[:deleteChunk-1])

			hold, err := r.BeginTx(ctx, nil)
			check(t, "begin", err)
			defer hold.Rollback()
			table := map[string]string{"held": "held_ims", "queued": "queued_ims"}[tc.name]
			check(t, "lock the shared row", hold.QueryRow(d.Rebind(`SELECT id FROM `+table+` WHERE id = ? FOR UPDATE`), shared).Scan(new(int64)))

			errs := make(chan error, 2)
			for _, list := range [][]int64{first, second} {
				go func() { errs <- tc.del(s, user, email, list...) }()
			}
			waitLockWaiters(t, r, app, 2)
			check(t, "release the shared row", hold.Rollback())
			for range 2 {
				if err := <-errs; err != nil {
					t.Errorf("delete: %v; want both deletes to succeed", err)
				}
			}
			if got := rowCounts(t, db)[table]; got != 0 {
				t.Errorf("after both deletes: got %d %s rows, want 0", got, table)
			}
		})
	}
}

// waitLockWaiters waits until n of the connections named app wait for a
// lock.
func waitLockWaiters(t *testing.T, r *sql.DB, app string, n int) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a hang's bound, not a timing
	defer cancel()
	for {
		var got int
		err := r.QueryRowContext(wctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&got)
		if err != nil {
			t.Fatalf("waiting for %d deletes to wait for a lock: %v", n, err)
		}
		if got >= n {
			return
		}
		select {
		case <-wctx.Done():
			t.Fatalf("waiting for %d deletes to wait for a lock: %d do", n, got)
		case <-time.After(time.Millisecond):
		}
	}
}
