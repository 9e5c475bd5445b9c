package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// Read markers, client positions, pruning, the cap, concurrency and group
// commit: the cases of TestHistory (history_test.go) about what is kept.

func testReadMarkers(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	mustAdd(t, s, user, Account{Email: "other@example.com", Password: "p", Channel: "&o"})
	if got, err := s.ReadMarker(ctx, user, email, 7); err != nil || !got.IsZero() {
		t.Errorf("ReadMarker with none: got %v, %v, want the zero time", got, err)
	}
	for _, c := range []struct {
		set, want time.Time
	}{
		{ms(10), ms(10)},
		{ms(5), ms(10)},  // back: stays
		{ms(10), ms(10)}, // same
		{ms(20).Add(999 * time.Microsecond), ms(20)}, // forward, to the millisecond
		{ms(20).Add(-time.Hour), ms(20)},
		{ms(21).In(time.FixedZone("x", 3600)), ms(21)},
	} {
		got, err := s.SetReadMarker(ctx, user, email, 7, c.set)
		check(t, "SetReadMarker", err)
		if !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("SetReadMarker(%v): got %v, want %v in UTC", c.set, got, c.want)
		}
		if got, err := s.ReadMarker(ctx, user, email, 7); err != nil || !got.Equal(c.want) {
			t.Errorf("ReadMarker after SetReadMarker(%v): got %v, %v, want %v", c.set, got, err, c.want)
		}
	}
	// Per conversation.
	for _, other := range []struct {
		email string
		buddy msim.UID
	}{{email, 8}, {"other@example.com", 7}} {
		if got, _ := s.ReadMarker(ctx, user, other.email, other.buddy); !got.IsZero() {
			t.Errorf("ReadMarker of %s/%d: got %v, want none", other.email, other.buddy, got)
		}
	}
	if _, err := s.SetReadMarker(ctx, user, email, 7, time.Time{}); err == nil {
		t.Error("SetReadMarker to the zero time: got no error")
	}
	if _, err := s.SetReadMarker(ctx, user, email, 0, ms(1)); err == nil {
		t.Error("SetReadMarker of buddy 0: got no error")
	}
}

func testClientPositions(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, _ := userWithAccount(t, s)
	mustCreate(t, s, "bob")
	if _, found, err := s.ClientPosition(ctx, user, "phone"); err != nil || found {
		t.Errorf("ClientPosition with none: got found %v, %v, want not found", found, err)
	}
	steps := []struct {
		user, client string
		set          int64
	}{
		{user, "phone", 5},
		{user, "phone", 3}, // back: stays 5
		{user, "desktop", 2},
		{user, "", 7},
		{"bob", "phone", 1},
		{user, "phone", 9},
		{user, "phone", 9},
		{user, "desktop", 0},
	}
	for _, st := range steps {
		check(t, "SetClientPosition", s.SetClientPosition(ctx, st.user, st.client, st.set))
	}
	for _, c := range []struct {
		user, client string
		want         int64
		found        bool
	}{
		{user, "phone", 9, true},
		{user, "desktop", 2, true},
		{user, "", 7, true},
		{"bob", "phone", 1, true},
		{"bob", "desktop", 0, false},
		{user, "Phone", 0, false},
	} {
		got, found, err := s.ClientPosition(ctx, c.user, c.client)
		if err != nil || got != c.want || found != c.found {
			t.Errorf("ClientPosition(%q, %q): got %d, %v, %v, want %d, %v", c.user, c.client, got, found, err, c.want, c.found)
		}
	}
	if err := s.SetClientPosition(ctx, user, "phone", -1); err == nil {
		t.Error("SetClientPosition(-1): got no error")
	}
}

func testClientPositionsBounded(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, _ := userWithAccount(t, s)
	for i := range MaxClientPositions + 1 {
		check(t, "SetClientPosition", s.SetClientPosition(ctx, user, fmt.Sprintf("c%03d", i), int64(i)))
	}
	if _, found, _ := s.ClientPosition(ctx, user, "c000"); found {
		t.Errorf("the client set longest ago: got a position, want it forgotten past %d clients", MaxClientPositions)
	}
	for _, i := range []int{1, MaxClientPositions} {
		name := fmt.Sprintf("c%03d", i)
		if got, found, _ := s.ClientPosition(ctx, user, name); !found || got != int64(i) {
			t.Errorf("ClientPosition(%s): got %d, %v, want %d", name, got, found, i)
		}
	}
	// Setting a known one again keeps it (and forgets none).
	check(t, "SetClientPosition", s.SetClientPosition(ctx, user, "c001", 100))
	if _, found, _ := s.ClientPosition(ctx, user, "c002"); !found {
		t.Error("c002 after setting a known client again: got forgotten, want kept")
	}
	if got := rowCounts(t, db)["client_positions"]; got != MaxClientPositions {
		t.Errorf("positions kept: got %d, want %d", got, MaxClientPositions)
	}
}

// historyConsistent checks that each user's kept count is their number of
// rows (the cap relies on it).
func historyConsistent(t testing.TB, db testDB) {
	t.Helper()
	r, _ := db.raw(t)
	rows, err := r.Query(`SELECT hu.user_id, hu.entries, (SELECT count(*) FROM history h WHERE h.user_id = hu.user_id) FROM history_users hu`)
	check(t, "count history", err)
	defer rows.Close()
	for rows.Next() {
		var uid, kept, counted int64
		check(t, "scan", rows.Scan(&uid, &kept, &counted))
		if kept != counted {
			t.Errorf("user %d: got a kept count of %d, want %d (the rows)", uid, kept, counted)
		}
	}
	check(t, "count history", rows.Err())
}

func testPruneByTime(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: email, Password: "p", Channel: "&b"})
	for i := range 5 {
		appendAt(t, s, user, email, 7, fmt.Sprint("a", i), ms(10*i))
		appendAt(t, s, "bob", email, 7, fmt.Sprint("b", i), ms(10*i+5))
	}
	appendAt(t, s, user, email, 8, "old", ms(1)) // a conversation pruning empties
	// A client position changes nothing without keepNeverDelivered.
	check(t, "SetClientPosition", s.SetClientPosition(ctx, user, "phone", 0))
	n, err := s.PruneHistory(ctx, ms(20), false) // before is exclusive
	check(t, "PruneHistory", err)
	if n != 5 {
		t.Errorf("PruneHistory(20ms): got %d deleted, want 5", n)
	}
	targets, _ := s.HistoryTargets(ctx, user, time.Time{}, time.Time{}, 10, false)
	if len(targets) != 1 || targets[0].Buddy != 7 || !targets[0].Latest.Equal(ms(40)) {
		t.Errorf("targets after pruning: got %+v, want buddy 7 only, at 40ms", targets)
	}
	if got := rowCounts(t, db)["history_conversations"]; got != 2 {
		t.Errorf("conversations after pruning: got %d, want 2 (alice's and bob's with buddy 7)", got)
	}
	n, err = s.PruneHistory(ctx, ms(20), false)
	if err != nil || n != 0 {
		t.Errorf("PruneHistory again: got %d, %v, want 0 deleted", n, err)
	}
	n, err = s.PruneHistory(ctx, ms(25).Add(1), false) // a nanosecond after b2
	check(t, "PruneHistory", err)
	if n != 2 {
		t.Errorf("PruneHistory(25ms+1ns): got %d deleted, want 2", n)
	}
	for u, want := range map[string][]string{user: {"a3", "a4"}, "bob": {"b3", "b4"}} {
		got, _ := s.HistorySince(ctx, u, 0, 10)
		if !slices.Equal(msgids(got), want) {
			t.Errorf("%s's entries after pruning: got %q, want %q", u, msgids(got), want)
		}
	}
	historyConsistent(t, db)
}

func testPruneNeverDelivered(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: email, Password: "p", Channel: "&b"})
	var ids []int64
	for i := range 6 {
		ids = append(ids, appendAt(t, s, user, email, 7, fmt.Sprint("a", i), ms(i)).ID)
		appendAt(t, s, "bob", email, 7, fmt.Sprint("b", i), ms(i))
	}
	// alice's phone was sent up to a1, her desktop up to a3: a0..a3 were
	// sent to some client, a4 and a5 to none. bob has no client position:
	// nothing of his was sent anywhere.
	check(t, "SetClientPosition", s.SetClientPosition(ctx, user, "phone", ids[1]))
	check(t, "SetClientPosition", s.SetClientPosition(ctx, user, "desktop", ids[3]))
	n, err := s.PruneHistory(ctx, ms(100), true) // a retention of 0
	check(t, "PruneHistory", err)
	if n != 4 {
		t.Errorf("PruneHistory keeping the never delivered: got %d deleted, want 4", n)
	}
	for u, want := range map[string][]string{user: {"a4", "a5"}, "bob": {"b0", "b1", "b2", "b3", "b4", "b5"}} {
		got, _ := s.HistorySince(ctx, u, 0, 10)
		if !slices.Equal(msgids(got), want) {
			t.Errorf("%s's entries after pruning: got %q, want %q", u, msgids(got), want)
		}
	}
	// By time still: a5 was sent to no client but is newer than before.
	check(t, "SetClientPosition", s.SetClientPosition(ctx, user, "phone", ids[5]))
	n, err = s.PruneHistory(ctx, ms(5), true)
	check(t, "PruneHistory", err)
	if got, _ := s.HistorySince(ctx, user, 0, 10); n != 1 || !slices.Equal(msgids(got), []string{"a5"}) {
		t.Errorf("PruneHistory(5ms): got %d deleted, %q left, want 1 and [a5]", n, msgids(got))
	}
	historyConsistent(t, db)
}

func testPruneChunks(t *testing.T, db testDB) {
	old := pruneChunk
	pruneChunk = 2
	t.Cleanup(func() { pruneChunk = old })
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	for i := range 7 {
		appendAt(t, s, user, email, 7, fmt.Sprint("a", i), ms(i))
	}
	n, err := s.PruneHistory(ctx, ms(5), false)
	check(t, "PruneHistory", err)
	if got, _ := s.HistorySince(ctx, user, 0, 10); n != 5 || !slices.Equal(msgids(got), []string{"a5", "a6"}) {
		t.Errorf("PruneHistory in chunks of 2: got %d deleted, %q left, want 5 and [a5 a6]", n, msgids(got))
	}
	historyConsistent(t, db)
}

func testHistoryCap(t *testing.T, db testDB) {
	if _, err := Open(ctx, db.driver, db.dsn, testKey(1), WithMaxHistoryPerUser(0)); err == nil || !strings.Contains(err.Error(), "max history") {
		t.Errorf("Open with a maximum of 0: got %v, want an error naming it", err)
	}
	s := openCapped(t, db, 3)
	user, email := userWithAccount(t, s)
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: email, Password: "p", Channel: "&b"})
	appendAt(t, s, "bob", email, 7, "bob's", ms(0))
	// Oldest by ID, not by time: a0 is the newest in time.
	for i := range 5 {
		appendAt(t, s, user, email, msim.UID(7+i%2), fmt.Sprint("a", i), ms(100-i))
	}
	got, _ := s.HistorySince(ctx, user, 0, 10)
	if want := []string{"a2", "a3", "a4"}; !slices.Equal(msgids(got), want) {
		t.Errorf("entries over the cap of 3: got %q, want %q", msgids(got), want)
	}
	if _, err := s.HistoryByMsgID(ctx, user, "a0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("HistoryByMsgID of an entry over the cap: got %v, want ErrNotFound", err)
	}
	if got, _ := s.HistorySince(ctx, "bob", 0, 10); !slices.Equal(msgids(got), []string{"bob's"}) {
		t.Errorf("bob's entries: got %q, want [bob's]", msgids(got))
	}
	// A conversation the cap emptied is no target.
	appendAt(t, s, user, email, 9, "a5", ms(300))
	appendAt(t, s, user, email, 7, "a6", ms(301))
	appendAt(t, s, user, email, 7, "a7", ms(302))
	targets, _ := s.HistoryTargets(ctx, user, time.Time{}, time.Time{}, 10, false)
	if len(targets) != 2 || targets[0].Buddy != 7 || targets[1].Buddy != 9 {
		t.Errorf("targets after the cap emptied buddy 8's: got %+v, want buddies 7 and 9", targets)
	}
	// A msgid deleted by the cap may come again.
	appendAt(t, s, user, email, 7, "a0", ms(200))
	got, _ = s.HistorySince(ctx, user, 0, 10)
	if want := []string{"a6", "a7", "a0"}; !slices.Equal(msgids(got), want) {
		t.Errorf("entries after one more: got %q, want %q", msgids(got), want)
	}
	historyConsistent(t, db)
}

func testHistoryCapAfterDeleteAccount(t *testing.T, db testDB) {
	s := openCapped(t, db, 3)
	user, email := userWithAccount(t, s)
	mustAdd(t, s, user, Account{Email: "b@example.com", Password: "p", Channel: "&b"})
	appendAt(t, s, user, email, 7, "a0", ms(0))
	appendAt(t, s, user, email, 7, "a1", ms(1))
	appendAt(t, s, user, "b@example.com", 7, "b0", ms(2))
	check(t, "SetReadMarker", func() error { _, err := s.SetReadMarker(ctx, user, email, 7, ms(1)); return err }())
	check(t, "DeleteAccount", s.DeleteAccount(ctx, user, email))
	historyConsistent(t, db)
	// One entry left: two more fit without deleting b0.
	appendAt(t, s, user, "b@example.com", 7, "b1", ms(3))
	appendAt(t, s, user, "b@example.com", 7, "b2", ms(4))
	got, _ := s.HistorySince(ctx, user, 0, 10)
	if want := []string{"b0", "b1", "b2"}; !slices.Equal(msgids(got), want) {
		t.Errorf("entries after DeleteAccount: got %q, want %q", msgids(got), want)
	}
	counts := rowCounts(t, db)
	if counts["read_markers"] != 0 || counts["history"] != 3 {
		t.Errorf("after DeleteAccount: got %d read markers, %d entries, want 0 and 3", counts["read_markers"], counts["history"])
	}
}

func testParallelAppend(t *testing.T, db testDB) {
	s, err := Open(ctx, db.driver, db.dsn, testKey(1), WithMaxHistoryPerUser(150))
	check(t, "Open", err)
	t.Cleanup(func() { s.Close() })
	user, email := userWithAccount(t, s)
	mustAdd(t, s, user, Account{Email: "b@example.com", Password: "p", Channel: "&b"})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			acct := email
			if w%2 == 1 {
				acct = "b@example.com"
			}
			var seen int64
			for i := range each {
				if _, err := s.AppendHistory(ctx, user, HistoryEntry{MsgID: fmt.Sprint(w, "-", i), Account: acct, Buddy: msim.UID(w + 1), Kind: KindIM, Text: "x"}); err != nil {
					errs <- err
				}
				// A reader at the same time sees IDs in order, and
				// never one below what it saw before.
				got, err := s.HistorySince(ctx, user, seen, MaxHistoryLimit)
				if err != nil {
					errs <- err
				}
				for _, e := range got {
					if e.ID <= seen {
						errs <- fmt.Errorf("HistorySince(%d): got ID %d", seen, e.ID)
					}
					seen = e.ID
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("parallel AppendHistory: %v", err)
	}
	got, err := s.HistorySince(ctx, user, 0, MaxHistoryLimit)
	check(t, "HistorySince", err)
	if len(got) != 150 {
		t.Errorf("entries: got %d, want the cap, 150", len(got))
	}
	last, _ := s.LastHistoryID(ctx, user)
	if len(got) > 0 && got[len(got)-1].ID != last {
		t.Errorf("LastHistoryID: got %d, want %d", last, got[len(got)-1].ID)
	}
	historyConsistent(t, db)
}

func testHistoryReopen(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	e := appendAt(t, s, user, email, 7, "kept", ms(1))
	_, err := s.SetReadMarker(ctx, user, email, 7, ms(1))
	check(t, "SetReadMarker", err)
	check(t, "SetClientPosition", s.SetClientPosition(ctx, user, "phone", e.ID))
	check(t, "Close", s.Close())

	s = db.open(t, testKey(1))
	if got, err := s.HistoryByMsgID(ctx, user, "kept"); err != nil || got != e {
		t.Errorf("entry after reopening: got %+v, %v, want %+v", got, err, e)
	}
	if got, _ := s.ReadMarker(ctx, user, email, 7); !got.Equal(ms(1)) {
		t.Errorf("read marker after reopening: got %v, want %v", got, ms(1))
	}
	if got, _, _ := s.ClientPosition(ctx, user, "phone"); got != e.ID {
		t.Errorf("client position after reopening: got %d, want %d", got, e.ID)
	}
	if got, _ := s.LastHistoryID(ctx, user); got != e.ID {
		t.Errorf("LastHistoryID after reopening: got %d, want %d", got, e.ID)
	}
}

// testAppendContext: an append whose context has ended stores nothing, on
// either path.
func testAppendContext(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.AppendHistory(canceled, user, HistoryEntry{MsgID: "m", Account: email, Buddy: 7, Kind: KindIM})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("AppendHistory with a canceled context: got %v, want context.Canceled", err)
	}
	if got, _ := s.HistorySince(ctx, user, 0, 10); len(got) != 0 {
		t.Errorf("entries: got %q, want none", msgids(got))
	}
}

// TestAppendAfterClose: an append to a closed store fails, and closing
// twice is fine.
func TestAppendAfterClose(t *testing.T) {
	db := newSQLiteDB(t)
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	check(t, "Close", s.Close())
	check(t, "Close again", s.Close())
	if _, err := s.AppendHistory(ctx, user, HistoryEntry{MsgID: "m", Account: email, Buddy: 7, Kind: KindIM}); err == nil {
		t.Error("AppendHistory after Close: got nil, want an error")
	}
	if res := s.AppendHistoryBatch(ctx, []HistoryAppend{{user, HistoryEntry{MsgID: "m", Account: email, Buddy: 7, Kind: KindIM}}}, nil); res[0].Err == nil {
		t.Error("AppendHistoryBatch after Close: got nil, want an error")
	}
}

// testAppendBatch: AppendHistoryBatch appends users' entries interleaved
// in one call, each user's in the order given (their IDs increase that
// way), refuses the bad ones alone with the error AppendHistory would
// give, moves each conversation's latest time to its newest entry, keeps
// the count and the last ID exact, and gives its results in the caller's
// array.
func testAppendBatch(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: email, Password: "p", Channel: "&b"})
	appendAt(t, s, user, email, 7, "kept before", ms(0))
	entry := func(msgid, account string, buddy msim.UID, at int) HistoryEntry {
		return HistoryEntry{MsgID: msgid, Time: ms(at), Account: account, Buddy: buddy, Kind: KindIM, Text: msgid}
	}
	batch := []HistoryAppend{
		{user, entry("a1", email, 7, 50)},
		{"bob", entry("b1", email, 7, 10)},
		{user, entry("kept before", email, 7, 60)}, // a duplicate
		{"nobody", entry("n1", email, 7, 10)},
		{user, entry("", email, 7, 10)}, // no msgid
		{user, entry("a2", "other@example.com", 7, 10)},
		{user, entry("a3", email, 8, 20)},
		{"bob", entry("b2", email, 7, 5)},
		{user, entry("a4", email, 7, 30)}, // older than a1: a1 stays the latest
	}
	// The results go in the caller's array, with nothing left of what it
	// held.
	arr := make([]HistoryResult, len(batch)+2)
	for i := range arr {
		arr[i] = HistoryResult{Entry: HistoryEntry{ID: 99}, Err: errors.New("stale")}
	}
	res := s.AppendHistoryBatch(ctx, batch, arr[:1])
	if len(res) != len(batch) {
		t.Fatalf("results: got %d, want %d", len(res), len(batch))
	}
	if &res[0] != &arr[0] {
		t.Error("results: in a new array, want the one given")
	}
	for i, r := range res {
		if r.Err != nil && r.Entry != (HistoryEntry{}) {
			t.Errorf("entry %d, refused: got %+v with it, want no entry (nothing left of what the array held)", i, r.Entry)
		}
	}
	wantErr := []error{nil, nil, ErrExists, ErrNotFound, nil, ErrNotFound, nil, nil, nil}
	for i, r := range res {
		switch {
		case i == 4:
			if r.Err == nil || !strings.Contains(r.Err.Error(), "msgid") {
				t.Errorf("entry %d without a msgid: got %v, want an error naming it", i, r.Err)
			}
		case !errors.Is(r.Err, wantErr[i]) || (wantErr[i] == nil) != (r.Err == nil):
			t.Errorf("entry %d (%s of %s): got %v, want %v", i, batch[i].Entry.MsgID, batch[i].User, r.Err, wantErr[i])
		case r.Err == nil && (r.Entry.ID == 0 || r.Entry.MsgID != batch[i].Entry.MsgID || !r.Entry.Time.Equal(batch[i].Entry.Time)):
			t.Errorf("entry %d: got %+v, want it stored with its ID and time", i, r.Entry)
		}
	}
	if !(res[0].Entry.ID < res[6].Entry.ID && res[6].Entry.ID < res[8].Entry.ID && res[1].Entry.ID < res[7].Entry.ID) {
		t.Errorf("IDs: got a1 %d, a3 %d, a4 %d, b1 %d, b2 %d; want each user's increasing in the batch's order",
			res[0].Entry.ID, res[6].Entry.ID, res[8].Entry.ID, res[1].Entry.ID, res[7].Entry.ID)
	}
	got, _ := s.HistorySince(ctx, user, 0, 10)
	if want := []string{"kept before", "a1", "a3", "a4"}; !slices.Equal(msgids(got), want) {
		t.Errorf("alice's entries: got %q, want %q", msgids(got), want)
	}
	if got, _ := s.HistorySince(ctx, "bob", 0, 10); !slices.Equal(msgids(got), []string{"b1", "b2"}) {
		t.Errorf("bob's entries: got %q, want [b1 b2]", msgids(got))
	}
	if last, err := s.LastHistoryID(ctx, user); err != nil || last != res[8].Entry.ID {
		t.Errorf("alice's last ID: got %d, %v, want %d", last, err, res[8].Entry.ID)
	}
	targets, _ := s.HistoryTargets(ctx, user, time.Time{}, time.Time{}, 10, false)
	if len(targets) != 2 || targets[0].Buddy != 7 || !targets[0].Latest.Equal(ms(50)) || targets[1].Buddy != 8 {
		t.Errorf("alice's targets: got %+v, want buddy 7 at a1's time, then buddy 8", targets)
	}
	// Nothing but refusals: the count and the last ID stay.
	res = s.AppendHistoryBatch(ctx, []HistoryAppend{{user, entry("a1", email, 7, 70)}}, nil)
	if !errors.Is(res[0].Err, ErrExists) {
		t.Errorf("a batch of one duplicate: got %v, want ErrExists", res[0].Err)
	}
	if last, _ := s.LastHistoryID(ctx, user); last != got[len(got)-1].ID {
		t.Errorf("alice's last ID after a refused batch: got %d, want %d", last, got[len(got)-1].ID)
	}
	if res := s.AppendHistoryBatch(ctx, nil, nil); len(res) != 0 {
		t.Errorf("an empty batch: got %d results, want none", len(res))
	}
	noBatchRetries(t, sqlOf(s))
	historyConsistent(t, db)
}

// testAppendBatchCap: a batch longer than the cap keeps the user's newest
// entries, the batch's last ones among them.
func testAppendBatchCap(t *testing.T, db testDB) {
	s := openCapped(t, db, 3)
	user, email := userWithAccount(t, s)
	appendAt(t, s, user, email, 7, "before", ms(0))
	var batch []HistoryAppend
	for i := range 5 {
		batch = append(batch, HistoryAppend{user, HistoryEntry{MsgID: fmt.Sprint("a", i), Time: ms(i), Account: email, Buddy: 7, Kind: KindIM}})
	}
	for i, r := range s.AppendHistoryBatch(ctx, batch, nil) {
		if r.Err != nil {
			t.Errorf("entry %d: got %v, want it appended", i, r.Err)
		}
	}
	got, _ := s.HistorySince(ctx, user, 0, 10)
	if want := []string{"a2", "a3", "a4"}; !slices.Equal(msgids(got), want) {
		t.Errorf("entries over the cap of 3: got %q, want %q", msgids(got), want)
	}
	noBatchRetries(t, sqlOf(s))
	historyConsistent(t, db)
}

// testAppendBatchLarge: a batch inserted several rows to a statement keeps
// each user's entries in the order given, and finds the one duplicate
// among them.
func testAppendBatchLarge(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	users := []string{"ann", "bob", "cat"}
	for _, u := range users {
		mustCreate(t, s, u)
		mustAdd(t, s, u, Account{Email: u + "@example.com", Password: "p", Channel: "&" + u})
	}
	appendAt(t, s, "bob", "bob@example.com", 7, "bob-70", ms(0))
	var batch []HistoryAppend
	want := map[string][]string{"bob": {"bob-70"}}
	for i := range 200 {
		u := users[i%3]
		msgid := fmt.Sprint(u, "-", i)
		batch = append(batch, HistoryAppend{u, HistoryEntry{MsgID: msgid, Time: ms(1000 - i), Account: u + "@example.com", Buddy: msim.UID(1 + i%5), Kind: KindIM, Text: msgid}})
		if msgid != "bob-70" {
			want[u] = append(want[u], msgid)
		}
	}
	for i, r := range s.AppendHistoryBatch(ctx, batch, nil) {
		wantErr := error(nil)
		if batch[i].Entry.MsgID == "bob-70" {
			wantErr = ErrExists
		}
		if !errors.Is(r.Err, wantErr) || (wantErr == nil) != (r.Err == nil) {
			t.Errorf("entry %d (%s): got %v, want %v", i, batch[i].Entry.MsgID, r.Err, wantErr)
		}
	}
	for _, u := range users {
		got, err := s.HistorySince(ctx, u, 0, 500)
		check(t, "HistorySince", err)
		if !slices.Equal(msgids(got), want[u]) {
			t.Errorf("%s's entries by ID: got %q, want %q", u, msgids(got), want[u])
		}
	}
	noBatchRetries(t, sqlOf(s))
	historyConsistent(t, db)
}

// openCapped opens db keeping at most max history entries per user.
func openCapped(t *testing.T, db testDB, max int) Store {
	t.Helper()
	s, err := Open(ctx, db.driver, db.dsn, testKey(1), WithMaxHistoryPerUser(max))
	check(t, "Open", err)
	t.Cleanup(func() { s.Close() })
	return s
}

// testAppendBatchManyUsers: a batch of more users, accounts and
// conversations than one of its statements takes (85 users, so several
// sizes of each statement), unknown users among them, keeps each user's
// count, last ID and conversations exact, a second batch for the same
// users too, each in one transaction.
func testAppendBatchManyUsers(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	const n = 85
	name := func(u int) string { return fmt.Sprintf("u%03d", u) }
	email := func(u int) string { return name(u) + "@example.com" }
	for u := range n {
		mustCreate(t, s, name(u))
		mustAdd(t, s, name(u), Account{Email: email(u), Password: "p", Channel: "&m"})
	}
	for round := range 2 {
		var batch []HistoryAppend
		for i := range 3 {
			for u := n - 1; u >= 0; u-- { // against name order
				batch = append(batch, HistoryAppend{name(u), HistoryEntry{MsgID: fmt.Sprintf("r%d-%d", round, i), Time: ms(100*round + i),
					Account: email(u), Buddy: msim.UID(1 + i%2), Kind: KindIM, Text: "x"}})
			}
			batch = append(batch, HistoryAppend{fmt.Sprint("nobody", i), HistoryEntry{MsgID: "n", Account: "a@example.com", Buddy: 1, Kind: KindIM}})
		}
		res := s.AppendHistoryBatch(ctx, batch, nil)
		last := map[string]int64{}
		for i, r := range res {
			a := batch[i]
			if strings.HasPrefix(a.User, "nobody") {
				if !errors.Is(r.Err, ErrNotFound) {
					t.Errorf("round %d, unknown user %s: got %v, want ErrNotFound", round, a.User, r.Err)
				}
				continue
			}
			if r.Err != nil || r.Entry.ID <= last[a.User] {
				t.Fatalf("round %d, entry %d of %s: got %+v, %v; want stored after ID %d", round, i, a.User, r.Entry, r.Err, last[a.User])
			}
			last[a.User] = r.Entry.ID
		}
		for u := range n {
			if got, err := s.LastHistoryID(ctx, name(u)); err != nil || got != last[name(u)] {
				t.Errorf("round %d, %s's last ID: got %d, %v; want %d", round, name(u), got, err, last[name(u)])
			}
		}
		targets, err := s.HistoryTargets(ctx, name(n-1), time.Time{}, time.Time{}, 10, false)
		check(t, "HistoryTargets", err)
		if len(targets) != 2 || !targets[0].Latest.Equal(ms(100*round+2)) || !targets[1].Latest.Equal(ms(100*round+1)) {
			t.Errorf("round %d, targets: got %+v, want buddies 1 and 2 at their newest entries", round, targets)
		}
	}
	noBatchRetries(t, sqlOf(s))
	historyConsistent(t, db)
}

// noBatchRetries fails if a history batch of s was appended again one
// entry at a time: its transaction failed (a statement of several rows
// that does not work would hide behind that).
func noBatchRetries(t *testing.T, s *sqlStore) {
	t.Helper()
	if n := s.batchRetries.Load(); n != 0 {
		t.Errorf("batches appended again one entry at a time: got %d, want none", n)
	}
}

// testAppendBatchUserGone: a user deleted after the batch found them and
// before it counts them has their entries refused with ErrNotFound; the
// others are stored, in the one transaction.
func testAppendBatchUserGone(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "ann")
	mustAdd(t, s, "ann", Account{Email: "ann@example.com", Password: "p", Channel: "&a"})
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: "bob@example.com", Password: "p", Channel: "&b"})
	testHookUsersFound = func(ctx context.Context, tx *boundTx) error {
		if _, err := tx.ExecContext(ctx, sqlOf(s).d.Rebind("DELETE FROM users WHERE name = ?"), "bob"); err != nil {
			t.Errorf("delete bob: %v", err)
		}
		return nil
	}
	defer func() { testHookUsersFound = nil }()
	entry := func(user, msgid string) HistoryAppend {
		return HistoryAppend{user, HistoryEntry{MsgID: msgid, Time: ms(1), Account: user + "@example.com", Buddy: 7, Kind: KindIM, Text: msgid}}
	}
	res := s.AppendHistoryBatch(ctx, []HistoryAppend{entry("ann", "a1"), entry("bob", "b1"), entry("ann", "a2")}, nil)
	if res[0].Err != nil || res[2].Err != nil || !errors.Is(res[1].Err, ErrNotFound) {
		t.Errorf("results: got %v, %v, %v; want ann's stored and bob's ErrNotFound", res[0].Err, res[1].Err, res[2].Err)
	}
	noBatchRetries(t, sqlOf(s))
	historyConsistent(t, db)
}

// testAppendBatchRetried: a batch whose transaction fails otherwise than
// by refusing entries is appended again one entry at a time, every entry
// stored, and HistoryBatchRetries counts it with the failure.
func testAppendBatchRetried(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	injected := errors.New("injected failure")
	calls := 0
	testHookUsersFound = func(context.Context, *boundTx) error {
		calls++
		if calls == 1 {
			return injected
		}
		return nil
	}
	defer func() { testHookUsersFound = nil }()
	var batch []HistoryAppend
	for i := range 3 {
		batch = append(batch, HistoryAppend{user, HistoryEntry{MsgID: fmt.Sprint("r", i), Time: ms(i), Account: email, Buddy: 7, Kind: KindIM, Text: "t"}})
	}
	for i, r := range s.AppendHistoryBatch(ctx, batch, nil) {
		if r.Err != nil || r.Entry.ID == 0 {
			t.Errorf("entry %d: got %+v, %v; want it stored", i, r.Entry, r.Err)
		}
	}
	// What Open returned tells them, as the history writer process asks.
	br, ok := s.(interface{ HistoryBatchRetries() (int64, error) })
	if !ok {
		t.Fatalf("%T does not tell its retried batches", s)
	}
	if n, err := br.HistoryBatchRetries(); n != 1 || !errors.Is(err, injected) {
		t.Errorf("HistoryBatchRetries: got %d, %v; want 1, the injected failure", n, err)
	}
	historyConsistent(t, db)
}
