// Package servertest writes MSIM server data files in the formats of
// earlier versions, for the tests of their import (msimd import, and
// msimircd's upgrade of its embedded network's file). Tests only.
package servertest

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// OldOfflineIM is the text of the offline IM WriteBoltFile keeps for bob.
const OldOfflineIM = "kept across the upgrade"

// WriteBoltFile writes a data file as the bbolt store of earlier versions
// did before password hashes were sealed: alice (user name alice,
// password Secret1) and bob (bob, hunter2), bob on alice's list, and an
// offline IM (OldOfflineIM) from alice to bob. With sealed, it also holds a
// key check value no key opens, as a file sealed under a key file that is
// not at hand.
func WriteBoltFile(t testing.TB, path string, sealed bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := func(a, b uint64) []byte {
		k := binary.BigEndian.AppendUint64(nil, a)
		if b != 0 {
			k = binary.BigEndian.AppendUint64(k, b)
		}
		return k
	}
	put := func(tx *bolt.Tx, bucket string, k []byte, v any) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		buf, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return b.Put(k, buf)
	}
	alice, bob := uint64(server.FirstUID), uint64(server.FirstUID+1)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, a := range []server.Account{
			{UID: msim.UID(alice), Email: "alice@example.com", UserName: "alice", Hash: msim.HashPassword("Secret1")},
			{UID: msim.UID(bob), Email: "bob@example.com", UserName: "bob", Hash: msim.HashPassword("hunter2")},
		} {
			if err := put(tx, "accounts", key(uint64(a.UID), 0), a); err != nil {
				return err
			}
			if _, err := tx.Bucket([]byte("accounts")).NextSequence(); err != nil {
				return err
			}
		}
		if err := put(tx, "contacts", key(alice, bob), server.Contact{UID: msim.UID(bob), GroupName: "IM Friends", Visibility: 1}); err != nil {
			return err
		}
		if err := put(tx, "offline", key(bob, 1), server.OfflineMessage{From: msim.UID(alice), Time: time.Now(), Body: OldOfflineIM}); err != nil {
			return err
		}
		if !sealed {
			return nil
		}
		m, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		check := make([]byte, 72)
		_, _ = rand.Read(check)
		return m.Put([]byte("keycheck"), check)
	})
	if err != nil {
		t.Fatal(err)
	}
}
