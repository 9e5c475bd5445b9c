package channel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// TestStartKeepsAUserAnotherInstanceServes: two instances on one
// PostgreSQL store. B, on an older config that still names alice, serves
// her session; A starts with a config that no longer does. A's SaveUsers
// keeps her entry (B holds her lease), saying so, and B's session goes on
// with it; once B has let her go, A's next start deletes it.
func TestStartKeepsAUserAnotherInstanceServes(t *testing.T) {
	dsn := sharedPostgres(t)
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("alice@example.com", "alicepw", "alice"); err != nil {
		t.Fatal(err)
	}
	stB := openShared(t, dsn)
	gB := startGateway(t, stk.msimAddr, aliceDirectory(), stB, instance("b", time.Minute, time.Second))
	c := dial(t, gB.ircAddr, "alice", "alice-irc")
	c.joinedControl("&alice")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")

	stA := openShared(t, dsn)
	ctx := context.Background()
	log, hook := logtest.NewNullLogger()
	opts := channel.SaveOptions{Log: logrus.NewEntry(log), Instance: "a", LeaseTTL: time.Minute}
	if err := channel.SaveUsers(ctx, stA, nil, opts); err != nil {
		t.Fatal(err)
	}
	state, err := stA.LoadUser(ctx, "alice")
	if err != nil || len(state.Accounts) != 1 {
		t.Fatalf("alice, whom B serves, after A's start: got %v (accounts %v), want her entry and account kept", err, state.Accounts)
	}
	kept := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["user"] == "alice" && e.Data["holder"] == "b" {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("Warn entries naming alice and her holder b: got %d, want 1", kept)
	}
	c.send("PRIVMSG tom :still on B")
	c.expect("PRIVMSG", tomEcho("still on B"))
	le, err := stA.Lease(ctx, "alice")
	if err != nil || le.Instance != "b" {
		t.Errorf("alice's lease after A's start: got %+v, %v; want B's still", le, err)
	}

	c.quit()
	gB.stop() // alice's session ends, and B releases her lease
	if err := channel.SaveUsers(ctx, stA, nil, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := stA.LoadUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("alice once B let her go, after A's next start: got %v, want ErrNotFound", err)
	}
}

// TestReloadKeepsAUserAnotherInstanceServes: two instances on one
// PostgreSQL store, both configured with alice; B serves her session. A
// reload of A that removes her (A has no session of hers to end) keeps
// her entry, as B holds her lease, and B's session goes on with it.
func TestReloadKeepsAUserAnotherInstanceServes(t *testing.T) {
	dsn := sharedPostgres(t)
	stk := startStack(t)
	if _, err := stk.msrv.AddAccount("alice@example.com", "alicepw", "alice"); err != nil {
		t.Fatal(err)
	}
	alice := user("alice", "alice-irc", channel.Account{Email: "alice@example.com", Password: "alicepw", Channel: "&alice", AutoConnect: true})
	stB := openShared(t, dsn)
	gB := startGateway(t, stk.msimAddr, channel.WithStore(stB, channel.NewLiveDirectory([]channel.StaticUser{alice}, ""), ""), stB, instance("b", time.Minute, time.Second))
	c := dial(t, gB.ircAddr, "alice", "alice-irc")
	c.joinedControl("&alice")
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM")

	stA := openShared(t, dsn)
	gA := startGateway(t, stk.msimAddr, channel.WithStore(stA, channel.NewLiveDirectory([]channel.StaticUser{alice}, ""), ""), stA, instance("a", time.Minute, time.Second))
	reload(t, gA.bridge, nil, channel.UsersChange{Removed: []string{"alice"}})
	ctx := context.Background()
	if state, err := stA.LoadUser(ctx, "alice"); err != nil || len(state.Accounts) != 1 {
		t.Fatalf("alice, whom B serves, after A's reload removed her: got %v (accounts %v), want her entry and account kept", err, state.Accounts)
	}
	c.send("PRIVMSG tom :still on B")
	c.expect("PRIVMSG", tomEcho("still on B"))
}
