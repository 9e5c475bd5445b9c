package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestCorruptRows: rows that a corrupt database or another tool left are
// told by name, and what else is kept loads.
func TestCorruptRows(t *testing.T) {
	suite := []struct {
		name string
		run  func(t *testing.T, db testDB)
	}{
		{"sealed passwords that do not open", testUnreadablePasswords},
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
