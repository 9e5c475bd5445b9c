package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/internal/pgtest"
	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/msim"
)

// testDB is an empty database of one engine made for one test, with the
// key file its stores use.
type testDB struct {
	engine string // "sqlite" or "postgres"
	dsn    string // the SQLite file, or a PostgreSQL URL
	key    string
}

// open opens a store on the database, closed when the test ends. Each
// call is a store of its own, as another node would have.
func (db testDB) open(t testing.TB) Store {
	t.Helper()
	s, err := OpenStore(context.Background(), db.dsn, StoreOptions{KeyFile: db.key})
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// raw opens the database without the store, for tests that look under it.
func (db testDB) raw(t testing.TB) (*sql.DB, *sqldb.Dialect) {
	t.Helper()
	d := sqldb.SQLite
	if db.engine == "postgres" {
		d = sqldb.Postgres
	}
	r, err := sql.Open(d.Driver, db.dsn)
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r, d
}

// sqlEngines make a fresh empty database each: SQLite always, PostgreSQL
// when pgtest.Env is set (else its runs skip, saying why).
var sqlEngines = []struct {
	name  string
	fresh func(testing.TB) testDB
}{
	{"sqlite", newSQLiteDB},
	{"postgres", newPostgresDB},
}

func newSQLiteDB(t testing.TB) testDB {
	dir := t.TempDir()
	return testDB{engine: "sqlite", dsn: filepath.Join(dir, "msim.db"), key: filepath.Join(dir, "msim.db.key")}
}

// newPostgresDB makes a schema of its own in the database the DSN names
// and drops it when the test ends, so runs and tests never collide.
func newPostgresDB(t testing.TB) testDB {
	t.Helper()
	dsn := pgtest.DSN(t)
	if !sqldb.IsPostgresURL(dsn) {
		t.Fatalf("%s: want a postgres:// URL", pgtest.Env)
	}
	return testDB{engine: "postgres", dsn: dsn, key: filepath.Join(t.TempDir(), "msimd.key")}
}

// storeEngines are the Store implementations the contract runs against.
// A store's second open is another node on the same data (the memory
// store has one node only: the same store).
func storeEngines() []struct {
	name string
	open func(t *testing.T) (Store, func() Store)
} {
	out := []struct {
		name string
		open func(t *testing.T) (Store, func() Store)
	}{{"mem", func(*testing.T) (Store, func() Store) {
		s := NewMemStore()
		return s, func() Store { return s }
	}}}
	for _, e := range sqlEngines {
		out = append(out, struct {
			name string
			open func(t *testing.T) (Store, func() Store)
		}{e.name, func(t *testing.T) (Store, func() Store) {
			db := e.fresh(t)
			return db.open(t), func() Store { return db.open(t) }
		}})
	}
	return out
}

// TestMigrationsUnchanged pins the released migration files: a database
// out there was made by them, so a change to the schema is a new file.
func TestMigrationsUnchanged(t *testing.T) {
	released := []struct{ name, sum string }{
		{"0001_init.sql", "52292b17b24c9abca2517a0db57d6659eda9ccb0d2cc1113cb0c12481dcad035"},
	}
	for _, r := range released {
		b, err := migrationFiles.ReadFile("migrations/" + r.name)
		if err != nil {
			t.Fatalf("released migration %s: %v", r.name, err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != r.sum {
			t.Errorf("migration %s: got sha256 %s, want %s: a released migration is never edited; add a new numbered file", r.name, got, r.sum)
		}
	}
	if got := SchemaVersion(); got < len(released) {
		t.Errorf("SchemaVersion: got %d, want at least %d", got, len(released))
	}
}

// TestSchemaChecks: a database newer than this binary is refused, naming
// it; an up-to-date one opens again and migrates nothing.
func TestSchemaChecks(t *testing.T) {
	for _, e := range sqlEngines {
		t.Run(e.name, func(t *testing.T) {
			db := e.fresh(t)
			s := db.open(t)
			if err := s.CreateAccount(&Account{Email: "a@x"}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			r, d := db.raw(t)
			if v, err := sqldb.Version(context.Background(), r, schema()); err != nil || v != SchemaVersion() {
				t.Fatalf("schema version: got %d (%v), want %d", v, err, SchemaVersion())
			}
			if _, err := db.open(t).AccountByEmail("A@X"); err != nil {
				t.Errorf("reopened: got %v, want the account", err)
			}
			if _, err := r.Exec(d.Rebind(`UPDATE msim_schema_version SET version = ?`), SchemaVersion()+1); err != nil {
				t.Fatal(err)
			}
			_, err := OpenStore(context.Background(), db.dsn, StoreOptions{KeyFile: db.key})
			var newer *sqldb.NewerSchemaError
			if !errors.As(err, &newer) || newer.Database != SchemaVersion()+1 || !strings.Contains(err.Error(), "upgrade msimd") {
				t.Fatalf("newer database: got %v, want a NewerSchemaError saying to upgrade msimd", err)
			}
			if db.engine == "sqlite" && !strings.Contains(err.Error(), db.dsn) {
				t.Errorf("newer database: %v does not name %s", err, db.dsn)
			}
		})
	}
}

// TestBadFileNamed: a SQLite file that is damaged, not a database, or an
// earlier msimd's bbolt file is refused with an error naming it, and left
// as it was.
func TestBadFileNamed(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, path string)
		want  error // nil: any error
		say   string
	}{
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
				t.Fatal(err)
			}
		}, nil, ""},
		{"damaged pages", func(t *testing.T, path string) {
			s, err := OpenFileStore(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				if err := s.CreateAccount(&Account{Email: fmt.Sprintf("u%d@x", i), Profile: msim.Dict{{Key: "Headline", Value: strings.Repeat("h", 500)}}}); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := 100; i < len(b); i++ { // all but SQLite's file header
				b[i] = byte(i * 7)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, nil, ""},
		{"an earlier msimd's file", func(t *testing.T, path string) {
			s, err := openBoltStore(path)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		}, ErrOldDataFile, "import"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "msim.db")
			tc.spoil(t, path)
			before, _ := os.ReadFile(path)
			s, err := OpenFileStore(path)
			if err == nil {
				s.Close()
				t.Fatal("opened; want an error")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.say) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("got %v, want an error naming %s (and %v, %q)", err, path, tc.want, tc.say)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Error("the file changed at the failed open")
			}
		})
	}
}

// TestPostgresKey: PostgreSQL needs a key file; a node whose key file is
// missing is refused (no new key is made for a sealed database), and one
// with another key too.
func TestPostgresKey(t *testing.T) {
	db := newPostgresDB(t)
	if _, err := OpenStore(context.Background(), db.dsn, StoreOptions{}); err == nil || !strings.Contains(err.Error(), "key file") {
		t.Errorf("no key file: got %v, want an error asking for one", err)
	}
	first := db.open(t)
	if err := first.CreateAccount(&Account{Email: "a@x", Hash: msim.HashPassword("pw")}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := OpenStore(context.Background(), db.dsn, StoreOptions{KeyFile: other}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a node without its key file: got %v, want an error saying it is missing", err)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key file was made for a sealed database (%v)", err)
	}
	writeKey(t, other, 0o600, KeySize)
	if _, err := OpenStore(context.Background(), db.dsn, StoreOptions{KeyFile: other}); !errors.Is(err, ErrWrongKey) {
		t.Errorf("a node with another key: got %v, want ErrWrongKey", err)
	}
	if a, err := db.open(t).AccountByEmail("a@x"); err != nil || a.Hash != msim.HashPassword("pw") {
		t.Errorf("second node with the key: got %+v, %v", a, err)
	}
}

// TestOfflineLimitsConcurrent: writers on two nodes (two stores on one
// database) fill one mailbox at once; the caps hold exactly, never
// exceeded by a race, and everything accepted is taken.
func TestOfflineLimitsConcurrent(t *testing.T) {
	const size, senders, each = 10, 4, 12
	cases := []struct {
		name     string
		lim      OfflineLimits
		accepted int // whatever the interleaving
	}{
		{"per recipient", OfflineLimits{Bytes: 10 * size}, 10},
		{"per sender", OfflineLimits{SenderBytes: 3 * size}, senders * 3},
		{"messages", OfflineLimits{Messages: 7}, 7},
	}
	for _, e := range storeEngines() {
		for _, tc := range cases {
			t.Run(e.name+"/"+tc.name, func(t *testing.T) {
				s, again := e.open(t)
				nodes := []Store{s, again()}
				uids := make([]msim.UID, senders+1)
				for i := range uids {
					a := &Account{Email: fmt.Sprintf("u%d@x", i)}
					if err := s.CreateAccount(a); err != nil {
						t.Fatal(err)
					}
					uids[i] = a.UID
				}
				to := uids[senders]
				var (
					wg       sync.WaitGroup
					mu       sync.Mutex
					accepted int
					failures []error
				)
				for i := range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := range each {
							err := nodes[(i+j)%2].AddOffline(to, OfflineMessage{From: uids[i], Body: strings.Repeat("x", size)}, tc.lim)
							mu.Lock()
							switch {
							case err == nil:
								accepted++
							case !errors.Is(err, errOfflineFull) && !errors.Is(err, errOfflineSenderFull):
								failures = append(failures, err)
							}
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				for _, err := range failures {
					t.Errorf("AddOffline: %v", err)
				}
				got, err := nodes[1].TakeOffline(to)
				if err != nil {
					t.Fatal(err)
				}
				if accepted != tc.accepted || len(got) != tc.accepted {
					t.Errorf("got %d accepted and %d taken, want %d of each", accepted, len(got), tc.accepted)
				}
			})
		}
	}
}

// TestTakeOfflineExactlyOnce: while writers on two nodes store IMs for one
// recipient, takers on both nodes take at once; every IM stored is taken
// exactly once, and each taker gets its IMs oldest first.
func TestTakeOfflineExactlyOnce(t *testing.T) {
	const writers, each = 4, 40
	for _, e := range storeEngines() {
		t.Run(e.name, func(t *testing.T) {
			s, again := e.open(t)
			nodes := []Store{s, again()}
			to := &Account{Email: "to@x"}
			from := &Account{Email: "from@x"}
			for _, a := range []*Account{to, from} {
				if err := s.CreateAccount(a); err != nil {
					t.Fatal(err)
				}
			}
			var (
				wg, takers sync.WaitGroup
				mu         sync.Mutex
				taken      = map[string]int{}
				errs       []error
			)
			done := make(chan struct{})
			take := func(n Store) bool {
				got, err := n.TakeOffline(to.UID)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return false
				}
				last := map[string]int{}
				for _, m := range got {
					taken[m.Body]++
					w, seq, _ := strings.Cut(m.Body, "/")
					var n int
					fmt.Sscan(seq, &n)
					if p, ok := last[w]; ok && n < p {
						errs = append(errs, fmt.Errorf("%s taken after %s/%d: not oldest first", m.Body, w, p))
					}
					last[w] = n
				}
				return true
			}
			for _, n := range nodes {
				takers.Add(1)
				go func() {
					defer takers.Done()
					for {
						select {
						case <-done:
							return
						default:
						}
						if !take(n) {
							return
						}
					}
				}()
			}
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						if err := nodes[w%2].AddOffline(to.UID, OfflineMessage{From: from.UID, Body: fmt.Sprintf("w%d/%d", w, i)}, OfflineLimits{}); err != nil {
							mu.Lock()
							errs = append(errs, err)
							mu.Unlock()
						}
					}
				}()
			}
			wg.Wait()
			close(done)
			takers.Wait()
			take(nodes[0])
			for _, err := range errs {
				t.Error(err)
			}
			if len(taken) != writers*each {
				t.Errorf("got %d distinct IMs taken, want %d", len(taken), writers*each)
			}
			var twice []string
			for body, n := range taken {
				if n != 1 {
					twice = append(twice, fmt.Sprintf("%s×%d", body, n))
				}
			}
			slices.Sort(twice)
			if len(twice) > 0 {
				t.Errorf("taken more than once: %v", twice)
			}
		})
	}
}

// TestCreateAccountConcurrent: nodes creating accounts at once get
// distinct uids, and one e-mail address or user name is had by one only.
func TestCreateAccountConcurrent(t *testing.T) {
	const n = 8
	for _, e := range storeEngines() {
		t.Run(e.name, func(t *testing.T) {
			s, again := e.open(t)
			nodes := []Store{s, again()}
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				uids = map[msim.UID]bool{}
				won  = map[string]int{}
				errs []error
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, a := range []*Account{
						{Email: fmt.Sprintf("own%d@x", i)},
						{Email: "same@x"},
						{Email: fmt.Sprintf("named%d@x", i), UserName: "Same"},
					} {
						err := nodes[i%2].CreateAccount(a)
						mu.Lock()
						switch {
						case err == nil:
							if uids[a.UID] {
								errs = append(errs, fmt.Errorf("uid %v given twice", a.UID))
							}
							uids[a.UID] = true
							won[a.Email+a.UserName]++
						case a.Email == "same@x" && errors.Is(err, ErrAccountExists), a.UserName != "" && errors.Is(err, ErrUserNameTaken):
						default:
							errs = append(errs, fmt.Errorf("create %s: %w", a.Email, err))
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			for _, err := range errs {
				t.Error(err)
			}
			var named int
			for k, c := range won {
				if strings.HasSuffix(k, "Same") {
					named += c
				}
			}
			if won["same@x"] != 1 || named != 1 || len(uids) != n+2 {
				t.Errorf("got same@x %d times, user name Same %d times, %d uids; want 1, 1, %d", won["same@x"], named, len(uids), n+2)
			}
			for uid := range uids {
				if uid < FirstUID || uid >= FirstUID+n+2 {
					t.Errorf("uid %v: want one of the %d from %v", uid, n+2, FirstUID)
				}
			}
		})
	}
}

// TestUpdateAccountUnchangedWritesNothing: an update that changes nothing
// (a client telling its privacy settings again at each login) writes
// nothing: SQLite's data version stays, and so does the PostgreSQL row's
// version; an update that changes something moves them.
func TestUpdateAccountUnchangedWritesNothing(t *testing.T) {
	for _, e := range sqlEngines {
		t.Run(e.name, func(t *testing.T) {
			db := e.fresh(t)
			s := db.open(t)
			a := &Account{Email: "same@example.com", UserName: "same", DisplayName: "Same", Hash: msim.HashPassword("Secret1"),
				Prefs: msim.Dict{{Key: "ShowOnlyToList", Value: "False"}}}
			if err := s.CreateAccount(a); err != nil {
				t.Fatal(err)
			}
			raw, _ := db.raw(t)
			conn, err := raw.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			probe := `PRAGMA data_version`
			if e.name == "postgres" {
				probe = fmt.Sprintf(`SELECT xmin::text FROM msim_accounts WHERE uid = %d`, a.UID)
			}
			version := func() string {
				t.Helper()
				var v string
				if err := conn.QueryRowContext(context.Background(), probe).Scan(&v); err != nil {
					t.Fatal(err)
				}
				return v
			}
			before := version()
			err = s.UpdateAccount(a.UID, func(a *Account) error {
				a.ShowOnlyToList = false
				a.Prefs = a.Prefs.Set("ShowOnlyToList", "False")
				a.DisplayName = "Same"
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if v := version(); v != before {
				t.Errorf("an update that changed nothing wrote: version %s → %s", before, v)
			}
			if err := s.UpdateAccount(a.UID, func(a *Account) error { a.ShowOnlyToList = true; return nil }); err != nil {
				t.Fatal(err)
			}
			if v := version(); v == before {
				t.Errorf("an update that changed something left the version at %s", v)
			}
			got, err := s.Account(a.UID)
			if err != nil || !got.ShowOnlyToList || got.DisplayName != "Same" {
				t.Errorf("after the updates: %+v, %v; want ShowOnlyToList and the display name kept", got, err)
			}
		})
	}
}

// TestTakeOfflineNothingWaitingNeedsNoWrite: on SQLite a login with no
// offline IMs waiting takes them without the write lock a DELETE takes, so
// the one writer busy elsewhere (other logins' updates syncing) does not
// hold it up: here a transaction holds the write lock, and TakeOffline
// still answers at once. With an IM waiting it does need the writer, and
// gets it once the lock is gone. (PostgreSQL has no such lock for a DELETE
// of nothing to wait for.)
func TestTakeOfflineNothingWaitingNeedsNoWrite(t *testing.T) {
	db := newSQLiteDB(t)
	s := db.open(t)
	empty := &Account{Email: "empty@example.com", UserName: "empty", Hash: msim.HashPassword("Secret1")}
	full := &Account{Email: "full@example.com", UserName: "full", Hash: msim.HashPassword("Secret1")}
	for _, a := range []*Account{empty, full} {
		if err := s.CreateAccount(a); err != nil {
			t.Fatal(err)
		}
	}
	lim := OfflineLimits{Messages: 10, Bytes: 1 << 20, SenderBytes: 1 << 20}
	if err := s.AddOffline(full.UID, OfflineMessage{From: empty.UID, Time: time.Now(), Body: "hi"}, lim); err != nil {
		t.Fatal(err)
	}
	raw, _ := db.raw(t)
	tx, err := raw.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The write lock, until the transaction ends.
	if _, err := tx.Exec(`DELETE FROM msim_offline WHERE recipient = 0`); err != nil {
		t.Fatal(err)
	}
	got, err := s.TakeOffline(empty.UID)
	if err != nil || len(got) != 0 {
		t.Errorf("nothing waiting, the writer held: got %v, %v; want none at once", got, err)
	}
	taken := make(chan []OfflineMessage, 1)
	go func() {
		got, err := s.TakeOffline(full.UID)
		if err != nil {
			t.Error(err)
		}
		taken <- got
	}()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := <-taken; len(got) != 1 || got[0].Body != "hi" {
		t.Errorf("one waiting: got %v, want it", got)
	}
}

// TestTakeOfflineFailedReadKeepsTheIMs: a take of the offline IMs that
// fails while it reads them (here one row cannot be read) leaves every IM
// stored, for the next login to take once the fault is gone; none is
// removed without being returned.
func TestTakeOfflineFailedReadKeepsTheIMs(t *testing.T) {
	for _, e := range sqlEngines {
		t.Run(e.name, func(t *testing.T) {
			db := e.fresh(t)
			s := db.open(t)
			to := &Account{Email: "to@x"}
			from := &Account{Email: "from@x"}
			for _, a := range []*Account{to, from} {
				if err := s.CreateAccount(a); err != nil {
					t.Fatal(err)
				}
			}
			bodies := []string{"first", "damaged", "last"}
			for _, b := range bodies {
				if err := s.AddOffline(to.UID, OfflineMessage{From: from.UID, Time: time.Now(), Body: b}, OfflineLimits{}); err != nil {
					t.Fatal(err)
				}
			}
			raw, d := db.raw(t)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := raw.Exec(d.Rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			// A value the store cannot read back as a number: text on
			// SQLite, NULL on PostgreSQL (its types are strict).
			if db.engine == "postgres" {
				exec(`ALTER TABLE msim_offline ALTER COLUMN cv DROP NOT NULL`)
				exec(`UPDATE msim_offline SET cv = NULL WHERE body = ?`, []byte("damaged"))
			} else {
				exec(`UPDATE msim_offline SET cv = 'not a number' WHERE body = ?`, []byte("damaged"))
			}
			if got, err := s.TakeOffline(to.UID); err == nil {
				t.Fatalf("take with a row it cannot read: got %d IMs and no error, want an error", len(got))
			}
			exec(`UPDATE msim_offline SET cv = 0 WHERE body = ?`, []byte("damaged"))
			got, err := s.TakeOffline(to.UID)
			if err != nil {
				t.Fatalf("take after the repair: %v", err)
			}
			var gotBodies []string
			for _, m := range got {
				gotBodies = append(gotBodies, m.Body)
			}
			if !slices.Equal(gotBodies, bodies) {
				t.Errorf("take after the failed take: got %q, want %q", gotBodies, bodies)
			}
		})
	}
}
