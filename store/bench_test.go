package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/msim"
)

// BenchmarkHoldIM measures holding one IM: a committed (and, on SQLite,
// synced) insert. It reports the median and 99th percentile latency.
func BenchmarkHoldIM(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			requireEngine(b, e.name)
			s := e.fresh(b).open(b, testKey(1))
			user, email := userWithAccount(b, s)
			text := strings.Repeat("an IM of a typical length ", 4)
			lat := make([]time.Duration, 0, 1024)
			var seq int64
			for b.Loop() {
				seq++
				start := time.Now()
				if _, err := s.HoldIM(context.Background(), user, email, HeldIM{Seq: seq, From: 6221, Text: text, Offline: true}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			reportLatency(b, lat)
		})
	}
}

// BenchmarkLoginReads measures every read a login makes of the store,
// each as its own operation: the user's state, then the account's held and
// queued IMs, the user's notes and a client's position, none of any (the
// usual case; the bridge skips the IM and note reads when the state says
// there are none).
func BenchmarkLoginReads(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			requireEngine(b, e.name)
			s := e.fresh(b).open(b, testKey(1))
			user, email := userWithAccount(b, s)
			lat := make([]time.Duration, 0, 1024)
			for b.Loop() {
				start := time.Now()
				st, err := s.LoadUser(context.Background(), user)
				if err != nil || len(st.Accounts) != 1 {
					b.Fatalf("LoadUser: %d accounts, %v", len(st.Accounts), err)
				}
				held, err := s.HeldIMs(context.Background(), user, email)
				if err != nil || len(held) != 0 {
					b.Fatalf("HeldIMs: %d, %v", len(held), err)
				}
				queued, err := s.QueuedIMs(context.Background(), user, email)
				if err != nil || len(queued) != 0 {
					b.Fatalf("QueuedIMs: %d, %v", len(queued), err)
				}
				notes, err := s.TakeNotes(context.Background(), user)
				if err != nil || len(notes) != 0 {
					b.Fatalf("TakeNotes: %d, %v", len(notes), err)
				}
				if _, _, err := s.ClientPosition(context.Background(), user, "phone"); err != nil {
					b.Fatalf("ClientPosition: %v", err)
				}
				lat = append(lat, time.Since(start))
			}
			reportLatency(b, lat)
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// Sizes of the restart benchmark's store.
const (
	benchUsers    = 1000
	benchAccounts = 2  // per user
	benchBuddies  = 50 // nicks per account
)

// BenchmarkRestart measures what a restart does before users return: open
// the store (migration check, key check, SQLite's integrity check) and
// load every user's state, for benchUsers users with benchAccounts
// accounts of benchBuddies buddy nicks each.
func BenchmarkRestart(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			requireEngine(b, e.name)
			db := e.fresh(b)
			populate(b, db)
			var opening time.Duration
			for b.Loop() {
				start := time.Now()
				s, err := Open(context.Background(), db.driver, db.dsn, testKey(1))
				if err != nil {
					b.Fatal(err)
				}
				opening += time.Since(start)
				users, err := s.Users(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				nicks := 0
				for _, u := range users {
					st, err := s.LoadUser(context.Background(), u.Name)
					if err != nil {
						b.Fatal(err)
					}
					for _, a := range st.Accounts {
						nicks += len(a.Nicks)
					}
				}
				s.Close()
				if len(users) != benchUsers || nicks != benchUsers*benchAccounts*benchBuddies {
					b.Fatalf("loaded %d users, %d nicks, want %d and %d", len(users), nicks, benchUsers, benchUsers*benchAccounts*benchBuddies)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restart")
			b.ReportMetric(float64(opening.Milliseconds())/float64(b.N), "ms-open")
		})
	}
}

// populate fills the database by hand, in one transaction: going through
// the store would sync every row.
func populate(b *testing.B, db testDB) {
	b.Helper()
	s := db.open(b, testKey(1)) // creates the schema and the key check
	check(b, "Close", s.Close())
	r, d := db.raw(b)
	sl, _ := newSealer(testKey(1))
	tx, err := r.Begin()
	check(b, "begin", err)
	defer tx.Rollback() //nolint:errcheck // committed below
	rows := &bulk{tx: tx, d: d}
	now := time.Now().UnixMicro()
	for u := range benchUsers {
		rows.add(b, `users (id, name, password_hash, created)`, int64(u+1), fmt.Sprintf("user%04d", u), testHash(), now)
	}
	rows.flush(b)
	for u := range benchUsers {
		name := fmt.Sprintf("user%04d", u)
		for k := range 5 {
			rows.add(b, `user_settings (user_id, name, value)`, int64(u+1), fmt.Sprint("setting", k), "on")
		}
		for a := range benchAccounts {
			email := fmt.Sprintf("%s-%d@example.com", name, a)
			sealed, err := sl.seal([]byte("msim password"), passwordAD(name, email))
			check(b, "seal", err)
			rows.add(b, `accounts (id, user_id, email, password, channel, autoconnect)`,
				int64(u*benchAccounts+a+1), int64(u+1), email, sealed, fmt.Sprint("&msim", a), true)
		}
	}
	rows.flush(b)
	for acct := range benchUsers * benchAccounts {
		for k := range 3 {
			rows.add(b, `account_settings (account_id, name, value)`, int64(acct+1), fmt.Sprint("key", k), "value")
		}
		for buddy := range benchBuddies {
			uid := msim.UID(100000 + buddy)
			rows.add(b, `buddy_nicks (account_id, uid, nick)`, int64(acct+1), int64(uid), fmt.Sprint("buddy", buddy))
		}
	}
	rows.flush(b)
	check(b, "commit", tx.Commit())
	if db.driver == "postgres" {
		// Statistics, as a database in use has them: autovacuum gathers
		// them soon after such a load. (The store never runs ANALYZE on
		// SQLite, whose plans then stay fixed.)
		_, err = r.Exec("ANALYZE")
		check(b, "analyze", err)
	}
}

// bulk inserts rows many to a statement.
type bulk struct {
	tx    *sql.Tx
	d     *sqldb.Dialect
	table string // "name (columns)"
	rows  int
	args  []any
}

func (k *bulk) add(b *testing.B, table string, args ...any) {
	if table != k.table || k.rows == 200 {
		k.flush(b)
		k.table = table
	}
	k.args = append(k.args, args...)
	k.rows++
}

func (k *bulk) flush(b *testing.B) {
	if k.rows == 0 {
		return
	}
	one := "(" + strings.Repeat(", ?", len(k.args)/k.rows)[2:] + ")"
	q := "INSERT INTO " + k.table + " VALUES " + strings.Repeat(", "+one, k.rows)[2:]
	if _, err := k.tx.Exec(k.d.Rebind(q), k.args...); err != nil {
		b.Fatalf("populate %s: %v", k.table, err)
	}
	k.rows, k.args = 0, nil
}
