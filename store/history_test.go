package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// TestHistory runs the history suite against every engine; each case gets
// a database of its own.
func TestHistory(t *testing.T) {
	suite := []struct {
		name string
		run  func(t *testing.T, db testDB)
	}{
		{"order and bounds", testHistoryOrder},
		{"bad queries", testHistoryBadQueries},
		{"msgid unique and found", testHistoryMsgID},
		{"entries refused", testHistoryRefused},
		{"texts round-trip", testHistoryTexts},
		{"times kept to the millisecond", testHistoryTimes},
		{"targets newest first", testHistoryTargets},
		{"since a position", testHistorySince},
		{"read markers only forward", testReadMarkers},
		{"client positions only forward", testClientPositions},
		{"client positions bounded", testClientPositionsBounded},
		{"prune by time", testPruneByTime},
		{"prune keeps what no client was sent", testPruneNeverDelivered},
		{"prune in chunks", testPruneChunks},
		{"cap per user", testHistoryCap},
		{"cap after an account is deleted", testHistoryCapAfterDeleteAccount},
		{"parallel appends", testParallelAppend},
		{"batch of several users", testAppendBatch},
		{"batch longer than the cap", testAppendBatchCap},
		{"batch of many rows", testAppendBatchLarge},
		{"batch of many users", testAppendBatchManyUsers},
		{"batch whose user goes", testAppendBatchUserGone},
		{"batch appended again one entry at a time", testAppendBatchRetried},
		{"append with an ended context", testAppendContext},
		{"history survives reopening", testHistoryReopen},
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

// t0 is the suite's time origin, on a whole millisecond.
var t0 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// appendAt appends an IM from buddy at time at, msgid named after n.
func appendAt(t testing.TB, s Store, user, email string, buddy msim.UID, msgid string, at time.Time) HistoryEntry {
	t.Helper()
	e, err := s.AppendHistory(ctx, user, HistoryEntry{MsgID: msgid, Time: at, Account: email, Buddy: buddy, Kind: KindIM, Text: "text of " + msgid})
	if err != nil {
		t.Fatalf("AppendHistory(%q): %v", msgid, err)
	}
	return e
}

func msgids(es []HistoryEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.MsgID)
	}
	return out
}

func testHistoryOrder(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	mustAdd(t, s, user, Account{Email: "other@example.com", Password: "p", Channel: "&o"})
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: email, Password: "p", Channel: "&b"})
	// Appended out of time order, two in one millisecond (a and b, a first,
	// b earlier within it: the millisecond is kept, so ID decides).
	appendAt(t, s, user, email, 7, "m3", ms(3))
	appendAt(t, s, user, email, 7, "m1", ms(1))
	m2a := appendAt(t, s, user, email, 7, "m2a", ms(2).Add(900*time.Microsecond))
	m2b := appendAt(t, s, user, email, 7, "m2b", ms(2).Add(100*time.Microsecond))
	appendAt(t, s, user, email, 7, "m4", ms(4))
	// Other conversations, which no query below may return.
	appendAt(t, s, user, email, 8, "buddy 8", ms(2))
	appendAt(t, s, user, "other@example.com", 7, "other account", ms(2))
	appendAt(t, s, "bob", email, 7, "bob's", ms(2))

	sub := 500 * time.Microsecond
	for _, c := range []struct {
		name string
		q    HistoryQuery
		want []string
	}{
		{"all, oldest first", HistoryQuery{Limit: 10}, []string{"m1", "m2a", "m2b", "m3", "m4"}},
		{"all, latest", HistoryQuery{Limit: 10, Latest: true}, []string{"m1", "m2a", "m2b", "m3", "m4"}},
		{"oldest 2", HistoryQuery{Limit: 2}, []string{"m1", "m2a"}},
		{"latest 2, ascending", HistoryQuery{Limit: 2, Latest: true}, []string{"m3", "m4"}},
		{"latest 3 splits no tie", HistoryQuery{Limit: 3, Latest: true}, []string{"m2b", "m3", "m4"}},
		{"after is exclusive", HistoryQuery{After: ms(1), Limit: 10}, []string{"m2a", "m2b", "m3", "m4"}},
		{"after excludes both of a tie", HistoryQuery{After: ms(2), Limit: 10}, []string{"m3", "m4"}},
		{"before is exclusive", HistoryQuery{Before: ms(3), Limit: 10}, []string{"m1", "m2a", "m2b"}},
		{"before excludes both of a tie", HistoryQuery{Before: ms(2), Limit: 10, Latest: true}, []string{"m1"}},
		{"between", HistoryQuery{After: ms(1), Before: ms(4), Limit: 10}, []string{"m2a", "m2b", "m3"}},
		{"between, latest 1", HistoryQuery{After: ms(1), Before: ms(4), Limit: 1, Latest: true}, []string{"m3"}},
		{"between, oldest 1", HistoryQuery{After: ms(1), Before: ms(4), Limit: 1}, []string{"m2a"}},
		{"bounds within a millisecond", HistoryQuery{After: ms(1).Add(sub), Before: ms(2).Add(sub), Limit: 10}, []string{"m2a", "m2b"}},
		{"bounds a nanosecond off", HistoryQuery{After: ms(2).Add(-1), Before: ms(2).Add(1), Limit: 10}, []string{"m2a", "m2b"}},
		{"empty range", HistoryQuery{After: ms(2), Before: ms(3), Limit: 10}, []string{}},
		{"after the last", HistoryQuery{After: ms(4), Limit: 10}, []string{}},
		{"after an entry of a tie", HistoryQuery{After: ms(2), AfterID: m2a.ID, Limit: 10}, []string{"m2b", "m3", "m4"}},
		{"after a tie's last", HistoryQuery{After: ms(2), AfterID: m2b.ID, Limit: 10}, []string{"m3", "m4"}},
		{"from a time on", HistoryQuery{After: ms(2), AfterID: -1, Limit: 10}, []string{"m2a", "m2b", "m3", "m4"}},
		{"before an entry of a tie", HistoryQuery{Before: ms(2), BeforeID: m2b.ID, Limit: 10, Latest: true}, []string{"m1", "m2a"}},
		{"between the entries of a tie", HistoryQuery{After: ms(2), AfterID: m2a.ID, Before: ms(2), BeforeID: m2b.ID, Limit: 10}, []string{}},
		{"an ID at a rounded bound breaks no tie", HistoryQuery{After: ms(2).Add(-1), AfterID: m2b.ID, Limit: 10}, []string{"m2a", "m2b", "m3", "m4"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			q.Account, q.Buddy = email, 7
			got, err := s.History(ctx, user, q)
			check(t, "History", err)
			if !slices.Equal(msgids(got), c.want) {
				t.Errorf("History(%+v): got %q, want %q", q, msgids(got), c.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Time.Before(got[i-1].Time) || got[i].Time.Equal(got[i-1].Time) && got[i].ID < got[i-1].ID {
					t.Errorf("History: entry %d (%v, %d) sorts before entry %d (%v, %d)", i, got[i].Time, got[i].ID, i-1, got[i-1].Time, got[i-1].ID)
				}
			}
		})
	}
	// The tie, by ID: m2a was appended first.
	got, _ := s.History(ctx, user, HistoryQuery{Account: email, Buddy: 7, After: ms(1), Before: ms(3), Limit: 10})
	if len(got) != 2 || !got[0].Time.Equal(got[1].Time) || got[0].ID >= got[1].ID {
		t.Errorf("tie at one millisecond: got %+v, want two entries of one time by ascending ID", got)
	}
	// A conversation with nothing yet is empty, not unknown.
	if got, err := s.History(ctx, user, HistoryQuery{Account: email, Buddy: 99, Limit: 10}); err != nil || len(got) != 0 {
		t.Errorf("History of a buddy with none: got %v, %v, want none and no error", got, err)
	}
}

func testHistoryBadQueries(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	appendAt(t, s, user, email, 7, "m1", ms(1))
	for _, c := range []struct {
		name     string
		user     string
		q        HistoryQuery
		notFound bool
	}{
		{"limit 0", user, HistoryQuery{Account: email, Buddy: 7}, false},
		{"negative limit", user, HistoryQuery{Account: email, Buddy: 7, Limit: -1}, false},
		{"unknown account", user, HistoryQuery{Account: "nobody@example.com", Buddy: 7, Limit: 1}, true},
		{"unknown user", "nobody", HistoryQuery{Account: email, Buddy: 7, Limit: 1}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.History(ctx, c.user, c.q)
			if err == nil || errors.Is(err, ErrNotFound) != c.notFound {
				t.Errorf("History(%q, %+v): got %v, %v, want an error (ErrNotFound: %v)", c.user, c.q, got, err, c.notFound)
			}
		})
	}
	for _, limit := range []int{0, -5} {
		if _, err := s.HistorySince(ctx, user, 0, limit); err == nil {
			t.Errorf("HistorySince with limit %d: got no error", limit)
		}
		if _, err := s.HistoryTargets(ctx, user, time.Time{}, time.Time{}, limit, false); err == nil {
			t.Errorf("HistoryTargets with limit %d: got no error", limit)
		}
	}
	calls := map[string]error{}
	_, calls["HistorySince"] = s.HistorySince(ctx, "nobody", 0, 1)
	_, calls["HistoryTargets"] = s.HistoryTargets(ctx, "nobody", time.Time{}, time.Time{}, 1, false)
	_, calls["HistoryByMsgID"] = s.HistoryByMsgID(ctx, "nobody", "m1")
	_, calls["LastHistoryID"] = s.LastHistoryID(ctx, "nobody")
	_, calls["ReadMarker"] = s.ReadMarker(ctx, "nobody", email, 7)
	_, calls["SetReadMarker"] = s.SetReadMarker(ctx, "nobody", email, 7, ms(1))
	_, calls["ReadMarker of an unknown account"] = s.ReadMarker(ctx, user, "nobody@example.com", 7)
	_, calls["SetReadMarker of an unknown account"] = s.SetReadMarker(ctx, user, "nobody@example.com", 7, ms(1))
	_, _, calls["ClientPosition"] = s.ClientPosition(ctx, "nobody", "phone")
	calls["SetClientPosition"] = s.SetClientPosition(ctx, "nobody", "phone", 1)
	for name, err := range calls {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of an unknown user: got %v, want ErrNotFound", name, err)
		}
	}
}

func TestCheckLimit(t *testing.T) {
	for _, c := range []struct {
		in, want int
		ok       bool
	}{
		{1, 1, true}, {100, 100, true}, {MaxHistoryLimit, MaxHistoryLimit, true},
		{MaxHistoryLimit + 1, MaxHistoryLimit, true}, {1 << 40, MaxHistoryLimit, true},
		{0, 0, false}, {-1, 0, false},
	} {
		got, err := checkLimit(c.in)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("checkLimit(%d): got %d, %v, want %d (ok: %v)", c.in, got, err, c.want, c.ok)
		}
	}
}

func testHistoryMsgID(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: email, Password: "p", Channel: "&b"})
	want := HistoryEntry{MsgID: "abc", Time: ms(5), Account: email, Buddy: 6221, Outgoing: true, Kind: KindAction, Text: "waves"}
	got, err := s.AppendHistory(ctx, user, want)
	check(t, "AppendHistory", err)
	if got.ID <= 0 {
		t.Errorf("AppendHistory: got ID %d, want one above 0", got.ID)
	}
	want.ID = got.ID
	if got != want {
		t.Errorf("AppendHistory: got %+v, want %+v", got, want)
	}
	last, _ := s.LastHistoryID(ctx, user)

	dup := want
	dup.ID, dup.Text, dup.Buddy = 0, "another text", 7
	if _, err := s.AppendHistory(ctx, user, dup); !errors.Is(err, ErrExists) {
		t.Errorf("AppendHistory of a msgid kept already: got %v, want ErrExists", err)
	}
	if _, err := s.AppendHistory(ctx, "bob", dup); err != nil {
		t.Errorf("AppendHistory of that msgid for another user: got %v, want no error", err)
	}
	if got, _ := s.LastHistoryID(ctx, user); got != last {
		t.Errorf("LastHistoryID after a refused append: got %d, want %d", got, last)
	}
	all, _ := s.HistorySince(ctx, user, 0, 10)
	if len(all) != 1 {
		t.Errorf("entries after a refused append: got %d, want 1", len(all))
	}

	found, err := s.HistoryByMsgID(ctx, user, "abc")
	check(t, "HistoryByMsgID", err)
	if found != want {
		t.Errorf("HistoryByMsgID: got %+v, want %+v", found, want)
	}
	if found, _ := s.HistoryByMsgID(ctx, "bob", "abc"); found.Text != "another text" {
		t.Errorf("bob's HistoryByMsgID: got %+v, want bob's own entry", found)
	}
	for _, id := range []string{"ABC", "ab", "nope", ""} {
		if _, err := s.HistoryByMsgID(ctx, user, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("HistoryByMsgID(%q): got %v, want ErrNotFound", id, err)
		}
	}
}

func testHistoryRefused(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	good := HistoryEntry{MsgID: "id", Account: email, Buddy: 7, Kind: KindIM, Text: "hi"}
	for _, c := range []struct {
		name     string
		user     string
		edit     func(*HistoryEntry)
		want     string
		notFound bool
	}{
		{"empty msgid", user, func(e *HistoryEntry) { e.MsgID = "" }, "empty msgid", false},
		{"empty account", user, func(e *HistoryEntry) { e.Account = "" }, "empty account", false},
		{"buddy 0", user, func(e *HistoryEntry) { e.Buddy = 0 }, "positive uid", false},
		{"unknown kind", user, func(e *HistoryEntry) { e.Kind = "notice" }, `kind "notice"`, false},
		{"NUL in text", user, func(e *HistoryEntry) { e.Text = "a\x00b" }, "NUL", false},
		{"text not UTF-8", user, func(e *HistoryEntry) { e.Text = "caf\xe9" }, "UTF-8", false},
		{"msgid not UTF-8", user, func(e *HistoryEntry) { e.MsgID = "\xff" }, "UTF-8", false},
		{"unknown account", user, func(e *HistoryEntry) { e.Account = "nobody@example.com" }, "nobody@example.com", true},
		{"unknown user", "nobody", func(*HistoryEntry) {}, "nobody", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := good
			c.edit(&e)
			_, err := s.AppendHistory(ctx, c.user, e)
			if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrNotFound) != c.notFound {
				t.Errorf("AppendHistory(%+v): got %v, want an error saying %q (ErrNotFound: %v)", e, err, c.want, c.notFound)
			}
		})
	}
	if got, _ := s.HistorySince(ctx, user, 0, 10); len(got) != 0 {
		t.Errorf("entries after refusals: got %+v, want none", got)
	}
	if got, _ := s.LastHistoryID(ctx, user); got != 0 {
		t.Errorf("LastHistoryID after refusals: got %d, want 0", got)
	}
}

func testHistoryTexts(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	texts := []string{
		"",
		"plain ASCII",
		"Grüße, ça va? Ñandú",
		"日本語のテキスト、中文，한국어",
		"emoji 👋🏽 👨‍👩‍👧 🏳️‍🌈",
		"right to left: שלום عربى",
		"combining: e\u0301 a\u0308",
		"controls: \x01\x07\x1b[0m\x7f \t tab \r\n crlf",
		"specials: \u2028\u2029\ufeff\ufffd\U0010FFFF",
		"quotes and SQL: ' \" ; -- DROP TABLE history; \\ %_ ?$1",
		strings.Repeat("long é ", 2000),
	}
	for i, text := range texts {
		e, err := s.AppendHistory(ctx, user, HistoryEntry{MsgID: fmt.Sprint("t", i), Time: ms(i), Account: email, Buddy: 7, Kind: KindIM, Text: text})
		check(t, "AppendHistory", err)
		got, err := s.HistoryByMsgID(ctx, user, e.MsgID)
		check(t, "HistoryByMsgID", err)
		if got.Text != text {
			t.Errorf("text %d: got %q, want %q", i, got.Text, text)
		}
	}
	// Unicode in the msgid, the account and the client name too.
	mustAdd(t, s, user, Account{Email: "ünï@example.com", Password: "p", Channel: "&u"})
	e, err := s.AppendHistory(ctx, user, HistoryEntry{MsgID: "ид-✓", Account: "ünï@example.com", Buddy: 7, Kind: KindZap, Text: "zap"})
	check(t, "AppendHistory", err)
	if got, err := s.HistoryByMsgID(ctx, user, "ид-✓"); err != nil || got != e {
		t.Errorf("HistoryByMsgID of a Unicode msgid: got %+v, %v, want %+v", got, err, e)
	}
	check(t, "SetClientPosition", s.SetClientPosition(ctx, user, "téléphone", 3))
	if pos, found, err := s.ClientPosition(ctx, user, "téléphone"); err != nil || !found || pos != 3 {
		t.Errorf("ClientPosition of a Unicode name: got %d, %v, %v, want 3", pos, found, err)
	}
	if err := s.SetClientPosition(ctx, user, "a\x00b", 3); err == nil {
		t.Error("SetClientPosition with a NUL in the name: got no error")
	}
}

func testHistoryTimes(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	local := time.FixedZone("UTC+5:30", 5*3600+1800)
	for i, c := range []struct {
		in, want time.Time
	}{
		{ms(1), ms(1)},
		{ms(2).Add(999_999), ms(2)},
		{ms(3).Add(1), ms(3)},
		{ms(4).In(local), ms(4)},
		{time.Date(1969, 12, 31, 23, 59, 59, 999_500_000, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 999_000_000, time.UTC)},
		{time.Date(2100, 1, 1, 0, 0, 0, 123_456_789, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 123_000_000, time.UTC)},
	} {
		msgid := fmt.Sprint("time", i)
		e, err := s.AppendHistory(ctx, user, HistoryEntry{MsgID: msgid, Time: c.in, Account: email, Buddy: 7, Kind: KindIM, Text: "x"})
		check(t, "AppendHistory", err)
		got, err := s.HistoryByMsgID(ctx, user, msgid)
		check(t, "HistoryByMsgID", err)
		for what, tm := range map[string]time.Time{"returned": e.Time, "read back": got.Time} {
			if !tm.Equal(c.want) || tm.Location() != time.UTC {
				t.Errorf("time %v %s: got %v, want %v in UTC", c.in, what, tm, c.want)
			}
		}
	}
	before := time.Now().Add(-time.Second)
	e, err := s.AppendHistory(ctx, user, HistoryEntry{MsgID: "now", Account: email, Buddy: 7, Kind: KindIM, Text: "x"})
	check(t, "AppendHistory", err)
	if e.Time.Before(before) || e.Time.After(time.Now()) || e.Time.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("AppendHistory with no time: got %v, want the current time to the millisecond", e.Time)
	}
}

func testHistoryTargets(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	const other = "other@example.com"
	mustAdd(t, s, user, Account{Email: other, Password: "p", Channel: "&o"})
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: email, Password: "p", Channel: "&b"})
	appendAt(t, s, user, email, 7, "a7-1", ms(10))
	appendAt(t, s, user, email, 7, "a7-2", ms(40))
	appendAt(t, s, user, email, 8, "a8-1", ms(30))
	appendAt(t, s, user, other, 7, "o7-1", ms(20))
	appendAt(t, s, user, other, 9, "o9-1", ms(30)) // ties a8-1
	appendAt(t, s, "bob", email, 5, "bob's", ms(50))

	type tgt struct {
		account string
		buddy   msim.UID
		latest  int
	}
	for _, c := range []struct {
		name          string
		after, before time.Time
		limit         int
		oldest        bool
		want          []tgt
	}{
		{"all", time.Time{}, time.Time{}, 10, false, []tgt{{email, 7, 40}, {email, 8, 30}, {other, 9, 30}, {other, 7, 20}}},
		{"limit", time.Time{}, time.Time{}, 2, false, []tgt{{email, 7, 40}, {email, 8, 30}}},
		{"newest past the bounds", time.Time{}, ms(40), 10, false, []tgt{{email, 8, 30}, {other, 9, 30}, {other, 7, 20}}},
		{"after is exclusive", ms(30), time.Time{}, 10, false, []tgt{{email, 7, 40}}},
		{"between", ms(10), ms(30), 10, false, []tgt{{other, 7, 20}}},
		{"none", ms(40), time.Time{}, 10, false, []tgt{}},
		{"oldest", time.Time{}, time.Time{}, 2, true, []tgt{{other, 9, 30}, {other, 7, 20}}},
		{"oldest within the bounds", ms(10), time.Time{}, 3, true, []tgt{{email, 8, 30}, {other, 9, 30}, {other, 7, 20}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.HistoryTargets(ctx, user, c.after, c.before, c.limit, c.oldest)
			check(t, "HistoryTargets", err)
			want := []HistoryTarget{}
			for _, w := range c.want {
				want = append(want, HistoryTarget{Account: w.account, Buddy: w.buddy, Latest: ms(w.latest)})
			}
			if got == nil {
				got = []HistoryTarget{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("HistoryTargets(%v, %v, %d, %v): got %+v, want %+v", c.after, c.before, c.limit, c.oldest, got, want)
			}
		})
	}
}

func testHistorySince(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	mustAdd(t, s, user, Account{Email: "other@example.com", Password: "p", Channel: "&o"})
	mustCreate(t, s, "bob")
	mustAdd(t, s, "bob", Account{Email: email, Password: "p", Channel: "&b"})
	if got, err := s.LastHistoryID(ctx, user); err != nil || got != 0 {
		t.Errorf("LastHistoryID with no history: got %d, %v, want 0", got, err)
	}
	var appended []HistoryEntry
	for i, at := range []int{50, 10, 30, 20} { // IDs follow appends, not times
		acct := email
		if i%2 == 1 {
			acct = "other@example.com"
		}
		appended = append(appended, appendAt(t, s, user, acct, msim.UID(7+i), fmt.Sprint("e", i), ms(at)))
		appendAt(t, s, "bob", email, 7, fmt.Sprint("bob", i), ms(at)) // interleaved, another user's
	}
	for i := 1; i < len(appended); i++ {
		if appended[i].ID <= appended[i-1].ID {
			t.Fatalf("IDs: got %d after %d, want increasing", appended[i].ID, appended[i-1].ID)
		}
	}
	last, err := s.LastHistoryID(ctx, user)
	if err != nil || last != appended[3].ID {
		t.Errorf("LastHistoryID: got %d, %v, want %d", last, err, appended[3].ID)
	}
	for _, c := range []struct {
		after int64
		limit int
		want  []HistoryEntry
	}{
		{0, 10, appended},
		{0, 2, appended[:2]},
		{appended[0].ID, 10, appended[1:]},
		{appended[1].ID, 1, appended[2:3]},
		{appended[3].ID, 10, nil},
	} {
		got, err := s.HistorySince(ctx, user, c.after, c.limit)
		check(t, "HistorySince", err)
		if !slices.Equal(got, c.want) {
			t.Errorf("HistorySince(%d, %d): got %q, want %q", c.after, c.limit, msgids(got), msgids(c.want))
		}
	}
	// The newest first, a page at a time, still by ascending ID.
	for _, c := range []struct {
		after, before int64
		limit         int
		want          []HistoryEntry
	}{
		{0, 0, 10, appended},
		{0, 0, 2, appended[2:]},
		{0, appended[2].ID, 10, appended[:2]},
		{appended[0].ID, appended[3].ID, 10, appended[1:3]},
		{appended[0].ID, appended[3].ID, 1, appended[2:3]},
		{appended[3].ID, 0, 10, nil},
	} {
		got, err := s.HistoryLatestSince(ctx, user, c.after, c.before, c.limit)
		check(t, "HistoryLatestSince", err)
		if !slices.Equal(got, c.want) {
			t.Errorf("HistoryLatestSince(%d, %d, %d): got %q, want %q", c.after, c.before, c.limit, msgids(got), msgids(c.want))
		}
	}
	if _, err := s.HistoryLatestSince(ctx, "nobody", 0, 0, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("HistoryLatestSince of no user: got %v, want ErrNotFound", err)
	}
	// The last ID stays when its entry is gone: a position taken from it
	// still means "everything so far".
	n, err := s.PruneHistory(ctx, ms(60), false)
	check(t, "PruneHistory", err)
	if n != 8 {
		t.Errorf("PruneHistory: got %d deleted, want 8", n)
	}
	if got, _ := s.LastHistoryID(ctx, user); got != last {
		t.Errorf("LastHistoryID after pruning everything: got %d, want %d", got, last)
	}
	e := appendAt(t, s, user, email, 7, "after prune", ms(70))
	if e.ID <= last {
		t.Errorf("ID after pruning: got %d, want above %d (IDs are never reused)", e.ID, last)
	}
	if got, _ := s.HistorySince(ctx, user, last, 10); !slices.Equal(got, []HistoryEntry{e}) {
		t.Errorf("HistorySince(last) after pruning: got %q, want [after prune]", msgids(got))
	}
}
