package channel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim/server"
	"github.com/msimircd/msimircd/store"
)

// liveStack runs the stack with a LiveDirectory of users (behind WithStore
// when st is not nil); the MSIM accounts are made first.
func liveStack(t *testing.T, users []channel.StaticUser, accounts map[string]string, st store.Store) *stack {
	t.Helper()
	return startStack(t, func(cfg *channel.Config, msrv *server.Server) {
		for email, pw := range accounts {
			name, _, _ := strings.Cut(email, "@")
			if _, err := msrv.AddAccount(email, pw, name); err != nil {
				t.Fatal(err)
			}
		}
		var dir channel.Directory = channel.NewLiveDirectory(users, "")
		if st != nil {
			dir = channel.WithStore(st, dir, "")
			cfg.Store = st
		}
		cfg.Directory = dir
	})
}

func user(name, password string, accounts ...channel.Account) channel.StaticUser {
	return channel.StaticUser{Name: name, Password: password, Accounts: accounts}
}

func acct(email, password string) channel.Account {
	return channel.Account{Email: email, Password: password, AutoConnect: true}
}

// reload calls ReloadUsers and checks what it says changed.
func reload(t *testing.T, b *channel.Bridge, users []channel.StaticUser, want channel.UsersChange) {
	t.Helper()
	got, err := b.ReloadUsers(users, "")
	if err != nil {
		t.Fatalf("ReloadUsers: %v", err)
	}
	if !slices.Equal(got.Added, want.Added) || !slices.Equal(got.Removed, want.Removed) || !slices.Equal(got.Changed, want.Changed) {
		t.Fatalf("ReloadUsers: got %+v, want %+v", got, want)
	}
}

// loginAs connects nick with PASS pass and waits for the account's login.
func loginAs(t *testing.T, st *stack, nick, pass, channelName string) *ircClient {
	t.Helper()
	c := dial(t, st.ircAddr, nick, pass)
	c.joinedControl(channelName)
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as")
	return c
}

// tomEcho matches Tom's answer to text: his greeting to a first IM, else
// the echo.
func tomEcho(text string) func(*irc.Message) bool {
	return func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Name == "tom" && (m.Trailing() == "You said: "+text || strings.HasPrefix(m.Trailing(), "Hi!"))
	}
}

// quiet fails if any of msgs tells the client it lost its connection, a
// channel or an account's login.
func quiet(t *testing.T, who string, msgs []*irc.Message) {
	t.Helper()
	for _, m := range msgs {
		switch {
		case m.Command == "ERROR", m.Command == "PART", m.Command == "KICK", m.Command == "QUIT" && m.Name == who,
			m.Name == "root" && (strings.Contains(m.Trailing(), "Logged in") || strings.Contains(m.Trailing(), "configuration") || strings.Contains(m.Trailing(), "Lost")):
			t.Errorf("%s: got %q, want nothing about its connection or accounts", who, m)
		}
	}
}

// TestReloadAddsUserWhileAnotherChats: a user added by ReloadUsers logs in
// at once and chats; a user already chatting sees nothing of the reload,
// and her IMs before, during and after it are answered, each once.
func TestReloadAddsUserWhileAnotherChats(t *testing.T) {
	ann := user("ann", "ann-pw", acct("ann@example.com", "Ann1"))
	ben := user("ben", "ben-pw", acct("ben@example.com", "Ben1"))
	st := liveStack(t, []channel.StaticUser{ann}, map[string]string{"ann@example.com": "Ann1", "ben@example.com": "Ben1"}, nil)
	a := loginAs(t, st, "ann", "ann-pw", "&ann")
	a.send("PRIVMSG tom :hello")
	a.expect("PRIVMSG", tomEcho("hello")) // the greeting
	dialRefused(t, st.ircAddr, "ben", "ben-pw")

	var texts []string
	say := func(text string) {
		a.send("PRIVMSG tom :" + text)
		texts = append(texts, text)
	}
	say("before the reload")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := st.bridge.ReloadUsers([]channel.StaticUser{ann, ben}, ""); err != nil {
			t.Errorf("ReloadUsers: %v", err)
		}
	}()
	for i := range 5 {
		say(fmt.Sprintf("during the reload %d", i))
	}
	wg.Wait()
	b := loginAs(t, st, "ben", "ben-pw", "&ben")
	b.send("PRIVMSG tom :hi from ben")
	b.expect("PRIVMSG", tomEcho("hi from ben"))
	say("after the reload")

	var got []*irc.Message
	echoes := map[string]int{}
	for echoes["after the reload"] == 0 {
		m := a.expect("", nil)
		got = append(got, m)
		if m.Command == "PRIVMSG" && m.Name == "tom" {
			echoes[strings.TrimPrefix(m.Trailing(), "You said: ")]++
		}
	}
	got = append(got, a.sync()...)
	for _, m := range got {
		if m.Command == "PRIVMSG" && m.Name == "tom" && !slices.Contains(texts, strings.TrimPrefix(m.Trailing(), "You said: ")) {
			t.Errorf("ann: got %q from Tom, which she never said", m.Trailing())
		}
	}
	for _, text := range texts {
		if echoes[text] != 1 {
			t.Errorf("ann: Tom answered %q %d times, want once", text, echoes[text])
		}
	}
	quiet(t, "ann", got)
}

// TestReloadRemovesUser: a removed user's session ends with a notice
// saying why, and they cannot log in again; the other user is untouched.
func TestReloadRemovesUser(t *testing.T) {
	ann := user("ann", "ann-pw", acct("ann@example.com", "Ann1"))
	ben := user("ben", "ben-pw", acct("ben@example.com", "Ben1"))
	st := liveStack(t, []channel.StaticUser{ann, ben}, map[string]string{"ann@example.com": "Ann1", "ben@example.com": "Ben1"}, nil)
	a := loginAs(t, st, "ann", "ann-pw", "&ann")
	b := loginAs(t, st, "ben", "ben-pw", "&ben")
	a.sync()
	reload(t, st.bridge, []channel.StaticUser{ann}, channel.UsersChange{Removed: []string{"ben"}})
	n := b.expect("NOTICE", func(m *irc.Message) bool { return m.Name == "root" })
	if !strings.Contains(n.Trailing(), "removed from the gateway's configuration") {
		t.Errorf("ben: got notice %q, want it to say he was removed from the configuration", n.Trailing())
	}
	if e := b.expect("ERROR", nil); !strings.Contains(e.Trailing(), "removed from the gateway's configuration") {
		t.Errorf("ben: got ERROR %q, want the reason", e.Trailing())
	}
	dialRefused(t, st.ircAddr, "ben", "ben-pw")
	quiet(t, "ann", a.sync())
	a.send("PRIVMSG tom :still here")
	a.expect("PRIVMSG", tomEcho("still here"))
}

// TestReloadChangesUser: accounts added, changed and removed take effect
// in the open session, leaving its other account alone; a new password
// ends the session, and only the new one logs in.
func TestReloadChangesUser(t *testing.T) {
	one, two := acct("ann@example.com", "Ann1"), acct("annex@example.com", "Annex1")
	st := liveStack(t, []channel.StaticUser{user("ann", "ann-pw", one)}, map[string]string{"ann@example.com": "Ann1", "annex@example.com": "Annex1"}, nil)
	a := loginAs(t, st, "ann", "ann-pw", "&ann")
	a.sync()
	joined := func(ch string) func(*irc.Message) bool {
		return func(m *irc.Message) bool { return m.Command == "JOIN" && m.Name == "ann" && m.Param(0) == ch }
	}
	parted := func(ch string) func(*irc.Message) bool {
		return func(m *irc.Message) bool { return m.Command == "PART" && m.Name == "ann" && m.Param(0) == ch }
	}
	inAnn := func(msgs []*irc.Message) {
		t.Helper()
		for _, m := range msgs {
			if m.Param(0) == "&ann" {
				t.Errorf("got %q in &ann, whose account did not change", m)
			}
		}
	}
	renamed := two
	renamed.Channel = "&second"
	for _, tc := range []struct {
		name     string
		accounts []channel.Account
		want     []func(*irc.Message) bool
	}{
		{"account added", []channel.Account{one, two}, []func(*irc.Message) bool{
			saysRoot("The account annex@example.com was added"), joined("&annex"), saysRoot("Logged in to MSIM as annex")}},
		{"account changed", []channel.Account{one, renamed}, []func(*irc.Message) bool{
			parted("&annex"), saysRoot("The account annex@example.com was changed"), joined("&second"), saysRoot("Logged in to MSIM as annex")}},
		{"account removed", []channel.Account{one}, []func(*irc.Message) bool{
			parted("&second"), saysRoot("The account annex@example.com was removed")}},
	} {
		reload(t, st.bridge, []channel.StaticUser{user("ann", "ann-pw", tc.accounts...)}, channel.UsersChange{Changed: []string{"ann"}})
		a.expectAll(tc.want...)
		inAnn(a.sync())
		a.command("&ann", "account list", "0 (msim): ann@example.com in &ann, connected")
		for i := 1; i < len(tc.accounts); i++ {
			a.expectFrom("PRIVMSG", "root", fmt.Sprintf("%d (msim): %s", i, tc.accounts[i].Email))
		}
		if more := a.sync(); len(more) != 0 {
			t.Errorf("%s: account list: got %d more lines, want one per account", tc.name, len(more))
		}
	}
	// Unchanged: nothing happens.
	reload(t, st.bridge, []channel.StaticUser{user("ann", "ann-pw", one)}, channel.UsersChange{})
	quiet(t, "ann", a.sync())

	reload(t, st.bridge, []channel.StaticUser{user("ann", "new-pw", one)}, channel.UsersChange{Changed: []string{"ann"}})
	if n := a.expect("NOTICE", func(m *irc.Message) bool { return m.Name == "root" }); !strings.Contains(n.Trailing(), "password was changed") {
		t.Errorf("got notice %q, want it to say the password changed", n.Trailing())
	}
	a.expect("ERROR", nil)
	dialRefused(t, st.ircAddr, "ann", "ann-pw")
	loginAs(t, st, "ann", "new-pw", "&ann")
}

// TestReloadUsersStore: with a store, an added user is saved there, and an
// account removed from the configuration is deleted from it, as account
// del does.
func TestReloadUsersStore(t *testing.T) {
	db := openStore(t)
	one, two := acct("ann@example.com", "Ann1"), acct("annex@example.com", "Annex1")
	ben := user("ben", "ben-pw", acct("ben@example.com", "Ben1"))
	st := liveStack(t, []channel.StaticUser{user("ann", "ann-pw", one, two)}, map[string]string{"ann@example.com": "Ann1", "annex@example.com": "Annex1", "ben@example.com": "Ben1"}, db)
	a := loginAs(t, st, "ann", "ann-pw", "&ann")
	a.expectFrom("PRIVMSG", "root", "Logged in to MSIM as")
	a.sync()
	reload(t, st.bridge, []channel.StaticUser{user("ann", "ann-pw", one), ben}, channel.UsersChange{Added: []string{"ben"}, Changed: []string{"ann"}})
	ctx := context.Background()
	state, err := db.LoadUser(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, as := range state.Accounts {
		emails = append(emails, as.Email)
	}
	if want := []string{"ann@example.com"}; !slices.Equal(emails, want) {
		t.Errorf("ann's stored accounts: got %q, want %q", emails, want)
	}
	if _, err := db.User(ctx, "ben"); err != nil {
		t.Errorf("ben in the store: got %v, want him saved", err)
	}
	loginAs(t, st, "ben", "ben-pw", "&ben")
}

// TestReloadUsersNeedsLiveDirectory: the demo network's users are not
// reloaded.
func TestReloadUsersNeedsLiveDirectory(t *testing.T) {
	st := startStack(t)
	if _, err := st.bridge.ReloadUsers(nil, ""); !errors.Is(err, channel.ErrNotLive) {
		t.Errorf("got %v, want ErrNotLive", err)
	}
}

// TestReloadShadowsRegisteredNick: a user the configuration gains under
// another spelling of a registered nick ("Ann" for "ann", "Ali[" for
// "ali{") ends the registered user's session, as the same spelling does:
// from then on that nick is the configuration's.
func TestReloadShadowsRegisteredNick(t *testing.T) {
	for _, tc := range []struct{ registered, configured string }{{"ann", "Ann"}, {"ali{", "Ali["}} {
		t.Run(tc.configured, func(t *testing.T) {
			db := openStore(t)
			if err := createUser(db, channel.UserName(tc.registered), "reg-pw"); err != nil {
				t.Fatal(err)
			}
			st := liveStack(t, nil, map[string]string{"ann@example.com": "Ann1"}, db)
			c := dial(t, st.ircAddr, tc.registered, "reg-pw")
			c.expectFrom("PRIVMSG", "root", "You have no MSIM accounts")
			reload(t, st.bridge, []channel.StaticUser{user(tc.configured, "conf-pw", acct("ann@example.com", "Ann1"))},
				channel.UsersChange{Added: []string{tc.configured}})
			n := c.expect("NOTICE", func(m *irc.Message) bool { return m.Name == "root" })
			if !strings.Contains(n.Trailing(), "user of the gateway's configuration") {
				t.Errorf("%s: got notice %q, want it to say the nick is the configuration's now", tc.registered, n.Trailing())
			}
		})
	}
}
