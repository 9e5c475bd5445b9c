package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/msimircd/msimircd/internal/keyfile"
	"github.com/msimircd/msimircd/internal/sqldb"
	"github.com/msimircd/msimircd/msim"
)

// Earlier msimd versions kept the network in a bbolt file. What is left of
// that store is its reader: ImportBolt copies such a file into the SQL
// store.

// Buckets of the bbolt data file. Keys are big-endian uids (8 bytes), so a
// prefix scan over an owner's uid yields its contacts or messages in order.
// (Its other buckets, indexes and counts, are rebuilt by the store.)
var (
	bAccounts = []byte("accounts") // uid → JSON storedAccount
	bContacts = []byte("contacts") // owner uid | contact uid → JSON Contact
	bOffline  = []byte("offline")  // recipient uid | sequence → JSON OfflineMessage
	bMeta     = []byte("meta")     // keyCheck → a known value sealed under the key
)

var keyCheck = []byte("keycheck")

// storedAccount is an account as the bbolt file keeps it: the hash sealed.
type storedAccount struct {
	Account
	// Hash shadows Account.Hash: a hash in clear, found only in files
	// written before hashes were sealed.
	Hash       json.RawMessage `json:",omitempty"`
	SealedHash []byte          `json:",omitempty"`
}

// ErrStoreInUse reports a bbolt data file another process (a running
// msimd or msimircd of an earlier version) holds.
var ErrStoreInUse = errors.New("msim/server: the data file is in use by another process")

// ErrImportTargetNotEmpty refuses to import into a store that has accounts
// already: an import carries a whole network over, once.
var ErrImportTargetNotEmpty = errors.New("msim/server: the store to import into is not empty")

// boltMagic is where a bbolt file says what it is: the magic number of its
// first meta page (after the 16-byte page header), little-endian.
var boltMagic = []byte{0xED, 0xDA, 0x0C, 0xED}

// IsBoltFile reports whether the file at path is a bbolt file (a data file
// of an earlier msimd). A missing or unreadable file is not.
func IsBoltFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [20]byte
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return false
	}
	return bytes.Equal(head[16:20], boltMagic)
}

// ImportOptions tune ImportBolt. Zero fields take the defaults.
type ImportOptions struct {
	// KeyFile holds the key the old file's hashes are sealed under
	// (default: its path + ".key"). A file from before hashes were sealed
	// needs none.
	KeyFile string
	// Timeout bounds the wait for another process's lock on the old file
	// (default 1s); then ErrStoreInUse.
	Timeout time.Duration
}

// ImportStats counts what ImportBolt copied.
type ImportStats struct {
	Accounts, Contacts, Offline int
	// Resealed is true when the hashes were sealed anew under the store's
	// key; false when the store has the old file's key and they were
	// copied as they were sealed.
	Resealed bool
}

// ImportBolt copies a bbolt data file of an earlier msimd into dst, a
// store OpenStore opened: accounts (profiles, preferences, groups, block
// and allow lists), contact lists, pending offline messages and the uid
// counter. Password hashes stay sealed: copied as they are when dst has
// the old file's key, else opened with it and sealed under dst's. It is
// one transaction: on any error nothing is written. A dst that has
// accounts already is refused with ErrImportTargetNotEmpty; the old file
// is only read.
func ImportBolt(ctx context.Context, src string, o ImportOptions, dst Store) (ImportStats, error) {
	var st ImportStats
	s, ok := dst.(*sqlStore)
	if !ok {
		return st, fmt.Errorf("msim/server: import %s: the target is not a store OpenStore opened", src)
	}
	if o.KeyFile == "" {
		o.KeyFile = src + ".key"
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	var n int64
	if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM msim_accounts`).Scan(&n); err != nil {
		return st, s.wrap("import", err)
	}
	if n > 0 {
		return st, fmt.Errorf("%w: %s holds %d accounts; import %s into a new, empty database", ErrImportTargetNotEmpty, s.where, n, src)
	}
	if !IsBoltFile(src) {
		if _, err := os.Stat(src); err != nil {
			return st, fmt.Errorf("msim/server: import: %w", err)
		}
		return st, fmt.Errorf("msim/server: import: %s is not a bbolt data file of an earlier msimd", src)
	}
	db, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: o.Timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return st, fmt.Errorf("msim/server: import %s: %w (stop the msimd or msimircd using it first)", src, ErrStoreInUse)
	}
	if err != nil {
		return st, fmt.Errorf("msim/server: import %s: %w", src, err)
	}
	defer db.Close()
	err = db.View(func(btx *bolt.Tx) error {
		old, err := oldSealer(btx, o.KeyFile)
		if err != nil {
			return err
		}
		st.Resealed = old == nil || !bytes.Equal(old.key, s.key)
		return s.inTx(ctx, func(tx *sql.Tx) error {
			im := importer{s: s, ctx: ctx, btx: btx, tx: tx, old: old, st: &st}
			return im.run()
		})
	})
	if err != nil {
		return ImportStats{}, fmt.Errorf("msim/server: import %s: %w", src, err)
	}
	return st, nil
}

// oldKey is the old file's sealing key.
type oldKey struct {
	key []byte
	sealer
}

// oldSealer loads the old file's key and checks it; nil when the file has
// nothing sealed (hashes in clear, from before sealing).
func oldSealer(btx *bolt.Tx, keyPath string) (*oldKey, error) {
	m := btx.Bucket(bMeta)
	if m == nil || m.Get(keyCheck) == nil {
		return nil, nil
	}
	key, err := keyfile.Read(keyPath, KeySize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("its key file %s is missing (give the key file with -key)", keyPath)
	}
	if err != nil {
		return nil, err
	}
	sl, err := newSealer(key)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", keyPath, err)
	}
	if _, err := sl.open(keyCheckUID, m.Get(keyCheck)); err != nil {
		return nil, fmt.Errorf("%w (key file %s)", ErrWrongKey, keyPath)
	}
	return &oldKey{key: key, sealer: sl}, nil
}

// importer copies one bbolt file within one transaction of the store.
type importer struct {
	s   *sqlStore
	ctx context.Context
	btx *bolt.Tx
	tx  *sql.Tx
	old *oldKey // nil: no hash is sealed
	st  *ImportStats
}

func (im *importer) run() error {
	for _, step := range []func() error{im.accounts, im.contacts, im.offline} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// each calls fn for every record of bucket, if the file has it.
func (im *importer) each(bucket []byte, fn func(k, v []byte) error) error {
	b := im.btx.Bucket(bucket)
	if b == nil {
		return nil
	}
	return b.ForEach(fn)
}

func (im *importer) accounts() error {
	err := im.each(bAccounts, func(k, v []byte) error {
		var sa storedAccount
		if err := json.Unmarshal(v, &sa); err != nil || len(k) != 8 {
			return fmt.Errorf("account record %x is damaged: %v", k, err)
		}
		a := sa.Account
		a.UID = msim.UID(binary.BigEndian.Uint64(k))
		sealed, err := im.seal(&sa, a.UID)
		if err != nil {
			return fmt.Errorf("account %d: %w", a.UID, err)
		}
		data, err := encodeData(&a)
		if err != nil {
			return fmt.Errorf("account %d: %w", a.UID, err)
		}
		s := im.s
		_, err = s.stmt(im.ctx, s.w, im.tx, qInsertAccount).ExecContext(im.ctx, int64(a.UID), a.Email, fold(a.Email),
			a.UserName, nameKey(a.UserName), sealed, data)
		if err != nil {
			return fmt.Errorf("account %d (%s): %w", a.UID, a.Email, s.uniqueError("insert", err))
		}
		im.st.Accounts++
		return nil
	})
	if err != nil {
		return err
	}
	// The next uid the old file would have given.
	if b := im.btx.Bucket(bAccounts); b != nil {
		next := int64(FirstUID) + int64(b.Sequence())
		_, err = im.tx.ExecContext(im.ctx, im.s.d.Rebind(`UPDATE msim_counters SET value = ? WHERE name = 'next_uid' AND value < ?`), next, next)
	}
	return err
}

// seal returns the account's hash sealed for the store.
func (im *importer) seal(sa *storedAccount, uid msim.UID) ([]byte, error) {
	if sa.Hash != nil { // in clear: a file from before sealing
		var h msim.PasswordHash
		if err := json.Unmarshal(sa.Hash, &h); err != nil {
			return nil, fmt.Errorf("hash: %w", err)
		}
		return im.s.keys.seal(uid, h), nil
	}
	if im.old == nil {
		return nil, errors.New("its hash is sealed, but the file has no key check: the file is damaged")
	}
	h, err := im.old.open(uid, sa.SealedHash)
	if err != nil {
		return nil, err
	}
	if !im.st.Resealed {
		return sa.SealedHash, nil // the same key, the same binding to the uid
	}
	return im.s.keys.seal(uid, h), nil
}

func (im *importer) contacts() error {
	s := im.s
	return im.each(bContacts, func(k, v []byte) error {
		var c Contact
		if err := json.Unmarshal(v, &c); err != nil || len(k) != 16 {
			return fmt.Errorf("contact record %x is damaged: %v", k, err)
		}
		owner := msim.UID(binary.BigEndian.Uint64(k))
		_, err := s.stmt(im.ctx, s.w, im.tx, qPutContact).ExecContext(im.ctx, int64(owner), int64(c.UID), []byte(c.GroupName),
			int64(c.Position), int64(c.Visibility), []byte(c.NickName), int64(c.NameSelect))
		if sqldb.ForeignKeyViolation(err) {
			return fmt.Errorf("contact %d of %d: there is no account %d (the file is damaged)", c.UID, owner, owner)
		}
		if err != nil {
			return fmt.Errorf("contact %d of %d: %w", c.UID, owner, err)
		}
		im.st.Contacts++
		return nil
	})
}

// offline copies the offline messages in the file's order (recipient,
// then the order they were stored in), which the store's ids keep.
func (im *importer) offline() error {
	s := im.s
	return im.each(bOffline, func(k, v []byte) error {
		var m OfflineMessage
		if err := json.Unmarshal(v, &m); err != nil || len(k) != 16 {
			return fmt.Errorf("offline message %x is damaged: %v", k, err)
		}
		to := msim.UID(binary.BigEndian.Uint64(k))
		_, err := s.stmt(im.ctx, s.w, im.tx, qInsertOffline).ExecContext(im.ctx, int64(to), int64(m.From), micros(m.Time),
			int64(m.CV), []byte(m.Body), int64(len(m.Body)))
		if sqldb.ForeignKeyViolation(err) {
			return fmt.Errorf("offline message %x: there is no account %d (the file is damaged)", k, to)
		}
		if err != nil {
			return fmt.Errorf("offline message %x for %d: %w", k, to, err)
		}
		im.st.Offline++
		return nil
	})
}

// Names beside a data file that UpgradeBoltFile upgrades in place.
const (
	upgradingSuffix = ".importing"     // the new database while it is filled
	boltKeptSuffix  = ".bolt-imported" // the old file, kept after the import
)

// UpgradeBoltFile turns the data file at path, if it is an earlier
// msimd's bbolt file, into a SQLite database at the same path, sealed
// under the same key file (path + ".key"), so the sealed hashes are copied
// as they are. The old file is kept as path + ".bolt-imported"; nothing of
// it is changed. upgraded reports that path was a bbolt file (or the end
// of an upgrade stopped midway was done now); a file that is not bbolt,
// or no file, is left alone. The new database is filled under
// path + ".importing" and moved into place once whole, so a crash at any
// point leaves the old file or the new database at path (or both, with
// the move finished at the next call). On an error path is unchanged.
func UpgradeBoltFile(ctx context.Context, path string) (st ImportStats, upgraded bool, err error) {
	tmp, kept, keyFile := path+upgradingSuffix, path+boltKeptSuffix, path+".key"
	if !exists(path) && exists(tmp) && exists(kept) {
		// Stopped between moving the old file away and the new one in.
		if err := os.Rename(tmp, path); err != nil {
			return st, false, fmt.Errorf("msim/server: finish the import of %s: %w", path, err)
		}
		return st, true, syncDir(path)
	}
	if !IsBoltFile(path) {
		return st, false, nil
	}
	if exists(kept) {
		return st, false, fmt.Errorf("msim/server: %s is an earlier msimd's data file (bbolt), to be imported and kept as %s, but that file exists: move it away", path, kept)
	}
	if err := checkBoltKey(path, keyFile); err != nil {
		return st, false, fmt.Errorf("msim/server: import %s: %w", path, err)
	}
	removeSQLite(tmp) // what an import stopped midway left
	keyExisted := exists(keyFile)
	defer func() {
		if err != nil {
			removeSQLite(tmp)
			if !keyExisted {
				os.Remove(keyFile) // made for the new database, which is gone
			}
		}
	}()
	dst, err := OpenStore(ctx, tmp, StoreOptions{KeyFile: keyFile})
	if err != nil {
		return st, false, err
	}
	st, err = ImportBolt(ctx, path, ImportOptions{KeyFile: keyFile}, dst)
	if cerr := dst.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("msim/server: import %s: %w", path, cerr)
	}
	if err != nil {
		return ImportStats{}, false, err
	}
	if err := os.Rename(path, kept); err != nil {
		return ImportStats{}, false, fmt.Errorf("msim/server: import %s: keep the old file: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		// The next call finishes the move; the old file is whole at kept.
		return ImportStats{}, false, fmt.Errorf("msim/server: import %s: %w", path, err)
	}
	removeSQLite(tmp) // an empty WAL left beside the moved database
	return st, true, syncDir(path)
}

// checkBoltKey fails if the bbolt file at path has sealed hashes that
// keyFile does not open (or keyFile is missing), before anything is made.
func checkBoltKey(path, keyFile string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("%w (stop the msimd or msimircd using it first)", ErrStoreInUse)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(btx *bolt.Tx) error {
		_, err := oldSealer(btx, keyFile)
		return err
	})
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// removeSQLite removes a SQLite database file and its WAL and shared
// memory files.
func removeSQLite(path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
}

// syncDir makes the renames in path's directory durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("msim/server: sync %s: %w", filepath.Dir(path), err)
	}
	return nil
}
