package channel_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// deleteGate is a store whose DeleteUser of one user, once the entry is
// deleted, waits for the test before it returns.
type deleteGate struct {
	store.Store
	user    string
	deleted chan struct{}
	proceed chan struct{}
	once    sync.Once
}

func (g *deleteGate) DeleteUser(ctx context.Context, name string) error {
	err := g.Store.DeleteUser(ctx, name)
	if name == g.user {
		g.once.Do(func() {
			close(g.deleted)
			<-g.proceed
		})
	}
	return err
}

// TestRegisterDuringReloadDeletionGetsNoOldState: a register of the nick
// of a [[user]] whom a reload removed, once the reload has deleted the
// entry but before it has forgotten the removed user's state, opens a user
// of its own: the new registrant sees none of the removed user's settings,
// and what they set is kept.
func TestRegisterDuringReloadDeletionGetsNoOldState(t *testing.T) {
	for engine, open := range saveEngines(t) {
		t.Run(engine, func(t *testing.T) {
			inner := open(t)
			if err := createUser(inner, "reg", "reg-pw"); err != nil {
				t.Fatal(err)
			}
			db := &deleteGate{Store: inner, user: "ben", deleted: make(chan struct{}), proceed: make(chan struct{})}
			ben := user("ben", "ben-pw", acct("ben@example.com", "Ben1"))
			st, _ := reloadStack(t, []channel.StaticUser{ben}, map[string]string{"ben@example.com": "Ben1"}, db)
			b := loginAs(t, st, "ben", "ben-pw", "&ben")
			b.private("set auto_away old ben's away text", "auto_away = old ben's away text")

			reloaded := make(chan error, 1)
			go func() {
				_, err := st.bridge.ReloadUsers(nil, "")
				reloaded <- err
			}()
			b.expect("ERROR", nil)
			select {
			case <-db.deleted:
			case <-time.After(time.Minute):
				close(db.proceed)
				t.Fatal("the reload did not delete ben's entry")
			}

			c := dial(t, st.ircAddr, "reg", "", allCaps...)
			c.expectFrom("PRIVMSG", "root", "identify")
			c.send("NICK ben")
			c.expect("NICK", nil)
			c.nick = "ben"
			if m := c.private("register new-ben-pw", "ben"); !strings.Contains(m.Trailing(), "is registered") || strings.Contains(m.Trailing(), "already") {
				close(db.proceed)
				t.Fatalf("register of ben once his entry is deleted: got %q, want it registered", m.Trailing())
			}
			c.sync()
			close(db.proceed)
			if err := <-reloaded; err != nil {
				t.Fatalf("ReloadUsers: %v", err)
			}
			if m := c.private("set auto_away", "auto_away"); strings.Contains(m.Trailing(), "old ben") {
				t.Errorf("the new ben's auto_away: got %q, want the removed ben's setting not given to him", m.Trailing())
			}
			c.private("set auto_away new ben's text", "auto_away = new ben's text")
			c.quit()
			// The bridge's shutdown waits for the sessions' writes.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := st.bridge.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			state, err := inner.LoadUser(ctx, "ben")
			if err != nil {
				t.Fatal(err)
			}
			if got := state.Settings["auto_away"]; got != "new ben's text" {
				t.Errorf("the new ben's stored auto_away: got %q, want %q", got, "new ben's text")
			}
		})
	}
}
