package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// Queries run in transactions (see txQueries).
const (
	qInsertAccount = `INSERT INTO accounts (user_id, email, password, channel, autoconnect)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, email) DO NOTHING RETURNING id`
	qInsertAccountSetting = `INSERT INTO account_settings (account_id, name, value) VALUES (?, ?, ?)`
	// qInsertAccountBounded is qInsertAccount unless the user has the
	// number of accounts given last already (the WHERE also tells SQLite
	// that ON CONFLICT is the upsert's, not a join's).
	qInsertAccountBounded = `INSERT INTO accounts (user_id, email, password, channel, autoconnect)
		SELECT ?, ?, ?, ?, ? WHERE (SELECT count(*) FROM accounts WHERE user_id = ?) < ?
		ON CONFLICT (user_id, email) DO NOTHING RETURNING id`
)

// qLoadUser reads a user's state in one statement, which is its own
// snapshot (no transaction, and on PostgreSQL one round trip): the
// user, then their settings, accounts (with their held and queued
// IMs counted), account settings and nicks, one kind of row after the
// other (loadUser; the accounts' part comes first in the text so that
// PostgreSQL takes the columns' types from it). No row: no such user.
const qLoadUser = `WITH u AS (SELECT id, password_hash, created FROM users WHERE name = ?)
	SELECT 2, a.id, a.email, a.channel, a.password, a.autoconnect,
		(SELECT count(*) FROM held_ims h WHERE h.account_id = a.id),
		(SELECT COALESCE(max(h.seq), 0) FROM held_ims h WHERE h.account_id = a.id),
		(SELECT count(*) FROM queued_ims q WHERE q.account_id = a.id)
		FROM accounts a JOIN u ON a.user_id = u.id
	UNION ALL SELECT 0, u.id, u.password_hash, '', NULL, FALSE, u.created,
		(SELECT count(*) FROM notes n WHERE n.user_id = u.id), 0 FROM u
	UNION ALL SELECT 1, 0, s.name, s.value, NULL, FALSE, 0, 0, 0
		FROM user_settings s JOIN u ON s.user_id = u.id
	UNION ALL SELECT 3, s.account_id, s.name, s.value, NULL, FALSE, 0, 0, 0
		FROM account_settings s JOIN accounts a ON a.id = s.account_id JOIN u ON a.user_id = u.id
	UNION ALL SELECT 4, n.account_id, n.nick, '', NULL, FALSE, n.uid, 0, 0
		FROM buddy_nicks n JOIN accounts a ON a.id = n.account_id JOIN u ON a.user_id = u.id
	ORDER BY 1, 2`

func (s *sqlStore) CreateUser(ctx context.Context, name, passwordHash string) (User, error) {
	if name == "" {
		return User{}, errors.New("store: create user: empty name")
	}
	if _, err := parseHash(passwordHash); err != nil {
		return User{}, fmt.Errorf("store: create user %q: %w", name, err)
	}
	u := User{Name: name, PasswordHash: passwordHash, Created: fromMicros(micros(time.Now()))}
	var id int64
	err := s.queryRow(ctx, s.db, `INSERT INTO users (name, password_hash, created) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING RETURNING id`, name, passwordHash, micros(u.Created)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("store: create user %q: %w", name, ErrExists)
	}
	return u, wrap("create user", err)
}

func (s *sqlStore) User(ctx context.Context, name string) (User, error) {
	u := User{Name: name}
	var created any
	err := s.queryRow(ctx, s.db, `SELECT password_hash, created FROM users WHERE name = ?`, name).Scan(&u.PasswordHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("store: user %q: %w", name, ErrNotFound)
	}
	u.Created = createdTime(created)
	return u, wrap("user", err)
}

func (s *sqlStore) Users(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, s.db, `SELECT name, password_hash, created FROM users ORDER BY name`)
	if err != nil {
		return nil, wrap("users", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var created any
		if err := rows.Scan(&u.Name, &u.PasswordHash, &created); err != nil {
			return nil, wrap("users", err)
		}
		u.Created = createdTime(created)
		out = append(out, u)
	}
	return out, wrap("users", rows.Err())
}

func (s *sqlStore) SetPassword(ctx context.Context, name, passwordHash string) error {
	if _, err := parseHash(passwordHash); err != nil {
		return fmt.Errorf("store: set password of %q: %w", name, err)
	}
	res, err := s.exec(ctx, s.db, `UPDATE users SET password_hash = ? WHERE name = ?`, passwordHash, name)
	return wrap("set password", mustAffect(res, err, fmt.Sprintf("user %q", name)))
}

func (s *sqlStore) DeleteUser(ctx context.Context, name string) error {
	// Everything of the user goes by ON DELETE CASCADE. The history lock
	// first, as every writer of history takes it (see sql_history.go).
	return wrap("delete user", s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, qLockHistoryByName, name); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, qDeleteUserByName, name)
		return mustAffect(res, err, fmt.Sprintf("user %q", name))
	}))
}

func (s *sqlStore) SetSetting(ctx context.Context, user, key, value string) error {
	res, err := s.exec(ctx, s.db, `INSERT INTO user_settings (user_id, name, value)
		SELECT id, ?, ? FROM users WHERE name = ?
		ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value`, key, value, user)
	return wrap("set setting", mustAffect(res, err, fmt.Sprintf("user %q", user)))
}

func (s *sqlStore) DeleteSetting(ctx context.Context, user, key string) error {
	id, err := s.userID(ctx, s.db, user)
	if err == nil {
		_, err = s.exec(ctx, s.db, `DELETE FROM user_settings WHERE user_id = ? AND name = ?`, id, key)
	}
	return wrap("delete setting", err)
}

func (s *sqlStore) AddAccount(ctx context.Context, user string, a Account) error {
	return s.addAccount(ctx, user, a, 0)
}

func (s *sqlStore) AddAccountBounded(ctx context.Context, user string, a Account) error {
	return s.addAccount(ctx, user, a, MaxAccounts)
}

// addAccount adds the account, unless the user has bound accounts already
// (ErrFull) if bound > 0.
func (s *sqlStore) addAccount(ctx context.Context, user string, a Account, bound int) error {
	if a.Email == "" {
		return errors.New("store: add account: empty e-mail")
	}
	sealed, err := s.sl.seal([]byte(a.Password), passwordAD(user, a.Email))
	if err != nil {
		return err
	}
	return wrap("add account", s.inTx(ctx, func(tx *sql.Tx) error {
		var uid, id int64
		var err error
		if bound > 0 {
			// Counted against the bound: the adds of one user take turns.
			uid, err = s.lockedUserID(ctx, tx, user)
		} else {
			uid, err = s.userID(ctx, tx, user)
		}
		if err != nil {
			return err
		}
		if bound > 0 {
			err = s.queryRow(ctx, tx, qInsertAccountBounded,
				uid, a.Email, sealed, a.Channel, a.Autoconnect, uid, bound).Scan(&id)
		} else {
			err = s.queryRow(ctx, tx, qInsertAccount,
				uid, a.Email, sealed, a.Channel, a.Autoconnect).Scan(&id)
		}
		if errors.Is(err, sql.ErrNoRows) { // the user has it, or is full
			err = fmt.Errorf("account %q of user %q: %w", a.Email, user, ErrExists)
			if bound > 0 {
				if _, aerr := s.accountID(ctx, tx, user, a.Email); errors.Is(aerr, ErrNotFound) {
					err = fmt.Errorf("user %q has %d accounts: %w", user, bound, ErrFull)
				} else if aerr != nil {
					err = aerr
				}
			}
		}
		if err != nil {
			return err
		}
		for k, v := range a.Settings {
			if _, err := s.exec(ctx, tx, qInsertAccountSetting, id, k, v); err != nil {
				return err
			}
		}
		return nil
	}))
}

func (s *sqlStore) UpdateAccount(ctx context.Context, user string, a Account) error {
	sealed, err := s.sl.seal([]byte(a.Password), passwordAD(user, a.Email))
	if err != nil {
		return err
	}
	res, err := s.exec(ctx, s.db, `UPDATE accounts SET password = ?, channel = ?, autoconnect = ?
		WHERE id = (SELECT a.id`+accountSelect+`)`, sealed, a.Channel, a.Autoconnect, user, a.Email)
	return wrap("update account", mustAffect(res, err, fmt.Sprintf("account %q of user %q", a.Email, user)))
}

func (s *sqlStore) DeleteAccount(ctx context.Context, user, email string) error {
	// The account's rows, history included, go by ON DELETE CASCADE; the
	// user's history count is then counted again.
	return wrap("delete account", s.inTx(ctx, func(tx *sql.Tx) error {
		var acct, uid int64
		err := s.queryRow(ctx, tx, qAccountAndUser, user, email).Scan(&acct, &uid)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("account %q of user %q: %w", email, user, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, qLockHistoryUser, uid); err != nil {
			return err
		}
		res, err := s.exec(ctx, tx, qDeleteAccountByID, acct)
		if err := mustAffect(res, err, fmt.Sprintf("account %q of user %q", email, user)); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, qHistoryRecount, uid, uid)
		return err
	}))
}

func (s *sqlStore) SetAccountSetting(ctx context.Context, user, email, key, value string) error {
	res, err := s.exec(ctx, s.db, `INSERT INTO account_settings (account_id, name, value)
		SELECT a.id, ?, ?`+accountSelect+`
		ON CONFLICT (account_id, name) DO UPDATE SET value = excluded.value`, key, value, user, email)
	return wrap("set account setting", mustAffect(res, err, fmt.Sprintf("account %q of user %q", email, user)))
}

func (s *sqlStore) DeleteAccountSetting(ctx context.Context, user, email, key string) error {
	id, err := s.accountID(ctx, s.db, user, email)
	if err == nil {
		_, err = s.exec(ctx, s.db, `DELETE FROM account_settings WHERE account_id = ? AND name = ?`, id, key)
	}
	return wrap("delete account setting", err)
}

func (s *sqlStore) SetNick(ctx context.Context, user, email string, uid msim.UID, nick string) error {
	if nick == "" {
		return errors.New("store: set nick: empty nick")
	}
	res, err := s.exec(ctx, s.db, `INSERT INTO buddy_nicks (account_id, uid, nick)
		SELECT a.id, ?, ?`+accountSelect+`
		ON CONFLICT (account_id, uid) DO UPDATE SET nick = excluded.nick`, int64(uid), nick, user, email)
	return wrap("set nick", mustAffect(res, err, fmt.Sprintf("account %q of user %q", email, user)))
}

func (s *sqlStore) DeleteNick(ctx context.Context, user, email string, uid msim.UID) error {
	id, err := s.accountID(ctx, s.db, user, email)
	if err == nil {
		_, err = s.exec(ctx, s.db, `DELETE FROM buddy_nicks WHERE account_id = ? AND uid = ?`, id, int64(uid))
	}
	return wrap("delete nick", err)
}

func (s *sqlStore) LoadUser(ctx context.Context, name string) (UserState, error) {
	ctx, err := s.shortRead(ctx)
	if err != nil {
		return UserState{}, wrap("load user", err)
	}
	st, err := s.loadUser(ctx, name)
	return st, wrap("load user", err)
}

// Kinds of qLoadUser's rows, in the order they come.
const (
	rowUser = iota
	rowSetting
	rowAccount
	rowAccountSetting
	rowNick
)

func (s *sqlStore) loadUser(ctx context.Context, name string) (UserState, error) {
	st := UserState{User: User{Name: name}, Settings: map[string]string{}}
	var ids []int64
	var sealed [][]byte
	byID := map[int64]*AccountState{}
	type badNick struct {
		account int64
		err     error
	}
	var badNicks []badNick
	var seqUnread []int // accounts whose highest held seq did not read
	createdUnread := false
	found := false
	err := s.eachRow(ctx, s.db, qLoadUser, []any{name}, func(rows *sql.Rows) error {
		var (
			kind       int
			id         int64
			t1, t2     string
			pw         []byte
			b          bool
			n1, n2, n3 int64
		)
		dest := []any{&kind, &id, &t1, &t2, &pw, &b, &n1, &n2, &n3}
		if err := rows.Scan(dest...); err != nil {
			// A row whose values do not convert (SQLite keeps what
			// another tool or a bad migration wrote): a nick is left
			// out (the buddy gets a nick anew), an account whose
			// autoconnect is one does not connect by itself, one
			// whose held IMs' highest seq is one is read without it
			// (its readable ones are looked at after), a user whose
			// creation time is one is created at the zero Time, and a
			// setting whose name or value is one (NULL, kept where a
			// column's NOT NULL was dropped) is unset.
			vals, bad, ok := scanEach(rows, dest)
			switch {
			case !ok:
				return err // the rows ended
			case (kind == rowSetting || kind == rowAccountSetting) && len(bad) > 0 && onlyOf(bad, 2, 3):
				return nil
			case kind == rowNick && !slices.Contains(bad, 0) && !slices.Contains(bad, 1):
				badNicks = append(badNicks, badNick{id, fmt.Errorf("%w: buddy_nicks row of account row %d of user %q, nick %q, uid %v: %v",
					ErrUnreadable, id, name, vals[2], vals[6], err)})
				return nil
			case kind == rowAccount && onlyOf(bad, 5, 7):
				b = false
				if slices.Contains(bad, 7) {
					n2 = 0
					seqUnread = append(seqUnread, len(st.Accounts))
				}
			case kind == rowUser && slices.Equal(bad, []int{6}):
				createdUnread = true
			default:
				return fmt.Errorf("user %q: a row (kind %v, id %v) cannot be read: %w", name, vals[0], vals[1], err)
			}
		}
		switch kind {
		case rowUser:
			found = true
			st.User.PasswordHash, st.User.Created, st.Notes = t1, fromMicros(n1), int(n2)
			if createdUnread {
				st.User.Created = time.Time{}
			}
		case rowSetting:
			st.Settings[t1] = t2
		case rowAccount:
			a := AccountState{Account: Account{Email: t1, Channel: t2, Autoconnect: b, Settings: map[string]string{}},
				Nicks: map[msim.UID]string{}, Held: int(n1), Queued: int(n3)}
			st.HeldSeq = max(st.HeldSeq, n2)
			st.Accounts = append(st.Accounts, a)
			ids = append(ids, id)
			sealed = append(sealed, pw)
		case rowAccountSetting, rowNick:
			if len(byID) != len(ids) { // the accounts have all come
				for i := range st.Accounts {
					byID[ids[i]] = &st.Accounts[i]
				}
			}
			a := byID[id]
			if a == nil {
				return nil
			}
			if kind == rowNick {
				a.Nicks[msim.UID(n1)] = t1
			} else {
				a.Settings[t1] = t2
			}
		}
		return nil
	})
	if err != nil {
		return UserState{}, err
	}
	if !found {
		return UserState{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	for _, i := range seqUnread {
		seq, err := s.heldSeq(ctx, ids[i])
		if err != nil {
			return UserState{}, err
		}
		st.HeldSeq = max(st.HeldSeq, seq)
	}
	for _, n := range badNicks {
		if i := slices.Index(ids, n.account); i >= 0 {
			a := &st.Accounts[i]
			a.NicksUnreadable = append(a.NicksUnreadable, n.err)
		}
	}
	for i := range st.Accounts {
		a := &st.Accounts[i]
		pw, err := s.sl.open(sealed[i], passwordAD(name, a.Email))
		if err != nil {
			why := "is malformed"
			if errors.Is(err, ErrWrongKey) {
				why = "does not open with the key that opens the database (the row is corrupt, or was sealed for another account)"
			}
			a.Unreadable = fmt.Errorf("%w: account %q of user %q (accounts row %d): its sealed MSIM password of %d bytes %s",
				ErrUnreadable, a.Email, name, ids[i], len(sealed[i]), why)
			continue
		}
		a.Password = string(pw)
	}
	return st, nil
}

// heldSeq is the highest seq of the account's held IMs that reads (0 if
// none), for an account one of whose does not.
func (s *sqlStore) heldSeq(ctx context.Context, account int64) (int64, error) {
	var top int64
	err := s.eachRow(ctx, s.db, `SELECT seq FROM held_ims WHERE account_id = ?`, []any{account}, func(rows *sql.Rows) error {
		var v any
		if err := rows.Scan(&v); err != nil {
			return err
		}
		var seq sql.NullInt64
		if seq.Scan(v) == nil {
			top = max(top, seq.Int64)
		}
		return nil
	})
	return top, err
}

// onlyOf reports whether every one of bad is one of these.
func onlyOf(bad []int, these ...int) bool {
	for _, i := range bad {
		if !slices.Contains(these, i) {
			return false
		}
	}
	return true
}

// createdTime is a user's creation time from v, its column as scanned: the
// zero Time when it does not convert (SQLite keeps what another tool
// wrote), so that one value neither loses the user nor fails a list of
// every user.
func createdTime(v any) time.Time {
	var us sql.NullInt64
	if us.Scan(v) != nil || !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}

// scanEach reads the current row, after a Scan into dest failed, value
// by value: it sets each of dest that converts and returns the row's
// values and the indexes of those that do not. ok is false if the row
// cannot be read at all (the rows ended).
func scanEach(rows *sql.Rows, dest []any) (vals []any, bad []int, ok bool) {
	vals = make([]any, len(dest))
	ptrs := make([]any, len(dest))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if rows.Scan(ptrs...) != nil {
		return nil, nil, false
	}
	for i, d := range dest {
		if assign(d, vals[i]) != nil {
			bad = append(bad, i)
		}
	}
	return vals, bad, true
}

// assign converts v as Scan would into d, one of the types loadUser
// scans into.
func assign(d, v any) error {
	switch d := d.(type) {
	case *int:
		return assignNotNull(d, v)
	case *int64:
		return assignNotNull(d, v)
	case *string:
		return assignNotNull(d, v)
	case *bool:
		return assignNotNull(d, v)
	case *[]byte:
		var n sql.Null[[]byte]
		err := n.Scan(v)
		*d = n.V
		return err // NULL is nil, as Scan gives it
	}
	return fmt.Errorf("store: cannot assign to %T", d)
}

// assignNotNull converts v as Scan would into d, a NULL being an error.
func assignNotNull[T any](d *T, v any) error {
	var n sql.Null[T]
	err := n.Scan(v)
	*d = n.V
	return cmp.Or(err, nullErr(n.Valid))
}

func nullErr(valid bool) error {
	if valid {
		return nil
	}
	return errors.New("NULL")
}

// eachRow runs f on each row of a query and closes the rows.
func (s *sqlStore) eachRow(ctx context.Context, q querier, query string, args []any, f func(*sql.Rows) error) error {
	rows, err := s.query(ctx, q, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
