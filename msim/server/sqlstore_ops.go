package server

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/msim"
)

// The store's queries, all prepared at open (see prepare); lockMarker at
// the end of one becomes the dialect's LockRow there.
const (
	qAccountCols    = `SELECT uid, email, user_name, sealed_hash, data FROM msim_accounts `
	qAccount        = qAccountCols + `WHERE uid = ?`
	qAccountByEmail = qAccountCols + `WHERE email_key = ?`
	qAccountByName  = qAccountCols + `WHERE name_key = ?`
	qEmailTaken     = `SELECT uid FROM msim_accounts WHERE email_key = ?`
	qNameTaken      = `SELECT uid FROM msim_accounts WHERE name_key = ? AND uid <> ?`
	qUIDTaken       = `SELECT uid FROM msim_accounts WHERE uid = ?`
	qNextUID        = `UPDATE msim_counters SET value = value + 1 WHERE name = 'next_uid' RETURNING value - 1`
	qInsertAccount  = `INSERT INTO msim_accounts (uid, email, email_key, user_name, name_key, sealed_hash, data) VALUES (?, ?, ?, ?, ?, ?, ?)`
	qUpdateAccount  = `UPDATE msim_accounts SET user_name = ?, name_key = ?, sealed_hash = ?, data = ? WHERE uid = ?`
	qContacts       = `SELECT uid, group_name, position, visibility, nick_name, name_select FROM msim_contacts WHERE owner = ? ORDER BY uid`
	qContactCount   = `SELECT COUNT(*) FROM msim_contacts WHERE owner = ?`
	// The accounts of an owner's contacts, for its contact list: what
	// the list shows (no e-mail address, no hash).
	qContactAccounts = `SELECT a.uid, a.user_name, a.data FROM msim_contacts c
		JOIN msim_accounts a ON a.uid = c.uid WHERE c.owner = ? ORDER BY a.uid`
	qPutContact = `INSERT INTO msim_contacts (owner, uid, group_name, position, visibility, nick_name, name_select)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, uid) DO UPDATE SET group_name = excluded.group_name,
		position = excluded.position, visibility = excluded.visibility, nick_name = excluded.nick_name, name_select = excluded.name_select`
	qDeleteContact = `DELETE FROM msim_contacts WHERE owner = ? AND uid = ?`
	qOfflineCounts = `SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT),
		CAST(COALESCE(SUM(CASE WHEN sender = ? THEN size ELSE 0 END), 0) AS BIGINT) FROM msim_offline WHERE recipient = ?`
	qInsertOffline = `INSERT INTO msim_offline (recipient, sender, sent, cv, body, size) VALUES (?, ?, ?, ?, ?, ?)`
	qTakeOffline   = `DELETE FROM msim_offline WHERE recipient = ? RETURNING id, sender, sent, cv, body`
	qHasOffline    = `SELECT EXISTS (SELECT 1 FROM msim_offline WHERE recipient = ?)`
)

// queries lists every query of the store.
var queries = []string{
	qAccount, qAccountByEmail, qAccountByName, qEmailTaken, qNameTaken, qUIDTaken, qNextUID,
	qInsertAccount, qUpdateAccount, qContacts, qContactCount, qContactAccounts, qPutContact, qDeleteContact, qOfflineCounts,
	qInsertOffline, qTakeOffline, qHasOffline, lockAccount, lockUID,
}

// Queries that lock the account's row until the transaction ends
// (PostgreSQL; SQLite's write transaction holds the database's lock).
const (
	lockAccount = qAccount + lockMarker
	lockUID     = qUIDTaken + lockMarker
	lockMarker  = ` /*lock*/`
)

// accountData is the JSON of an account's data column: everything but
// its uid, e-mail address, user name and hash. Its names are the schema's;
// they never change with Account's fields.
type accountData struct {
	DisplayName    string        `json:"display_name,omitempty"`
	Profile        []dictPair    `json:"profile,omitempty"`
	Prefs          []dictPair    `json:"prefs,omitempty"`
	Groups         []storedGroup `json:"groups,omitempty"`
	Block          []msim.UID    `json:"block,omitempty"`
	Allow          []msim.UID    `json:"allow,omitempty"`
	ShowOnlyToList bool          `json:"show_only_to_list,omitempty"`
	OnlyListMayIM  bool          `json:"only_list_may_im,omitempty"`
	LastLogin      time.Time     `json:"last_login,omitzero"`
}

type dictPair struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

type storedGroup struct {
	ID       int    `json:"id"`
	Name     string `json:"name"`
	Position int    `json:"position"`
	Flag     int    `json:"flag"`
}

func toPairs(d msim.Dict) []dictPair {
	out := make([]dictPair, len(d))
	for i, p := range d {
		out[i] = dictPair{p.Key, p.Value}
	}
	return out
}

func fromPairs(ps []dictPair) msim.Dict {
	if ps == nil {
		return nil
	}
	out := make(msim.Dict, len(ps))
	for i, p := range ps {
		out[i] = msim.Pair{Key: p.Key, Value: p.Value}
	}
	return out
}

func encodeData(a *Account) (string, error) {
	d := accountData{
		DisplayName: a.DisplayName, Profile: toPairs(a.Profile), Prefs: toPairs(a.Prefs),
		Block: a.Block, Allow: a.Allow, ShowOnlyToList: a.ShowOnlyToList, OnlyListMayIM: a.OnlyListMayIM,
		LastLogin: a.LastLogin,
	}
	for _, g := range a.Groups {
		d.Groups = append(d.Groups, storedGroup(g))
	}
	b, err := json.Marshal(d)
	return string(b), err
}

func decodeData(s string, a *Account) error {
	var d accountData
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return err
	}
	a.DisplayName, a.Profile, a.Prefs = d.DisplayName, fromPairs(d.Profile), fromPairs(d.Prefs)
	a.Block, a.Allow, a.ShowOnlyToList, a.OnlyListMayIM, a.LastLogin = d.Block, d.Allow, d.ShowOnlyToList, d.OnlyListMayIM, d.LastLogin
	for _, g := range d.Groups {
		a.Groups = append(a.Groups, Group(g))
	}
	return nil
}

// nameKey is the user name's uniqueness key: nil (NULL) for none.
func nameKey(name string) any {
	if name == "" {
		return nil
	}
	return fold(name)
}

// scanAccount reads an account row, its hash opened. sealed and data are
// the hash and the data as stored, for an update that keeps them.
func (s *sqlStore) scanAccount(row interface{ Scan(...any) error }) (a *Account, sealed []byte, data string, err error) {
	a = &Account{}
	var uid int64
	if err := row.Scan(&uid, &a.Email, &a.UserName, &sealed, &data); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil, "", ErrNoSuchAccount
		}
		return nil, nil, "", err
	}
	a.UID = msim.UID(uid)
	if err := decodeData(data, a); err != nil {
		return nil, nil, "", fmt.Errorf("account %d: %w", uid, err)
	}
	if a.Hash, err = s.keys.open(a.UID, sealed); err != nil {
		return nil, nil, "", fmt.Errorf("account %d: %w", uid, err)
	}
	return a, sealed, data, nil
}

func (s *sqlStore) CreateAccount(a *Account) error {
	if err := checkText("e-mail address", a.Email); err != nil {
		return err
	}
	if err := checkText("user name", a.UserName); err != nil {
		return err
	}
	data, err := encodeData(a)
	if err != nil {
		return s.wrap("create account", err)
	}
	ctx, cancel := opContext()
	defer cancel()
	var uid msim.UID
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		switch taken, err := s.exists(ctx, tx, qEmailTaken, fold(a.Email)); {
		case err != nil:
			return err
		case taken:
			return ErrAccountExists
		}
		if a.UserName != "" {
			switch taken, err := s.exists(ctx, tx, qNameTaken, fold(a.UserName), 0); {
			case err != nil:
				return err
			case taken:
				return ErrUserNameTaken
			}
		}
		uid = a.UID
		if uid == 0 {
			for {
				var next int64
				if err := s.stmt(ctx, s.w, tx, qNextUID).QueryRowContext(ctx).Scan(&next); err != nil {
					return s.wrap("next uid", err)
				}
				taken, err := s.exists(ctx, tx, qUIDTaken, next)
				if err != nil {
					return err
				}
				if !taken {
					uid = msim.UID(next)
					break
				}
			}
		} else if taken, err := s.exists(ctx, tx, qUIDTaken, int64(uid)); err != nil {
			return err
		} else if taken {
			return ErrAccountExists
		}
		_, err := s.stmt(ctx, s.w, tx, qInsertAccount).ExecContext(ctx, int64(uid), a.Email, fold(a.Email),
			a.UserName, nameKey(a.UserName), s.keys.seal(uid, a.Hash), data)
		return s.uniqueError("create account", err)
	})
	if err == nil {
		a.UID = uid
	}
	return err
}

// uniqueError maps a uniqueness refusal (two nodes creating or renaming
// at once) to the Store's errors.
func (s *sqlStore) uniqueError(op string, err error) error {
	name, ok := sqldb.UniqueViolation(err)
	switch {
	case !ok:
		return s.wrap(op, err)
	case name == "msim_accounts_name_key" || name == "msim_accounts.name_key":
		return ErrUserNameTaken
	default: // the e-mail address or the uid
		return ErrAccountExists
	}
}

// exists reports whether query (in tx) finds a row.
func (s *sqlStore) exists(ctx context.Context, tx *sql.Tx, query string, args ...any) (bool, error) {
	var uid int64
	err := s.stmt(ctx, s.w, tx, query).QueryRowContext(ctx, args...).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, s.wrap("lookup", err)
}

func (s *sqlStore) Account(uid msim.UID) (*Account, error) {
	ctx, cancel := opContext()
	defer cancel()
	a, _, _, err := s.scanAccount(s.stmt(ctx, s.r, nil, qAccount).QueryRowContext(ctx, int64(uid)))
	if errors.Is(err, ErrNoSuchAccount) {
		return nil, err
	}
	return a, s.wrap("account", err)
}

func (s *sqlStore) byKey(query, key string) (*Account, error) {
	ctx, cancel := opContext()
	defer cancel()
	var err error
	var a *Account
	if validText(key) { // else no account has it (and PostgreSQL would refuse the query)
		a, _, _, err = s.scanAccount(s.stmt(ctx, s.r, nil, query).QueryRowContext(ctx, fold(key)))
	} else {
		err = ErrNoSuchAccount
	}
	if errors.Is(err, ErrNoSuchAccount) {
		_, _ = s.keys.open(keyCheckUID, s.decoy) // the work a found account costs
		return nil, err
	}
	return a, s.wrap("account", err)
}

func (s *sqlStore) AccountByEmail(email string) (*Account, error) {
	return s.byKey(qAccountByEmail, email)
}

func (s *sqlStore) AccountByUserName(name string) (*Account, error) {
	return s.byKey(qAccountByName, name)
}

func (s *sqlStore) UpdateAccount(uid msim.UID, fn func(*Account) error) error {
	ctx, cancel := opContext()
	defer cancel()
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.updateAccount(ctx, tx, uid, fn) })
}

// loginChunk bounds the accounts one transaction of recordLogins updates
// (and holds locked until it commits).
const loginChunk = 500

// recordLogins implements loginRecorder: the accounts in uid order (so
// that nodes recording overlapping logins lock the rows in one order), up
// to loginChunk in a transaction. An account deleted meanwhile is left
// out.
func (s *sqlStore) recordLogins(times map[msim.UID]time.Time) error {
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(times)), loginChunk) {
		ctx, cancel := opContext()
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			for _, uid := range chunk {
				if err := s.updateAccount(ctx, tx, uid, laterLogin(times[uid])); err != nil && !errors.Is(err, ErrNoSuchAccount) {
					return err
				}
			}
			return nil
		})
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// updateAccount is UpdateAccount inside tx.
func (s *sqlStore) updateAccount(ctx context.Context, tx *sql.Tx, uid msim.UID, fn func(*Account) error) error {
	old, sealed, stored, err := s.scanAccount(s.stmt(ctx, s.w, tx, lockAccount).QueryRowContext(ctx, int64(uid)))
	if errors.Is(err, ErrNoSuchAccount) {
		return err
	}
	if err != nil {
		return s.wrap("update account", err)
	}
	a := old.clone()
	if err := fn(a); err != nil {
		return err
	}
	a.UID, a.Email = old.UID, old.Email
	if err := checkText("user name", a.UserName); err != nil {
		return err
	}
	if fold(a.UserName) != fold(old.UserName) && a.UserName != "" {
		switch taken, err := s.exists(ctx, tx, qNameTaken, fold(a.UserName), int64(uid)); {
		case err != nil:
			return err
		case taken:
			return ErrUserNameTaken
		}
	}
	data, err := encodeData(a)
	if err != nil {
		return s.wrap("update account", err)
	}
	if a.UserName == old.UserName && a.Hash == old.Hash && data == stored {
		// Nothing to write when the change changed nothing (a client
		// telling its privacy settings again at each login): on
		// SQLite the commit then writes no WAL frame and does no
		// sync; on PostgreSQL no new row version is made (the row
		// lock taken above is still logged). Data stored in another
		// form (an older release's, an import) is written once anew.
		return nil
	}
	if a.Hash != old.Hash {
		sealed = s.keys.seal(uid, a.Hash)
	}
	_, err = s.stmt(ctx, s.w, tx, qUpdateAccount).ExecContext(ctx, a.UserName, nameKey(a.UserName), sealed, data, int64(uid))
	return s.uniqueError("update account", err)
}

func (s *sqlStore) Contacts(owner msim.UID) ([]Contact, error) {
	ctx, cancel := opContext()
	defer cancel()
	rows, err := s.stmt(ctx, s.r, nil, qContacts).QueryContext(ctx, int64(owner))
	if err != nil {
		return nil, s.wrap("contacts", err)
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		var (
			uid                              int64
			group, nick                      []byte
			position, visibility, nameSelect int64
		)
		if err := rows.Scan(&uid, &group, &position, &visibility, &nick, &nameSelect); err != nil {
			return nil, s.wrap("contacts", err)
		}
		out = append(out, Contact{UID: msim.UID(uid), GroupName: string(group), Position: int(position),
			Visibility: int(visibility), NickName: string(nick), NameSelect: int(nameSelect)})
	}
	return out, s.wrap("contacts", rows.Err())
}

// contactCount implements contactCounter.
func (s *sqlStore) contactCount(owner msim.UID) (int, error) {
	ctx, cancel := opContext()
	defer cancel()
	var n int64
	err := s.stmt(ctx, s.r, nil, qContactCount).QueryRowContext(ctx, int64(owner)).Scan(&n)
	return int(n), s.wrap("contact count", err)
}

// listedData is the part of accountData a contact list shows.
type listedData struct {
	DisplayName string     `json:"display_name,omitempty"`
	Profile     []dictPair `json:"profile,omitempty"`
}

// viewContactAccounts implements contactAccountViewer: one query reads
// the accounts of owner's contacts, and of each only what a contact list
// shows (no hash to open, no lists or settings to decode). A uid with no
// account gets nil, as from the memory store; so does one that is no
// longer owner's contact by then (the memory store, which ignores owner,
// gives its account).
func (s *sqlStore) viewContactAccounts(owner msim.UID, uids []msim.UID, fn func(i int, a *Account)) error {
	ctx, cancel := opContext()
	defer cancel()
	rows, err := s.stmt(ctx, s.r, nil, qContactAccounts).QueryContext(ctx, int64(owner))
	if err != nil {
		return s.wrap("contact accounts", err)
	}
	defer rows.Close()
	accounts := make([]Account, 0, len(uids))
	for rows.Next() {
		var (
			a    Account
			uid  int64
			data string
		)
		if err := rows.Scan(&uid, &a.UserName, &data); err != nil {
			return s.wrap("contact accounts", err)
		}
		var d listedData
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			return s.wrap("contact accounts", fmt.Errorf("account %d: %w", uid, err))
		}
		a.UID, a.DisplayName, a.Profile = msim.UID(uid), d.DisplayName, fromPairs(d.Profile)
		accounts = append(accounts, a)
	}
	if err := rows.Err(); err != nil {
		return s.wrap("contact accounts", err)
	}
	for i, u := range uids {
		var a *Account
		if j, ok := slices.BinarySearchFunc(accounts, u, func(a Account, u msim.UID) int { return cmp.Compare(a.UID, u) }); ok {
			a = &accounts[j]
		}
		fn(i, a)
	}
	return nil
}

func (s *sqlStore) PutContact(owner msim.UID, c Contact) error {
	ctx, cancel := opContext()
	defer cancel()
	_, err := s.stmt(ctx, s.w, nil, qPutContact).ExecContext(ctx, int64(owner), int64(c.UID), []byte(c.GroupName),
		int64(c.Position), int64(c.Visibility), []byte(c.NickName), int64(c.NameSelect))
	if sqldb.ForeignKeyViolation(err) {
		return ErrNoSuchAccount
	}
	return s.wrap("put contact", err)
}

func (s *sqlStore) DeleteContact(owner, contact msim.UID) error {
	ctx, cancel := opContext()
	defer cancel()
	_, err := s.stmt(ctx, s.w, nil, qDeleteContact).ExecContext(ctx, int64(owner), int64(contact))
	return s.wrap("delete contact", err)
}

// AddOffline checks the limits and stores m in one transaction that holds
// the recipient's account row locked (on SQLite, the database's write
// lock): adders for one recipient take turns, each counting what the
// previous ones committed, so the caps hold with any number of nodes
// writing at once.
func (s *sqlStore) AddOffline(to msim.UID, m OfflineMessage, lim OfflineLimits) error {
	ctx, cancel := opContext()
	defer cancel()
	size := int64(len(m.Body))
	return s.inTx(ctx, func(tx *sql.Tx) error {
		switch locked, err := s.exists(ctx, tx, lockUID, int64(to)); {
		case err != nil:
			return err
		case !locked:
			return ErrNoSuchAccount
		}
		if lim.Messages > 0 || lim.Bytes > 0 || lim.SenderBytes > 0 {
			var n, total, fromSender int64
			err := s.stmt(ctx, s.w, tx, qOfflineCounts).QueryRowContext(ctx, int64(m.From), int64(to)).Scan(&n, &total, &fromSender)
			if err != nil {
				return s.wrap("offline counts", err)
			}
			if err := lim.check(int(n), total, fromSender, size); err != nil {
				return err
			}
		}
		_, err := s.stmt(ctx, s.w, tx, qInsertOffline).ExecContext(ctx, int64(to), int64(m.From), micros(m.Time), int64(m.CV), []byte(m.Body), size)
		return s.wrap("add offline", err)
	})
}

// TakeOffline deletes and returns the recipient's messages in one
// statement: a row is returned by the one DELETE that removed it, so two
// nodes taking at once never both get a message (on PostgreSQL the second
// waits for the first's row locks and then finds the rows gone). The
// DELETE runs in a transaction committed only once every row it returned
// was read: a take that fails before its commit (a row it cannot read,
// the operation's time up, the connection lost) removes nothing, and the
// messages wait for the next take.
func (s *sqlStore) TakeOffline(to msim.UID) ([]OfflineMessage, error) {
	ctx, cancel := opContext()
	defer cancel()
	// Most logins find nothing waiting. On SQLite a read on the readers
	// says so, without the write lock a DELETE takes even when it deletes
	// nothing (the one writer, which other logins' updates hold while
	// they sync). PostgreSQL has no such lock to wait for (one pool; a
	// DELETE of nothing writes nothing), so there the DELETE alone asks.
	if s.r != s.w {
		var has bool
		if err := s.stmt(ctx, s.r, nil, qHasOffline).QueryRowContext(ctx, int64(to)).Scan(&has); err != nil {
			return nil, s.wrap("take offline", err)
		}
		if !has {
			return nil, nil
		}
	}
	type row struct {
		id int64
		m  OfflineMessage
	}
	var got []row
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmt(ctx, s.w, tx, qTakeOffline).QueryContext(ctx, int64(to))
		if err != nil {
			return s.wrap("take offline", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				r              row
				from, sent, cv int64
				body           []byte
			)
			if err := rows.Scan(&r.id, &from, &sent, &cv, &body); err != nil {
				return s.wrap("take offline", err)
			}
			r.m = OfflineMessage{From: msim.UID(from), Time: fromMicros(sent), CV: int(cv), Body: string(body)}
			got = append(got, r)
		}
		if err := rows.Err(); err != nil {
			return s.wrap("take offline", err)
		}
		return s.wrap("take offline", rows.Close())
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(got, func(a, b row) int { return cmp.Compare(a.id, b.id) })
	var out []OfflineMessage
	for _, r := range got {
		out = append(out, r.m)
	}
	return out, nil
}
