package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// TestMigrationsUnchanged pins the released migration files: a database
// out there was made by them, so a change to the schema is a new file.
func TestMigrationsUnchanged(t *testing.T) {
	released := []string{
		"0001_init.sql", "fc19abdc8db894570e602b07c07ee6e2d8f901e096158bc6d88879cc07904209",
		"0002_history.sql", "95311b3153c7a6170f5384940cd569bc948d677bb3cedfac294983590fa7103c",
		"0003_held_msgid.sql", "644a4c72460befc3de1258f4805126966ff7284dbe4aafd26d94d48728cbb6d4",
		"0004_leases.sql", "b106a13109ce8386e93f250eff6aadba6bba702c3ce527b265701b80d500cdfb",
		"0005_history_append.sql", "fd98bab122d0c4e48976e36bb4aa8ce21e67760229f88871247d306e34e1900b",
	}
	for i := 0; i < len(released); i += 2 {
		b, err := migrationFiles.ReadFile("migrations/" + released[i])
		if err != nil {
			t.Fatalf("released migration %s: %v", released[i], err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != released[i+1] {
			t.Errorf("migration %s: got sha256 %s, want %s: a released migration is never edited; add a new numbered file", released[i], got, released[i+1])
		}
	}
	all, err := migrations()
	if err != nil {
		t.Fatalf("migrations: %v", err)
	}
	if got := SchemaVersion(); got != len(all) || got < len(released)/2 {
		t.Errorf("SchemaVersion: got %d, want %d (the migration files)", got, len(all))
	}
}

// testReopen: everything written is there after the store is closed and
// opened again (what a restart does), and opening an up-to-date database
// migrates nothing.
func testReopen(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	fill(t, s, user, email)
	before := mustLoad(t, s, user)
	check(t, "Close", s.Close())

	s = db.open(t, testKey(1))
	after := mustLoad(t, s, user)
	if after.User != before.User || !maps.Equal(after.Settings, before.Settings) || after.HeldSeq != before.HeldSeq ||
		len(after.Accounts) != 1 || after.Accounts[0].Password != "msim-pass-1" ||
		!maps.Equal(after.Accounts[0].Nicks, before.Accounts[0].Nicks) ||
		!maps.Equal(after.Accounts[0].Settings, before.Accounts[0].Settings) {
		t.Errorf("after reopening: got %+v, want %+v", after, before)
	}
	held, _ := s.HeldIMs(ctx, user, email)
	queued, _ := s.QueuedIMs(ctx, user, email)
	notes, _ := s.TakeNotes(ctx, user)
	if len(held) != 1 || len(queued) != 1 || !slices.Equal(notes, []string{"note"}) {
		t.Errorf("after reopening: got %d held, %d queued, notes %q, want 1, 1, [note]", len(held), len(queued), notes)
	}
	r, _ := db.raw(t)
	if v, err := schemaVersion(ctx, r); err != nil || v != SchemaVersion() {
		t.Errorf("schema version: got %d (%v), want %d", v, err, SchemaVersion())
	}
}

// testMigrationFromV1 makes a database of schema version 1 by hand, with
// data in every table, and opens it with the current code.
func testMigrationFromV1(t *testing.T, db testDB) {
	r, d := db.raw(t)
	if err := migrate(ctx, r, d, 1); err != nil {
		t.Fatalf("migrate to 1: %v", err)
	}
	sl, _ := newSealer(testKey(1))
	sealed, err := sl.seal([]byte("v1 password"), passwordAD("alice", "alice@example.com"))
	check(t, "seal", err)
	when := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		// A fresh database numbers rows from 1.
		{`INSERT INTO users (name, password_hash, created) VALUES ('alice', ?, ?)`, []any{testHash(), when.UnixMicro()}},
		{`INSERT INTO user_settings (user_id, name, value) VALUES (1, 'timestamps', 'on')`, nil},
		{`INSERT INTO accounts (user_id, email, password, channel, autoconnect) VALUES (1, 'alice@example.com', ?, '&msim', ?)`, []any{sealed, true}},
		{`INSERT INTO account_settings (account_id, name, value) VALUES (1, 'status', 'away')`, nil},
		{`INSERT INTO buddy_nicks (account_id, uid, nick) VALUES (1, 6221, 'tom'), (1, 7, 'renamed')`, nil},
		{`INSERT INTO held_ims (account_id, seq, sender, text, sent, offline, zap) VALUES (1, 2, 6221, 'second', ?, ?, NULL), (1, 1, 7, '', ?, ?, 4)`,
			[]any{when.UnixMicro(), true, when.UnixMicro(), false}},
		{`INSERT INTO queued_ims (account_id, recipient, nick, text, typed) VALUES (1, 6221, 'tom', 'typed offline', ?)`, []any{when.UnixMicro()}},
		{`INSERT INTO notes (user_id, text, created) VALUES (1, 'a note', ?)`, []any{when.UnixMicro()}},
	} {
		if _, err := r.Exec(d.Rebind(q.sql), q.args...); err != nil {
			t.Fatalf("v1 data: %s: %v", q.sql, err)
		}
	}
	check(t, "close the v1 database", r.Close())

	s := db.open(t, testKey(1))
	st := mustLoad(t, s, "alice")
	if !st.User.Created.Equal(when) || st.User.PasswordHash != testHash() || st.Settings["timestamps"] != "on" || st.HeldSeq != 2 {
		t.Errorf("user after migration: got %+v", st)
	}
	if len(st.Accounts) != 1 {
		t.Fatalf("accounts after migration: got %d, want 1", len(st.Accounts))
	}
	a := st.Accounts[0]
	if a.Email != "alice@example.com" || a.Password != "v1 password" || a.Channel != "&msim" || !a.Autoconnect ||
		a.Settings["status"] != "away" || !maps.Equal(a.Nicks, map[msim.UID]string{6221: "tom", 7: "renamed"}) || a.Held != 2 || a.Queued != 1 {
		t.Errorf("account after migration: got %+v", a)
	}
	held, err := s.HeldIMs(ctx, "alice", "alice@example.com")
	check(t, "HeldIMs", err)
	want := []HeldIM{
		{ID: 2, Seq: 1, From: 7, Time: when, IsZap: true, Zap: markup.ZapHug},
		{ID: 1, Seq: 2, From: 6221, Text: "second", Time: when, Offline: true},
	}
	if len(held) != 2 {
		t.Fatalf("held after migration: got %d, want 2", len(held))
	}
	for i := range want {
		got := held[i]
		if !got.Time.Equal(want[i].Time) {
			t.Errorf("held %d time: got %v, want %v", i, got.Time, want[i].Time)
		}
		got.Time = want[i].Time
		if got != want[i] {
			t.Errorf("held %d: got %+v, want %+v", i, got, want[i])
		}
	}
	queued, err := s.QueuedIMs(ctx, "alice", "alice@example.com")
	check(t, "QueuedIMs", err)
	if len(queued) != 1 || queued[0].Text != "typed offline" || queued[0].To != 6221 || !queued[0].Time.Equal(when) {
		t.Errorf("queued after migration: got %+v", queued)
	}
	if notes, _ := s.TakeNotes(ctx, "alice"); !slices.Equal(notes, []string{"a note"}) {
		t.Errorf("notes after migration: got %q", notes)
	}
	// New rows number after the old ones (ids were taken from the
	// engine's own numbering, as the v1 code did).
	im, err := s.HoldIM(ctx, "alice", "alice@example.com", HeldIM{Seq: 3, From: 7, Text: "new"})
	check(t, "HoldIM after migration", err)
	if im.ID <= 2 {
		t.Errorf("new held IM: got ID %d, want above 2", im.ID)
	}
	// Schema 2's history works on the migrated user and account.
	if v, err := schemaVersion(ctx, sqlOf(s).db); err != nil || v != SchemaVersion() || v < 2 {
		t.Errorf("schema version after migration: got %d (%v), want %d", v, err, SchemaVersion())
	}
	e, err := s.AppendHistory(ctx, "alice", HistoryEntry{MsgID: "m1", Time: when, Account: "alice@example.com", Buddy: 6221, Kind: KindIM, Text: "first"})
	check(t, "AppendHistory after migration", err)
	if got, err := s.HistorySince(ctx, "alice", 0, 10); err != nil || !slices.Equal(got, []HistoryEntry{e}) {
		t.Errorf("history after migration: got %+v, %v, want [%+v]", got, err, e)
	}
	check(t, "SetClientPosition after migration", s.SetClientPosition(ctx, "alice", "phone", e.ID))
	if _, err := s.SetReadMarker(ctx, "alice", "alice@example.com", 6221, when); err != nil {
		t.Errorf("SetReadMarker after migration: %v", err)
	}
	check(t, "DeleteAccount after migration", s.DeleteAccount(ctx, "alice", "alice@example.com"))
	check(t, "DeleteUser after migration", s.DeleteUser(ctx, "alice"))
}

// testNewerSchema: a database from a newer msimircd is refused, by name,
// and left as it was.
func testNewerSchema(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	check(t, "Close", s.Close())
	r, d := db.raw(t)
	newer := SchemaVersion() + 1
	if _, err := r.Exec(d.Rebind(`UPDATE schema_version SET version = ?`), newer); err != nil {
		t.Fatalf("set version: %v", err)
	}
	_, err := Open(context.Background(), db.driver, db.dsn, testKey(1))
	var ne *NewerSchemaError
	if !errors.As(err, &ne) || ne.Database != newer || ne.Binary != SchemaVersion() {
		t.Fatalf("Open of a newer database: got %v, want a NewerSchemaError %d > %d", err, newer, SchemaVersion())
	}
	msg := fmt.Sprintf("database schema version %d is newer than this msimircd (%d); upgrade msimircd", newer, SchemaVersion())
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error: got %q, want it to say %q", err, msg)
	}
	if db.path != "" && !strings.Contains(err.Error(), db.path) {
		t.Errorf("error: got %q, want it to name %s", err, db.path)
	}
	if v, err := schemaVersion(ctx, r); err != nil || v != newer {
		t.Errorf("version after the refusal: got %d (%v), want %d left as it was", v, err, newer)
	}
	var n int
	if err := r.QueryRow(`SELECT count(*) FROM users`).Scan(&n); err != nil || n != 1 {
		t.Errorf("users after the refusal: got %d (%v), want 1", n, err)
	}
}

// testSealedAtRest: the MSIM password is nowhere in the database in clear,
// and a sealed password moved to another account does not open.
func testSealedAtRest(t *testing.T, db testDB) {
	const secret = "Zq9-known-MSIM-password"
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: "a@example.com", Password: secret, Channel: "&a"})
	mustAdd(t, s, "alice", Account{Email: "b@example.com", Password: "other", Channel: "&b"})
	r, d := db.raw(t)
	rows, err := r.Query(`SELECT password FROM accounts`)
	check(t, "select passwords", err)
	for rows.Next() {
		var b []byte
		check(t, "scan", rows.Scan(&b))
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("other")) {
			t.Errorf("a password column holds a password in clear: %q", b)
		}
	}
	rows.Close()
	if db.path != "" {
		assertFilesLack(t, db.path, secret)
	}
	// Sealed to its row: a's sealed password copied onto b does not open.
	if _, err := r.Exec(d.Rebind(`UPDATE accounts SET password = (SELECT password FROM accounts WHERE email = ?) WHERE email = ?`),
		"a@example.com", "b@example.com"); err != nil {
		t.Fatalf("copy sealed password: %v", err)
	}
	st, err := s.LoadUser(ctx, "alice")
	if err != nil || len(st.Accounts) != 2 || !errors.Is(st.Accounts[1].Unreadable, ErrUnreadable) || st.Accounts[1].Password != "" {
		t.Errorf("LoadUser with a sealed password moved between accounts: got %+v, %v; want b@ unreadable", st.Accounts, err)
	}
}

// testWrongKey: a database opened with another key is refused at Open, and
// its sealed passwords do not open under that key.
func testWrongKey(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: "a@example.com", Password: "pw", Channel: "&a"})
	check(t, "Close", s.Close())
	_, err := Open(context.Background(), db.driver, db.dsn, testKey(2))
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key: got %v, want ErrWrongKey", err)
	}
	if db.path != "" && !strings.Contains(err.Error(), db.path) {
		t.Errorf("error: got %q, want it to name %s", err, db.path)
	}
	r, _ := db.raw(t)
	var sealed []byte
	check(t, "select password", r.QueryRow(`SELECT password FROM accounts`).Scan(&sealed))
	wrong, _ := newSealer(testKey(2))
	if _, err := wrong.open(sealed, passwordAD("alice", "a@example.com")); !errors.Is(err, ErrWrongKey) {
		t.Errorf("opening a sealed password with another key: got %v, want ErrWrongKey", err)
	}
	right, _ := newSealer(testKey(1))
	if pw, err := right.open(sealed, passwordAD("alice", "a@example.com")); err != nil || string(pw) != "pw" {
		t.Errorf("opening it with its key: got %q, %v, want pw", pw, err)
	}
}

// TestPostgresMigrationLock: Open migrates under the advisory lock every
// msimircd has used, so a start of this binary and one of an earlier
// msimircd never migrate one database at once; while another session
// holds it, Open waits at the lock rather than migrating.
func TestPostgresMigrationLock(t *testing.T) {
	db := newPostgresDB(t)
	const releasedLockKey = 7306215870412535 // msimircd's since its first schema
	other, err := sql.Open("pgx", db.dsn)
	check(t, "open another session", err)
	defer other.Close()
	conn, err := other.Conn(ctx)
	check(t, "connection", err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(releasedLockKey))
	check(t, "take the lock", err)

	wait, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	s, err := Open(wait, db.driver, db.dsn, testKey(1))
	if err == nil {
		s.Close()
		t.Fatal("Open while another session holds the migration lock: got a store, want it to wait for the lock")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "migration lock") {
		t.Errorf("Open while the lock is held: got %v, want the deadline to end its wait for the migration lock", err)
	}

	_, err = conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, int64(releasedLockKey))
	check(t, "release the lock", err)
	db.open(t, testKey(1)) // fails the test if Open fails
}
