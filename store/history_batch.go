package store

import (
	"context"
	"database/sql"
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
// of its own, so one bad entry never fails the others (counted in
// batchRetries).
func (s *sqlStore) appendBatch(ctx context.Context, batch []HistoryAppend) []HistoryResult {
	res := make([]HistoryResult, len(batch))
	err := s.step(ctx, opAppendBatch, func() error {
		return s.inTx(ctx, func(tx *sql.Tx) error { return s.appendTx(ctx, bind(tx), batch, res) })
	})
	if err == nil {
		return res
	}
	if len(batch) == 1 {
		res[0] = HistoryResult{Err: err}
		return res
	}
	s.batchRetries.Add(1)
	s.retryErr.Store(&err)
	clear(res)
	for i := range batch {
		one := res[i : i+1]
		if err := s.step(ctx, opAppendBatch, func() error {
			return s.inTx(ctx, func(tx *sql.Tx) error { return s.appendTx(ctx, bind(tx), batch[i:i+1], one) })
		}); err != nil {
			one[0] = HistoryResult{Err: err}
		}
	}
	return res
}

// appendTx stores checked entries in tx. An entry refused (ErrExists,
// ErrNotFound) writes nothing and gets its error in res; any other error
// is returned, and the transaction must be undone.
//
// Each step is a few statements of many rows, not one per user: first the
// batch's users are found and counted in their history_users rows, in
// name order (which locks the rows, so two batches lock them in the same
// order), and their accounts listed; then every entry is inserted, a
// user's in the order given (so their IDs increase that way); then each
// conversation's latest time, what the cap has no room for, and each
// user's count and last id are brought up to date.
func (s *sqlStore) appendTx(ctx context.Context, tx *boundTx, batch []HistoryAppend, res []HistoryResult) error {
	users, err := s.countUsers(ctx, tx, batch, res)
	if err != nil {
		return err
	}
	rows, err := s.checkRows(ctx, tx, batch, users, res)
	if err != nil {
		return err
	}
	ids, err := s.insertRows(ctx, tx, batch, rows)
	if err != nil {
		return err
	}
	return s.finishUsers(ctx, tx, batch, users, ids, res)
}

// userAppend is one user's share of a batch.
type userAppend struct {
	name    string
	idx     []int // the user's entries in batch, in order
	uid     int64
	entries int64     // counted, the batch's included
	rows    []histRow // the entries sent to the insert
	refused int64     // entries refused before or by the insert
	lastID  int64     // the highest id inserted; 0: none
	trimmed int64     // entries the cap deleted
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

// countUsers groups batch by user, in name order, refuses the entries of
// unknown users, and adds the rest to their users' history_users rows
// (creating and locking them), returning the users found with their
// counts.
func (s *sqlStore) countUsers(ctx context.Context, tx *boundTx, batch []HistoryAppend, res []HistoryResult) ([]*userAppend, error) {
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(batch[a].User, batch[b].User) })
	var all []*userAppend
	for start := 0; start < len(order); {
		end := start + 1
		for end < len(order) && batch[order[end]].User == batch[order[start]].User {
			end++
		}
		all = append(all, &userAppend{name: batch[order[start]].User, idx: order[start:end]})
		start = end
	}
	byName := make(map[string]*userAppend, len(all))
	args := make([]any, 0, 2*insertSizes[0])
	err := chunks(len(all), func(lo, hi int) error {
		args = args[:0]
		for _, u := range all[lo:hi] {
			args = append(args, u.name)
			byName[u.name] = u
		}
		return s.eachRow(ctx, tx, qUserIDs[hi-lo], args, func(r *sql.Rows) error {
			var id int64
			var name string
			if err := r.Scan(&id, &name); err != nil {
				return err
			}
			if u := byName[name]; u != nil {
				u.uid = id
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if testHookUsersFound != nil {
		if err := testHookUsersFound(ctx, tx); err != nil {
			return nil, err
		}
	}
	users := all[:0:0]
	for _, u := range all {
		if u.uid == 0 {
			for _, i := range u.idx {
				res[i] = HistoryResult{Err: fmt.Errorf("user %q: %w", u.name, ErrNotFound)}
			}
			continue
		}
		users = append(users, u)
	}
	byID := make(map[int64]*userAppend, len(users))
	err = chunks(len(users), func(lo, hi int) error {
		args = args[:0]
		for _, u := range users[lo:hi] {
			args = append(args, u.name, len(u.idx))
			byID[u.uid] = u
		}
		return s.eachRow(ctx, tx, qHistoryCount[hi-lo], args, func(r *sql.Rows) error {
			var id, n int64
			if err := r.Scan(&id, &n); err != nil {
				return err
			}
			if u := byID[id]; u != nil {
				u.entries = n // at least the batch's own: 0 is not counted
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	found := users[:0]
	for _, u := range users {
		if u.entries == 0 { // not counted: deleted (or renamed) since it was found
			for _, i := range u.idx {
				res[i] = HistoryResult{Err: fmt.Errorf("user %q: %w", u.name, ErrNotFound)}
			}
			continue
		}
		found = append(found, u)
	}
	return found, nil
}

// testHookUsersFound, if set, runs after countUsers has found the batch's
// users and before it counts them (a test deletes one there); an error
// fails the batch's transaction.
var testHookUsersFound func(ctx context.Context, tx *boundTx) error

// HistoryBatchRetries returns how many history batches this store has
// appended again one entry at a time, after their transaction failed
// otherwise than by refusing entries, and the last such failure. The
// history writer process reports them (nothing is lost by a retry, but
// the cause wants looking at).
func (s *sqlStore) HistoryBatchRetries() (int64, error) {
	var err error
	if p := s.retryErr.Load(); p != nil {
		err = *p
	}
	return s.batchRetries.Load(), err
}

// checkRows refuses the entries of an account their user does not have
// and those repeating a msgid within the batch, and returns the rest as
// rows to insert, grouped by user. DeleteAccount takes the user's lock
// that countUsers took, so an account found here stays until commit,
// unless this transaction is creating that user's history_users row
// (their first entries): then an account deleted meanwhile fails the
// insert's foreign key, and the batch is appended again one entry at a
// time (appendBatch).
func (s *sqlStore) checkRows(ctx context.Context, tx *boundTx, batch []HistoryAppend, users []*userAppend, res []HistoryResult) ([]histRow, error) {
	type userEmail struct {
		uid   int64
		email string
	}
	accounts := map[userEmail]int64{}
	args := make([]any, 0, insertSizes[0])
	err := chunks(len(users), func(lo, hi int) error {
		args = args[:0]
		for _, u := range users[lo:hi] {
			args = append(args, u.uid)
		}
		return s.eachRow(ctx, tx, qAccountsOfUsers[hi-lo], args, func(r *sql.Rows) error {
			var id int64
			var k userEmail
			if err := r.Scan(&id, &k.uid, &k.email); err != nil {
				return err
			}
			accounts[k] = id
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var rows []histRow
	for _, u := range users {
		seen := make(map[string]bool, len(u.idx))
		first := len(rows)
		for _, i := range u.idx {
			e := batch[i].Entry
			acct := accounts[userEmail{u.uid, e.Account}]
			switch {
			case acct == 0:
				res[i] = HistoryResult{Err: fmt.Errorf("account %q of user %q: %w", e.Account, u.name, ErrNotFound)}
			case seen[e.MsgID]:
				res[i] = HistoryResult{Err: fmt.Errorf("msgid %q of user %q: %w", e.MsgID, u.name, ErrExists)}
			default:
				seen[e.MsgID] = true
				rows = append(rows, histRow{i: i, uid: u.uid, account: acct})
				continue
			}
			u.refused++
		}
		u.rows = rows[first:len(rows):len(rows)]
	}
	return rows, nil
}

// insertRows inserts rows, in their order, several to a statement, and
// returns the ids of those inserted; a row left out is a msgid its user
// had already.
func (s *sqlStore) insertRows(ctx context.Context, tx *boundTx, batch []HistoryAppend, rows []histRow) (map[rowKey]int64, error) {
	ids := make(map[rowKey]int64, len(rows))
	args := make([]any, 0, historyColumnsIn*insertSizes[0])
	err := chunks(len(rows), func(lo, hi int) error {
		args = args[:0]
		for _, r := range rows[lo:hi] {
			e := batch[r.i].Entry
			args = append(args, r.uid, r.account, int64(e.Buddy), e.MsgID, micros(e.Time), e.Outgoing, e.Kind, e.Text)
		}
		return s.eachRow(ctx, tx, qHistoryInsertRows[hi-lo], args, func(r *sql.Rows) error {
			var k rowKey
			var id int64
			if err := r.Scan(&id, &k.uid, &k.msgid); err != nil {
				return err
			}
			ids[k] = id
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// conversation names one of a user's conversations by account row.
type conversation struct {
	account int64
	buddy   msim.UID
}

// finishUsers sets the results of the inserted rows, moves each
// conversation's latest time once, deletes what the cap has no room for,
// and corrects each user's count for the entries refused and deleted and
// moves their last id.
func (s *sqlStore) finishUsers(ctx context.Context, tx *boundTx, batch []HistoryAppend, users []*userAppend, ids map[rowKey]int64, res []HistoryResult) error {
	type convLatest struct {
		conversation
		uid    int64
		latest int64
	}
	var convs []convLatest // in first-appended order
	at := map[conversation]int{}
	for _, u := range users {
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
			u.lastID = max(u.lastID, id)
			c, t := conversation{r.account, e.Buddy}, micros(e.Time)
			if j, ok := at[c]; !ok {
				at[c] = len(convs)
				convs = append(convs, convLatest{c, u.uid, t})
			} else if t > convs[j].latest {
				convs[j].latest = t
			}
		}
		if over := u.entries - u.refused - s.maxHistory; over > 0 && u.lastID != 0 {
			r, err := s.exec(ctx, tx, qHistoryTrim, u.uid, over)
			if err != nil {
				return err
			}
			if u.trimmed, err = r.RowsAffected(); err != nil {
				return err
			}
		}
	}
	args := make([]any, 0, 4*insertSizes[0])
	err := chunks(len(convs), func(lo, hi int) error {
		args = args[:0]
		for _, c := range convs[lo:hi] {
			args = append(args, c.account, int64(c.buddy), c.uid, c.latest)
		}
		_, err := s.exec(ctx, tx, qConversationLatest[hi-lo], args...)
		// A batch is background work (the bridge's history writer): let
		// whatever else is ready run between two statements, so a long
		// batch never holds the processor for long.
		runtime.Gosched()
		return err
	})
	if err != nil {
		return err
	}
	return chunks(len(users), func(lo, hi int) error {
		args = args[:0]
		for _, u := range users[lo:hi] {
			args = append(args, u.uid, u.refused+u.trimmed, u.lastID)
		}
		_, err := s.exec(ctx, tx, qHistoryAppended[hi-lo], args...)
		runtime.Gosched()
		return err
	})
}
