package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/msimircd/msimircd/msim"
)

// oldNetwork is what writeOldFile puts in a bbolt file with the old
// store's code: three accounts with every field, contact lists, and
// offline IMs for bob.
type oldNetwork struct {
	accounts map[msim.UID]*Account
	contacts map[msim.UID][]Contact
	offline  []OfflineMessage // for bob, oldest first
	bob      msim.UID
}

// writeOldFile writes a data file at path with the bbolt store as earlier
// msimd versions had it (its key file at path + ".key").
func writeOldFile(t *testing.T, path string) oldNetwork {
	t.Helper()
	old, err := openBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	when := time.Date(2008, 5, 6, 7, 8, 9, 0, time.UTC)
	accts := []*Account{
		{Email: "Alice@Example.com", UserName: "Alice", DisplayName: "Alice A.", Hash: msim.HashPassword("Secret1"),
			Profile: msim.Dict{{Key: "Headline", Value: "hello"}, {Key: "Age", Value: "23"}}, Prefs: msim.Dict{{Key: "Sound", Value: "0"}},
			Groups: []Group{{ID: 1, Name: "IM Friends", Position: 1, Flag: 131073}, {ID: 4, Name: "Band", Position: 2}},
			Block:  []msim.UID{TomUID}, Allow: []msim.UID{FirstUID + 1}, ShowOnlyToList: true, OnlyListMayIM: true, LastLogin: when},
		{Email: "bob@example.com", Hash: msim.HashPassword("hunter2")},
		{UID: TomUID, Email: "tom@msimircd.invalid", UserName: "tom", Hash: msim.HashPassword("x")},
	}
	n := oldNetwork{accounts: map[msim.UID]*Account{}, contacts: map[msim.UID][]Contact{}}
	for _, a := range accts {
		if err := old.CreateAccount(a); err != nil {
			t.Fatal(err)
		}
		n.accounts[a.UID] = a
	}
	alice, bob := accts[0].UID, accts[1].UID
	n.bob = bob
	lists := map[msim.UID][]Contact{
		alice: {{UID: TomUID, GroupName: "IM Friends", Position: 1000, Visibility: 2}, {UID: bob, GroupName: "Band", Position: 2, Visibility: 1, NickName: "Bobby", NameSelect: 1}}, // by uid
		bob:   {{UID: alice, GroupName: "IM Friends", Visibility: 1}},
	}
	for owner, cs := range lists {
		for _, c := range cs {
			if err := old.PutContact(owner, c); err != nil {
				t.Fatal(err)
			}
		}
		n.contacts[owner] = cs
	}
	for i, from := range []msim.UID{alice, TomUID, alice} {
		m := OfflineMessage{From: from, Time: when.Add(time.Duration(i) * time.Minute), CV: 697, Body: strings.Repeat("m", 10+i)}
		if err := old.AddOffline(bob, m, OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
		n.offline = append(n.offline, m)
	}
	return n
}

// sameAccount fails unless got is want, field by field.
func sameAccount(t *testing.T, got, want *Account) {
	t.Helper()
	if !got.LastLogin.Equal(want.LastLogin) {
		t.Errorf("account %v: last login %v, want %v", want.UID, got.LastLogin, want.LastLogin)
	}
	g, w := *got, *want
	g.LastLogin, w.LastLogin = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("account %v: got %+v, want %+v", want.UID, g, w)
	}
}

// TestImportBolt: a data file written by the old bbolt store is carried
// into SQLite and PostgreSQL whole: accounts with every field, contact
// lists, offline IMs in order, logins, the uid counter. With the old key
// the sealed hashes are copied; with another they are sealed anew. A
// second import into the same store is refused and changes nothing.
func TestImportBolt(t *testing.T) {
	cases := []struct {
		name     string
		target   func(t testing.TB, oldKey string) testDB
		resealed bool
	}{
		{"sqlite, the old key", func(t testing.TB, oldKey string) testDB {
			db := newSQLiteDB(t)
			db.key = oldKey
			return db
		}, false},
		{"sqlite, a new key", func(t testing.TB, _ string) testDB { return newSQLiteDB(t) }, true},
		{"postgres, a new key", func(t testing.TB, _ string) testDB { return newPostgresDB(t) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "old.db")
			dstDB := tc.target(t, src+".key")
			want := writeOldFile(t, src)
			dst := dstDB.open(t)
			st, err := ImportBolt(context.Background(), src, ImportOptions{}, dst)
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if got := (ImportStats{Accounts: 3, Contacts: 3, Offline: 3, Resealed: tc.resealed}); st != got {
				t.Errorf("stats: got %+v, want %+v", st, got)
			}
			for uid, a := range want.accounts {
				got, err := dst.Account(uid)
				if err != nil {
					t.Fatalf("account %v: %v", uid, err)
				}
				sameAccount(t, got, a)
				if cs, _ := dst.Contacts(uid); len(cs) > 0 || len(want.contacts[uid]) > 0 {
					if !reflect.DeepEqual(cs, want.contacts[uid]) {
						t.Errorf("contacts of %v: got %+v, want %+v", uid, cs, want.contacts[uid])
					}
				}
			}
			if a, err := dst.AccountByUserName("ALICE"); err != nil || a.Email != "Alice@Example.com" {
				t.Errorf("by user name: got %+v, %v", a, err)
			}
			if err := dst.CreateAccount(&Account{Email: "alice@EXAMPLE.com"}); !errors.Is(err, ErrAccountExists) {
				t.Errorf("an imported e-mail address again: got %v, want ErrAccountExists", err)
			}
			again := &Account{Email: "carol@example.com"}
			if err := dst.CreateAccount(again); err != nil || again.UID != FirstUID+2 {
				t.Errorf("a new account after the import: uid %v (%v), want %v", again.UID, err, FirstUID+2)
			}
			if _, err := ImportBolt(context.Background(), src, ImportOptions{}, dst); !errors.Is(err, ErrImportTargetNotEmpty) {
				t.Errorf("a second import: got %v, want ErrImportTargetNotEmpty", err)
			}
			got, err := dst.TakeOffline(want.bob)
			if err != nil || len(got) != len(want.offline) {
				t.Fatalf("offline IMs: got %d (%v), want %d", len(got), err, len(want.offline))
			}
			for i := range got {
				sameTime := got[i].Time.Equal(want.offline[i].Time)
				got[i].Time = want.offline[i].Time
				if !sameTime || got[i] != want.offline[i] {
					t.Errorf("offline IM %d: got %+v, want %+v", i, got[i], want.offline[i])
				}
			}
			if !loginWorks(t, dst, "alice@example.com", "Secret1") || !loginWorks(t, dst, "bob@example.com", "hunter2") {
				t.Error("a login after the import failed")
			}
		})
	}
}

// TestImportLegacyClearHashes: a file from before hashes were sealed (in
// clear, no key file) is imported with the hashes sealed: the new
// database holds none in clear, logins work, and its stored offline mail
// counts toward the caps.
func TestImportLegacyClearHashes(t *testing.T) {
	src := filepath.Join(t.TempDir(), "old.db")
	writeLegacyFile(t, src)
	db := newSQLiteDB(t)
	s := db.open(t)
	if _, err := ImportBolt(context.Background(), src, ImportOptions{}, s); err != nil {
		t.Fatal(err)
	}
	err := s.AddOffline(FirstUID+1, OfflineMessage{From: FirstUID, Body: strings.Repeat("z", 20)}, OfflineLimits{SenderBytes: 60})
	if !errors.Is(err, errOfflineSenderFull) {
		t.Errorf("offline mail after the import: got %v, want errOfflineSenderFull (50 bytes were waiting)", err)
	}
	s.Close()
	noHashIn(t, db.dsn, "Secret1")
	noHashIn(t, db.dsn, "hunter2")
	if !loginWorks(t, db.open(t), "bob@example.com", "hunter2") {
		t.Error("login after the import failed")
	}
}

// TestImportRefused: an import that cannot be done whole says why, names
// the file, and writes nothing.
func TestImportRefused(t *testing.T) {
	cases := []struct {
		name string
		prep func(t *testing.T, src string) (ImportOptions, func())
		want string
		is   error
	}{
		{"held by a running msimd", func(t *testing.T, src string) (ImportOptions, func()) {
			writeOldFile(t, src)
			held, err := openBoltStore(src)
			if err != nil {
				t.Fatal(err)
			}
			return ImportOptions{Timeout: 50 * time.Millisecond}, func() { held.Close() }
		}, "stop the msimd", ErrStoreInUse},
		{"no key file", func(t *testing.T, src string) (ImportOptions, func()) {
			writeOldFile(t, src)
			return ImportOptions{KeyFile: src + ".nokey"}, nil
		}, "missing", nil},
		{"another key", func(t *testing.T, src string) (ImportOptions, func()) {
			writeOldFile(t, src)
			other := src + ".other"
			writeKey(t, other, 0o600, KeySize)
			return ImportOptions{KeyFile: other}, nil
		}, "", ErrWrongKey},
		{"not a bbolt file", func(t *testing.T, src string) (ImportOptions, func()) {
			if err := os.WriteFile(src, bytes.Repeat([]byte("x"), 4096), 0o600); err != nil {
				t.Fatal(err)
			}
			return ImportOptions{}, nil
		}, "not a bbolt data file", nil},
		{"a damaged record", func(t *testing.T, src string) (ImportOptions, func()) {
			writeOldFile(t, src)
			db, err := bolt.Open(src, 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bContacts).Put(binary.BigEndian.AppendUint64(uidKey(FirstUID+1), 5), []byte("{not json"))
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			return ImportOptions{}, nil
		}, "damaged", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "old.db")
			o, release := tc.prep(t, src)
			if release != nil {
				defer release()
			}
			dst := newSQLiteDB(t).open(t)
			_, err := ImportBolt(context.Background(), src, o, dst)
			if err == nil || !strings.Contains(err.Error(), src) || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("got %v, want an error naming %s and saying %q (%v)", err, src, tc.want, tc.is)
			}
			if _, err := dst.Account(FirstUID); !errors.Is(err, ErrNoSuchAccount) {
				t.Errorf("after the refused import: got %v, want the store empty", err)
			}
		})
	}
	if _, err := ImportBolt(context.Background(), "old.db", ImportOptions{}, NewMemStore()); err == nil {
		t.Error("import into the memory store: got nil, want an error")
	}
}

// writeLegacyFile writes a data file the way the store did before hashes
// were sealed: alice and bob, their hashes in clear, and 50 bytes of
// offline mail from alice to bob.
func writeLegacyFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bAccounts, bEmail, bName, bContacts, bOffline} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for _, a := range []Account{
			{UID: FirstUID, Email: "alice@example.com", UserName: "alice", Hash: msim.HashPassword("Secret1")},
			{UID: FirstUID + 1, Email: "bob@example.com", UserName: "bob", Hash: msim.HashPassword("hunter2")},
		} {
			if err := putJSON(tx.Bucket(bAccounts), uidKey(a.UID), a); err != nil {
				return err
			}
			if err := tx.Bucket(bEmail).Put([]byte(a.Email), uidKey(a.UID)); err != nil {
				return err
			}
			if _, err := tx.Bucket(bAccounts).NextSequence(); err != nil {
				return err
			}
		}
		m := OfflineMessage{From: FirstUID, Body: strings.Repeat("m", 50)}
		return putJSON(tx.Bucket(bOffline), binary.BigEndian.AppendUint64(uidKey(FirstUID+1), 1), m)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, hashForms("Secret1")["json"]) {
		t.Fatal("the legacy file does not hold the hash in clear; the test proves nothing")
	}
}
