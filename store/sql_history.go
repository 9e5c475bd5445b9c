package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/msimircd/msimircd/msim"
)

// Locking: every transaction that changes a user's history rows first
// locks the user's history_users row (the upsert of AppendHistory, the
// no-op update qLockHistoryUser elsewhere). So a user's appends are
// serialised (their ids become visible in order), the entries count stays
// exact, and two such transactions never wait on each other in opposite
// orders.

// Queries run in transactions (prepared by Open, see txQueries).
const (
	qConversationsEmptied = `DELETE FROM history_conversations WHERE user_id = ? AND NOT EXISTS
		(SELECT 1 FROM history h WHERE h.account_id = history_conversations.account_id AND h.buddy = history_conversations.buddy)`
	qHistoryTrim = `DELETE FROM history WHERE id IN
		(SELECT id FROM history WHERE user_id = ? ORDER BY id LIMIT ?)`
	qLockHistoryUser = `UPDATE history_users SET entries = entries WHERE user_id = ?`
	qHistoryRecount  = `UPDATE history_users SET entries =
		(SELECT count(*) FROM history WHERE user_id = ?) WHERE user_id = ?`
	// An entry whose time does not read is as old as can be: it could
	// never be shown, and no bound would ever reach it otherwise.
	qHistoryPrune = `DELETE FROM history WHERE id IN
		(SELECT id FROM history WHERE user_id = ? AND (sent < ? OR ` + unreadableSent + `) AND id <= ? LIMIT ?)`
	qHistoryPruned     = `UPDATE history_users SET entries = entries - ? WHERE user_id = ?`
	qHighestPosition   = `SELECT COALESCE(max(position), 0) FROM client_positions WHERE user_id = ?`
	qAccountAndUser    = `SELECT a.id, a.user_id` + accountSelect
	qDeleteAccountByID = `DELETE FROM accounts WHERE id = ?`
	qLockHistoryByName = `UPDATE history_users SET entries = entries WHERE user_id = (SELECT id FROM users WHERE name = ?)`
	qDeleteUserByName  = `DELETE FROM users WHERE name = ?`
	qInsertPosition    = `INSERT INTO client_positions (user_id, client, position, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, client) DO UPDATE SET updated = excluded.updated,
		position = CASE WHEN excluded.position > client_positions.position THEN excluded.position ELSE client_positions.position END`
	qTrimPositions = `DELETE FROM client_positions WHERE user_id = ? AND client <> ? AND client NOT IN
		(SELECT client FROM client_positions WHERE user_id = ? ORDER BY updated DESC, client DESC LIMIT ?)`
	// qMoveMarker moves an existing read marker forward.
	qMoveMarker = `UPDATE read_markers SET marked = CASE WHEN marked < ? THEN ? ELSE marked END
		WHERE account_id = (SELECT a.id` + accountSelect + `) AND buddy = ? RETURNING marked`
	qInsertMarker = `INSERT INTO read_markers (account_id, buddy, marked) VALUES (?, ?, ?)
		ON CONFLICT (account_id, buddy) DO UPDATE SET marked =
		CASE WHEN excluded.marked > read_markers.marked THEN excluded.marked ELSE read_markers.marked END
		RETURNING marked`
	qCountMarkers = `SELECT count(*) FROM read_markers WHERE account_id = ?`
	// qTrimMarkers keeps the account's marker just set and its n latest
	// others, forgetting the rest.
	qTrimMarkers = `DELETE FROM read_markers WHERE account_id = ? AND buddy <> ? AND buddy NOT IN
		(SELECT buddy FROM read_markers WHERE account_id = ? AND buddy <> ? ORDER BY marked DESC, buddy DESC LIMIT ?)`
)

// unreadableSent is true where a history row's sent does not read as an
// integer: NULL (PostgreSQL, where the column's NOT NULL was dropped) or,
// on SQLite, text or a real kept in the column, which CAST changes. It
// never compares as a time: text is above every integer in SQLite, NULL
// is neither above nor below. One text for both engines; unqualified, for
// queries whose history table has an alias too.
const unreadableSent = `(sent IS NULL OR sent <> CAST(sent AS BIGINT))`

var historyTxQueries = []string{
	qConversationsEmptied, qHistoryTrim, qLockHistoryUser, qHistoryRecount,
	qHistoryPrune, qHistoryPruned, qHighestPosition, qAccountAndUser, qDeleteAccountByID,
	qLockHistoryByName, qDeleteUserByName, qInsertPosition, qTrimPositions, qInsertMarker, qCountMarkers, qTrimMarkers,
}

// insertSizes are the numbers of rows one of AppendHistoryBatch's
// statements takes (entries to insert, users, conversations), largest
// first: a batch goes through statements of these sizes, each prepared
// once (see chunks).
var insertSizes = []int{64, 16, 4, 1}

// historyColumnsIn is the number of values of one inserted history row.
const historyColumnsIn = 8

// repeated returns, for each size n of insertSizes, head followed by n
// copies of tuple separated by commas, then tail; each is prepared with
// the transactions' queries.
func repeated(head, tuple, tail string) map[int]string {
	qs := map[int]string{}
	for _, n := range insertSizes {
		var b strings.Builder
		b.WriteString(head)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tuple)
		}
		b.WriteString(tail)
		qs[n] = b.String()
		historyTxQueries = append(historyTxQueries, qs[n])
	}
	return qs
}

// The batch's statements, each of several rows (see repeated).
var (
	// qHistoryInsertRows[n] inserts n history rows; a msgid the user has
	// already is left out, and each row inserted is returned.
	qHistoryInsertRows = repeated(`INSERT INTO history (user_id, account_id, buddy, msgid, sent, outgoing, kind, text) VALUES `,
		"(?, ?, ?, ?, ?, ?, ?, ?)", ` ON CONFLICT (user_id, msgid) DO NOTHING RETURNING id, user_id, msgid`)
	// qUserIDs[n] finds n users by name.
	qUserIDs = repeated(`SELECT id, name FROM users WHERE name IN (`, "?", `)`)
	// qHistoryCount[n] adds to n users' counts, by name and number,
	// creating their rows as needed, in name order (which locks them in
	// that order), and returns the counts. A user gone since qUserIDs
	// found them is left out, in the same statement that takes the lock.
	// (SQLite's upsert after a join wants the WHERE.)
	qHistoryCount = repeated(`INSERT INTO history_users (user_id, entries, last_id)
		SELECT u.id, v.column2, 0 FROM (VALUES `, "(?, CAST(? AS BIGINT))",
		`) AS v JOIN users u ON u.name = v.column1 WHERE true ORDER BY u.name
		ON CONFLICT (user_id) DO UPDATE SET entries = history_users.entries + excluded.entries RETURNING user_id, entries`)
	// qAccountsOfUsers[n] lists the accounts of n users.
	qAccountsOfUsers = repeated(`SELECT id, user_id, email FROM accounts WHERE user_id IN (`, "?", `)`)
	// qConversationLatest[n] moves n conversations' latest times forward
	// (each once), creating their rows as needed.
	qConversationLatest = repeated(`INSERT INTO history_conversations (account_id, buddy, user_id, latest) VALUES `, "(?, ?, ?, ?)",
		` ON CONFLICT (account_id, buddy) DO UPDATE SET latest = CASE WHEN excluded.latest > history_conversations.latest
		THEN excluded.latest ELSE history_conversations.latest END`)
	// qHistoryAppended[n] takes from n users' counts what was refused or
	// trimmed and moves their last ids forward (a 0 keeps it); their rows
	// exist, counted and locked earlier in the transaction.
	qHistoryAppended = repeated(`INSERT INTO history_users (user_id, entries, last_id) VALUES `, "(?, ?, ?)",
		` ON CONFLICT (user_id) DO UPDATE SET entries = history_users.entries - excluded.entries,
		last_id = CASE WHEN excluded.last_id > history_users.last_id THEN excluded.last_id ELSE history_users.last_id END`)
)

// chunks calls f with consecutive pieces [lo, hi) of n items, each of a
// size in insertSizes, largest first; it stops at f's first error.
func chunks(n int, f func(lo, hi int) error) error {
	for lo := 0; lo < n; {
		size := insertSizes[len(insertSizes)-1]
		for _, sz := range insertSizes {
			if sz <= n-lo {
				size = sz
				break
			}
		}
		if err := f(lo, lo+size); err != nil {
			return err
		}
		lo += size
	}
	return nil
}

// pruneChunk bounds the rows one PruneHistory transaction deletes, so
// appends wait on it only briefly. A variable for the tests.
var pruneChunk int64 = 5000

// toMilli is t kept to the millisecond, in UTC: what history stores.
func toMilli(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// afterBound and beforeBound turn exclusive bounds into microseconds for
// sent > after AND sent < before; zero is unbounded. Rounded outwards, so
// a bound between two microseconds excludes neither.
func afterBound(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixMicro() // rounds down
}

func beforeBound(t time.Time) int64 {
	if t.IsZero() {
		return math.MaxInt64
	}
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// afterPlace and beforePlace are afterBound and beforeBound with the ID
// that breaks a tie at the bound (HistoryQuery.AfterID, BeforeID): for
// sent >= us AND (sent > us OR id > afterID), and sent <= us AND (sent < us
// OR id < beforeID). No tie is broken at a bound that was rounded (no
// entry is at that time) or without an ID.
func afterPlace(t time.Time, id int64) (us, afterID int64) {
	us = afterBound(t)
	if id == 0 || t.IsZero() || t.Nanosecond()%1000 != 0 {
		return us, math.MaxInt64
	}
	return us, id
}

func beforePlace(t time.Time, id int64) (us, beforeID int64) {
	us = beforeBound(t)
	if id == 0 || t.IsZero() || t.Nanosecond()%1000 != 0 {
		return us, math.MinInt64
	}
	return us, id
}

// checkText refuses what neither engine's text columns keep.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s contains a NUL byte", what)
	}
	return nil
}

func checkEntry(e HistoryEntry) error {
	switch {
	case e.MsgID == "":
		return errors.New("empty msgid")
	case e.Account == "":
		return errors.New("empty account")
	case e.Buddy <= 0:
		return fmt.Errorf("buddy uid %d: want a positive uid", e.Buddy)
	case e.Kind != KindIM && e.Kind != KindAction && e.Kind != KindZap:
		return fmt.Errorf("kind %q: want %q, %q or %q", e.Kind, KindIM, KindAction, KindZap)
	}
	if err := checkText("msgid", e.MsgID); err != nil {
		return err
	}
	return checkText("text", e.Text)
}

// checkLimit lowers limit to MaxHistoryLimit and refuses one below 1.
func checkLimit(limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("limit %d: want 1 or more", limit)
	}
	return min(limit, MaxHistoryLimit), nil
}

// Columns of an entry; the e-mail comes from the accounts row (alias a).
const historyColumns = `h.id, h.msgid, h.sent, a.email, h.buddy, h.outgoing, h.kind, h.text`

func scanHistory(rows rowScanner) (HistoryEntry, error) {
	var e HistoryEntry
	var sent, buddy int64
	if err := rows.Scan(&e.ID, &e.MsgID, &sent, &e.Account, &buddy, &e.Outgoing, &e.Kind, &e.Text); err != nil {
		return HistoryEntry{}, err
	}
	e.Time, e.Buddy = fromMicros(sent).UTC(), msim.UID(buddy)
	return e, nil
}

// One query per direction, so both are prepared. The account's id is a
// subquery: one round trip in the usual case.
const historyConversation = `SELECT ` + historyColumns + ` FROM history h JOIN accounts a ON a.id = h.account_id
	WHERE h.account_id = (SELECT a2.id FROM accounts a2 JOIN users u ON u.id = a2.user_id WHERE u.name = ? AND a2.email = ?)
	AND h.buddy = ? AND h.sent >= ? AND (h.sent > ? OR h.id > ?) AND h.sent <= ? AND (h.sent < ? OR h.id < ?)`

const (
	qHistoryOldest = historyConversation + ` ORDER BY h.sent, h.id LIMIT ?`
	qHistoryLatest = historyConversation + ` ORDER BY h.sent DESC, h.id DESC LIMIT ?`
)

func (s *sqlStore) History(ctx context.Context, user string, q HistoryQuery) ([]HistoryEntry, error) {
	limit, err := checkLimit(q.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	query := qHistoryOldest
	if q.Latest {
		query = qHistoryLatest
	}
	after, afterID := afterPlace(q.After, q.AfterID)
	before, beforeID := beforePlace(q.Before, q.BeforeID)
	bad := &UnreadableRows{Table: "history", User: user, Email: q.Account}
	out, err := s.entries(ctx, bad, query, limit, user, q.Account, int64(q.Buddy), after, after, afterID, before, before, beforeID)
	if err == nil && len(out) == 0 {
		_, err = s.accountID(ctx, s.db, user, q.Account) // none, or no such account?
	}
	if err != nil {
		return nil, wrap("history", err)
	}
	if q.Latest {
		slices.Reverse(out)
	}
	return out, wrap("history", bad.err())
}

// errPageFull ends a read of history rows that has the entries it wants.
var errPageFull = errors.New("store: page full")

// entries runs a query of history rows whose last parameter (after args)
// is its LIMIT, and returns the first limit rows that read, in the
// query's order; those that do not, before them, are left out and added
// to bad. A page keeps its limit past them (a short page is the end, and
// its last entry bounds the next), so the query is run again with a
// larger LIMIT as long as rows left out leave it short: at least twice
// as large each time, so that many unreadable rows take few runs.
func (s *sqlStore) entries(ctx context.Context, bad *UnreadableRows, query string, limit int, args ...any) ([]HistoryEntry, error) {
	for n := limit; ; {
		var out []HistoryEntry
		bad.Rows = bad.Rows[:0]
		read := 0
		err := s.eachRow(ctx, s.db, query, append(slices.Clip(args), n), func(rows *sql.Rows) error {
			read++
			e, ok, err := readRow(rows, bad, readHistory)
			if ok {
				if out = append(out, e); len(out) == limit {
					return errPageFull
				}
			}
			return err
		})
		if errors.Is(err, errPageFull) {
			err = nil
		}
		if err != nil || len(out) == limit || read < n {
			return out, err
		}
		n = max(2*n, n+limit-len(out))
	}
}

// readHistory is scanHistory for readRow.
func readHistory(rows *sql.Rows) (HistoryEntry, error) { return scanHistory(rows) }

func (s *sqlStore) HistoryByMsgID(ctx context.Context, user, msgid string) (HistoryEntry, error) {
	bad := &UnreadableRows{Table: "history", User: user}
	found := false
	var e HistoryEntry
	err := s.eachRow(ctx, s.db, `SELECT `+historyColumns+` FROM history h JOIN accounts a ON a.id = h.account_id
		WHERE h.user_id = (SELECT id FROM users WHERE name = ?) AND h.msgid = ?`, []any{user, msgid}, func(rows *sql.Rows) error {
		var err error
		e, found, err = readRow(rows, bad, readHistory)
		return err
	})
	if err == nil && !found {
		// None, or none that reads: as good as none for a caller placing a
		// reference, which then goes on without it.
		if _, err = s.userID(ctx, s.db, user); err == nil {
			err = fmt.Errorf("msgid %q of user %q: %w", msgid, user, ErrNotFound)
			if bad.err() != nil {
				err = fmt.Errorf("%w: %w", err, bad)
			}
		}
	}
	if err != nil {
		return HistoryEntry{}, wrap("history by msgid", err)
	}
	return e, nil
}

func (s *sqlStore) HistoryTargets(ctx context.Context, user string, after, before time.Time, limit int, oldest bool) ([]HistoryTarget, error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("store: history targets: %w", err)
	}
	var out []HistoryTarget
	// Per conversation that had an entry after the lower bound (or whose
	// latest does not read), one probe of its index for its newest entry
	// that reads, which must be within the bounds. One that does not
	// read is passed over: text would be SQLite's max and out of every
	// bound, and the conversation would be lost for one row.
	from, to := afterBound(after), beforeBound(before)
	order := ` ORDER BY latest DESC, email, buddy LIMIT ?`
	if oldest {
		order = ` ORDER BY latest, email DESC, buddy DESC LIMIT ?`
	}
	err = s.eachRow(ctx, s.db, `SELECT email, buddy, latest FROM
		(SELECT a.email, c.buddy, (SELECT max(h.sent) FROM history h
			WHERE h.account_id = c.account_id AND h.buddy = c.buddy AND NOT `+unreadableSent+`) AS latest
		FROM history_conversations c JOIN accounts a ON a.id = c.account_id
		WHERE c.user_id = (SELECT id FROM users WHERE name = ?) AND (c.latest > ? OR c.latest IS NULL)) t
		WHERE latest > ? AND latest < ?`+order,
		[]any{user, from, from, to, limit}, func(rows *sql.Rows) error {
			var t HistoryTarget
			var buddy, latest int64
			if err := rows.Scan(&t.Account, &buddy, &latest); err != nil {
				return err
			}
			t.Buddy, t.Latest = msim.UID(buddy), fromMicros(latest).UTC()
			out = append(out, t)
			return nil
		})
	if err == nil && len(out) == 0 {
		_, err = s.userID(ctx, s.db, user)
	}
	if err != nil {
		return nil, wrap("history targets", err)
	}
	if oldest {
		slices.Reverse(out) // newest first
	}
	return out, nil
}

func (s *sqlStore) HistorySince(ctx context.Context, user string, afterID int64, limit int) ([]HistoryEntry, error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("store: history since: %w", err)
	}
	bad := &UnreadableRows{Table: "history", User: user}
	out, err := s.entries(ctx, bad, `SELECT `+historyColumns+` FROM history h JOIN accounts a ON a.id = h.account_id
		WHERE h.user_id = (SELECT id FROM users WHERE name = ?) AND h.id > ? ORDER BY h.id LIMIT ?`, limit, user, afterID)
	if err == nil && len(out) == 0 {
		_, err = s.userID(ctx, s.db, user)
	}
	if err != nil {
		return nil, wrap("history since", err)
	}
	return out, wrap("history since", bad.err())
}

func (s *sqlStore) HistoryLatestSince(ctx context.Context, user string, afterID, beforeID int64, limit int) ([]HistoryEntry, error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("store: history latest since: %w", err)
	}
	if beforeID <= 0 {
		beforeID = math.MaxInt64
	}
	bad := &UnreadableRows{Table: "history", User: user}
	out, err := s.entries(ctx, bad, `SELECT `+historyColumns+` FROM history h JOIN accounts a ON a.id = h.account_id
		WHERE h.user_id = (SELECT id FROM users WHERE name = ?) AND h.id > ? AND h.id < ? ORDER BY h.id DESC LIMIT ?`, limit, user, afterID, beforeID)
	if err == nil && len(out) == 0 {
		_, err = s.userID(ctx, s.db, user)
	}
	if err != nil {
		return nil, wrap("history latest since", err)
	}
	slices.Reverse(out)
	return out, wrap("history latest since", bad.err())
}

func (s *sqlStore) LastHistoryID(ctx context.Context, user string) (int64, error) {
	var id int64
	err := s.queryRow(ctx, s.db, `SELECT COALESCE(hu.last_id, 0) FROM users u
		LEFT JOIN history_users hu ON hu.user_id = u.id WHERE u.name = ?`, user).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("user %q: %w", user, ErrNotFound)
	}
	return id, wrap("last history id", err)
}

func (s *sqlStore) SetReadMarker(ctx context.Context, user, account string, buddy msim.UID, t time.Time) (time.Time, error) {
	if t.IsZero() {
		return time.Time{}, errors.New("store: set read marker: zero time")
	}
	if buddy <= 0 {
		return time.Time{}, fmt.Errorf("store: set read marker: buddy uid %d: want a positive uid", buddy)
	}
	at := micros(toMilli(t))
	// The usual case, a conversation marked already: one statement.
	var marked int64
	err := s.queryRow(ctx, s.db, qMoveMarker, at, at, user, account, int64(buddy)).Scan(&marked)
	if err == nil {
		return fromMicros(marked).UTC(), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, wrap("set read marker", err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// New markers are trimmed against MaxReadMarkers: an account's
		// new markers take turns.
		acct, err := s.lockedAccountID(ctx, tx, user, account)
		if err != nil {
			return err
		}
		if err := s.queryRow(ctx, tx, qInsertMarker, acct, int64(buddy), at).Scan(&marked); err != nil {
			return err
		}
		var n int
		if err := s.queryRow(ctx, tx, qCountMarkers, acct).Scan(&n); err != nil || n <= maxReadMarkers {
			return err
		}
		_, err = s.exec(ctx, tx, qTrimMarkers, acct, int64(buddy), acct, int64(buddy), maxReadMarkers-1)
		return err
	})
	if err != nil {
		return time.Time{}, wrap("set read marker", err)
	}
	return fromMicros(marked).UTC(), nil
}

func (s *sqlStore) ReadMarker(ctx context.Context, user, account string, buddy msim.UID) (time.Time, error) {
	var acct int64
	var marked sql.NullInt64
	err := s.queryRow(ctx, s.db, `SELECT a.id, r.marked FROM accounts a JOIN users u ON u.id = a.user_id
		LEFT JOIN read_markers r ON r.account_id = a.id AND r.buddy = ?
		WHERE u.name = ? AND a.email = ?`, int64(buddy), user, account).Scan(&acct, &marked)
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("account %q of user %q: %w", account, user, ErrNotFound)
	}
	if err != nil || !marked.Valid {
		return time.Time{}, wrap("read marker", err)
	}
	return fromMicros(marked.Int64).UTC(), nil
}

func (s *sqlStore) SetClientPosition(ctx context.Context, user, client string, id int64) error {
	if id < 0 {
		return fmt.Errorf("store: set client position: id %d: want 0 or more", id)
	}
	if err := checkText("client name", client); err != nil {
		return fmt.Errorf("store: set client position: %w", err)
	}
	now := micros(time.Now())
	// The usual case, a client known already: one statement.
	res, err := s.exec(ctx, s.db, `UPDATE client_positions SET updated = ?,
		position = CASE WHEN position < ? THEN ? ELSE position END
		WHERE user_id = (SELECT id FROM users WHERE name = ?) AND client = ?`, now, id, id, user, client)
	if err != nil {
		return wrap("set client position", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return wrap("set client position", err)
	}
	return wrap("set client position", s.inTx(ctx, func(tx *sql.Tx) error {
		// New clients are trimmed against MaxClientPositions: a user's
		// sets take turns.
		uid, err := s.lockedUserID(ctx, tx, user)
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, qInsertPosition, uid, client, id, now); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, qTrimPositions, uid, client, uid, MaxClientPositions)
		return err
	}))
}

func (s *sqlStore) ClientPosition(ctx context.Context, user, client string) (int64, bool, error) {
	ctx, err := s.shortRead(ctx)
	if err != nil {
		return 0, false, wrap("client position", err)
	}
	var uid int64
	var pos sql.NullInt64
	err = s.queryRow(ctx, s.db, `SELECT u.id, p.position FROM users u
		LEFT JOIN client_positions p ON p.user_id = u.id AND p.client = ?
		WHERE u.name = ?`, client, user).Scan(&uid, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("user %q: %w", user, ErrNotFound)
	}
	if err != nil {
		return 0, false, wrap("client position", err)
	}
	return pos.Int64, pos.Valid, nil
}

func (s *sqlStore) PruneHistory(ctx context.Context, before time.Time, keepNeverDelivered bool) (int64, error) {
	cut := micros(before)
	if before.Nanosecond()%1000 != 0 {
		cut++ // sent < before, to the nanosecond
	}
	// Users with an entry old enough: a walk of each user's entries in id
	// order, which meets the old ones first.
	var users []int64
	err := s.step(ctx, opPruneHistory, func() error {
		return s.eachRow(ctx, s.db, `SELECT hu.user_id FROM history_users hu WHERE EXISTS
		(SELECT 1 FROM history h WHERE h.user_id = hu.user_id AND (h.sent < ? OR `+unreadableSent+`)) ORDER BY hu.user_id`,
			[]any{cut}, func(rows *sql.Rows) error {
				var id int64
				err := rows.Scan(&id)
				users = append(users, id)
				return err
			})
	})
	if err != nil {
		return 0, wrap("prune history", err)
	}
	var total int64
	for _, uid := range users {
		for {
			var n int64
			err := s.step(ctx, opPruneHistory, func() (err error) {
				n, err = s.pruneUser(ctx, uid, cut, keepNeverDelivered)
				return err
			})
			total += n
			if err != nil {
				return total, wrap("prune history", err)
			}
			if n < pruneChunk {
				break
			}
		}
	}
	return total, nil
}

// testHookPruneChunk, if set, runs as each chunk of PruneHistory begins.
var testHookPruneChunk func()

// pruneUser deletes up to pruneChunk of the user's entries sent before
// cut (microseconds), in one transaction.
func (s *sqlStore) pruneUser(ctx context.Context, uid, cut int64, keepNeverDelivered bool) (int64, error) {
	if testHookPruneChunk != nil {
		testHookPruneChunk()
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, qLockHistoryUser, uid)
		if err != nil {
			return err
		}
		if locked, err := res.RowsAffected(); err != nil || locked == 0 {
			return err // the user was deleted meanwhile
		}
		upTo := int64(math.MaxInt64)
		if keepNeverDelivered {
			if err := s.queryRow(ctx, tx, qHighestPosition, uid).Scan(&upTo); err != nil {
				return err
			}
		}
		res, err = s.exec(ctx, tx, qHistoryPrune, uid, cut, upTo, pruneChunk)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if n > 0 {
			if _, err := s.exec(ctx, tx, qHistoryPruned, n, uid); err != nil {
				return err
			}
		}
		if n == pruneChunk {
			return nil // more to come; the conversations after the last chunk
		}
		_, err = s.exec(ctx, tx, qConversationsEmptied, uid)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
