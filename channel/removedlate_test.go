package channel_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// settingGate is a store whose first write of a setting of one user
// waits for the test (the end of that user's session waits for it), and
// which tells once that user's entry is deleted.
type settingGate struct {
	store.Store
	user    string
	writing chan struct{}
	release chan struct{}
	deleted chan struct{}
	setOnce sync.Once
	delOnce sync.Once
}

func (g *settingGate) SetSetting(ctx context.Context, name, key, value string) error {
	if name == g.user {
		g.setOnce.Do(func() {
			close(g.writing)
			<-g.release
		})
	}
	return g.Store.SetSetting(ctx, name, key, value)
}

func (g *settingGate) DeleteUser(ctx context.Context, name string) error {
	err := g.Store.DeleteUser(ctx, name)
	if name == g.user && err == nil {
		g.delOnce.Do(func() { close(g.deleted) })
	}
	return err
}

// TestReloadDeletesRemovedUserWhenSessionEndsLate: a [[user]] whom a
// reload removed, whose session has not ended within the reload's wait
// (its end waits for a write of their state), keeps their entry while the
// session ends, and has it deleted, with their sealed MSIM passwords, once
// it has ended, not at the next start.
func TestReloadDeletesRemovedUserWhenSessionEndsLate(t *testing.T) {
	for engine, open := range saveEngines(t) {
		t.Run(engine, func(t *testing.T) {
			inner := open(t)
			db := &settingGate{Store: inner, user: "ben", writing: make(chan struct{}), release: make(chan struct{}), deleted: make(chan struct{})}
			ben := user("ben", "ben-pw", acct("ben@example.com", "Ben1"))
			st, hook := reloadStack(t, []channel.StaticUser{ben}, map[string]string{"ben@example.com": "Ben1"}, db)
			b := loginAs(t, st, "ben", "ben-pw", "&ben")
			b.private("set auto_away away", "auto_away = away")
			<-db.writing // held: the session's end waits for it

			st.bridge.SetEndWait(time.Nanosecond) // the end is held: the reload never sees it
			reload(t, st.bridge, nil, channel.UsersChange{Removed: []string{"ben"}})
			b.expect("ERROR", nil)
			ctx := context.Background()
			if _, err := inner.LoadUser(ctx, "ben"); err != nil {
				t.Fatalf("ben's entry while his session ends: got %v, want it kept until the session has ended", err)
			}
			if n := len(warned(hook, "deleted once it does")); n != 1 {
				t.Errorf("Warn entries saying ben's entry is deleted once his session ends: got %d, want 1", n)
			}

			close(db.release)
			select {
			case <-db.deleted:
			case <-time.After(time.Minute):
				t.Fatal("ben's session ended, but his entry was not deleted")
			}
			if _, err := inner.LoadUser(ctx, "ben"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("ben's entry once his session has ended: got %v, want ErrNotFound", err)
			}
		})
	}
}
