package store

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// TestCorruptRows: rows that a corrupt database or another tool left are
// told by name, and what else is kept loads.
func TestCorruptRows(t *testing.T) {
	suite := []struct {
		name string
		run  func(t *testing.T, db testDB)
		// sqlite: SQLite's only, as it keeps text in an integer column;
		// PostgreSQL refuses to.
		sqlite bool
	}{
		{"sealed passwords that do not open", testUnreadablePasswords, false},
		{"held IMs that do not read", testUnreadableHeld, true},
		{"queued IMs that do not read", testUnreadableQueued, true},
		{"buddy nicks that do not read", testUnreadableNicks, true},
		{"an autoconnect that does not read", testUnreadableAutoconnect, true},
		{"a creation time that does not read", testUnreadableCreated, true},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			for _, c := range suite {
				if c.sqlite && e.name != "sqlite" {
					continue
				}
				t.Run(c.name, func(t *testing.T) { c.run(t, e.fresh(t)) })
			}
		})
	}
}

// corrupt runs an UPDATE on the database behind the store's back.
func corrupt(t *testing.T, db testDB, query string, args ...any) {
	t.Helper()
	r, d := db.raw(t)
	if _, err := r.Exec(d.Rebind(query), args...); err != nil {
		t.Fatalf("corrupt: %s: %v", query, err)
	}
}

// wantUnreadableRows checks that err is an *UnreadableRows of alice's
// account a@example.com naming exactly the rows ids, in its text too.
func wantUnreadableRows(t *testing.T, what string, err error, ids ...int64) {
	t.Helper()
	var ur *UnreadableRows
	if !errors.Is(err, ErrUnreadable) || !errors.As(err, &ur) {
		t.Fatalf("%s: got error %v, want ErrUnreadable naming rows %v", what, err, ids)
	}
	var got []int64
	for _, r := range ur.Rows {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, ids) || ur.User != "alice" || ur.Email != "a@example.com" {
		t.Errorf("%s: got rows %v of %q's %q, want rows %v of alice's a@example.com", what, got, ur.User, ur.Email, ids)
	}
	for _, want := range append([]string{`"alice"`, `"a@example.com"`}, func() (s []string) {
		for _, id := range ids {
			s = append(s, fmt.Sprintf("row %d:", id))
		}
		return s
	}()...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not name %s", what, err, want)
		}
	}
}

// testUnreadableHeld: held IMs whose values do not convert are left out
// of HeldIMs and TakeHeld, which return the others and name them, and
// remove them: they could never be shown.
func testUnreadableHeld(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: "a@example.com", Password: "pw"})
	var ids []int64
	for i := range 7 {
		im, err := s.HoldIM(ctx, "alice", "a@example.com", HeldIM{Seq: int64(i + 1), From: 7, Text: fmt.Sprint("im ", i+1)})
		check(t, "HoldIM", err)
		ids = append(ids, im.ID)
	}
	corrupt(t, db, `UPDATE held_ims SET seq = 'x' WHERE id = ?`, ids[1])
	corrupt(t, db, `UPDATE held_ims SET sender = 'nobody' WHERE id = ?`, ids[2])
	corrupt(t, db, `UPDATE held_ims SET offline = 'maybe' WHERE id = ?`, ids[3])

	texts := func(ims []HeldIM) (out []string) {
		for _, im := range ims {
			out = append(out, im.Text)
		}
		return out
	}
	got, err := s.HeldIMs(ctx, "alice", "a@example.com")
	wantUnreadableRows(t, "HeldIMs", err, ids[1], ids[2], ids[3])
	if want := []string{"im 1", "im 5", "im 6", "im 7"}; !slices.Equal(texts(got), want) {
		t.Errorf("HeldIMs: got %q, want %q", texts(got), want)
	}
	if !strings.Contains(err.Error(), "removed") {
		t.Errorf("HeldIMs: error %q does not say the rows were removed", err)
	}
	got, err = s.HeldIMs(ctx, "alice", "a@example.com")
	if want := []string{"im 1", "im 5", "im 6", "im 7"}; err != nil || !slices.Equal(texts(got), want) {
		t.Errorf("HeldIMs again: got %q, %v; want %q and no error", texts(got), err, want)
	}
	// The highest seq that reads: the one that does not is left out.
	if st := mustLoad(t, s, "alice"); st.Accounts[0].Held != 4 || st.HeldSeq != 7 {
		t.Errorf("LoadUser after the read: got %d held, HeldSeq %d; want 4, HeldSeq 7", st.Accounts[0].Held, st.HeldSeq)
	}

	corrupt(t, db, `UPDATE held_ims SET sent = 'now' WHERE id = ?`, ids[6])
	check(t, "DeleteHeld", s.DeleteHeld(ctx, "alice", "a@example.com", ids[0]))
	got, err = s.TakeHeld(ctx, "alice", "a@example.com")
	wantUnreadableRows(t, "TakeHeld", err, ids[6])
	if want := []string{"im 5", "im 6"}; !slices.Equal(texts(got), want) {
		t.Errorf("TakeHeld: got %q, want %q", texts(got), want)
	}
	got, err = s.HeldIMs(ctx, "alice", "a@example.com")
	if err != nil || len(got) != 0 {
		t.Errorf("HeldIMs after the take: got %q, %v; want none", texts(got), err)
	}
	if st := mustLoad(t, s, "alice"); st.Accounts[0].Held != 0 {
		t.Errorf("LoadUser after the take: got %d held, want none", st.Accounts[0].Held)
	}
}

// testUnreadableQueued: queued IMs whose values do not convert are left
// out of QueuedIMs, which returns the others and names them.
func testUnreadableQueued(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: "a@example.com", Password: "pw"})
	var ids []int64
	for i := range 3 {
		q, err := s.QueueIM(ctx, "alice", "a@example.com", QueuedIM{To: 7, Nick: "bob", Text: fmt.Sprint("typed ", i+1)})
		check(t, "QueueIM", err)
		ids = append(ids, q.ID)
	}
	corrupt(t, db, `UPDATE queued_ims SET recipient = 'bob' WHERE id = ?`, ids[1])

	got, err := s.QueuedIMs(ctx, "alice", "a@example.com")
	wantUnreadableRows(t, "QueuedIMs", err, ids[1])
	var texts []string
	for _, q := range got {
		texts = append(texts, q.Text)
	}
	if want := []string{"typed 1", "typed 3"}; !slices.Equal(texts, want) {
		t.Errorf("QueuedIMs: got %q, want %q", texts, want)
	}
}

// testUnreadableNicks: a buddy nick whose uid does not convert is left
// out of the account's nicks, named in NicksUnreadable; the user loads.
func testUnreadableNicks(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: "a@example.com", Password: "pw"})
	for uid, nick := range map[msim.UID]string{7: "bob", 8: "bad", 9: "carol"} {
		check(t, "SetNick", s.SetNick(ctx, "alice", "a@example.com", uid, nick))
	}
	corrupt(t, db, `UPDATE buddy_nicks SET uid = 'eight' WHERE nick = 'bad'`)
	r, d := db.raw(t)
	var acct int64
	check(t, "select id", r.QueryRow(d.Rebind(`SELECT id FROM accounts WHERE email = ?`), "a@example.com").Scan(&acct))

	st, err := s.LoadUser(ctx, "alice")
	if err != nil {
		t.Fatalf("LoadUser with an unreadable nick: %v; want the user", err)
	}
	a := st.Accounts[0]
	if want := map[msim.UID]string{7: "bob", 9: "carol"}; !maps.Equal(a.Nicks, want) || a.Password != "pw" {
		t.Errorf("LoadUser: got nicks %v, password %q; want %v, pw", a.Nicks, a.Password, want)
	}
	if len(a.NicksUnreadable) != 1 || !errors.Is(a.NicksUnreadable[0], ErrUnreadable) {
		t.Fatalf("LoadUser: got NicksUnreadable %v, want one ErrUnreadable", a.NicksUnreadable)
	}
	for _, want := range []string{`"alice"`, fmt.Sprintf("account row %d", acct), `"bad"`, "eight"} {
		if !strings.Contains(a.NicksUnreadable[0].Error(), want) {
			t.Errorf("NicksUnreadable: %q does not name %s", a.NicksUnreadable[0], want)
		}
	}
}

// testUnreadablePasswords: an account whose sealed MSIM password is
// bit-flipped, truncated, empty or another account's comes back from
// LoadUser marked Unreadable, naming the user, the account and its row,
// with what is kept for it; the user's other account loads with its
// password, and UpdateAccount seals the password anew.
func testUnreadablePasswords(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	emails := []string{"good@example.com", "flipped@example.com", "short@example.com", "empty@example.com", "moved@example.com"}
	for _, e := range emails {
		mustAdd(t, s, "alice", Account{Email: e, Password: "pw-" + e, Channel: "&" + e[:4], Settings: map[string]string{"status": "away"}})
		check(t, "SetNick", s.SetNick(ctx, "alice", e, 7, "bob"))
	}
	r, d := db.raw(t)
	var sealed []byte
	check(t, "select sealed", r.QueryRow(d.Rebind(`SELECT password FROM accounts WHERE email = ?`), "flipped@example.com").Scan(&sealed))
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-1] ^= 1
	for _, c := range []struct {
		email string
		value []byte
	}{
		{"flipped@example.com", flipped},
		{"short@example.com", sealed[:10]},
		{"empty@example.com", []byte{}},
		{"moved@example.com", sealed}, // sealed for flipped@
	} {
		if _, err := r.Exec(d.Rebind(`UPDATE accounts SET password = ? WHERE email = ?`), c.value, c.email); err != nil {
			t.Fatalf("corrupt %s: %v", c.email, err)
		}
	}
	ids := map[string]int64{}
	for _, e := range emails {
		var id int64
		check(t, "select id", r.QueryRow(d.Rebind(`SELECT id FROM accounts WHERE email = ?`), e).Scan(&id))
		ids[e] = id
	}

	st, err := s.LoadUser(ctx, "alice")
	if err != nil {
		t.Fatalf("LoadUser with unreadable accounts: %v; want the user with every account", err)
	}
	if len(st.Accounts) != len(emails) {
		t.Fatalf("LoadUser: got %d accounts, want %d", len(st.Accounts), len(emails))
	}
	for i, a := range st.Accounts {
		if a.Email != emails[i] || a.Settings["status"] != "away" || a.Nicks[7] != "bob" {
			t.Errorf("account %d: got %q with settings %v and nicks %v, want %q with what is kept for it", i, a.Email, a.Settings, a.Nicks, emails[i])
		}
		if i == 0 {
			if a.Unreadable != nil || a.Password != "pw-good@example.com" {
				t.Errorf("the readable account: got password %q, unreadable %v", a.Password, a.Unreadable)
			}
			continue
		}
		if !errors.Is(a.Unreadable, ErrUnreadable) || a.Password != "" {
			t.Errorf("account %s: got password %q, unreadable %v; want no password and ErrUnreadable", a.Email, a.Password, a.Unreadable)
			continue
		}
		for _, want := range []string{`"alice"`, fmt.Sprintf("%q", a.Email), fmt.Sprintf("row %d", ids[a.Email])} {
			if !strings.Contains(a.Unreadable.Error(), want) {
				t.Errorf("account %s: error %q does not name %s", a.Email, a.Unreadable, want)
			}
		}
	}

	check(t, "UpdateAccount", s.UpdateAccount(ctx, "alice", Account{Email: "moved@example.com", Password: "again", Channel: "&move"}))
	st, err = s.LoadUser(ctx, "alice")
	if err != nil {
		t.Fatalf("LoadUser after UpdateAccount: %v", err)
	}
	if a := st.Accounts[4]; a.Unreadable != nil || a.Password != "again" || a.Nicks[7] != "bob" {
		t.Errorf("after UpdateAccount: got password %q, unreadable %v, nicks %v; want it readable, its nick kept", a.Password, a.Unreadable, a.Nicks)
	}
}

// testUnreadableAutoconnect: an account whose autoconnect does not
// convert (a value other than a boolean, as another tool may write) loads
// with Autoconnect false, what is kept for it and the user's other
// account with it; the user is not lost for one value.
func testUnreadableAutoconnect(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustAdd(t, s, "alice", Account{Email: "a@example.com", Password: "pw-a", Autoconnect: true, Settings: map[string]string{"status": "away"}})
	mustAdd(t, s, "alice", Account{Email: "b@example.com", Password: "pw-b", Autoconnect: true})
	check(t, "SetNick", s.SetNick(ctx, "alice", "a@example.com", 7, "bob"))
	_, err := s.HoldIM(ctx, "alice", "a@example.com", HeldIM{Seq: 3, From: 7, Text: "hi"})
	check(t, "HoldIM", err)
	for _, v := range []any{"maybe", 2} {
		corrupt(t, db, `UPDATE accounts SET autoconnect = ? WHERE email = ?`, v, "a@example.com")
		st, err := s.LoadUser(ctx, "alice")
		if err != nil {
			t.Fatalf("LoadUser with autoconnect %v: %v; want the user", v, err)
		}
		if len(st.Accounts) != 2 {
			t.Fatalf("LoadUser with autoconnect %v: got %d accounts, want 2", v, len(st.Accounts))
		}
		a, b := st.Accounts[0], st.Accounts[1]
		if a.Email != "a@example.com" || a.Autoconnect || a.Password != "pw-a" || a.Nicks[7] != "bob" || a.Settings["status"] != "away" || a.Held != 1 || st.HeldSeq != 3 {
			t.Errorf("autoconnect %v: got %+v, HeldSeq %d; want a@example.com, not autoconnecting, with what is kept for it", v, a, st.HeldSeq)
		}
		if b.Email != "b@example.com" || !b.Autoconnect || b.Password != "pw-b" {
			t.Errorf("autoconnect %v: the other account: got %+v, want b@example.com as added", v, b)
		}
	}
}

// testUnreadableCreated: a user whose creation time does not convert
// loads, is found and is listed with the zero time; the other users are
// listed as they are.
func testUnreadableCreated(t *testing.T, db testDB) {
	s := db.open(t, testKey(1))
	mustCreate(t, s, "alice")
	mustCreate(t, s, "bob")
	mustAdd(t, s, "alice", Account{Email: "a@example.com", Password: "pw"})
	corrupt(t, db, `UPDATE users SET created = 'yesterday' WHERE name = 'alice'`)
	st, err := s.LoadUser(ctx, "alice")
	if err != nil {
		t.Fatalf("LoadUser: %v; want the user", err)
	}
	if !st.User.Created.IsZero() || st.User.PasswordHash == "" || len(st.Accounts) != 1 || st.Accounts[0].Password != "pw" {
		t.Errorf("LoadUser: got %+v, want alice with the zero creation time and her account", st)
	}
	u, err := s.User(ctx, "alice")
	if err != nil || !u.Created.IsZero() || u.PasswordHash == "" {
		t.Errorf("User: got %+v, %v; want alice with the zero creation time", u, err)
	}
	us, err := s.Users(ctx)
	if err != nil || len(us) != 2 || us[0].Name != "alice" || !us[0].Created.IsZero() || us[1].Name != "bob" || us[1].Created.IsZero() {
		t.Errorf("Users: got %+v, %v; want alice (zero creation time) and bob", us, err)
	}
}
