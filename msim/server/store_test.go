package server

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// TestStores runs the Store contract against every implementation: the
// memory store, SQLite and PostgreSQL (when pgtest.Env is set).
func TestStores(t *testing.T) {
	for _, e := range storeEngines() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			s, _ := e.open(t)
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
			for _, nobody := range []string{"nobody@x", "\xff@x", "a\x00@x"} {
				if _, err := s.AccountByEmail(nobody); !errors.Is(err, ErrNoSuchAccount) {
					t.Errorf("unknown e-mail %q: got %v, want ErrNoSuchAccount", nobody, err)
				}
				if _, err := s.AccountByUserName(nobody); !errors.Is(err, ErrNoSuchAccount) {
					t.Errorf("unknown user name %q: got %v, want ErrNoSuchAccount", nobody, err)
				}
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
			testAccountFields(t, s, b.UID)
			testContactOrder(t, s, tom.UID)
			testOfflineOrder(t, s, a.UID, tom.UID)
		})
	}
}

// testAccountFields: every field of an account survives UpdateAccount and
// a read, byte for byte; a refused update changes nothing.
func testAccountFields(t *testing.T, s Store, uid msim.UID) {
	t.Helper()
	when := time.Date(2008, 2, 3, 4, 5, 6, 7000, time.UTC)
	want := Account{
		UID: uid, Email: "b@x", UserName: "Bee", DisplayName: "B \x00 é", // JSON in the store: valid UTF-8 (as in the bbolt store)
		Hash:    msim.HashPassword("new"),
		Profile: msim.Dict{{Key: "Headline", Value: "hi\x00"}, {Key: "Age", Value: "30"}},
		Prefs:   msim.Dict{{Key: "Sound", Value: "1"}},
		Groups:  []Group{{ID: 1, Name: "IM Friends", Position: 1, Flag: 131073}, {ID: 9, Name: "Ötz", Position: 2}},
		Block:   []msim.UID{7, 8}, Allow: []msim.UID{9},
		ShowOnlyToList: true, OnlyListMayIM: true, LastLogin: when,
	}
	err := s.UpdateAccount(uid, func(a *Account) error {
		a.UserName, a.DisplayName, a.Hash = want.UserName, want.DisplayName, want.Hash
		a.Profile, a.Prefs, a.Groups, a.Block, a.Allow = want.Profile, want.Prefs, want.Groups, want.Block, want.Allow
		a.ShowOnlyToList, a.OnlyListMayIM, a.LastLogin = true, true, when
		a.UID, a.Email = 1, "changed@x" // ignored: they are the account's identity
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	errNo := errors.New("no")
	if err := s.UpdateAccount(uid, func(a *Account) error { a.DisplayName = "lost"; return errNo }); !errors.Is(err, errNo) {
		t.Errorf("update whose fn fails: got %v, want fn's error", err)
	}
	for _, get := range []func() (*Account, error){
		func() (*Account, error) { return s.Account(uid) },
		func() (*Account, error) { return s.AccountByEmail("B@X") },
		func() (*Account, error) { return s.AccountByUserName("bEE") },
	} {
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastLogin.Equal(when) {
			t.Errorf("last login: got %v, want %v", got.LastLogin, when)
		}
		got.LastLogin = when
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("account: got %+v, want %+v", *got, want)
		}
	}
	if _, err := s.Account(msim.UID(1)); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("the uid an update tried to set: got %v, want ErrNoSuchAccount", err)
	}
	if err := s.UpdateAccount(12345, func(*Account) error { return nil }); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("update of nobody: got %v, want ErrNoSuchAccount", err)
	}
	if err := s.PutContact(12345, Contact{UID: uid}); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("contact of nobody: got %v, want ErrNoSuchAccount", err)
	}
}

// testContactOrder: contacts come back ordered by uid whatever the order
// they were put in, a put replaces an entry, and names are kept byte for
// byte.
func testContactOrder(t *testing.T, s Store, owner msim.UID) {
	t.Helper()
	for _, c := range []Contact{
		{UID: 900000, GroupName: "Work", NickName: "z"}, {UID: 5, GroupName: "\xff", Position: 3},
		{UID: 70000, Visibility: 2}, {UID: 5, GroupName: "IM Friends", NickName: "n\x00", Visibility: 1, NameSelect: 1},
	} {
		if err := s.PutContact(owner, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Contacts(owner)
	want := []Contact{
		{UID: 5, GroupName: "IM Friends", NickName: "n\x00", Visibility: 1, NameSelect: 1},
		{UID: 70000, Visibility: 2}, {UID: 900000, GroupName: "Work", NickName: "z"},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("contacts: got %+v (%v), want %+v", got, err, want)
	}
}

// testOfflineOrder: offline messages come back oldest first, with every
// field, bodies byte for byte.
func testOfflineOrder(t *testing.T, s Store, from, to msim.UID) {
	t.Helper()
	var want []OfflineMessage
	for i := range 30 {
		m := OfflineMessage{From: from, Time: time.Date(2007, 1, 1, 0, 0, 30-i, 0, time.UTC), CV: 697 + i, Body: fmt.Sprintf("%d \xff\x00", i)}
		if err := s.AddOffline(to, m, OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	got, err := s.TakeOffline(to)
	if err != nil || len(got) != len(want) {
		t.Fatalf("take: got %d messages (%v), want %d", len(got), err, len(want))
	}
	for i := range got {
		if !got[i].Time.Equal(want[i].Time) {
			t.Errorf("message %d: time %v, want %v", i, got[i].Time, want[i].Time)
		}
		got[i].Time = want[i].Time
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("offline messages: got %+v, want %+v", got, want)
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
