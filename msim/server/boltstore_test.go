package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/msimircd/msimircd/msim"
)

// The bbolt store of earlier msimd versions, as it was: the old code path
// that made the data files ImportBolt reads. Tests use it to write such
// files. The buckets it shares with the importer are in boltimport.go.
var (
	bEmail       = []byte("email")        // lower-case e-mail → uid
	bName        = []byte("username")     // lower-case user name → uid
	bOfflineSize = []byte("offline-size") // recipient uid → count | bytes; recipient | sender uid → bytes
)

// boltStoreOptions tune openBoltStoreWith. Zero fields take the defaults.
type boltStoreOptions struct {
	// KeyFile holds the key sealing the password hashes (default: the data
	// file's path + ".key"). It is created, mode 0600, when the data file
	// has nothing sealed yet; a key file others may read is refused.
	KeyFile string
	// Timeout bounds the wait for another process's lock on the data file
	// (default 1s); then ErrStoreInUse.
	Timeout time.Duration
}

// fileStore is the durable Store on a bbolt file.
type fileStore struct {
	db    *bolt.DB
	keys  sealer
	decoy []byte // opened for unknown e-mail addresses, like a real record
}

// openBoltStore opens (or creates) the durable store at path, its hashes
// sealed under the key file path + ".key". Accounts, contact lists and
// pending offline messages survive a restart. Only one process may hold
// the file; a second open fails with ErrStoreInUse after a second.
func openBoltStore(path string) (Store, error) {
	return openBoltStoreWith(path, boltStoreOptions{})
}

// openBoltStoreWith is OpenFileStore with options. Hashes stored in clear
// by earlier versions are sealed, and the file compacted so that no copy of
// them is left in its free pages. It fails with ErrWrongKey if the key file
// does not open the sealed hashes.
func openBoltStoreWith(path string, o boltStoreOptions) (Store, error) {
	if o.KeyFile == "" {
		o.KeyFile = path + ".key"
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	db, err := openBolt(path, o.Timeout)
	if err != nil {
		return nil, err
	}
	s, compact, err := initFileStore(db, path, o.KeyFile)
	if err != nil {
		db.Close()
		return nil, err
	}
	if compact {
		if s.db, err = compactFile(db, path, o.Timeout); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func openBolt(path string, timeout time.Duration) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("msim/server: open store %s: %w", path, ErrStoreInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("msim/server: open store %s: %w", path, err)
	}
	return db, nil
}

// initFileStore creates the buckets, loads (or creates) the key, checks it
// against the data file and seals any hash still in clear. compact reports
// that clear hashes were sealed: the file should be compacted.
func initFileStore(db *bolt.DB, path, keyPath string) (s *fileStore, compact bool, err error) {
	var sealed bool
	err = db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bMeta); m != nil && m.Get(keyCheck) != nil {
			sealed = true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("msim/server: read store %s: %w", path, err)
	}
	key, created, err := loadKey(keyPath, sealed)
	if err != nil {
		return nil, false, err
	}
	keys, err := newSealer(key)
	if err != nil {
		return nil, false, fmt.Errorf("msim/server: key file %s: %w", keyPath, err)
	}
	s = &fileStore{db: db, keys: keys, decoy: keys.seal(keyCheckUID, msim.PasswordHash{})}
	err = db.Update(func(tx *bolt.Tx) error {
		rebuild := tx.Bucket(bOfflineSize) == nil
		for _, b := range [][]byte{bAccounts, bEmail, bName, bContacts, bOffline, bOfflineSize, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if rebuild {
			if err := rebuildOfflineSizes(tx); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bMeta)
		if v := meta.Get(keyCheck); v != nil {
			if _, err := keys.open(keyCheckUID, v); err != nil {
				return fmt.Errorf("%w (key file %s)", ErrWrongKey, keyPath)
			}
			return nil
		}
		n, err := s.sealAll(tx)
		if err != nil {
			return fmt.Errorf("%w (key file %s)", err, keyPath)
		}
		compact = n > 0
		return meta.Put(keyCheck, keys.seal(keyCheckUID, msim.PasswordHash{}))
	})
	if err != nil {
		if created {
			os.Remove(keyPath) // nothing was sealed under it
		}
		return nil, false, fmt.Errorf("msim/server: init store %s: %w", path, err)
	}
	return s, compact, nil
}

// sealAll seals every hash kept in clear and checks that sealed ones open
// with the key. It returns how many it sealed.
func (s *fileStore) sealAll(tx *bolt.Tx) (int, error) {
	b := tx.Bucket(bAccounts)
	type rec struct {
		k []byte
		a *Account
	}
	var plain []rec
	err := b.ForEach(func(k, v []byte) error {
		var sa storedAccount
		if err := json.Unmarshal(v, &sa); err != nil {
			return fmt.Errorf("msim/server: account %x: %w", k, err)
		}
		if sa.Hash == nil {
			if _, err := s.keys.open(sa.UID, sa.SealedHash); err != nil {
				return fmt.Errorf("account %d: %w", sa.UID, err)
			}
			return nil
		}
		a := sa.Account
		if err := json.Unmarshal(sa.Hash, &a.Hash); err != nil {
			return fmt.Errorf("msim/server: account %d: hash: %w", sa.UID, err)
		}
		plain = append(plain, rec{append([]byte(nil), k...), &a})
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, r := range plain {
		if err := s.putAccount(b, r.a); err != nil {
			return 0, err
		}
	}
	return len(plain), nil
}

// compactFile rewrites the data file with its live data only, so no page
// of it still holds what was overwritten, and reopens it.
func compactFile(db *bolt.DB, path string, timeout time.Duration) (*bolt.DB, error) {
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err == nil {
		err = bolt.Compact(dst, db, 1<<20)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	db.Close()
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("msim/server: compact store %s: %w", path, err)
	}
	return openBolt(path, timeout)
}

func pairKey(a msim.UID, b uint64) []byte {
	return binary.BigEndian.AppendUint64(uidKey(a), b)
}

func (s *fileStore) getAccount(tx *bolt.Tx, uid msim.UID) (*Account, error) {
	v := tx.Bucket(bAccounts).Get(uidKey(uid))
	if v == nil {
		return nil, ErrNoSuchAccount
	}
	var sa storedAccount
	if err := json.Unmarshal(v, &sa); err != nil {
		return nil, fmt.Errorf("msim/server: account %d: %w", uid, err)
	}
	h, err := s.keys.open(uid, sa.SealedHash)
	if err != nil {
		return nil, fmt.Errorf("msim/server: account %d: %w", uid, err)
	}
	a := sa.Account
	a.Hash = h
	return &a, nil
}

// putAccount stores a, its hash sealed.
func (s *fileStore) putAccount(b *bolt.Bucket, a *Account) error {
	sa := storedAccount{Account: *a, SealedHash: s.keys.seal(a.UID, a.Hash)}
	sa.Account.Hash = msim.PasswordHash{}
	return putJSON(b, uidKey(a.UID), &sa)
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, buf)
}

func (s *fileStore) CreateAccount(a *Account) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		accts, emails, names := tx.Bucket(bAccounts), tx.Bucket(bEmail), tx.Bucket(bName)
		if emails.Get([]byte(fold(a.Email))) != nil {
			return ErrAccountExists
		}
		if a.UserName != "" && names.Get([]byte(fold(a.UserName))) != nil {
			return ErrUserNameTaken
		}
		uid := a.UID
		if uid == 0 {
			for {
				seq, err := accts.NextSequence()
				if err != nil {
					return err
				}
				uid = FirstUID + msim.UID(seq-1)
				if accts.Get(uidKey(uid)) == nil {
					break
				}
			}
		} else if accts.Get(uidKey(uid)) != nil {
			return ErrAccountExists
		}
		c := a.clone()
		c.UID = uid
		if err := s.putAccount(accts, c); err != nil {
			return err
		}
		if err := emails.Put([]byte(fold(a.Email)), uidKey(uid)); err != nil {
			return err
		}
		if a.UserName != "" {
			if err := names.Put([]byte(fold(a.UserName)), uidKey(uid)); err != nil {
				return err
			}
		}
		a.UID = uid
		return nil
	})
}

func (s *fileStore) Account(uid msim.UID) (a *Account, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		a, err = s.getAccount(tx, uid)
		return err
	})
	return a, err
}

func (s *fileStore) byIndex(bucket []byte, key string) (a *Account, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(fold(key)))
		if v == nil {
			_, _ = s.keys.open(keyCheckUID, s.decoy) // the work a found account costs
			return ErrNoSuchAccount
		}
		a, err = s.getAccount(tx, msim.UID(binary.BigEndian.Uint64(v)))
		return err
	})
	return a, err
}

func (s *fileStore) AccountByEmail(email string) (*Account, error) {
	return s.byIndex(bEmail, email)
}

func (s *fileStore) AccountByUserName(name string) (*Account, error) {
	return s.byIndex(bName, name)
}

func (s *fileStore) UpdateAccount(uid msim.UID, fn func(*Account) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		old, err := s.getAccount(tx, uid)
		if err != nil {
			return err
		}
		a := old.clone()
		if err := fn(a); err != nil {
			return err
		}
		a.UID, a.Email = old.UID, old.Email
		if fold(a.UserName) != fold(old.UserName) {
			names := tx.Bucket(bName)
			if a.UserName != "" {
				if names.Get([]byte(fold(a.UserName))) != nil {
					return ErrUserNameTaken
				}
				if err := names.Put([]byte(fold(a.UserName)), uidKey(uid)); err != nil {
					return err
				}
			}
			if old.UserName != "" {
				if err := names.Delete([]byte(fold(old.UserName))); err != nil {
					return err
				}
			}
		}
		return s.putAccount(tx.Bucket(bAccounts), a)
	})
}

// scan calls fn for every key of bucket that starts with owner's uid.
func scan(tx *bolt.Tx, bucket []byte, owner msim.UID, fn func(k, v []byte) error) error {
	prefix := uidKey(owner)
	c := tx.Bucket(bucket).Cursor()
	for k, v := c.Seek(prefix); len(k) == 16 && string(k[:8]) == string(prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileStore) Contacts(owner msim.UID) (out []Contact, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		return scan(tx, bContacts, owner, func(_, v []byte) error {
			var c Contact
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("msim/server: contact of %d: %w", owner, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

func (s *fileStore) PutContact(owner msim.UID, c Contact) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bAccounts).Get(uidKey(owner)) == nil {
			return ErrNoSuchAccount
		}
		return putJSON(tx.Bucket(bContacts), pairKey(owner, uint64(c.UID)), c)
	})
}

func (s *fileStore) DeleteContact(owner, contact msim.UID) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bContacts).Delete(pairKey(owner, uint64(contact)))
	})
}

func (s *fileStore) AddOffline(to msim.UID, m OfflineMessage, lim OfflineLimits) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bAccounts).Get(uidKey(to)) == nil {
			return ErrNoSuchAccount
		}
		sizes := tx.Bucket(bOfflineSize)
		n, total := counts(sizes.Get(uidKey(to)))
		_, fromSender := counts(sizes.Get(pairKey(to, uint64(m.From))))
		size := int64(len(m.Body))
		if err := lim.check(int(n), total, fromSender, size); err != nil {
			return err
		}
		b := tx.Bucket(bOffline)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := putJSON(b, pairKey(to, seq), m); err != nil {
			return err
		}
		return addSize(sizes, to, m.From, size)
	})
}

// counts decodes an offline-size value: a count and a byte total, or a
// byte total alone.
func counts(v []byte) (n, bytes int64) {
	switch len(v) {
	case 16:
		return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
	case 8:
		return 0, int64(binary.BigEndian.Uint64(v))
	}
	return 0, 0
}

// addSize counts one more message of size bytes from one sender for to.
func addSize(sizes *bolt.Bucket, to, from msim.UID, size int64) error {
	n, total := counts(sizes.Get(uidKey(to)))
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(n+1)), uint64(total+size))
	if err := sizes.Put(uidKey(to), v); err != nil {
		return err
	}
	k := pairKey(to, uint64(from))
	_, fromSender := counts(sizes.Get(k))
	return sizes.Put(k, binary.BigEndian.AppendUint64(nil, uint64(fromSender+size)))
}

// rebuildOfflineSizes counts the stored offline messages (a file from
// before the counts were kept).
func rebuildOfflineSizes(tx *bolt.Tx) error {
	sizes := tx.Bucket(bOfflineSize)
	return tx.Bucket(bOffline).ForEach(func(k, v []byte) error {
		var m OfflineMessage
		if len(k) != 16 || json.Unmarshal(v, &m) != nil {
			return fmt.Errorf("msim/server: offline message %x is damaged", k)
		}
		return addSize(sizes, msim.UID(binary.BigEndian.Uint64(k)), m.From, int64(len(m.Body)))
	})
}

func (s *fileStore) TakeOffline(to msim.UID) (out []OfflineMessage, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		var keys [][]byte
		err := scan(tx, bOffline, to, func(k, v []byte) error {
			var m OfflineMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("msim/server: offline message for %d: %w", to, err)
			}
			out = append(out, m)
			keys = append(keys, append([]byte(nil), k...))
			return nil
		})
		if err != nil {
			return err
		}
		b := tx.Bucket(bOffline)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return clearSizes(tx.Bucket(bOfflineSize), to)
	})
	return out, err
}

// clearSizes forgets the counts of to's offline messages.
func clearSizes(sizes *bolt.Bucket, to msim.UID) error {
	prefix := uidKey(to)
	var keys [][]byte
	c := sizes.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := sizes.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileStore) Close() error { return s.db.Close() }
