package channel_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// dropStore is a store whose DeleteUser waits until the test releases it,
// after saying it began; with fail set, it then fails with it.
type dropStore struct {
	store.Store
	fail    error
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newDropStore(t *testing.T) *dropStore {
	return &dropStore{Store: openStore(t), entered: make(chan struct{}, 4), release: make(chan struct{})}
}

func (d *dropStore) DeleteUser(ctx context.Context, name string) error {
	d.entered <- struct{}{}
	<-d.release
	if d.fail != nil {
		return d.fail
	}
	return d.Store.DeleteUser(ctx, name)
}

// free lets the held deletes through.
func (d *dropStore) free() { d.once.Do(func() { close(d.release) }) }

// held waits until a delete has begun.
func (d *dropStore) held(t *testing.T) {
	t.Helper()
	select {
	case <-d.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no DeleteUser began")
	}
}

// registeredBuddies registers fay and gil on the embedded network, each
// the other's buddy.
func registeredBuddies(t *testing.T, ss *selfService) (fay, gil *ircClient) {
	t.Helper()
	fay = dial(t, ss.gw.ircAddr, "fay", "", allCaps...)
	fay.joinedControl("&fay")
	fay.private("register fay-pw", "is registered")
	fay.joinedControl("&fay")
	fay.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	gil = dial(t, ss.gw.ircAddr, "gil", "", allCaps...)
	gil.joinedControl("&gil")
	gil.private("register gil-pw", "is registered")
	gil.joinedControl("&gil")
	gil.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	gil.add("&gil", "fay")
	fay.add("&fay", "gil")
	return fay, gil
}

// imFrom waits for an IM from nick with text.
func (c *ircClient) imFrom(nick, text string) {
	c.t.Helper()
	c.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == nick && m.Trailing() == text })
}

// dropped checks that fay's stored user is gone and her account on the
// embedded network retired.
func (ss *selfService) dropped(t *testing.T) {
	t.Helper()
	if _, err := ss.st.User(context.Background(), "fay"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stored user after drop: got %v, want ErrNotFound", err)
	}
	if _, err := ss.stk.mstore.AccountByUserName("fay"); !errors.Is(err, server.ErrNoSuchAccount) {
		t.Errorf("the embedded network's account fay after drop: got %v, want it retired", err)
	}
}

// TestDropLeavesTheSessionFree: while the store deletes a dropped user,
// the session goes on with its other work (an IM from a buddy reaches the
// client) and tells the user, who types meanwhile, that the drop is under
// way; what they typed is handled once it is done, and the drop ends as
// before.
func TestDropLeavesTheSessionFree(t *testing.T) {
	ds := newDropStore(t)
	ss := startSelfServiceOn(t, ds, channel.RegistrationOpen, fastFailures())
	t.Cleanup(ds.free) // before the gateway stops
	fay, gil := registeredBuddies(t, ss)
	fay.private("drop fay-pw", "Type yes within a minute")
	fay.send("PRIVMSG root :yes")
	ds.held(t)
	gil.send("PRIVMSG fay :still there?")
	fay.imFrom("gil", "still there?")
	fay.private("help", "drop is under way")
	ds.free()
	fay.expectAll(func(m *irc.Message) bool { return m.Command == "PART" && m.Param(0) == "&fay" },
		saysRoot("are deleted"))
	fay.expectFrom("PRIVMSG", "root", "Commands:") // the help typed meanwhile
	ss.dropped(t)
	fay.private("account list", "no MSIM accounts")
}

// TestDropFailureKeepsTheAccount: a drop the store fails is told to the
// user, and nothing changes: the user is still stored, their account
// still online and their IMs still come.
func TestDropFailureKeepsTheAccount(t *testing.T) {
	ds := newDropStore(t)
	ds.fail = errors.New("the disk is full")
	ds.free()
	ss := startSelfServiceOn(t, ds, channel.RegistrationOpen, fastFailures())
	fay, gil := registeredBuddies(t, ss)
	fay.private("drop fay-pw", "Type yes within a minute")
	fay.private("yes", "Dropping failed")
	if _, err := ss.st.User(context.Background(), "fay"); err != nil {
		t.Errorf("stored user after a failed drop: got %v, want it kept", err)
	}
	gil.send("PRIVMSG fay :after the drop")
	fay.imFrom("gil", "after the drop")
	fay.send("PRIVMSG gil :hello again")
	gil.imFrom("fay", "hello again")
	fay.private("account list", "fay@msimircd.local")
}

// TestDropFinishesAtShutdown: a gateway that shuts down while the store
// deletes a dropped user waits for the delete, and the drop is complete.
func TestDropFinishesAtShutdown(t *testing.T) {
	ds := newDropStore(t)
	ss := startSelfServiceOn(t, ds, channel.RegistrationOpen, fastFailures())
	t.Cleanup(ds.free)
	fay, _ := registeredBuddies(t, ss)
	fay.private("drop fay-pw", "Type yes within a minute")
	fay.send("PRIVMSG root :yes")
	ds.held(t)
	fay.private("help", "drop is under way")
	stopped := make(chan struct{})
	go func() { ss.gw.stop(); close(stopped) }()
	waitLeft(t, ss.gw.bridge, "fay") // the session has seen its client go
	select {
	case <-stopped:
		t.Fatal("the gateway stopped before the drop's delete was through")
	default:
	}
	ds.free()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not stop")
	}
	ss.dropped(t)
	for _, e := range ss.logs.AllEntries() {
		if strings.Contains(e.Message, "crashed") {
			t.Errorf("log: %s", e.Message)
		}
	}
}

// TestDropFinishesAfterTheSessionEnds: a drop whose session ends (its
// client left) while the store deletes the user is complete once the
// delete is through: the bridge keeps nothing of the dropped user, and
// the nick, registered again, starts afresh.
func TestDropFinishesAfterTheSessionEnds(t *testing.T) {
	ds := newDropStore(t)
	ss := startSelfServiceOn(t, ds, channel.RegistrationOpen, fastFailures())
	t.Cleanup(ds.free)
	fay, _ := registeredBuddies(t, ss)
	fay.private("set typing false", "typing = false")
	fay.private("drop fay-pw", "Type yes within a minute")
	fay.send("PRIVMSG root :yes")
	ds.held(t)
	fay.private("help", "drop is under way")
	fay.quit()
	waitLeft(t, ss.gw.bridge, "fay")
	ds.free()
	for deadline := time.Now().Add(10 * time.Second); ss.gw.bridge.SessionLoops("fay") >= 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("fay's session did not end")
		}
	}
	ss.dropped(t)
	again := dial(t, ss.gw.ircAddr, "fay", "", allCaps...)
	again.private("register fay-pw2", "is registered")
	again.private("set typing", "typing = true") // not the dropped user's
}
