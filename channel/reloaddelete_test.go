package channel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// reloadStack is liveStack on db, with the bridge's log entries kept.
func reloadStack(t *testing.T, users []channel.StaticUser, accounts map[string]string, db store.Store) (*stack, *logtest.Hook) {
	t.Helper()
	var hook *logtest.Hook
	st := startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		for email, pw := range accounts {
			name, _, _ := strings.Cut(email, "@")
			if _, err := msrv.AddAccount(email, pw, name); err != nil {
				t.Fatal(err)
			}
		}
		cfg.Directory = channel.WithStore(db, channel.NewLiveDirectory(users, ""), "")
		cfg.Store = db
		hook = logtest.NewLocal(cfg.Log.Logger)
	})
	return st, hook
}

// warned returns the Warn entries of hook whose message contains s.
func warned(hook *logtest.Hook, s string) []*logrus.Entry {
	var got []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, s) {
			got = append(got, e)
		}
	}
	return got
}

// TestReloadDeletesRemovedUser: a reload that removes a [[user]] ends
// their session and then deletes their stored entry, with their accounts
// and sealed MSIM passwords, as a start does, and says so at Warn (the
// user, how many accounts, and that their history and held IMs went with
// it). The user the configuration keeps keeps their entry.
func TestReloadDeletesRemovedUser(t *testing.T) {
	for engine, open := range saveEngines(t) {
		t.Run(engine, func(t *testing.T) {
			db := open(t)
			ann := user("ann", "ann-pw", acct("ann@example.com", "Ann1"))
			ben := user("ben", "ben-pw", acct("ben@example.com", "Ben1"), acct("benny@example.com", "Benny1"))
			st, hook := reloadStack(t, []channel.StaticUser{ann, ben},
				map[string]string{"ann@example.com": "Ann1", "ben@example.com": "Ben1", "benny@example.com": "Benny1"}, db)
			a := loginAs(t, st, "ann", "ann-pw", "&ann")
			b := loginAs(t, st, "ben", "ben-pw", "&ben")
			a.sync()
			reload(t, st.bridge, []channel.StaticUser{ann}, channel.UsersChange{Removed: []string{"ben"}})
			b.expect("ERROR", nil)
			ctx := context.Background()
			if _, err := db.LoadUser(ctx, "ben"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("ben, removed by the reload: got %v, want ErrNotFound (his entry and sealed MSIM passwords deleted)", err)
			}
			if _, err := db.LoadUser(ctx, "ann"); err != nil {
				t.Errorf("ann, still configured: got %v, want her entry kept", err)
			}
			got := warned(hook, "no longer names")
			if len(got) != 1 || got[0].Data["user"] != "ben" || got[0].Data["accounts"] != 2 || !strings.Contains(got[0].Message, "history and held IMs") {
				var fields []logrus.Fields
				for _, e := range got {
					fields = append(fields, e.Data)
				}
				t.Errorf("Warn entries about the deletion: got %d %v, want one for ben with his 2 accounts, saying his history and held IMs went too", len(got), fields)
			}
			quiet(t, "ann", a.sync())
		})
	}
}

// TestRegisterNickOfRemovedUser: once a reload has removed a [[user]],
// their nick may be registered at once (register), not refused as
// registered already until the next start.
func TestRegisterNickOfRemovedUser(t *testing.T) {
	for engine, open := range saveEngines(t) {
		t.Run(engine, func(t *testing.T) {
			db := open(t)
			if err := createUser(db, "reg", "reg-pw"); err != nil {
				t.Fatal(err)
			}
			ben := user("ben", "ben-pw", acct("ben@example.com", "Ben1"))
			st, _ := reloadStack(t, []channel.StaticUser{ben}, map[string]string{"ben@example.com": "Ben1"}, db)
			b := loginAs(t, st, "ben", "ben-pw", "&ben")
			reload(t, st.bridge, nil, channel.UsersChange{Removed: []string{"ben"}})
			b.expect("ERROR", nil)

			// A connection to a registered nick without its password
			// (the one way in for a nick the configuration does not
			// name) takes ben's nick and registers it.
			c := dial(t, st.ircAddr, "reg", "", allCaps...)
			c.expectFrom("PRIVMSG", "root", "identify")
			c.send("NICK ben")
			c.expect("NICK", nil)
			c.nick = "ben"
			if m := c.private("register new-ben-pw", "ben"); !strings.Contains(m.Trailing(), "is registered") || strings.Contains(m.Trailing(), "already") {
				t.Errorf("register of ben after the reload removed him: got %q, want it registered", m.Trailing())
			}
			c.quit()
			u, err := db.User(context.Background(), "ben")
			if err != nil {
				t.Fatal(err)
			}
			if store.CheckPassword(u.PasswordHash, "new-ben-pw") != nil {
				t.Error("ben's entry after the register: got a password other than the registrant's")
			}
			state, err := db.LoadUser(context.Background(), "ben")
			if err != nil {
				t.Fatal(err)
			}
			if len(state.Accounts) != 0 {
				t.Errorf("the new ben's accounts: got %v, want none (the removed user's are deleted)", state.Accounts)
			}
		})
	}
}
