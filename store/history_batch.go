package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/msimircd/msimircd/msim"
)

func (s *sqlStore) AppendHistory(ctx context.Context, user string, e HistoryEntry) (HistoryEntry, error) {
	r := s.AppendHistoryBatch(ctx, []HistoryAppend{{User: user, Entry: e}}, nil)[0]
	if r.Err != nil {
		return HistoryEntry{}, r.Err
	}
	return r.Entry, nil
}

func (s *sqlStore) AppendHistoryBatch(ctx context.Context, batch []HistoryAppend, res []HistoryResult) []HistoryResult {
	res = results(res, len(batch))
	checked := make([]HistoryAppend, 0, len(batch))
	at := make([]int, 0, len(batch)) // checked[j] is batch[at[j]]
	for i, a := range batch {
		e, err := prepareEntry(a.Entry)
		if err != nil {
			res[i].Err = fmt.Errorf("store: append history: %w", err)
			continue
		}
		checked = append(checked, HistoryAppend{User: a.User, Entry: e})
		at = append(at, i)
	}
	if len(checked) == 0 {
		return res
	}
	for j, r := range s.appendBatch(ctx, checked) {
		if r.Err != nil {
			r = HistoryResult{Err: wrap("append history", r.Err)}
		}
		res[at[j]] = r
	}
	return res
}

// results is res's array (or a new one if it is too small) holding n
// zero results.
func results(res []HistoryResult, n int) []HistoryResult {
	res = slices.Grow(res[:0], n)[:n]
	clear(res)
	return res
}

// prepareEntry checks e and sets its Time as stored.
func prepareEntry(e HistoryEntry) (HistoryEntry, error) {
	if err := checkEntry(e); err != nil {
		return e, err
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = toMilli(e.Time)
	return e, nil
}

// appendBatch appends checked entries in one transaction; if that fails
// otherwise than by refusing entries, each is appended in a transaction
// of its own, so one bad entry never fails the others.
func (s *sqlStore) appendBatch(ctx context.Context, batch []HistoryAppend) []HistoryResult {
	res := make([]HistoryResult, len(batch))
	err := s.inTx(ctx, func(tx *sql.Tx) error { return s.appendTx(ctx, bind(tx), batch, res) })
	if err == nil {
		return res
	}
	if len(batch) == 1 {
		res[0] = HistoryResult{Err: err}
		return res
	}
	for i := range batch {
		one := res[i : i+1]
		if err := s.inTx(ctx, func(tx *sql.Tx) error { return s.appendTx(ctx, bind(tx), batch[i:i+1], one) }); err != nil {
			one[0] = HistoryResult{Err: err}
		}
	}
	return res
}

// appendTx stores checked entries in tx. An entry refused (ErrExists,
// ErrNotFound) writes nothing and gets its error in res; any other error
// is returned, and the transaction must be undone.
//
// First each user, in name order (so two batches lock their users' rows
// in the same order), is counted in their history_users row, which locks
// it, and their accounts are looked up; then every entry is inserted, a
// user's in the order given (so their IDs increase that way), several to
// a statement; then each user's conversations, cap and count are brought
// up to date.
func (s *sqlStore) appendTx(ctx context.Context, tx *boundTx, batch []HistoryAppend, res []HistoryResult) error {
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(batch[a].User, batch[b].User) })
	var (
		users []*userAppend
		rows  []histRow // to insert, grouped by user
	)
	for start := 0; start < len(order); {
		end := start + 1
		for end < len(order) && batch[order[end]].User == batch[order[start]].User {
			end++
		}
		u, err := s.countUser(ctx, tx, batch, order[start:end], res, &rows)
		if err != nil {
			return err
		}
		if u != nil {
			users = append(users, u)
		}
		start = end
	}
	ids, err := s.insertRows(ctx, tx, batch, rows)
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := s.finishUser(ctx, tx, batch, u, ids, res); err != nil {
			return err
		}
		// A batch is background work (the bridge's history writer): let
		// whatever else is ready run between two users, so a long batch
		// never holds the processor for long.
		runtime.Gosched()
	}
	return nil
}

// userAppend is one user's share of a batch.
type userAppend struct {
	name    string
	uid     int64
	entries int64     // counted, the batch's included
	rows    []histRow // the entries sent to the insert
	refused int64     // entries refused before or by the insert
}

// histRow is an entry to insert: batch[i], with its user's and account's
// row ids.
type histRow struct {
	i       int
	uid     int64
	account int64
}

// rowKey finds an inserted row among those the insert returned.
type rowKey struct {
	uid   int64
	msgid string
}

// countUser counts one user's entries batch[idx] in their history_users
// row (which locks it), refuses those of an unknown user or account and
// those repeating a msgid within the batch, and adds the rest to rows.
// It returns nil for an unknown user.
func (s *sqlStore) countUser(ctx context.Context, tx *boundTx, batch []HistoryAppend, idx []int, res []HistoryResult, rows *[]histRow) (*userAppend, error) {
	u := &userAppend{name: batch[idx[0]].User}
	err := s.queryRow(ctx, tx, qHistoryCount, len(idx), u.name).Scan(&u.uid, &u.entries)
	if errors.Is(err, sql.ErrNoRows) {
		for _, i := range idx {
			res[i] = HistoryResult{Err: fmt.Errorf("user %q: %w", u.name, ErrNotFound)}
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Accounts are deleted only under the lock just taken, so what is
	// found here stays until commit.
	accounts := map[string]int64{} // e-mail → row id; 0: not the user's
	seen := make(map[string]bool, len(idx))
	first := len(*rows)
	for _, i := range idx {
		e := batch[i].Entry
		acct, ok := accounts[e.Account]
		if !ok {
			err := s.queryRow(ctx, tx, qAccountOfUser, u.uid, e.Account).Scan(&acct)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, err
			}
			accounts[e.Account] = acct
		}
		switch {
		case acct == 0:
			res[i] = HistoryResult{Err: fmt.Errorf("account %q of user %q: %w", e.Account, u.name, ErrNotFound)}
		case seen[e.MsgID]:
			res[i] = HistoryResult{Err: fmt.Errorf("msgid %q of user %q: %w", e.MsgID, u.name, ErrExists)}
		default:
			seen[e.MsgID] = true
			*rows = append(*rows, histRow{i: i, uid: u.uid, account: acct})
			continue
		}
		u.refused++
	}
	u.rows = (*rows)[first:len(*rows):len(*rows)]
	return u, nil
}

// insertRows inserts rows, in their order, several to a statement, and
// returns the ids of those inserted; a row left out is a msgid its user
// had already.
func (s *sqlStore) insertRows(ctx context.Context, tx *boundTx, batch []HistoryAppend, rows []histRow) (map[rowKey]int64, error) {
	ids := make(map[rowKey]int64, len(rows))
	args := make([]any, 0, historyColumnsIn*insertSizes[0])
	for len(rows) > 0 {
		n := insertSizes[len(insertSizes)-1]
		for _, size := range insertSizes {
			if size <= len(rows) {
				n = size
				break
			}
		}
		args = args[:0]
		for _, r := range rows[:n] {
			e := batch[r.i].Entry
			args = append(args, r.uid, r.account, int64(e.Buddy), e.MsgID, micros(e.Time), e.Outgoing, e.Kind, e.Text)
		}
		rows = rows[n:]
		err := s.eachRow(ctx, tx, qHistoryInsertRows[n], args, func(r *sql.Rows) error {
			var k rowKey
			var id int64
			if err := r.Scan(&id, &k.uid, &k.msgid); err != nil {
				return err
			}
			ids[k] = id
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// conversation names one of a user's conversations by account row.
type conversation struct {
	account int64
	buddy   msim.UID
}

// finishUser sets the results of a user's inserted rows, moves each of
// their conversations' latest time once, deletes what the cap has no room
// for, and corrects the count for the entries refused and deleted.
func (s *sqlStore) finishUser(ctx context.Context, tx *boundTx, batch []HistoryAppend, u *userAppend, ids map[rowKey]int64, res []HistoryResult) error {
	var (
		latest = make(map[conversation]int64, len(u.rows))
		convs  []conversation // in first-appended order
		lastID int64
	)
	for _, r := range u.rows {
		e := batch[r.i].Entry
		id, ok := ids[rowKey{u.uid, e.MsgID}]
		if !ok {
			res[r.i] = HistoryResult{Err: fmt.Errorf("msgid %q of user %q: %w", e.MsgID, u.name, ErrExists)}
			u.refused++
			continue
		}
		e.ID = id
		res[r.i] = HistoryResult{Entry: e}
		lastID = max(lastID, id)
		c, t := conversation{r.account, e.Buddy}, micros(e.Time)
		if old, ok := latest[c]; !ok {
			convs = append(convs, c)
			latest[c] = t
		} else if t > old {
			latest[c] = t
		}
	}
	for _, c := range convs {
		if _, err := s.exec(ctx, tx, qConversationLatest, c.account, int64(c.buddy), u.uid, latest[c]); err != nil {
			return err
		}
	}
	var trimmed int64
	if over := u.entries - u.refused - s.maxHistory; over > 0 && lastID != 0 {
		r, err := s.exec(ctx, tx, qHistoryTrim, u.uid, over)
		if err != nil {
			return err
		}
		if trimmed, err = r.RowsAffected(); err != nil {
			return err
		}
	}
	if lastID == 0 { // nothing inserted: take the count back
		_, err := s.exec(ctx, tx, qHistoryPruned, u.refused, u.uid)
		return err
	}
	_, err := s.exec(ctx, tx, qHistoryAppended, lastID, u.refused+trimmed, u.uid)
	return err
}
