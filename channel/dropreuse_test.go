package channel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// deletedStore is a store whose DeleteUser deletes the user and then
// waits until the test releases it, after saying it deleted: the name is
// free in the store while the bridge still keeps the dropped user's state.
type deletedStore struct {
	store.Store
	deleted, release chan struct{}
}

func (d *deletedStore) DeleteUser(ctx context.Context, name string) error {
	err := d.Store.DeleteUser(ctx, name)
	close(d.deleted)
	<-d.release
	return err
}

// TestNameRefusedWhileItsDropEnds: once the store has deleted a dropped
// user, and before the drop ends, another connection with the nick can
// neither register it nor identify as a user made again with the name:
// the bridge still keeps the deleted user's memory (nicks, settings,
// channels, held IMs) and session, which the new user would get. They
// are told to try again; once the drop has ended, the name's new user
// starts with nothing of the old one's.
func TestNameRefusedWhileItsDropEnds(t *testing.T) {
	ds := &deletedStore{Store: openStore(t), deleted: make(chan struct{}), release: make(chan struct{})}
	ss := startSelfServiceOn(t, ds, channel.RegistrationOpen, fastFailures())
	released := false
	free := func() {
		if !released {
			released = true
			close(ds.release)
		}
	}
	t.Cleanup(free) // before the gateway stops
	fay, _ := registeredBuddies(t, ss)
	fay.private("drop fay-pw", "Type yes within a minute")
	fay.send("PRIVMSG root :yes")
	select {
	case <-ds.deleted:
	case <-time.After(10 * time.Second):
		t.Fatal("no DeleteUser")
	}

	// (Connecting as fay would ask for the embedded network's password
	// of fay, retired only once the drop ends.)
	other := dial(t, ss.gw.ircAddr, "fey", "", allCaps...)
	other.joinedControl("&fey")
	other.send("NICK fay")
	other.expect("NICK", nil)
	answer := func(line string, ok ...string) string {
		t.Helper()
		other.send("PRIVMSG root :" + line)
		return other.expect("PRIVMSG", func(m *irc.Message) bool {
			if m.Name != "root" {
				return false
			}
			for _, s := range append(ok, "being dropped") {
				if strings.Contains(m.Trailing(), s) {
					return true
				}
			}
			return false
		}).Trailing()
	}
	const refused = "fay is being dropped; try again in a moment."
	if got := answer("register new-pw", "is registered"); got != refused {
		t.Fatalf("register during the drop's end: %q; want %q", got, refused)
	}
	hash, err := store.HashPassword("new-pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Store.CreateUser(context.Background(), "fay", hash); err != nil {
		t.Fatal(err)
	}
	if got := answer("identify new-pw", "Password accepted"); got != refused {
		t.Fatalf("identify during the drop's end: %q; want %q", got, refused)
	}

	free()
	fay.expectFrom("PRIVMSG", "root", "are deleted")
	other.private("identify new-pw", "Password accepted")
	other.expectFrom("PRIVMSG", "root", "You have no MSIM accounts yet")
}
