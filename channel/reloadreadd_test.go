package channel_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// resaveGate is settingGate, and its first read of a second user's state
// (the reload's save of the users it adds, after the first) waits for the
// test once armed.
type resaveGate struct {
	*settingGate
	other    string
	armed    chan struct{}
	entered  chan struct{}
	proceed  chan struct{}
	loadOnce sync.Once
}

func (g *resaveGate) LoadUser(ctx context.Context, name string) (store.UserState, error) {
	if name == g.other {
		select {
		case <-g.armed:
			g.loadOnce.Do(func() {
				close(g.entered)
				<-g.proceed
			})
		default:
		}
	}
	return g.settingGate.LoadUser(ctx, name)
}

// TestReloadNamingRemovedUserAgainKeepsTheirEntry: a reload that names
// again a [[user]] whose removal's deletion waits for their session's
// end leaves the store with their entry, also when that deletion starts
// and is over after the reload saved them and before it swaps the users.
func TestReloadNamingRemovedUserAgainKeepsTheirEntry(t *testing.T) {
	for engine, open := range saveEngines(t) {
		t.Run(engine, func(t *testing.T) {
			inner := open(t)
			sg := &settingGate{Store: inner, user: "ben", writing: make(chan struct{}), release: make(chan struct{}), deleted: make(chan struct{})}
			db := &resaveGate{settingGate: sg, other: "zed", armed: make(chan struct{}), entered: make(chan struct{}), proceed: make(chan struct{})}
			ben := user("ben", "ben-pw", acct("ben@example.com", "Ben1"))
			zed := user("zed", "zed-pw", acct("zed@example.com", "Zed1"))
			st, _ := reloadStack(t, []channel.StaticUser{ben}, map[string]string{"ben@example.com": "Ben1", "zed@example.com": "Zed1"}, db)
			b := loginAs(t, st, "ben", "ben-pw", "&ben")
			b.private("set auto_away away", "auto_away = away")
			<-sg.writing // held: the session's end waits for it

			st.bridge.SetEndWait(time.Nanosecond)
			reload(t, st.bridge, nil, channel.UsersChange{Removed: []string{"ben"}})
			b.expect("ERROR", nil)

			// The reload naming ben again saves him, then zed, whose save waits.
			close(db.armed)
			reloaded := make(chan error, 1)
			go func() {
				_, err := st.bridge.ReloadUsers([]channel.StaticUser{ben, zed}, "")
				reloaded <- err
			}()
			<-db.entered
			close(sg.release) // ben's session ends: its deletion runs
			select {
			case <-sg.deleted:
			case <-time.After(time.Minute):
				t.Fatal("ben's session ended, but the deletion of his entry did not run")
			}
			st.bridge.WaitDeletion("ben")
			close(db.proceed)
			if err := <-reloaded; err != nil {
				t.Fatalf("ReloadUsers: %v", err)
			}
			if _, err := inner.LoadUser(context.Background(), "ben"); err != nil {
				t.Errorf("ben's entry once the reload naming him again is over: got %v, want it saved again", err)
			}
		})
	}
}
