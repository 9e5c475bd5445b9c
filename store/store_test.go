package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// TestStore runs the one suite against every engine; each case gets a
// database of its own.
func TestStore(t *testing.T) {
	suite := []struct {
		name string
		run  func(t *testing.T, db testDB)
	}{
		{"users", testUsers},
		{"user settings", testUserSettings},
		{"accounts", testAccounts},
		{"account settings", testAccountSettings},
		{"nicks", testNicks},
		{"held IMs in arrival order", testHeldOrder},
		{"held IMs kept whole", testHeldFields},
		{"held IMs taken and deleted", testHeldTakeDelete},
		{"queued IMs", testQueued},
		{"held and queued text every engine keeps", testIMText},
		{"held IMs and notes bounded", testHeldAndNotesBounded},
		{"notes", testNotes},
		{"delete user takes everything", testDeleteUserCascade},
		{"delete account takes its rows", testDeleteAccountCascade},
		{"unknown user or account", testNotFound},
		{"parallel HoldIM all kept", testParallelHold},
		{"passwords sealed at rest", testSealedAtRest},
		{"wrong key refused", testWrongKey},
		{"reopen keeps everything", testReopen},
		{"migration from schema 1", testMigrationFromV1},
		{"newer schema refused", testNewerSchema},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			for _, c := range suite {
				t.Run(c.name, func(t *testing.T) { c.run(t, e.fresh(t)) })
			}
		})
	}
}

var ctx = context.Background()

// testHash is one password hash for the suite ("secret"), made once:
// argon2id is slow on purpose.
var testHash = sync.OnceValue(func() string {
	h, err := HashPassword("secret")
	if err != nil {
		panic(err)
	}
	return h
})

func mustCreate(t testing.TB, s Store, name string) {
	t.Helper()
	if _, err := s.CreateUser(ctx, name, testHash()); err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
}

func mustAdd(t testing.TB, s Store, user string, a Account) {
	t.Helper()
	if err := s.AddAccount(ctx, user, a); err != nil {
		t.Fatalf("AddAccount(%q, %q): %v", user, a.Email, err)
	}
}

func mustLoad(t testing.TB, s Store, user string) UserState {
	t.Helper()
	st, err := s.LoadUser(ctx, user)
	if err != nil {
		t.Fatalf("LoadUser(%q): %v", user, err)
	}
	return st
}

func check(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// userWithAccount makes user "alice" with account alice@example.com.
func userWithAccount(t testing.TB, s Store) (user, email string) {
	t.Helper()
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: "alice@example.com", Password: "msim-pass-1", Channel: "&msim", Autoconnect: true})
	return "alice", "alice@example.com"
}

func testUsers(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	before := time.Now().Add(-time.Second)
	u, err := s.CreateUser(ctx, "bob", testHash())
	check(t, "CreateUser", err)
	if u.Name != "bob" || u.PasswordHash != testHash() || u.Created.Before(before) {
		t.Errorf("CreateUser: got %+v, want bob with the hash and a current time", u)
	}
	mustCreate(t, s, "alice")
	if _, err := s.CreateUser(ctx, "bob", testHash()); !errors.Is(err, ErrExists) {
		t.Errorf("CreateUser twice: got %v, want ErrExists", err)
	}
	if _, err := s.CreateUser(ctx, "carol", "secret"); err == nil {
		t.Error("CreateUser with a password in clear: got no error, want one (not a hash)")
	}
	if _, err := s.CreateUser(ctx, "", testHash()); err == nil {
		t.Error("CreateUser with no name: got no error")
	}
	got, err := s.User(ctx, "bob")
	check(t, "User", err)
	if got.Name != "bob" || got.PasswordHash != testHash() || !got.Created.Equal(u.Created) {
		t.Errorf("User: got %+v, want %+v", got, u)
	}
	users, err := s.Users(ctx)
	check(t, "Users", err)
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if want := []string{"alice", "bob"}; !slices.Equal(names, want) {
		t.Errorf("Users: got %v, want %v", names, want)
	}

	h2, err := HashPassword("other")
	check(t, "HashPassword", err)
	check(t, "SetPassword", s.SetPassword(ctx, "bob", h2))
	got, _ = s.User(ctx, "bob")
	if err := CheckPassword(got.PasswordHash, "other"); err != nil {
		t.Errorf("after SetPassword, CheckPassword(new): got %v, want nil", err)
	}
	if err := s.SetPassword(ctx, "bob", "plain"); err == nil {
		t.Error("SetPassword with a password in clear: got no error")
	}

	check(t, "DeleteUser", s.DeleteUser(ctx, "bob"))
	if _, err := s.User(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("User after DeleteUser: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteUser twice: got %v, want ErrNotFound", err)
	}
}

func testUserSettings(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	check(t, "SetSetting", s.SetSetting(ctx, "alice", "timestamps", "on"))
	check(t, "SetSetting", s.SetSetting(ctx, "alice", "away", "gone"))
	check(t, "SetSetting again", s.SetSetting(ctx, "alice", "timestamps", "off"))
	check(t, "DeleteSetting", s.DeleteSetting(ctx, "alice", "away"))
	check(t, "DeleteSetting of none", s.DeleteSetting(ctx, "alice", "never-set"))
	if got, want := mustLoad(t, s, "alice").Settings, map[string]string{"timestamps": "off"}; !maps.Equal(got, want) {
		t.Errorf("settings: got %v, want %v", got, want)
	}
}

func testAccounts(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustCreate(t, s, "bob")
	a1 := Account{Email: "a1@example.com", Password: "pässword 1", Channel: "&one", Autoconnect: true, Settings: map[string]string{"status": "away"}}
	a2 := Account{Email: "a2@example.com", Password: "p2", Channel: "&two"}
	mustAdd(t, s, "alice", a1)
	mustAdd(t, s, "alice", a2)
	// The same e-mail under another user is another account.
	mustAdd(t, s, "bob", Account{Email: "a1@example.com", Password: "bobs", Channel: "&b"})
	if err := s.AddAccount(ctx, "alice", Account{Email: "a1@example.com", Password: "x"}); !errors.Is(err, ErrExists) {
		t.Errorf("AddAccount twice: got %v, want ErrExists", err)
	}
	if err := s.AddAccount(ctx, "alice", Account{Password: "x"}); err == nil {
		t.Error("AddAccount with no e-mail: got no error")
	}

	st := mustLoad(t, s, "alice")
	if len(st.Accounts) != 2 {
		t.Fatalf("accounts: got %d, want 2", len(st.Accounts))
	}
	for i, want := range []Account{a1, a2} {
		got := st.Accounts[i].Account
		if want.Settings == nil {
			want.Settings = map[string]string{}
		}
		if got.Email != want.Email || got.Password != want.Password || got.Channel != want.Channel ||
			got.Autoconnect != want.Autoconnect || !maps.Equal(got.Settings, want.Settings) {
			t.Errorf("account %d: got %+v, want %+v", i, got, want)
		}
	}

	a2.Password, a2.Channel, a2.Autoconnect = "new pass", "&renamed", true
	check(t, "UpdateAccount", s.UpdateAccount(ctx, "alice", a2))
	got := mustLoad(t, s, "alice").Accounts[1].Account
	if got.Password != "new pass" || got.Channel != "&renamed" || !got.Autoconnect {
		t.Errorf("after UpdateAccount: got %+v, want %+v", got, a2)
	}
	if err := s.UpdateAccount(ctx, "alice", Account{Email: "none@example.com"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateAccount of no account: got %v, want ErrNotFound", err)
	}
	if got := mustLoad(t, s, "bob").Accounts[0].Password; got != "bobs" {
		t.Errorf("bob's account password: got %q, want %q", got, "bobs")
	}

	check(t, "DeleteAccount", s.DeleteAccount(ctx, "alice", a1.Email))
	st = mustLoad(t, s, "alice")
	if len(st.Accounts) != 1 || st.Accounts[0].Email != a2.Email {
		t.Errorf("after DeleteAccount: got %+v, want only %s", st.Accounts, a2.Email)
	}
	if err := s.DeleteAccount(ctx, "alice", a1.Email); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteAccount twice: got %v, want ErrNotFound", err)
	}
	if n := len(mustLoad(t, s, "bob").Accounts); n != 1 {
		t.Errorf("bob's accounts after alice deleted hers: got %d, want 1", n)
	}
}

func testAccountSettings(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	check(t, "SetAccountSetting", s.SetAccountSetting(ctx, user, email, "status", "away"))
	check(t, "SetAccountSetting", s.SetAccountSetting(ctx, user, email, "headline", "hi"))
	check(t, "SetAccountSetting again", s.SetAccountSetting(ctx, user, email, "status", "online"))
	check(t, "DeleteAccountSetting", s.DeleteAccountSetting(ctx, user, email, "headline"))
	check(t, "DeleteAccountSetting of none", s.DeleteAccountSetting(ctx, user, email, "never"))
	if got, want := mustLoad(t, s, user).Accounts[0].Settings, map[string]string{"status": "online"}; !maps.Equal(got, want) {
		t.Errorf("account settings: got %v, want %v", got, want)
	}
	// UpdateAccount leaves the settings alone.
	check(t, "UpdateAccount", s.UpdateAccount(ctx, user, Account{Email: email, Password: "p", Channel: "&c"}))
	if got, want := mustLoad(t, s, user).Accounts[0].Settings, map[string]string{"status": "online"}; !maps.Equal(got, want) {
		t.Errorf("account settings after UpdateAccount: got %v, want %v", got, want)
	}
}

func testNicks(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	mustAdd(t, s, user, Account{Email: "second@example.com", Password: "p", Channel: "&second"})
	check(t, "SetNick", s.SetNick(ctx, user, email, 10, "tom"))
	check(t, "SetNick", s.SetNick(ctx, user, email, 11, "anna"))
	check(t, "SetNick", s.SetNick(ctx, user, email, 12, "gone"))
	check(t, "SetNick rename", s.SetNick(ctx, user, email, 10, "tom_renamed"))
	check(t, "DeleteNick", s.DeleteNick(ctx, user, email, 12))
	check(t, "DeleteNick of none", s.DeleteNick(ctx, user, email, 99))
	check(t, "SetNick other account", s.SetNick(ctx, user, "second@example.com", 10, "tom2"))
	if err := s.SetNick(ctx, user, email, 13, ""); err == nil {
		t.Error("SetNick with no nick: got no error")
	}
	st := mustLoad(t, s, user)
	if got, want := st.Accounts[0].Nicks, map[msim.UID]string{10: "tom_renamed", 11: "anna"}; !maps.Equal(got, want) {
		t.Errorf("nicks: got %v, want %v", got, want)
	}
	if got, want := st.Accounts[1].Nicks, map[msim.UID]string{10: "tom2"}; !maps.Equal(got, want) {
		t.Errorf("second account's nicks: got %v, want %v", got, want)
	}
}

func seqs(ims []HeldIM) []int64 {
	var out []int64
	for _, im := range ims {
		out = append(out, im.Seq)
	}
	return out
}

func texts(ims []HeldIM) []string {
	var out []string
	for _, im := range ims {
		out = append(out, im.Text)
	}
	return out
}

func testHeldOrder(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	// Held out of arrival order (an IM from a stranger waits for their
	// profile before it is held); same-seq IMs keep the order held.
	for _, im := range []HeldIM{
		{Seq: 3, From: 1, Text: "third"},
		{Seq: 1, From: 1, Text: "first"},
		{Seq: 5, From: 2, Text: "fifth a"},
		{Seq: 2, From: 2, Text: "second"},
		{Seq: 5, From: 2, Text: "fifth b"},
	} {
		if _, err := s.HoldIM(ctx, user, email, im); err != nil {
			t.Fatalf("HoldIM(%q): %v", im.Text, err)
		}
	}
	want := []string{"first", "second", "third", "fifth a", "fifth b"}
	held, err := s.HeldIMs(ctx, user, email)
	check(t, "HeldIMs", err)
	if got := texts(held); !slices.Equal(got, want) {
		t.Errorf("HeldIMs: got %q, want %q", got, want)
	}
	st := mustLoad(t, s, user)
	if st.Accounts[0].Held != 5 || st.HeldSeq != 5 {
		t.Errorf("LoadUser: got Held %d, HeldSeq %d, want 5 and 5", st.Accounts[0].Held, st.HeldSeq)
	}
	taken, err := s.TakeHeld(ctx, user, email)
	check(t, "TakeHeld", err)
	if got := texts(taken); !slices.Equal(got, want) {
		t.Errorf("TakeHeld: got %q, want %q", got, want)
	}
}

func testHeldFields(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	when := time.Date(2007, 6, 1, 12, 30, 45, 123456789, time.UTC)
	in := []HeldIM{
		{Seq: 1, From: 42, Text: "hello <b>\x01 ünïcode 🙂", Time: when, Offline: true, MsgID: "q7ylmd4jzv2ja3k2xhg6wqeyqa",
			Markup: "<p><f f='Times' h='16' s='1'>hello &lt;b&gt;\u2401 ünïcode 🙂</f></p>"},
		{Seq: 2, From: 43, Time: when.Add(time.Second), IsZap: true, Zap: markup.ZapHighFive, MsgID: "zapmsgid"},
		{Seq: 3, From: 44, Text: "zap zero is a zap", Time: when, IsZap: true, Zap: markup.ZapZap},
	}
	for i, im := range in {
		got, err := s.HoldIM(ctx, user, email, im)
		check(t, "HoldIM", err)
		if got.ID == 0 {
			t.Errorf("HoldIM %d: got ID 0, want one set", i)
		}
		in[i].ID = got.ID
		in[i].Time = im.Time.Truncate(time.Microsecond)
	}
	held, err := s.HeldIMs(ctx, user, email)
	check(t, "HeldIMs", err)
	if len(held) != len(in) {
		t.Fatalf("HeldIMs: got %d, want %d", len(held), len(in))
	}
	for i := range in {
		got, want := held[i], in[i]
		if !got.Time.Equal(want.Time) {
			t.Errorf("IM %d time: got %v, want %v", i, got.Time, want.Time)
		}
		got.Time, want.Time = time.Time{}, time.Time{}
		if got != want {
			t.Errorf("IM %d: got %+v, want %+v", i, got, want)
		}
	}
	// A zero time is the time it was held.
	before := time.Now().Add(-time.Second)
	im, err := s.HoldIM(ctx, user, email, HeldIM{Seq: 4, From: 1, Text: "now"})
	check(t, "HoldIM", err)
	if im.Time.Before(before) || im.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("HoldIM with no time: got %v, want about now", im.Time)
	}
}

// testIMText: text with a NUL or invalid UTF-8, which PostgreSQL's text
// cannot hold, is refused by every engine alike, and nothing is kept.
func testIMText(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	for _, text := range []string{"nul\x00inside", "latin-1 caf\xe9"} {
		if _, err := s.HoldIM(ctx, user, email, HeldIM{Seq: 1, From: 42, Text: text}); err == nil {
			t.Errorf("HoldIM(%q): no error", text)
		}
		if _, err := s.QueueIM(ctx, user, email, QueuedIM{To: 42, Nick: "bob", Text: text}); err == nil {
			t.Errorf("QueueIM(%q): no error", text)
		}
	}
	held, err := s.HeldIMs(ctx, user, email)
	check(t, "HeldIMs", err)
	queued, err := s.QueuedIMs(ctx, user, email)
	check(t, "QueuedIMs", err)
	if len(held) != 0 || len(queued) != 0 {
		t.Errorf("kept %d held and %d queued IMs, want none", len(held), len(queued))
	}
}

// testHeldAndNotesBounded: past MaxHeld IMs for an account, or MaxNotes
// notes for a user, the store adds nothing and says ErrFull; a held IM
// delivered makes room again. Unknown users and accounts stay ErrNotFound.
func testHeldAndNotesBounded(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	var first int64
	for i := range MaxHeld {
		h, err := s.HoldIM(ctx, user, email, HeldIM{Seq: int64(i + 1), From: 42, Text: "spam"})
		check(t, "HoldIM", err)
		if i == 0 {
			first = h.ID
		}
		check(t, "AddNote", s.AddNote(ctx, user, "note"))
	}
	if _, err := s.HoldIM(ctx, user, email, HeldIM{Seq: MaxHeld + 1, From: 42, Text: "one more"}); !errors.Is(err, ErrFull) {
		t.Errorf("HoldIM past MaxHeld: got %v, want ErrFull", err)
	}
	if err := s.AddNote(ctx, user, "one more"); !errors.Is(err, ErrFull) {
		t.Errorf("AddNote past MaxNotes: got %v, want ErrFull", err)
	}
	if _, err := s.HoldIM(ctx, user, "nobody@example.com", HeldIM{Seq: 1, From: 42, Text: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("HoldIM for no account: got %v, want ErrNotFound", err)
	}
	if err := s.AddNote(ctx, "nobody", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddNote for no user: got %v, want ErrNotFound", err)
	}
	held, err := s.HeldIMs(ctx, user, email)
	check(t, "HeldIMs", err)
	if len(held) != MaxHeld || held[len(held)-1].Text != "spam" {
		t.Fatalf("held %d IMs (last %q), want %d", len(held), held[len(held)-1].Text, MaxHeld)
	}
	check(t, "DeleteHeld", s.DeleteHeld(ctx, user, email, first))
	if _, err := s.HoldIM(ctx, user, email, HeldIM{Seq: MaxHeld + 2, From: 42, Text: "room again"}); err != nil {
		t.Errorf("HoldIM after one was delivered: %v", err)
	}
	notes, err := s.TakeNotes(ctx, user)
	check(t, "TakeNotes", err)
	if len(notes) != MaxNotes {
		t.Errorf("notes kept: %d, want %d", len(notes), MaxNotes)
	}
	check(t, "AddNote after the notes were read", s.AddNote(ctx, user, "room again"))
}

func testHeldTakeDelete(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	other := "other@example.com"
	mustAdd(t, s, user, Account{Email: other, Password: "p", Channel: "&o"})
	var ids []int64
	for i := range 5 {
		im, err := s.HoldIM(ctx, user, email, HeldIM{Seq: int64(i + 1), From: 1, Text: fmt.Sprint(i + 1)})
		check(t, "HoldIM", err)
		ids = append(ids, im.ID)
	}
	_, err := s.HoldIM(ctx, user, other, HeldIM{Seq: 9, From: 2, Text: "for the other account"})
	check(t, "HoldIM other", err)

	// Delivered: the first two, and an ID of the other account's, which
	// must be left alone.
	otherHeld, _ := s.HeldIMs(ctx, user, other)
	check(t, "DeleteHeld", s.DeleteHeld(ctx, user, email, ids[0], ids[1], otherHeld[0].ID, 1<<40))
	held, err := s.HeldIMs(ctx, user, email)
	check(t, "HeldIMs", err)
	if got, want := seqs(held), []int64{3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("after DeleteHeld: got %v, want %v", got, want)
	}
	check(t, "DeleteHeld of nothing", s.DeleteHeld(ctx, user, email))

	taken, err := s.TakeHeld(ctx, user, email)
	check(t, "TakeHeld", err)
	if got, want := seqs(taken), []int64{3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("TakeHeld: got %v, want %v", got, want)
	}
	if held, _ := s.HeldIMs(ctx, user, email); len(held) != 0 {
		t.Errorf("after TakeHeld: got %d held, want 0", len(held))
	}
	if again, _ := s.TakeHeld(ctx, user, email); len(again) != 0 {
		t.Errorf("TakeHeld twice: got %d, want 0", len(again))
	}
	if held, _ := s.HeldIMs(ctx, user, other); len(held) != 1 {
		t.Errorf("the other account's held IMs: got %d, want 1", len(held))
	}
	st := mustLoad(t, s, user)
	if st.Accounts[0].Held != 0 || st.Accounts[1].Held != 1 || st.HeldSeq != 9 {
		t.Errorf("LoadUser: got Held %d and %d, HeldSeq %d, want 0, 1, 9", st.Accounts[0].Held, st.Accounts[1].Held, st.HeldSeq)
	}
}

func testQueued(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	when := time.Date(2026, 11, 30, 8, 0, 0, 999, time.UTC)
	var want []QueuedIM
	for i := range deleteChunk + 20 { // more than one DELETE chunk
		q := QueuedIM{To: msim.UID(100 + i%3), Nick: fmt.Sprint("nick", i%3), Text: fmt.Sprint("typed ", i), Time: when.Add(time.Duration(i) * time.Second), Recorded: i%2 == 1}
		if i%3 != 0 {
			q.MsgID = fmt.Sprint("msgid-", i)
		}
		got, err := s.QueueIM(ctx, user, email, q)
		check(t, "QueueIM", err)
		if got.ID == 0 {
			t.Fatalf("QueueIM: got ID 0, want one set")
		}
		q.ID, q.Time = got.ID, q.Time.Truncate(time.Microsecond)
		want = append(want, q)
	}
	got, err := s.QueuedIMs(ctx, user, email)
	check(t, "QueuedIMs", err)
	if len(got) != len(want) {
		t.Fatalf("QueuedIMs: got %d, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].To != want[i].To || got[i].Nick != want[i].Nick ||
			got[i].Text != want[i].Text || !got[i].Time.Equal(want[i].Time) || got[i].Recorded != want[i].Recorded || got[i].MsgID != want[i].MsgID {
			t.Fatalf("queued %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := mustLoad(t, s, user).Accounts[0].Queued; n != len(want) {
		t.Errorf("LoadUser Queued: got %d, want %d", n, len(want))
	}
	var sent []int64
	for _, q := range want[:deleteChunk+10] {
		sent = append(sent, q.ID)
	}
	check(t, "DeleteQueued", s.DeleteQueued(ctx, user, email, sent...))
	got, err = s.QueuedIMs(ctx, user, email)
	check(t, "QueuedIMs", err)
	if len(got) != 10 || got[0].Text != want[deleteChunk+10].Text {
		t.Errorf("after DeleteQueued: got %d starting %+v, want the last 10", len(got), got)
	}
}

func testNotes(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustCreate(t, s, "bob")
	for _, n := range []string{"one", "two", "three"} {
		check(t, "AddNote", s.AddNote(ctx, "alice", n))
	}
	check(t, "AddNote bob", s.AddNote(ctx, "bob", "bob's"))
	if n := mustLoad(t, s, "alice").Notes; n != 3 {
		t.Errorf("LoadUser: %d notes, want 3", n)
	}
	got, err := s.TakeNotes(ctx, "alice")
	check(t, "TakeNotes", err)
	if want := []string{"one", "two", "three"}; !slices.Equal(got, want) {
		t.Errorf("TakeNotes: got %q, want %q", got, want)
	}
	if got, _ := s.TakeNotes(ctx, "alice"); len(got) != 0 {
		t.Errorf("TakeNotes twice: got %q, want none", got)
	}
	if n := mustLoad(t, s, "alice").Notes; n != 0 {
		t.Errorf("LoadUser after TakeNotes: %d notes, want 0", n)
	}
	if got, _ := s.TakeNotes(ctx, "bob"); !slices.Equal(got, []string{"bob's"}) {
		t.Errorf("bob's notes: got %q, want [bob's]", got)
	}
}

// fill gives the user's account one of everything.
func fill(t testing.TB, s Store, user, email string) {
	t.Helper()
	check(t, "SetSetting", s.SetSetting(ctx, user, "k", "v"))
	check(t, "SetAccountSetting", s.SetAccountSetting(ctx, user, email, "k", "v"))
	check(t, "SetNick", s.SetNick(ctx, user, email, 7, "seven"))
	_, err := s.HoldIM(ctx, user, email, HeldIM{Seq: 1, From: 7, Text: "held"})
	check(t, "HoldIM", err)
	_, err = s.QueueIM(ctx, user, email, QueuedIM{To: 7, Nick: "seven", Text: "queued"})
	check(t, "QueueIM", err)
	check(t, "AddNote", s.AddNote(ctx, user, "note"))
	e, err := s.AppendHistory(ctx, user, HistoryEntry{MsgID: "m1", Account: email, Buddy: 7, Kind: KindIM, Text: "history"})
	check(t, "AppendHistory", err)
	_, err = s.SetReadMarker(ctx, user, email, 7, e.Time)
	check(t, "SetReadMarker", err)
	check(t, "SetClientPosition", s.SetClientPosition(ctx, user, "phone", e.ID))
}

// rowCounts counts the rows of every table but meta and schema_version.
func rowCounts(t testing.TB, db testDB) map[string]int {
	t.Helper()
	r, _ := db.raw(t)
	out := map[string]int{}
	for _, table := range []string{"users", "user_settings", "accounts", "account_settings", "buddy_nicks", "held_ims", "queued_ims", "notes",
		"history", "history_users", "history_conversations", "read_markers", "client_positions"} {
		var n int
		if err := r.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

func testDeleteUserCascade(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	fill(t, s, user, email)
	check(t, "DeleteUser", s.DeleteUser(ctx, user))
	for table, n := range rowCounts(t, db) {
		if n != 0 {
			t.Errorf("after DeleteUser: %d rows left in %s, want 0", n, table)
		}
	}
	// A new user of the same name starts empty.
	mustCreate(t, s, user)
	st := mustLoad(t, s, user)
	if len(st.Accounts) != 0 || len(st.Settings) != 0 || st.HeldSeq != 0 {
		t.Errorf("recreated user: got %+v, want an empty state", st)
	}
	if notes, _ := s.TakeNotes(ctx, user); len(notes) != 0 {
		t.Errorf("recreated user's notes: got %q, want none", notes)
	}
	if id, _ := s.LastHistoryID(ctx, user); id != 0 {
		t.Errorf("recreated user's LastHistoryID: got %d, want 0", id)
	}
	if _, found, _ := s.ClientPosition(ctx, user, "phone"); found {
		t.Error("recreated user's client position: got one, want none")
	}
	if _, err := s.HistoryByMsgID(ctx, user, "m1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("recreated user's HistoryByMsgID: got %v, want ErrNotFound", err)
	}
}

func testDeleteAccountCascade(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	fill(t, s, user, email)
	check(t, "DeleteAccount", s.DeleteAccount(ctx, user, email))
	// The user's client positions and history count stay (the count at 0).
	want := map[string]int{"users": 1, "user_settings": 1, "notes": 1, "client_positions": 1, "history_users": 1}
	for table, n := range rowCounts(t, db) {
		if n != want[table] {
			t.Errorf("after DeleteAccount: %d rows in %s, want %d", n, table, want[table])
		}
	}
	historyConsistent(t, db)
}

func testNotFound(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	for _, who := range []struct{ user, email string }{{"nobody", email}, {user, "nobody@example.com"}} {
		u, e := who.user, who.email
		calls := map[string]error{
			"DeleteAccount":        s.DeleteAccount(ctx, u, e),
			"UpdateAccount":        s.UpdateAccount(ctx, u, Account{Email: e}),
			"SetAccountSetting":    s.SetAccountSetting(ctx, u, e, "k", "v"),
			"DeleteAccountSetting": s.DeleteAccountSetting(ctx, u, e, "k"),
			"SetNick":              s.SetNick(ctx, u, e, 1, "n"),
			"DeleteNick":           s.DeleteNick(ctx, u, e, 1),
			"DeleteHeld":           s.DeleteHeld(ctx, u, e, 1),
			"DeleteQueued":         s.DeleteQueued(ctx, u, e, 1),
		}
		_, calls["HoldIM"] = s.HoldIM(ctx, u, e, HeldIM{Text: "x"})
		_, calls["HeldIMs"] = s.HeldIMs(ctx, u, e)
		_, calls["TakeHeld"] = s.TakeHeld(ctx, u, e)
		_, calls["QueueIM"] = s.QueueIM(ctx, u, e, QueuedIM{Text: "x"})
		_, calls["QueuedIMs"] = s.QueuedIMs(ctx, u, e)
		if u == "nobody" {
			calls["SetSetting"] = s.SetSetting(ctx, u, "k", "v")
			calls["DeleteSetting"] = s.DeleteSetting(ctx, u, "k")
			calls["AddAccount"] = s.AddAccount(ctx, u, Account{Email: e})
			calls["AddNote"] = s.AddNote(ctx, u, "n")
			calls["SetPassword"] = s.SetPassword(ctx, u, testHash())
			calls["DeleteUser"] = s.DeleteUser(ctx, u)
			_, calls["TakeNotes"] = s.TakeNotes(ctx, u)
			_, calls["User"] = s.User(ctx, u)
			_, calls["LoadUser"] = s.LoadUser(ctx, u)
		}
		for name, err := range calls {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s(%q, %q): got %v, want ErrNotFound", name, u, e, err)
			}
		}
	}
}

func testParallelHold(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	user, email := userWithAccount(t, s)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				seq := int64(w*each + i + 1)
				if _, err := s.HoldIM(ctx, user, email, HeldIM{Seq: seq, From: msim.UID(w), Text: fmt.Sprint(seq)}); err != nil {
					errs <- err
				}
				// Readers at the same time see a consistent list.
				if i%10 == 0 {
					if _, err := s.HeldIMs(ctx, user, email); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("parallel HoldIM: %v", err)
	}
	held, err := s.HeldIMs(ctx, user, email)
	check(t, "HeldIMs", err)
	if len(held) != workers*each {
		t.Fatalf("held: got %d, want %d", len(held), workers*each)
	}
	for i, im := range held {
		if im.Seq != int64(i+1) || im.Text != fmt.Sprint(i+1) {
			t.Fatalf("held[%d]: got seq %d %q, want %d", i, im.Seq, im.Text, i+1)
		}
	}
}
