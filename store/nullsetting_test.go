package store

import (
	"maps"
	"strings"
	"testing"
)

// TestNullSettingLoads: a user or account setting whose value is NULL
// (PostgreSQL keeps one in a column whose NOT NULL was dropped, SQLite in
// a table rebuilt without it) reads as unset: LoadUser returns the user
// with every other setting and account, and setting it again replaces it.
func TestNullSettingLoads(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			db := e.fresh(t)
			s := openAlice(t, db)
			check(t, "SetSetting", s.SetSetting(ctx, "alice", "keep", "1"))
			check(t, "SetSetting", s.SetSetting(ctx, "alice", "lost", "2"))
			check(t, "SetAccountSetting", s.SetAccountSetting(ctx, "alice", unreadEmail, "keep", "3"))
			check(t, "SetAccountSetting", s.SetAccountSetting(ctx, "alice", unreadEmail, "lost", "4"))
			for _, table := range []string{"user_settings", "account_settings"} {
				nullable(t, db, table, "value")
				corrupt(t, db, `UPDATE `+table+` SET value = NULL WHERE name = 'lost'`)
			}

			st, err := s.LoadUser(ctx, "alice")
			if err != nil {
				t.Fatalf("LoadUser with a NULL setting: %v; want the user", err)
			}
			if want := map[string]string{"keep": "1"}; !maps.Equal(st.Settings, want) {
				t.Errorf("LoadUser: got settings %v, want %v", st.Settings, want)
			}
			if len(st.Accounts) != 1 || st.Accounts[0].Password != "pw" || !maps.Equal(st.Accounts[0].Settings, map[string]string{"keep": "3"}) {
				t.Errorf("LoadUser: got accounts %+v, want %s with password pw and settings keep=3", st.Accounts, unreadEmail)
			}

			check(t, "SetSetting", s.SetSetting(ctx, "alice", "lost", "5"))
			check(t, "SetAccountSetting", s.SetAccountSetting(ctx, "alice", unreadEmail, "lost", "6"))
			st, err = s.LoadUser(ctx, "alice")
			check(t, "LoadUser after setting them again", err)
			if st.Settings["lost"] != "5" || len(st.Accounts) != 1 || st.Accounts[0].Settings["lost"] != "6" {
				t.Errorf("LoadUser after setting them again: got %v and %+v, want lost=5 and lost=6", st.Settings, st.Accounts)
			}
		})
	}
}

// nullable drops the NOT NULL of table's TEXT column, as a migration by
// another tool might: PostgreSQL alters the column, SQLite (which cannot)
// rebuilds the table without it.
func nullable(t *testing.T, db testDB, table, column string) {
	t.Helper()
	if db.driver == "postgres" {
		corrupt(t, db, `ALTER TABLE `+table+` ALTER COLUMN `+column+` DROP NOT NULL`)
		return
	}
	r, _ := db.raw(t)
	var def string
	check(t, "schema of "+table, r.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&def))
	loose := strings.Replace(def, column+" TEXT NOT NULL", column+" TEXT", 1)
	if loose == def {
		t.Fatalf("nullable: %s has no %s TEXT NOT NULL: %s", table, column, def)
	}
	loose = strings.Replace(loose, "CREATE TABLE "+table, "CREATE TABLE "+table+"_loose", 1)
	for _, q := range []string{loose, `INSERT INTO ` + table + `_loose SELECT * FROM ` + table,
		`DROP TABLE ` + table, `ALTER TABLE ` + table + `_loose RENAME TO ` + table} {
		if _, err := r.Exec(q); err != nil {
			t.Fatalf("nullable: %s: %v", q, err)
		}
	}
}
