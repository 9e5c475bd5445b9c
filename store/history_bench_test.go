package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// Sizes of the history benchmark's store: benchHistoryUsers users with
// benchHistoryEach entries each, half of them with buddy 1 (the
// conversation measured), the rest over benchHistoryBuddies others.
const (
	benchHistoryUsers   = 100
	benchHistoryEach    = 10_000
	benchHistoryBuddies = 9
	benchHistorySpan    = 90 * 24 * time.Hour // the entries' times spread over it
	benchPage           = 100
	benchPagesEach      = 10 // requests after the first, in benchAllAtOnce
)

// BenchmarkAppendHistory measures storing one IM in an empty store: a
// committed (on SQLite, synced) transaction. Median and 99th percentile.
func BenchmarkAppendHistory(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			requireEngine(b, e.name)
			s := e.fresh(b).open(b, testKey(1))
			user, email := userWithAccount(b, s)
			benchAppend(b, s, user, email)
		})
	}
}

func benchAppend(b *testing.B, s Store, user, email string) {
	text := strings.Repeat("an IM of a typical length ", 4)
	lat := make([]time.Duration, 0, 1024)
	n := 0
	for b.Loop() {
		n++
		start := time.Now()
		if _, err := s.AppendHistory(context.Background(), user, HistoryEntry{
			MsgID: fmt.Sprint("bench-", n), Account: email, Buddy: 1, Kind: KindIM, Text: text,
		}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportLatency(b, lat)
}

// BenchmarkHistory measures the queries of CHATHISTORY on a store of
// benchHistoryUsers users × benchHistoryEach entries, for one user in the
// middle: LATEST 100, a BEFORE page of 100 at a random point of the
// conversation, TARGETS, replay by position, and an append there.
func BenchmarkHistory(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			requireEngine(b, e.name)
			db := e.fresh(b)
			first := populateHistory(b, db)
			s := db.open(b, testKey(1))
			ctx := context.Background()
			user := fmt.Sprintf("user%03d", benchHistoryUsers/2)
			email := user + "@example.com"
			last, err := s.LastHistoryID(ctx, user)
			if err != nil {
				b.Fatal(err)
			}
			span := benchHistorySpan.Milliseconds()
			rng := rand.New(rand.NewPCG(1, 2))
			query := func(name string, f func() (int, error)) {
				b.Run(name, func(b *testing.B) {
					lat := make([]time.Duration, 0, 1024)
					for b.Loop() {
						start := time.Now()
						n, err := f()
						lat = append(lat, time.Since(start))
						if err != nil {
							b.Fatal(err)
						}
						if n == 0 {
							b.Fatal("no rows")
						}
					}
					reportLatency(b, lat)
				})
			}
			query("latest-100", func() (int, error) {
				es, err := s.History(ctx, user, HistoryQuery{Account: email, Buddy: 1, Limit: benchPage, Latest: true})
				return len(es), err
			})
			query("before-page-100", func() (int, error) {
				at := first.Add(time.Duration(span/10+rng.Int64N(span*9/10)) * time.Millisecond)
				es, err := s.History(ctx, user, HistoryQuery{Account: email, Buddy: 1, Before: at, Limit: benchPage, Latest: true})
				return len(es), err
			})
			query("after-page-100", func() (int, error) {
				at := first.Add(time.Duration(rng.Int64N(span*9/10)) * time.Millisecond)
				es, err := s.History(ctx, user, HistoryQuery{Account: email, Buddy: 1, After: at, Limit: benchPage})
				return len(es), err
			})
			query("targets-all", func() (int, error) {
				ts, err := s.HistoryTargets(ctx, user, time.Time{}, time.Time{}, benchPage, false)
				return len(ts), err
			})
			query("targets-last-day", func() (int, error) {
				ts, err := s.HistoryTargets(ctx, user, first.Add(benchHistorySpan-24*time.Hour), time.Time{}, benchPage, false)
				return len(ts), err
			})
			query("since-100", func() (int, error) {
				// IDs interleave over the users: this is 2 pages back.
				es, err := s.HistorySince(ctx, user, last-2*benchPage*benchHistoryUsers, benchPage)
				if err == nil && len(es) != benchPage {
					return 0, fmt.Errorf("HistorySince: got %d entries, want %d", len(es), benchPage)
				}
				return len(es), err
			})
			b.Run("latest-100-and-10-more-all-users-at-once", func(b *testing.B) { benchAllAtOnce(b, s) })
			b.Run("append", func(b *testing.B) { benchAppend(b, s, user, email) })
		})
	}
}

// benchAllAtOnce: every user asks for the LATEST 100 of its conversation
// at the same moment (clients reconnecting together), then for
// benchPagesEach more, each as soon as the one before has come (as a
// client pages back); the latencies of all the requests, median and 99th
// percentile. How the store serves callers waiting their turn shows in the
// tail: a caller passed over again and again waits for many others' turns.
func benchAllAtOnce(b *testing.B, s Store) {
	var (
		lat []time.Duration
		mu  sync.Mutex
	)
	round := func() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for u := range benchHistoryUsers {
			user := fmt.Sprintf("user%03d", u)
			wg.Go(func() {
				<-start
				for range 1 + benchPagesEach {
					t := time.Now()
					es, err := s.History(context.Background(), user, HistoryQuery{Account: user + "@example.com", Buddy: 1, Limit: benchPage, Latest: true})
					d := time.Since(t)
					if err != nil || len(es) != benchPage {
						b.Errorf("%s: LATEST %d: %d entries, %v", user, benchPage, len(es), err)
					}
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
	}
	round() // a pool's connections opened, not counted
	lat = make([]time.Duration, 0, 1024)
	for b.Loop() {
		round()
	}
	reportLatency(b, lat)
}

// populateHistory fills the database by hand, in one transaction, and
// returns the time of the first entry.
func populateHistory(b *testing.B, db testDB) time.Time {
	b.Helper()
	s := db.open(b, testKey(1))
	check(b, "Close", s.Close())
	r, d := db.raw(b)
	sl, _ := newSealer(testKey(1))
	tx, err := r.Begin()
	check(b, "begin", err)
	defer tx.Rollback() //nolint:errcheck // committed below
	rows := &bulk{tx: tx, d: d}
	first := time.Now().Add(-benchHistorySpan).Truncate(time.Millisecond)
	step := benchHistorySpan / benchHistoryEach
	now := time.Now().UnixMicro()
	text := strings.Repeat("an IM of a typical length ", 4)
	for u := range benchHistoryUsers {
		name := fmt.Sprintf("user%03d", u)
		sealed, err := sl.seal([]byte("msim password"), passwordAD(name, name+"@example.com"))
		check(b, "seal", err)
		rows.add(b, `users (id, name, password_hash, created)`, int64(u+1), name, testHash(), now)
		rows.flush(b)
		rows.add(b, `accounts (id, user_id, email, password, channel, autoconnect)`, int64(u+1), int64(u+1), name+"@example.com", sealed, "&msim", true)
		rows.flush(b)
	}
	id := int64(0)
	for j := range benchHistoryEach { // time order across users, as they arrive
		at := first.Add(time.Duration(j) * step)
		buddy := msim.UID(1)
		if j%2 == 1 {
			buddy = msim.UID(2 + (j/2)%benchHistoryBuddies)
		}
		for u := range benchHistoryUsers {
			id++
			rows.add(b, `history (id, user_id, account_id, buddy, msgid, sent, outgoing, kind, text)`,
				id, int64(u+1), int64(u+1), int64(buddy), fmt.Sprint("m", id), micros(at.Add(time.Duration(u)*time.Millisecond)),
				j%3 == 0, KindIM, text)
		}
	}
	rows.flush(b)
	for u := range benchHistoryUsers {
		rows.add(b, `history_users (user_id, entries, last_id)`, int64(u+1), int64(benchHistoryEach),
			int64((benchHistoryEach-1)*benchHistoryUsers+u+1))
	}
	rows.flush(b)
	_, err = tx.Exec(`INSERT INTO history_conversations (account_id, buddy, user_id, latest)
		SELECT account_id, buddy, user_id, max(sent) FROM history GROUP BY account_id, buddy, user_id`)
	check(b, "conversations", err)
	if db.driver == "postgres" {
		// Explicit ids: move the engine's numbering past them.
		for _, t := range []string{"users", "accounts", "history"} {
			_, err := tx.Exec(`SELECT setval(pg_get_serial_sequence('` + t + `', 'id'), (SELECT max(id) FROM ` + t + `))`)
			check(b, "setval", err)
		}
	}
	check(b, "commit", tx.Commit())
	if db.driver == "postgres" {
		_, err = r.Exec("ANALYZE") // as autovacuum would soon after such a load
		check(b, "analyze", err)
	}
	return first
}

// BenchmarkAppendHistoryBatch measures AppendHistoryBatch as the bridge's
// history writer calls it: batches of benchBatch entries spread over
// benchHistoryUsers users (two conversations each), with msgids made the
// way ircd makes them (time first). Reports the time per entry and, for
// SQLite, the CPU (user and system) per entry.
func BenchmarkAppendHistoryBatch(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			requireEngine(b, e.name)
			s, text := openBenchUsers(b, e.fresh(b))
			batch := make([]HistoryAppend, benchBatch)
			n := 0
			cpu0, cpuOK := processCPU()
			for b.Loop() {
				for i := range batch {
					n++
					name := fmt.Sprintf("user%03d", n%benchHistoryUsers)
					batch[i] = HistoryAppend{User: name, Entry: HistoryEntry{
						MsgID: fmt.Sprintf("%012x%08x", time.Now().UnixMicro(), n), Account: name + "@example.com",
						Buddy: msim.UID(1 + n%2), Outgoing: n%3 == 0, Kind: KindIM, Text: text,
					}}
				}
				for _, r := range s.AppendHistoryBatch(context.Background(), batch, nil) {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/entry")
			// The CPU an entry costs, without the time spent waiting for
			// the disk (synchronous commits): what the history writer
			// process takes from the machine the IMs share. Only where
			// the store runs in this process: PostgreSQL's work is the
			// server's.
			if cpu1, ok := processCPU(); ok && cpuOK && e.name == "sqlite" {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(n), "cpu-ns/entry")
			}
		})
	}
}

// benchBatch is the size of BenchmarkAppendHistoryBatch's batches: what
// the history writer gathers in its linger at the rate.
const benchBatch = 2500

// openBenchUsers opens a fresh store in db with benchHistoryUsers users
// ("user000"…, each with the account "<name>@example.com"), and returns it
// with the text of a typical IM. It has the page cache of the history
// writer process (histproc), which makes the bridge's appends.
func openBenchUsers(b *testing.B, db testDB) (Store, string) {
	s := db.open(b, testKey(1), WithSQLiteCache(32*1024))
	for u := range benchHistoryUsers {
		name := fmt.Sprintf("user%03d", u)
		mustCreate(b, s, name)
		mustAdd(b, s, name, Account{Email: name + "@example.com", Password: "p", Channel: "&msim"})
	}
	return s, strings.Repeat("an IM of a typical length ", 4)
}
