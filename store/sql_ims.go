package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// deleteChunk bounds the IDs given to one DELETE … IN (…), well below the
// engines' limits on parameters.
const deleteChunk = 500

// qHoldIM holds an IM for the account unless it holds MaxHeld already.
const qHoldIM = `INSERT INTO held_ims (account_id, seq, sender, text, sent, offline, zap, msgid, markup)
	SELECT a.id, ?, ?, ?, ?, ?, ?, ?, ?` + accountSelect + `
	AND (SELECT count(*) FROM held_ims h WHERE h.account_id = a.id) < ? RETURNING id`

// qLockAccount locks the account's row (PostgreSQL only) until the end of
// the transaction: another lock or update of the row waits for it, the
// rows written that refer to the account do not.
const qLockAccount = qAccountID + ` FOR NO KEY UPDATE OF a`

func (s *sqlStore) HoldIM(ctx context.Context, user, email string, im HeldIM) (HeldIM, error) {
	if err := checkText("text", im.Text); err != nil { // PostgreSQL's TEXT refuses it: so do both
		return HeldIM{}, fmt.Errorf("store: hold IM: %w", err)
	}
	if err := checkText("markup", im.Markup); err != nil {
		return HeldIM{}, fmt.Errorf("store: hold IM: %w", err)
	}
	if im.Time.IsZero() {
		im.Time = time.Now()
	}
	im.Time = fromMicros(micros(im.Time))
	var zap sql.NullInt64
	if im.IsZap {
		zap = sql.NullInt64{Int64: int64(im.Zap), Valid: true}
	}
	args := []any{im.Seq, int64(im.From), im.Text, micros(im.Time), im.Offline, zap, im.MsgID, im.Markup, user, email, MaxHeld}
	var err error
	if s.d == sqldb.SQLite {
		// SQLite runs one write at a time: the statement's count sees
		// every IM held before it.
		err = s.queryRow(ctx, s.db, qHoldIM, args...).Scan(&im.ID)
	} else {
		// PostgreSQL runs inserts side by side, and each one's count
		// misses the IMs the others have not committed: two at the limit
		// would both be kept. The account's row is locked first, so the
		// holds of one account take turns and each counts those before
		// it.
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			if err := s.queryRow(ctx, tx, qLockAccount, user, email).Scan(new(int64)); err != nil {
				return err
			}
			return s.queryRow(ctx, tx, qHoldIM, args...).Scan(&im.ID)
		})
	}
	if errors.Is(err, sql.ErrNoRows) { // no such account, or it is full
		if _, err = s.accountID(ctx, s.db, user, email); err == nil {
			err = fmt.Errorf("account %q of user %q holds %d IMs: %w", email, user, MaxHeld, ErrFull)
		}
	}
	if err != nil {
		return HeldIM{}, wrap("hold IM", err)
	}
	return im, nil
}

const heldColumns = `id, seq, sender, text, sent, offline, zap, msgid, markup`

func scanHeld(rows *sql.Rows) (HeldIM, error) {
	var im HeldIM
	var from, sent int64
	var zap sql.NullInt64
	if err := rows.Scan(&im.ID, &im.Seq, &from, &im.Text, &sent, &im.Offline, &zap, &im.MsgID, &im.Markup); err != nil {
		return HeldIM{}, err
	}
	im.From = msim.UID(from)
	im.Time = fromMicros(sent)
	if zap.Valid {
		im.IsZap, im.Zap = true, markup.Zap(zap.Int64)
	}
	return im, nil
}

// qHeldIMs reads an account's held IMs in one query, the account's lookup
// included: no row means no such account, and a row of zeros (every id is
// positive) an account with none. Only that row is zeros (orNone): a held
// IM's NULL does not read.
var qHeldIMs = `SELECT COALESCE(h.id, 0), ` + orNone("h", "seq", "0") + `, ` + orNone("h", "sender", "0") + `, ` +
	orNone("h", "text", "''") + `, ` + orNone("h", "sent", "0") + `, ` + orNone("h", "offline", "FALSE") + `, h.zap, ` +
	orNone("h", "msgid", "''") + `, ` + orNone("h", "markup", "''") + `
	FROM accounts a JOIN users u ON u.id = a.user_id LEFT JOIN held_ims h ON h.account_id = a.id
	WHERE u.name = ? AND a.email = ? ORDER BY h.seq, h.id`

// orNone is the column col of alias, a table LEFT JOINed by its id, or
// zero where the join found no row. Unlike COALESCE it keeps the NULL of
// a row that is there (PostgreSQL keeps one in a column whose NOT NULL
// was dropped), which then does not read (readRow) rather than reading
// as 0, UID 0 or "".
func orNone(alias, col, zero string) string {
	return `CASE WHEN ` + alias + `.id IS NULL THEN ` + zero + ` ELSE ` + alias + `.` + col + ` END`
}

func (s *sqlStore) HeldIMs(ctx context.Context, user, email string) ([]HeldIM, error) {
	rctx, err := s.shortRead(ctx)
	if err != nil {
		return nil, wrap("held IMs", err)
	}
	var out []HeldIM
	bad := &UnreadableRows{Table: "held_ims", User: user, Email: email}
	found := false
	err = s.eachRow(rctx, s.db, qHeldIMs, []any{user, email}, func(rows *sql.Rows) error {
		found = true
		im, ok, err := readRow(rows, bad, scanHeld)
		if ok && im.ID != 0 {
			out = append(out, im)
		}
		return err
	})
	if err == nil && !found {
		err = fmt.Errorf("account %q of user %q: %w", email, user, ErrNotFound)
	}
	if err != nil {
		return nil, wrap("held IMs", err)
	}
	if len(bad.Rows) > 0 {
		// Kept, they would count against MaxHeld for good, and an account
		// with MaxHeld of them would refuse every IM. The error names
		// them, for the user to be told; a removal that fails leaves them
		// for the next read.
		ids := make([]int64, len(bad.Rows))
		for i, r := range bad.Rows {
			ids[i] = r.ID
		}
		bad.Removed = s.deleteByID(ctx, "held_ims", user, email, ids) == nil
	}
	return out, wrap("held IMs", bad.err())
}

func (s *sqlStore) TakeHeld(ctx context.Context, user, email string) ([]HeldIM, error) {
	// One statement: what it returns is exactly what it deleted, even
	// with IMs held at the same moment. It runs in a transaction committed
	// only once every row it returned was read: a take that fails first
	// (ctx ended, the connection lost) removes none. Rows it cannot read
	// are taken with the others (as HeldIMs removes them) and named.
	bad := &UnreadableRows{Table: "held_ims", User: user, Email: email}
	var out []HeldIM
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		id, err := s.lockedAccountID(ctx, tx, user, email) // as deleteByID: the account's deletes take turns
		if err != nil {
			return err
		}
		return s.eachRow(ctx, tx, `DELETE FROM held_ims WHERE account_id = ? RETURNING `+heldColumns, []any{id}, func(rows *sql.Rows) error {
			im, ok, err := readRow(rows, bad, scanHeld)
			if ok {
				out = append(out, im)
			}
			return err
		})
	})
	if err != nil {
		return nil, wrap("take held IMs", err)
	}
	slices.SortFunc(out, func(a, b HeldIM) int { return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.ID, b.ID)) })
	bad.Removed = true
	return out, wrap("take held IMs", bad.err())
}

func (s *sqlStore) DeleteHeld(ctx context.Context, user, email string, ids ...int64) error {
	return wrap("delete held IMs", s.deleteByID(ctx, "held_ims", user, email, ids))
}

func (s *sqlStore) QueueIM(ctx context.Context, user, email string, im QueuedIM) (QueuedIM, error) {
	if err := checkText("text", im.Text); err != nil {
		return QueuedIM{}, fmt.Errorf("store: queue IM: %w", err)
	}
	if err := checkText("msgid", im.MsgID); err != nil {
		return QueuedIM{}, fmt.Errorf("store: queue IM: %w", err)
	}
	if im.Time.IsZero() {
		im.Time = time.Now()
	}
	im.Time = fromMicros(micros(im.Time))
	err := s.queryRow(ctx, s.db, `INSERT INTO queued_ims (account_id, recipient, nick, text, typed, recorded, msgid)
		SELECT a.id, ?, ?, ?, ?, ?, ?`+accountSelect+` RETURNING id`,
		int64(im.To), im.Nick, im.Text, micros(im.Time), im.Recorded, im.MsgID, user, email).Scan(&im.ID)
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("account %q of user %q: %w", email, user, ErrNotFound)
	}
	if err != nil {
		return QueuedIM{}, wrap("queue IM", err)
	}
	return im, nil
}

// qQueuedIMs reads an account's queued IMs in one query, as qHeldIMs.
var qQueuedIMs = `SELECT COALESCE(q.id, 0), ` + orNone("q", "recipient", "0") + `, ` + orNone("q", "nick", "''") + `, ` +
	orNone("q", "text", "''") + `, ` + orNone("q", "typed", "0") + `, ` + orNone("q", "recorded", "TRUE") + `, ` + orNone("q", "msgid", "''") + `
	FROM accounts a JOIN users u ON u.id = a.user_id LEFT JOIN queued_ims q ON q.account_id = a.id
	WHERE u.name = ? AND a.email = ? ORDER BY q.id`

func (s *sqlStore) QueuedIMs(ctx context.Context, user, email string) ([]QueuedIM, error) {
	ctx, err := s.shortRead(ctx)
	if err != nil {
		return nil, wrap("queued IMs", err)
	}
	var out []QueuedIM
	bad := &UnreadableRows{Table: "queued_ims", User: user, Email: email}
	found := false
	err = s.eachRow(ctx, s.db, qQueuedIMs, []any{user, email}, func(rows *sql.Rows) error {
		found = true
		im, ok, err := readRow(rows, bad, scanQueued)
		if ok && im.ID != 0 {
			out = append(out, im)
		}
		return err
	})
	if err == nil && !found {
		err = fmt.Errorf("account %q of user %q: %w", email, user, ErrNotFound)
	}
	if err != nil {
		return nil, wrap("queued IMs", err)
	}
	return out, wrap("queued IMs", bad.err())
}

func scanQueued(rows *sql.Rows) (QueuedIM, error) {
	var im QueuedIM
	var to, typed int64
	if err := rows.Scan(&im.ID, &to, &im.Nick, &im.Text, &typed, &im.Recorded, &im.MsgID); err != nil {
		return QueuedIM{}, err
	}
	im.To, im.Time = msim.UID(to), fromMicros(typed)
	return im, nil
}

// readRow reads the current row with scan. A row whose values do not
// convert (text in an integer column, say, which SQLite keeps as another
// tool or a bad migration wrote it) is added to bad, by its first column
// (its id), and left out: ok false, no error. An error is returned only
// when the row cannot be read at all (the rows ended: ctx, the
// connection).
func readRow[T any](rows *sql.Rows, bad *UnreadableRows, scan func(*sql.Rows) (T, error)) (v T, ok bool, err error) {
	v, err = scan(rows)
	if err == nil {
		return v, true, nil
	}
	cols, cerr := rows.Columns()
	if cerr != nil || len(cols) == 0 {
		return v, false, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if rows.Scan(ptrs...) != nil { // not the row's values: the rows' end
		return v, false, err
	}
	var id sql.NullInt64
	if id.Scan(vals[0]) != nil || !id.Valid {
		return v, false, err // no id to name it by
	}
	bad.Rows = append(bad.Rows, UnreadableRow{ID: id.Int64, Err: err})
	var zero T
	return zero, false, nil
}

func (s *sqlStore) DeleteQueued(ctx context.Context, user, email string, ids ...int64) error {
	return wrap("delete queued IMs", s.deleteByID(ctx, "queued_ims", user, email, ids))
}

// deleteByID deletes the rows of table with these ids that belong to the
// account, in one transaction.
func (s *sqlStore) deleteByID(ctx context.Context, table, user, email string, ids []int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		acct, err := s.lockedAccountID(ctx, tx, user, email)
		if err != nil {
			return err
		}
		for chunk := range slices.Chunk(ids, deleteChunk) {
			args := make([]any, 0, 1+len(chunk))
			args = append(args, acct)
			for _, id := range chunk {
				args = append(args, id)
			}
			marks := strings.Repeat(", ?", len(chunk))[2:]
			// Not prepared: the list's length varies.
			if _, err := tx.ExecContext(ctx, s.d.Rebind(`DELETE FROM `+table+` WHERE account_id = ? AND id IN (`+marks+`)`), args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// qAddNote adds a note for the user unless they have MaxNotes already.
const qAddNote = `INSERT INTO notes (user_id, text, created) SELECT u.id, ?, ? FROM users u WHERE u.name = ?
	AND (SELECT count(*) FROM notes n WHERE n.user_id = u.id) < ?`

// lockedAccountID is accountID for a delete of the account's held or
// queued IMs, or a write bounded by what the account holds (its read
// markers: SetReadMarker). On PostgreSQL, which runs deletes side by side, each
// statement locks the rows it deletes in the order its plan scans them,
// and a transaction of several (a delete in chunks) holds the rows of
// the first while it waits for those of the next: two deletes whose rows
// overlap would each wait for the other, and one would fail as a
// deadlock's victim (its IMs given or sent again). It locks the
// account's row first (qLockAccount), until the end of tx, so the
// deletes of one account take turns; DeleteAccount, HoldIM and the
// cascades of DeleteUser take that row before the IMs' rows too.
func (s *sqlStore) lockedAccountID(ctx context.Context, tx querier, user, email string) (int64, error) {
	if s.d == sqldb.SQLite {
		return s.accountID(ctx, tx, user, email)
	}
	var id int64
	err := s.queryRow(ctx, tx, qLockAccount, user, email).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("account %q of user %q: %w", email, user, ErrNotFound)
	}
	return id, err
}

// qLockUser locks the user's row (PostgreSQL only) until the end of the
// transaction, as qLockAccount does an account's.
const qLockUser = qUserID + ` FOR NO KEY UPDATE`

func (s *sqlStore) AddNote(ctx context.Context, user, text string) error {
	args := []any{text, micros(time.Now()), user, MaxNotes}
	var err error
	if s.d == sqldb.SQLite {
		// As in HoldIM: the statement's count sees every note before it.
		res, xerr := s.exec(ctx, s.db, qAddNote, args...)
		err = mustAffect(res, xerr, fmt.Sprintf("user %q", user))
	} else {
		// As in HoldIM: the user's row is locked first, so the notes
		// added for one user take turns and each counts those before it.
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := s.lockedUserID(ctx, tx, user); err != nil {
				return err
			}
			res, err := s.exec(ctx, tx, qAddNote, args...)
			return mustAffect(res, err, fmt.Sprintf("user %q", user))
		})
	}
	if errors.Is(err, ErrNotFound) { // no such user, or they have MaxNotes
		if _, err = s.userID(ctx, s.db, user); err == nil {
			err = fmt.Errorf("user %q has %d notes: %w", user, MaxNotes, ErrFull)
		}
	}
	return wrap("add note", err)
}

func (s *sqlStore) TakeNotes(ctx context.Context, user string) ([]string, error) {
	rctx, err := s.shortRead(ctx)
	if err != nil {
		return nil, wrap("take notes", err)
	}
	id, err := s.userID(rctx, s.db, user)
	if err != nil {
		return nil, wrap("take notes", err)
	}
	type note struct {
		id   int64
		text string
	}
	// Most users have no notes: a read says so without the write
	// transaction a DELETE takes even when it deletes nothing.
	var has bool
	if err := s.queryRow(rctx, s.db, `SELECT EXISTS (SELECT 1 FROM notes WHERE user_id = ?)`, id).Scan(&has); err != nil {
		return nil, wrap("take notes", err)
	}
	if !has {
		return nil, nil
	}
	// As in TakeHeld, the notes are deleted in a transaction committed
	// only once every one was read: a take that fails removes none. A
	// note that cannot be read is taken with the others, and named: kept,
	// it would fail every take, and the notes would fill to MaxNotes.
	bad := &UnreadableRows{Table: "notes", User: user, Removed: true}
	var notes []note
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		return s.eachRow(ctx, tx, `DELETE FROM notes WHERE user_id = ? RETURNING id, text`, []any{id}, func(rows *sql.Rows) error {
			n, ok, err := readRow(rows, bad, func(rows *sql.Rows) (n note, err error) {
				return n, rows.Scan(&n.id, &n.text)
			})
			if ok {
				notes = append(notes, n)
			}
			return err
		})
	})
	if err != nil {
		return nil, wrap("take notes", err)
	}
	slices.SortFunc(notes, func(a, b note) int { return cmp.Compare(a.id, b.id) })
	out := make([]string, len(notes))
	for i, n := range notes {
		out[i] = n.text
	}
	return out, wrap("take notes", bad.err())
}
