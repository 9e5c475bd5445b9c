package server

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

func TestBadInput(t *testing.T) {
	srv, addr, alice, bob := pair(t, Config{MaxMessage: 4096})
	cases := []struct {
		name  string
		login bool
		run   func(t *testing.T, c *client)
	}{
		{"garbage bytes", true, func(t *testing.T, c *client) {
			c.write([]byte("GET / HTTP/1.0\r\n\r\n"))
			c.expect("err 1", isError(msim.ErrCodeParse))
			c.sync() // the session survives
		}},
		{"repeated garbage", true, func(t *testing.T, c *client) {
			for i := 0; i < maxBadInput; i++ {
				c.write([]byte("\\\\junk\\final\\"))
			}
			c.expect("fatal err 1", func(m *msim.Message) bool { return isError(msim.ErrCodeParse)(m) && m.Has("fatal") })
			c.expectClosed()
		}},
		{"message without final", true, func(t *testing.T, c *client) {
			c.write([]byte(`\persist\1\sesskey\` + itoa(c.key) + `\cmd\1\dsn\1\lid\4\rid\9\body\`))
			c.nc.(interface{ CloseWrite() error }).CloseWrite()
			c.expectClosed()
		}},
		{"oversized message", true, func(t *testing.T, c *client) {
			c.write(append([]byte(`\bm\1\sesskey\`+itoa(c.key)+`\t\`+itoa(alice.uid)+`\msg\`), bytes.Repeat([]byte("x"), 8192)...))
			m := c.expect("fatal err 1", isError(msim.ErrCodeParse))
			if !m.Has("fatal") {
				t.Errorf("oversized: got %v, want a fatal error", m)
			}
			c.expectClosed()
		}},
		{"request before login", false, func(t *testing.T, c *client) {
			c.send(msim.NewInt("bm", 1).AddInt("sesskey", 1).AddInt("t", int(alice.uid)).Add("msg", "spam"))
			c.expect("err 2", isError(msim.ErrCodeNotLoggedIn))
			if m := c.tryLogin("carol@example.com", "pw"); !m.Is("lc") { // still usable
				t.Fatalf("login after err 2: got %v", m)
			}
		}},
		{"wrong sesskey", true, func(t *testing.T, c *client) {
			c.send(msim.NewInt("bm", 1).AddInt("sesskey", c.key^1).AddInt("t", int(alice.uid)).Add("msg", "spoof"))
			c.send(msim.NewInt("status", 1).Add("statstring", "no key"))
			c.expect("err 3", isError(msim.ErrCodeBadSession))
			c.expect("err 3", isError(msim.ErrCodeBadSession))
			c.sync()
		}},
		{"unknown message type", true, func(t *testing.T, c *client) {
			c.send(msim.New("frobnicate", "").AddInt("sesskey", c.key))
			c.expect("err 1", isError(msim.ErrCodeParse))
			c.sync()
		}},
		{"bm to a nonexistent user", true, func(t *testing.T, c *client) {
			c.bm(msim.BMIM, 99, "hello?")
			m := c.expect("err 4352", isError(msim.ErrCodeBadUID))
			if m.Has("fatal") {
				t.Errorf("got a fatal error: %v", m)
			}
			c.sync()
		}},
		{"unknown persist", true, func(t *testing.T, c *client) {
			r := c.persist(msim.CmdGet, msim.DSNLID{DSN: 21, LID: 28}, msim.Dict{{Key: "X", Value: "1"}})
			if r.Cmd != msim.CmdGet|msim.CmdError || r.ErrorMessage() == "" || r.Body.Str("X") != "1" {
				t.Errorf("unknown persist: got cmd %d body %v, want cmd 1025 with ErrorMessage", r.Cmd, r.Body)
			}
			c.sync()
		}},
		{"persist without cmd", true, func(t *testing.T, c *client) {
			c.send(msim.NewInt("persist", 1).AddInt("sesskey", c.key).AddInt("rid", 5))
			c.expect("err 1", isError(msim.ErrCodeParse))
			c.sync()
		}},
		{"bad login2", false, func(t *testing.T, c *client) {
			c.send(msim.NewInt("login2", 1).Add("username", "carol@example.com"))
			c.expect("fatal err 1", isError(msim.ErrCodeParse))
			c.expectClosed()
		}},
	}
	addAccount(t, srv, "carol@example.com", "pw", "carol")
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c *client
			if tc.login {
				c = login(t, addr, "carol@example.com", "pw")
			} else {
				c = dial(t, addr)
			}
			tc.run(t, c)
			exchange(t, alice, bob, "still serving "+itoa(i))
			exchange(t, bob, alice, "yes "+itoa(i))
			none(t, alice.takeSeen(), "message from carol", isBM(msim.BMIM, c.uid))
		})
	}
}

func TestBlocking(t *testing.T) {
	_, _, alice, bob := pair(t, Config{})
	// Bob blocks alice the way Pidgin does.
	bob.send(msim.New("delbuddy", "").AddInt("sesskey", bob.key).AddInt("delprofileid", int(alice.uid)))
	bob.blocklist("a-|" + alice.uid.String() + "|b+|" + alice.uid.String())
	r := bob.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetContact, msim.Dict{{Key: "ContactID", Value: alice.uid.String()}, {Key: "Visibility", Value: "2"}})
	if r.Cmd != 770 || r.Body.Str("Visibility") != "2" {
		t.Fatalf("block record: got cmd %d body %v", r.Cmd, r.Body)
	}
	alice.expect("bob offline to alice", isPresence(bob.uid, msim.StatusOffline))
	alice.bm(msim.BMIM, bob.uid, "let me in")
	alice.sync()
	bob.status(msim.StatusAway, "not for alice")
	bob.sync()
	alice.sync()
	none(t, bob.takeSeen(), "IM from a blocked user", isBM(msim.BMIM, alice.uid))
	none(t, alice.takeSeen(), "presence from a blocker", isPresence(bob.uid, msim.StatusAway))

	// The capture's reset clears the block list, but not the blocked record.
	bob.blocklist("w0|c0|a-|*|b-|*")
	bob.sync()
	alice.bm(msim.BMIM, bob.uid, "still blocked")
	alice.sync()
	bob.sync()
	none(t, bob.takeSeen(), "IM through a blocked record", isBM(msim.BMIM, alice.uid))

	// Unblock: 515/0/8, then b-; alice sees bob again and can write.
	if r := bob.persist(msim.CmdDelete|msim.CmdAction, msim.PersistDeleteContact, msim.Dict{{Key: "ContactID", Value: alice.uid.String()}}); r.Cmd != 771 {
		t.Fatalf("delete contact: got cmd %d", r.Cmd)
	}
	alice.expect("bob visible again", isPresence(bob.uid, msim.StatusAway))
	exchange(t, alice, bob, "thanks")

	// c1: only the list may write. Alice is no longer on bob's list.
	bob.blocklist("c1")
	bob.sync()
	alice.bm(msim.BMIM, bob.uid, "c1 drops this")
	alice.sync()
	bob.sync()
	none(t, bob.takeSeen(), "IM from outside the list with c1", isBM(msim.BMIM, alice.uid))
	bob.blocklist("c0|w1")
	bob.sync()
	alice.expect("w1 hides bob from alice, who is not on his list", isPresence(bob.uid, msim.StatusOffline))
}

func TestAddBuddyAndAlerts(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	bob := login(t, addr, "bob@example.com", "hunter2")
	bob.status(msim.StatusAway, "busy")
	bob.sync() // the status is applied before alice asks for it
	alice := login(t, addr, "alice@example.com", "Secret1")
	alice.addBuddy(bUID)
	alice.expect("bm 4", isBM(msim.BMAddNotify, bUID))
	m := alice.expect("bob's presence at once", isBM(msim.BMStatus, bUID))
	if got, _ := m.Str("msg"); got != "|s|5|ss|busy|ls||ip|0|p|0" {
		t.Errorf("presence: got %q", got)
	}
	r := bob.persist(msim.CmdGet, msim.PersistAlerts, nil)
	if r.Body.Str("FriendRequest") != "On" {
		t.Errorf("alerts: got %v, want FriendRequest=On", r.Body)
	}
	if r := bob.persist(msim.CmdGet, msim.PersistAlertsAlt, nil); len(r.Body) != 0 {
		t.Errorf("alerts after reading them: got %v, want empty", r.Body)
	}
	recs := alice.persist(msim.CmdGet, msim.PersistContactList, nil).Body.Records("ContactID")
	if len(recs) != 1 || recs[0].Str("UserName") != "bob" || recs[0].Str("Visibility") != "1" {
		t.Errorf("contact list: got %v", recs)
	}
	bob.status(msim.StatusOnline, "")
	alice.expect("bob online", isPresence(bUID, msim.StatusOnline))
	alice.send(msim.New("delbuddy", "").AddInt("sesskey", alice.key).AddInt("delprofileid", int(bUID)))
	alice.sync()
	bob.status(msim.StatusIdle, "")
	bob.sync()
	alice.sync()
	none(t, alice.takeSeen(), "presence after delbuddy", isPresence(bUID, msim.StatusIdle))
	if recs := alice.persist(msim.CmdGet, msim.PersistContactList, nil).Body; len(recs) != 0 {
		t.Errorf("contact list after delbuddy: got %v, want empty", recs)
	}
}

func TestLookupsAndUserName(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	uid := addAccount(t, srv, "newbie@example.com", "Secret1", "")
	addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	c := login(t, addr, "newbie@example.com", "Secret1")
	if c.nick != uid.String() {
		t.Fatalf("uniquenick without a user name: got %q, want %v", c.nick, uid)
	}
	lookup := func(k, v string) msim.Dict {
		return c.persist(msim.CmdGet, msim.PersistLookup, msim.Dict{{Key: k, Value: v}}).Body
	}
	if b := lookup("UserName", "BOB"); b.Str("UserName") != "bob" || b.Str("UserID") == "" {
		t.Errorf("lookup by user name: got %v", b)
	}
	if b := lookup("Email", "bob@example.com"); b.Str("UserName") != "bob" {
		t.Errorf("lookup by e-mail: got %v", b)
	}
	for _, q := range [][2]string{{"UserName", "nobody"}, {"Email", "x@y"}} {
		if b := lookup(q[0], q[1]); len(b) != 1 || b.Str(q[0]) != q[1] {
			t.Errorf("lookup of nonexistent %s: got %v, want only the echoed key", q[0], b)
		}
	}
	if b := c.persist(msim.CmdGet, msim.PersistProfile, msim.Dict{{Key: "UserID", Value: "77"}}).Body; b.Str("UserID") != "" {
		t.Errorf("profile of an unknown uid: got %v, want no UserID", b)
	}
	// The set-username flow of spec §3.7, as Pidgin does it.
	c.send(msim.New("setinfo", "").AddInt("sesskey", c.key).AddDict("info", msim.Dict{{Key: "UserName", Value: "bob"}}))
	setName := func(n string) string {
		return c.persist(msim.CmdPut, msim.PersistSetUserName, msim.Dict{{Key: "UserName", Value: n}}).Body.Str("Code")
	}
	for n, want := range map[string]string{"bob": "1", "12345": "2", "bad name!": "2", "newbie": "0"} {
		if got := setName(n); got != want {
			t.Errorf("set user name %q: got Code=%s, want %s", n, got, want)
		}
	}
	own := c.persist(msim.CmdGet, msim.PersistOwnProfile, msim.Dict{{Key: "UserID", Value: uid.String()}}).Body
	if own.Str("UserName") != "newbie" {
		t.Errorf("own profile: got %v", own)
	}
	c.send(msim.New("setinfo", "").AddInt("sesskey", c.key).AddDict("info", msim.Dict{{Key: "DisplayName", Value: "New Bie"}, {Key: "BandName", Value: "The Bees"}}))
	if b := lookup("UserName", "newbie"); b.Str("DisplayName") != "New Bie" || b.Str("BandName") != "The Bees" {
		t.Errorf("profile after setinfo: got %v", b)
	}
	// Groups: the defaults, then a new one.
	groups := c.persist(msim.CmdGet, msim.PersistGroupList, nil).Body.Records("GroupID")
	if len(groups) != 3 || groups[0].Str("GroupName") != "IM Friends" {
		t.Errorf("default groups: got %v", groups)
	}
	r := c.persist(msim.CmdPut, msim.PersistSetGroup, msim.Dict{{Key: "GroupName", Value: "Band"}, {Key: "Position", Value: "4"}, {Key: "GroupFlag", Value: "131073"}})
	if r.Cmd != 258 || r.Body.Str("GroupID") == "" {
		t.Errorf("create group: got cmd %d body %v", r.Cmd, r.Body)
	}
	if groups := c.persist(msim.CmdGet, msim.PersistGroupList, nil).Body.Records("GroupID"); len(groups) != 4 {
		t.Errorf("groups after create: got %v", groups)
	}
	// Preferences: ShowOnlyToList and PrivacyMode are kept.
	c.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetPrefs, msim.Dict{{Key: "Sound", Value: "False"}, {Key: "PrivacyMode", Value: "1"}, {Key: "ShowOnlyToList", Value: "True"}})
	info := c.persist(msim.CmdGet, msim.PersistOwnIMInfo, nil).Body
	if info.Str("Sound") != "False" || info.Str("PrivacyMode") != "1" || info.Str("ShowOnlyToList") != "True" || info.Str("LastLogin") == "" {
		t.Errorf("IM info after prefs: got %v", info)
	}
}

func TestDemoTom(t *testing.T) {
	srv, addr := startServer(t, Config{Demo: true}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	alice := login(t, addr, "alice@example.com", "Secret1")
	m := alice.expect("Tom online at login", isBM(msim.BMStatus, TomUID))
	if got, _ := m.Raw("msg"); got != "|s|1|ss|:-)|ls||ip|0|p|0" {
		t.Errorf("Tom's presence: got %q", got)
	}
	alice.bm(msim.BMIM, TomUID, "<p><f f='Times' h='16'>hello Tom</f></p>")
	greet, _ := alice.expect("greeting", isBM(msim.BMIM, TomUID)).Str("msg")
	alice.bm(msim.BMIM, TomUID, "<p><f f='Times' h='16'>how are you &amp; yours?</f></p>")
	echo, _ := alice.expect("echo", isBM(msim.BMIM, TomUID)).Str("msg")
	if !strings.Contains(greet, "Tom") || !strings.Contains(echo, "You said: how are you &amp; yours?") {
		t.Errorf("Tom said %q then %q", greet, echo)
	}
	if !srv.Online(TomUID) {
		t.Error("Tom is not online")
	}
	c := dial(t, addr)
	if m := c.tryLogin("tom@msimircd.invalid", ""); !isError(msim.ErrCodeBadPassword)(m) {
		t.Errorf("logging in as Tom: got %v, want err 260", m)
	}
}

func TestKeepaliveAndLoginTimeout(t *testing.T) {
	srv, addr := startServer(t, Config{KeepAlive: 50 * time.Millisecond, LoginTimeout: 200 * time.Millisecond}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	alice := login(t, addr, "alice@example.com", "Secret1")
	for i := 0; i < 2; i++ {
		alice.expect("keepalive", func(m *msim.Message) bool { return m.Is("ka") })
	}
	idle := dial(t, addr)
	idle.expectClosed()
	// A logged-in session is never timed out for silence.
	alice.sync()
}

// Under w1 (ShowOnlyToList) a change of the list changes who sees the
// user: a watcher taken off the list sees the user go offline at once,
// and sees them again when put back.
func TestShowOnlyToListFollowsTheList(t *testing.T) {
	srv, _, alice, bob := pair(t, Config{}) // each lists the other, both online
	alice.blocklist("w1")
	alice.sync()
	bob.sync()
	bob.takeSeen()

	// Alice takes bob off her list as Pidgin does: delbuddy, 515/0/8, a- b-.
	alice.send(msim.New("delbuddy", "").AddInt("sesskey", alice.key).AddInt("delprofileid", int(bob.uid)))
	alice.persist(msim.CmdDelete|msim.CmdAction, msim.PersistDeleteContact, msim.Dict{{Key: "ContactID", Value: bob.uid.String()}})
	alice.blocklist("a-|" + bob.uid.String() + "|b-|" + bob.uid.String())
	alice.sync()
	if p := srv.reg.presenceFor(alice.uid, bob.uid); p.Status != msim.StatusOffline {
		t.Fatalf("the server still shows alice to bob: %v", p)
	}
	bob.expect("alice offline for bob once off her list", isPresence(alice.uid, msim.StatusOffline))

	alice.addBuddy(bob.uid)
	alice.sync()
	bob.expect("alice online for bob once on her list again", isPresence(alice.uid, msim.StatusOnline))
}

// TestIMInfoOfAnotherUser: persist 1/17 (and 1/7) about someone else is
// answered as the 2007 server answered it (capture n 14 and n 48): UserID
// 0 and the default values, whatever that user set. A user's IM settings
// (who may see them or write to them, their IM name) are theirs; their
// own 1/4 shows them.
func TestIMInfoOfAnotherUser(t *testing.T) {
	_, _, alice, bob := pair(t, Config{})
	bob.blocklist("w1|c1")
	bob.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetPrefs, msim.Dict{
		{Key: "Headline", Value: "secret plans"}, {Key: "IMName", Value: "bobby"}, {Key: "OfflineMessageMode", Value: "1"}, {Key: "Alert", Value: "1"},
	})
	own := bob.persist(msim.CmdGet, msim.PersistOwnIMInfo, nil)
	if own.Body.Str("UserID") != bob.uid.String() || own.Body.Str("ShowOnlyToList") != "True" || own.Body.Str("IMName") != "bobby" {
		t.Errorf("bob's own 1/4: got %v, want his settings", own.Body)
	}
	want := msim.Dict{{Key: "UserID", Value: "0"}, {Key: "Sound", Value: "True"}, {Key: "PrivacyMode", Value: "0"},
		{Key: "ShowOnlyToList", Value: "False"}, {Key: "OfflineMessageMode", Value: "0"}, {Key: "Headline", Value: ""},
		{Key: "AvatarUrl", Value: ""}, {Key: "Alert", Value: "0"}, {Key: "ShowAvatar", Value: "True"},
		{Key: "IMName", Value: ""}, {Key: "ClientVersion", Value: "0"}}
	for _, k := range []msim.DSNLID{msim.PersistIMInfo, msim.PersistIMInfoAlt} {
		for _, key := range []string{"UserID", "ContactID"} {
			r := alice.persist(msim.CmdGet, k, msim.Dict{{Key: key, Value: bob.uid.String()}})
			if r.IsError() || len(r.Body) < len(want) || !slices.Equal(r.Body[:len(want)], want) {
				t.Errorf("%v by %s about bob: got cmd %d %v, want the capture's %v…", k, key, r.Cmd, r.Body, want)
			}
		}
	}
}
