package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestUnreadableHistoryAndHeld runs, on every engine, the cases of rows
// that do not read in the history and in the held IMs: the readers leave
// them out, name them and go on.
func TestUnreadableHistoryAndHeld(t *testing.T) {
	suite := []struct {
		name string
		run  func(t *testing.T, db testDB)
	}{
		{"history rows left out, pages go past them", testUnreadableHistory},
		{"unreadable held IMs free the cap once read", testUnreadableHeldCap},
		{"unreadable queued IMs left out", testUnreadableQueuedAll},
		{"a conversation with an unreadable entry is a target", testUnreadableTargets},
		{"unreadable entries are pruned", testUnreadablePrune},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			for _, c := range suite {
				t.Run(c.name, func(t *testing.T) { c.run(t, e.fresh(t)) })
			}
		})
	}
}

// unreadable makes column of table's rows that match where (and args)
// a value the store cannot read: text in SQLite's integer or boolean
// column (as another tool may write it), NULL in PostgreSQL's, whose
// types are strict (the column's NOT NULL is dropped first).
func unreadable(t *testing.T, db testDB, table, column, where string, args ...any) {
	t.Helper()
	if db.driver == "postgres" {
		corrupt(t, db, `ALTER TABLE `+table+` ALTER COLUMN `+column+` DROP NOT NULL`)
		corrupt(t, db, `UPDATE `+table+` SET `+column+` = NULL WHERE `+where, args...)
		return
	}
	corrupt(t, db, `UPDATE `+table+` SET `+column+` = 'not this' WHERE `+where, args...)
}

// wantRowsOf checks that err is an *UnreadableRows of table for alice's
// account email ("" for all of her accounts) naming exactly the rows ids.
func wantRowsOf(t *testing.T, what string, err error, table, email string, ids ...int64) *UnreadableRows {
	t.Helper()
	var ur *UnreadableRows
	if !errors.Is(err, ErrUnreadable) || !errors.As(err, &ur) {
		t.Errorf("%s: got error %v, want ErrUnreadable naming rows %v", what, err, ids)
		return nil
	}
	var got []int64
	for _, r := range ur.Rows {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, ids) || ur.Table != table || ur.User != "alice" || ur.Email != email {
		t.Errorf("%s: got %s rows %v of %q's %q, want %s rows %v of alice's %q", what, ur.Table, got, ur.User, ur.Email, table, ids, email)
	}
	return ur
}

// unreadEmail is the account of alice's that the unreadable-row cases use.
const unreadEmail = "a@example.com"

// openAlice opens db's store with user alice and her account unreadEmail.
func openAlice(t *testing.T, db testDB) Store {
	t.Helper()
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: unreadEmail, Password: "pw"})
	return s
}

// testUnreadableHistory: history rows that do not read are left out of
// History, HistorySince and HistoryLatestSince, which return the others,
// as many as the limit allows, and name them; paging forward or back goes
// past them to every readable entry, once. HistoryByMsgID of one is
// ErrNotFound, naming it.
func testUnreadableHistory(t *testing.T, db testDB) {
	s := openAlice(t, db)
	const email = unreadEmail
	var es []HistoryEntry
	for i := range 8 {
		es = append(es, appendAt(t, s, "alice", email, 7, fmt.Sprint("e", i), ms(10*i)))
	}
	// e2 fails every reader; e3 (its time) and e5 (its buddy) are not of
	// the conversation's bounds or buddy, so only the readers by ID meet
	// them.
	unreadable(t, db, "history", "outgoing", "id = ?", es[2].ID)
	unreadable(t, db, "history", "sent", "id = ?", es[3].ID)
	unreadable(t, db, "history", "buddy", "id = ?", es[5].ID)
	readable := []HistoryEntry{es[0], es[1], es[4], es[6], es[7]}

	got, err := s.History(ctx, "alice", HistoryQuery{Account: email, Buddy: 7, Limit: 3})
	wantRowsOf(t, "History", err, "history", email, es[2].ID)
	if !slices.Equal(got, readable[:3]) {
		t.Errorf("History: got %q, want %q", msgids(got), msgids(readable[:3]))
	}
	got, err = s.HistorySince(ctx, "alice", 0, 3)
	wantRowsOf(t, "HistorySince", err, "history", "", es[2].ID, es[3].ID)
	if !slices.Equal(got, readable[:3]) {
		t.Errorf("HistorySince: got %q, want %q", msgids(got), msgids(readable[:3]))
	}
	got, err = s.HistoryLatestSince(ctx, "alice", 0, 0, 3)
	wantRowsOf(t, "HistoryLatestSince", err, "history", "", es[5].ID)
	if want := readable[2:]; !slices.Equal(got, want) {
		t.Errorf("HistoryLatestSince: got %q, want %q", msgids(got), msgids(want))
	}

	// Every page, any limit: a page's last entry bounds the next.
	pages := map[string]func(limit int, last []HistoryEntry) ([]HistoryEntry, error){
		"History AFTER": func(limit int, last []HistoryEntry) ([]HistoryEntry, error) {
			q := HistoryQuery{Account: email, Buddy: 7, Limit: limit}
			if len(last) > 0 {
				q.After, q.AfterID = last[len(last)-1].Time, last[len(last)-1].ID
			}
			return s.History(ctx, "alice", q)
		},
		"History BEFORE": func(limit int, last []HistoryEntry) ([]HistoryEntry, error) {
			q := HistoryQuery{Account: email, Buddy: 7, Limit: limit, Latest: true}
			if len(last) > 0 {
				q.Before, q.BeforeID = last[0].Time, last[0].ID
			}
			return s.History(ctx, "alice", q)
		},
		"HistorySince": func(limit int, last []HistoryEntry) ([]HistoryEntry, error) {
			after := int64(0)
			if len(last) > 0 {
				after = last[len(last)-1].ID
			}
			return s.HistorySince(ctx, "alice", after, limit)
		},
		"HistoryLatestSince": func(limit int, last []HistoryEntry) ([]HistoryEntry, error) {
			before := int64(0)
			if len(last) > 0 {
				before = last[0].ID
			}
			return s.HistoryLatestSince(ctx, "alice", 0, before, limit)
		},
	}
	for name, page := range pages {
		backwards := name == "History BEFORE" || name == "HistoryLatestSince"
		for limit := 1; limit <= 3; limit++ {
			var all, last []HistoryEntry
			for range len(es) + 1 {
				p, err := page(limit, last)
				if err != nil && !errors.Is(err, ErrUnreadable) {
					t.Fatalf("%s, limit %d: %v", name, limit, err)
				}
				if len(p) == 0 {
					break
				}
				if backwards {
					all = append(slices.Clone(p), all...)
				} else {
					all = append(all, p...)
				}
				last = p
			}
			if !slices.Equal(all, readable) {
				t.Errorf("%s, limit %d, page by page: got %q, want %q", name, limit, msgids(all), msgids(readable))
			}
		}
	}

	_, err = s.HistoryByMsgID(ctx, "alice", "e2")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("HistoryByMsgID of an unreadable entry: got %v, want ErrNotFound", err)
	}
	wantRowsOf(t, "HistoryByMsgID", err, "history", "", es[2].ID)
	if e, err := s.HistoryByMsgID(ctx, "alice", "e4"); err != nil || e != es[4] {
		t.Errorf("HistoryByMsgID of a readable entry: got %+v, %v; want %+v", e, err, es[4])
	}
	if _, err := s.History(ctx, "alice", HistoryQuery{Account: "nobody@example.com", Buddy: 7, Limit: 3}); !errors.Is(err, ErrNotFound) {
		t.Errorf("History of no account: got %v, want ErrNotFound", err)
	}
}

// testUnreadableHeldCap: an account whose MaxHeld held IMs cannot be read
// refuses IMs with ErrFull until they are read, by HeldIMs (the read that
// hands them to the user) or TakeHeld: the read names them and removes
// them, and IMs are held again.
func testUnreadableHeldCap(t *testing.T, db testDB) {
	s := openAlice(t, db)
	const email = unreadEmail
	r, d := db.raw(t)
	var acct int64
	check(t, "account id", r.QueryRow(d.Rebind(qAccountID), "alice", email).Scan(&acct))
	reads := []struct {
		name string
		read func() ([]HeldIM, error)
	}{
		{"TakeHeld", func() ([]HeldIM, error) { return s.TakeHeld(ctx, "alice", email) }},
		{"HeldIMs", func() ([]HeldIM, error) { return s.HeldIMs(ctx, "alice", email) }},
	}
	for _, c := range reads {
		corrupt(t, db, `DELETE FROM held_ims WHERE account_id = ?`, acct)
		corrupt(t, db, `WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO held_ims (account_id, seq, sender, text, sent, offline) SELECT ?, i, 42, 'spam', 0, FALSE FROM n`, MaxHeld-1, acct)
		kept, err := s.HoldIM(ctx, "alice", email, HeldIM{Seq: MaxHeld, From: 7, Text: "kept"})
		check(t, "HoldIM", err)
		unreadable(t, db, "held_ims", "sent", "account_id = ? AND id <> ?", acct, kept.ID)
		var ids []int64
		rows, err := r.Query(d.Rebind(`SELECT id FROM held_ims WHERE account_id = ? AND id <> ? ORDER BY id`), acct, kept.ID)
		check(t, "ids", err)
		for rows.Next() {
			var id int64
			check(t, "id", rows.Scan(&id))
			ids = append(ids, id)
		}
		check(t, "ids", rows.Err())
		rows.Close()

		if _, err := s.HoldIM(ctx, "alice", email, HeldIM{Seq: MaxHeld + 1, From: 7, Text: "refused"}); !errors.Is(err, ErrFull) {
			t.Fatalf("%s: HoldIM with MaxHeld held, all but one unreadable: got %v, want ErrFull", c.name, err)
		}
		got, err := c.read()
		if ur := wantRowsOf(t, c.name, err, "held_ims", email, ids...); ur != nil && !ur.Removed {
			t.Errorf("%s: the unreadable rows are not said to be removed", c.name)
		}
		if !slices.Equal(texts(got), []string{"kept"}) {
			t.Errorf("%s: got %d IMs, want [kept]", c.name, len(got))
		}
		for j, text := range []string{"room again", "and again"} {
			if _, err := s.HoldIM(ctx, "alice", email, HeldIM{Seq: int64(MaxHeld + 2 + j), From: 7, Text: text}); err != nil {
				t.Fatalf("%s: HoldIM %q once the unreadable were read: %v", c.name, text, err)
			}
		}
		want := []string{"kept", "room again", "and again"}
		if c.name == "TakeHeld" {
			want = want[1:] // taken
		}
		if got, err := s.HeldIMs(ctx, "alice", email); err != nil || !slices.Equal(texts(got), want) {
			t.Errorf("%s: HeldIMs after: got %q, %v; want %q and no error", c.name, texts(got), err, want)
		}
	}
}

// testUnreadableQueuedAll: a queued IM whose recipient cannot be read (a
// NULL on PostgreSQL, which must not read as UID 0) is left out of
// QueuedIMs and named; the others are returned.
func testUnreadableQueuedAll(t *testing.T, db testDB) {
	s := openAlice(t, db)
	const email = unreadEmail
	var ids []int64
	for i := range 3 {
		q, err := s.QueueIM(ctx, "alice", email, QueuedIM{To: 7, Nick: "bob", Text: fmt.Sprint("typed ", i+1)})
		check(t, "QueueIM", err)
		ids = append(ids, q.ID)
	}
	unreadable(t, db, "queued_ims", "recipient", "id = ?", ids[1])
	got, err := s.QueuedIMs(ctx, "alice", email)
	wantRowsOf(t, "QueuedIMs", err, "queued_ims", email, ids[1])
	var texts []string
	for _, q := range got {
		texts = append(texts, q.Text)
		if q.To != 7 {
			t.Errorf("QueuedIMs: %q is to %d, want 7", q.Text, q.To)
		}
	}
	if want := []string{"typed 1", "typed 3"}; !slices.Equal(texts, want) {
		t.Errorf("QueuedIMs: got %q, want %q", texts, want)
	}
}

// testUnreadableTargets: a conversation whose newest entry's time cannot
// be read is listed by HistoryTargets at its newest entry that reads; one
// with no entry that reads, or whose own row's latest time does not read,
// neither fails the others nor hides its conversation.
func testUnreadableTargets(t *testing.T, db testDB) {
	s := openAlice(t, db)
	const email = unreadEmail
	appendAt(t, s, "alice", email, 7, "b7-1", ms(10))
	appendAt(t, s, "alice", email, 7, "b7-2", ms(20))
	bad7 := appendAt(t, s, "alice", email, 7, "b7-3", ms(30))
	appendAt(t, s, "alice", email, 8, "b8-1", ms(25))
	bad9 := appendAt(t, s, "alice", email, 9, "b9-1", ms(5))
	appendAt(t, s, "alice", email, 10, "b10-1", ms(15))
	unreadable(t, db, "history", "sent", "id IN (?, ?)", bad7.ID, bad9.ID)
	unreadable(t, db, "history_conversations", "latest", "buddy = ?", 10)

	want := []HistoryTarget{{email, 8, ms(25)}, {email, 7, ms(20)}, {email, 10, ms(15)}}
	for _, oldest := range []bool{false, true} {
		got, err := s.HistoryTargets(ctx, "alice", time.Time{}, time.Time{}, 10, oldest)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("HistoryTargets (oldest %v): got %+v, %v; want %+v", oldest, got, err, want)
		}
	}
	got, err := s.HistoryTargets(ctx, "alice", ms(10), ms(25), 10, false)
	if want := want[1:]; err != nil || !slices.Equal(got, want) {
		t.Errorf("HistoryTargets between 10ms and 25ms: got %+v, %v; want %+v", got, err, want)
	}
}

// testUnreadablePrune: an entry whose time cannot be read is as old as
// can be: PruneHistory deletes it whatever its bound (but, with
// keepNeverDelivered, not one no client was sent), also for a user all of
// whose other entries are newer than the bound.
func testUnreadablePrune(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	const email = "a@example.com"
	for _, u := range []string{"alice", "bob"} {
		mustCreate(t, s, u)
		mustAdd(t, s, u, Account{Email: email, Password: "pw"})
	}
	var es []HistoryEntry
	for i := range 6 {
		es = append(es, appendAt(t, s, "alice", email, 7, fmt.Sprint("a", i), ms(10*i)))
	}
	bobs := []HistoryEntry{appendAt(t, s, "bob", email, 7, "b0", ms(100)), appendAt(t, s, "bob", email, 7, "b1", ms(110))}
	check(t, "SetClientPosition", s.SetClientPosition(ctx, "alice", "phone", es[4].ID))
	check(t, "SetClientPosition", s.SetClientPosition(ctx, "bob", "phone", bobs[1].ID))
	unreadable(t, db, "history", "sent", "id IN (?, ?, ?)", es[3].ID, es[5].ID, bobs[1].ID)

	n, err := s.PruneHistory(ctx, ms(15), true)
	check(t, "PruneHistory", err)
	if n != 4 { // a0, a1; a3 (unreadable); b1 (unreadable); not a5 (sent to no client)
		t.Errorf("PruneHistory: got %d deleted, want 4", n)
	}
	got, err := s.HistorySince(ctx, "alice", 0, 10)
	wantRowsOf(t, "alice's HistorySince", err, "history", "", es[5].ID)
	if want := []string{"a2", "a4"}; !slices.Equal(msgids(got), want) {
		t.Errorf("alice's entries after pruning: got %q, want %q", msgids(got), want)
	}
	if got, err := s.HistorySince(ctx, "bob", 0, 10); err != nil || !slices.Equal(msgids(got), []string{"b0"}) {
		t.Errorf("bob's entries after pruning: got %q, %v; want [b0] and no error", msgids(got), err)
	}
	historyConsistent(t, db)
}
