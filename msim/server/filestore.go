package server

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/msimircd/msimircd/msim"
)

// Buckets of the durable store. Keys are big-endian uids (8 bytes), so a
// prefix scan over an owner's uid yields its contacts or messages in order.
var (
	bAccounts = []byte("accounts") // uid → JSON Account
	bEmail    = []byte("email")    // lower-case e-mail → uid
	bName     = []byte("username") // lower-case user name → uid
	bContacts = []byte("contacts") // owner uid | contact uid → JSON Contact
	bOffline  = []byte("offline")  // recipient uid | sequence → JSON OfflineMessage
)

// fileStore is the durable Store on a bbolt file.
type fileStore struct {
	db *bolt.DB
}

// OpenFileStore opens (or creates) the durable store at path. Accounts,
// contact lists and pending offline messages survive a restart. Only one
// process may hold the file; a second open fails after a second.
func OpenFileStore(path string) (Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("msim/server: open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bAccounts, bEmail, bName, bContacts, bOffline} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("msim/server: init store %s: %w", path, err)
	}
	return &fileStore{db: db}, nil
}

func uidKey(u msim.UID) []byte { return binary.BigEndian.AppendUint64(nil, uint64(u)) }

func pairKey(a msim.UID, b uint64) []byte {
	return binary.BigEndian.AppendUint64(uidKey(a), b)
}

func getAccount(tx *bolt.Tx, uid msim.UID) (*Account, error) {
	v := tx.Bucket(bAccounts).Get(uidKey(uid))
	if v == nil {
		return nil, ErrNoSuchAccount
	}
	a := &Account{}
	if err := json.Unmarshal(v, a); err != nil {
		return nil, fmt.Errorf("msim/server: account %d: %w", uid, err)
	}
	return a, nil
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
		if err := putJSON(accts, uidKey(uid), c); err != nil {
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
		a, err = getAccount(tx, uid)
		return err
	})
	return a, err
}

func (s *fileStore) byIndex(bucket []byte, key string) (a *Account, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(fold(key)))
		if v == nil {
			return ErrNoSuchAccount
		}
		a, err = getAccount(tx, msim.UID(binary.BigEndian.Uint64(v)))
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
		old, err := getAccount(tx, uid)
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
		return putJSON(tx.Bucket(bAccounts), uidKey(uid), a)
	})
}

// scan calls fn for every key of bucket that starts with owner's uid.
func scan(tx *bolt.Tx, bucket []byte, owner msim.UID, fn func(k, v []byte) error) error {
	prefix := uidKey(owner)
	c := tx.Bucket(bucket).Cursor()
	for k, v := c.Seek(prefix); k != nil && len(k) == 16 && string(k[:8]) == string(prefix); k, v = c.Next() {
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

func (s *fileStore) AddOffline(to msim.UID, m OfflineMessage) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bAccounts).Get(uidKey(to)) == nil {
			return ErrNoSuchAccount
		}
		n := 0
		_ = scan(tx, bOffline, to, func(_, _ []byte) error { n++; return nil })
		if n >= maxOffline {
			return errOfflineFull
		}
		b := tx.Bucket(bOffline)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return putJSON(b, pairKey(to, seq), m)
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
		return nil
	})
	return out, err
}

func (s *fileStore) Close() error { return s.db.Close() }
