package server

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// TestStores runs the Store contract against both implementations.
func TestStores(t *testing.T) {
	stores := map[string]func(t *testing.T) Store{
		"mem": func(*testing.T) Store { return NewMemStore() },
		"file": func(t *testing.T) Store {
			s, err := OpenFileStore(filepath.Join(t.TempDir(), "s.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			a := &Account{Email: "Alice@Example.com", UserName: "Alice", Hash: msim.HashPassword("pw")}
			if err := s.CreateAccount(a); err != nil || a.UID != FirstUID {
				t.Fatalf("create: uid %v, err %v; want %v", a.UID, err, FirstUID)
			}
			tom := &Account{UID: TomUID, Email: "tom@x", UserName: "tom"}
			if err := s.CreateAccount(tom); err != nil || tom.UID != TomUID {
				t.Fatalf("create with a uid: %v, %v", tom.UID, err)
			}
			for _, dup := range []*Account{{Email: "alice@example.COM"}, {Email: "t@x", UID: TomUID}} {
				if err := s.CreateAccount(dup); !errors.Is(err, ErrAccountExists) {
					t.Errorf("duplicate %v: got %v, want ErrAccountExists", dup.Email, err)
				}
			}
			if err := s.CreateAccount(&Account{Email: "b@x", UserName: "ALICE"}); !errors.Is(err, ErrUserNameTaken) {
				t.Errorf("taken user name: got %v, want ErrUserNameTaken", err)
			}
			b := &Account{Email: "b@x"}
			if err := s.CreateAccount(b); err != nil || b.UID != FirstUID+1 {
				t.Fatalf("second account: %v, %v", b.UID, err)
			}
			if got, err := s.AccountByUserName("alice"); err != nil || got.UID != a.UID || got.Hash != a.Hash {
				t.Errorf("by user name: got %+v, %v", got, err)
			}
			if _, err := s.AccountByEmail("nobody@x"); !errors.Is(err, ErrNoSuchAccount) {
				t.Errorf("unknown e-mail: got %v", err)
			}
			err := s.UpdateAccount(b.UID, func(a *Account) error { a.UserName = "tom"; return nil })
			if !errors.Is(err, ErrUserNameTaken) {
				t.Errorf("rename to a taken name: got %v", err)
			}
			err = s.UpdateAccount(a.UID, func(a *Account) error {
				a.UserName, a.Block = "alice2", []msim.UID{TomUID}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AccountByUserName("alice"); !errors.Is(err, ErrNoSuchAccount) {
				t.Errorf("old name still found: %v", err)
			}
			if got, _ := s.Account(a.UID); got.UserName != "alice2" || len(got.Block) != 1 {
				t.Errorf("after update: got %+v", got)
			}
			for _, c := range []msim.UID{b.UID, TomUID} {
				if err := s.PutContact(a.UID, Contact{UID: c, Visibility: 1}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.DeleteContact(a.UID, b.UID); err != nil {
				t.Fatal(err)
			}
			if cs, _ := s.Contacts(a.UID); len(cs) != 1 || cs[0].UID != TomUID {
				t.Errorf("contacts: got %v, want Tom only", cs)
			}
			when := time.Date(2007, 8, 1, 12, 0, 0, 0, time.UTC)
			for _, body := range []string{"one", "two"} {
				if err := s.AddOffline(b.UID, OfflineMessage{From: a.UID, Time: when, Body: body}, OfflineLimits{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AddOffline(12345, OfflineMessage{}, OfflineLimits{}); !errors.Is(err, ErrNoSuchAccount) {
				t.Errorf("offline message to nobody: got %v", err)
			}
			got, err := s.TakeOffline(b.UID)
			if err != nil || len(got) != 2 || got[0].Body != "one" || !got[1].Time.Equal(when) {
				t.Errorf("take offline: got %+v, %v", got, err)
			}
			if got, _ := s.TakeOffline(b.UID); len(got) != 0 {
				t.Errorf("taken twice: %v", got)
			}
			testOfflineLimits(t, s, a.UID, tom.UID, b.UID)
		})
	}
}

// testOfflineLimits checks AddOffline's caps on a Store: count, bytes per
// recipient, bytes per sender; taking the mail frees the room.
func testOfflineLimits(t *testing.T, s Store, from1, from2, to msim.UID) {
	t.Helper()
	lim := OfflineLimits{Messages: 3, Bytes: 10, SenderBytes: 6}
	steps := []struct {
		from msim.UID
		body string
		want error
	}{
		{from1, "aaaa", nil},
		{from1, "aaa", errOfflineSenderFull}, // 7 bytes from one sender
		{from2, "bbbb", nil},
		{from2, "bbb", errOfflineFull}, // 11 bytes in all
		{from2, "b", nil},
		{from1, "", errOfflineFull}, // a fourth message
	}
	for i, st := range steps {
		if err := s.AddOffline(to, OfflineMessage{From: st.from, Body: st.body}, lim); !errors.Is(err, st.want) {
			t.Errorf("step %d: got %v, want %v", i, err, st.want)
		}
	}
	if got, err := s.TakeOffline(to); err != nil || len(got) != 3 {
		t.Errorf("take: got %d messages (%v), want 3", len(got), err)
	}
	if err := s.AddOffline(to, OfflineMessage{From: from1, Body: "aaaaaa"}, lim); err != nil {
		t.Errorf("after the mail was taken: got %v, want room again", err)
	}
}
