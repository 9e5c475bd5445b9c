package ircd

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/irc.v4"
)

func TestAddUserErrors(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	_, fc, _ := register(t, addr, b, "Me")
	c := fc.c
	tests := []struct {
		name string
		u    User
		err  error
	}{
		{"invalid nick", User{Nick: "bad nick"}, ErrInvalidNick},
		{"empty nick", User{}, ErrInvalidNick},
		{"real client's nick", User{Nick: "ME"}, ErrNickInUse},
		{"existing user", User{Nick: "TOM"}, ErrNickInUse},
		{"casemapped collision", User{Nick: "ann"}, ErrNickInUse},
		{"bad host", User{Nick: "x1", Host: "a b"}, ErrInvalidUser},
		{"bad user", User{Nick: "x2", User: "a@b"}, ErrInvalidUser},
		{"ok", User{Nick: "x3"}, nil},
		{"mask without an ident", User{Nick: "x4", Mask: "@host"}, ErrInvalidUser},
		{"mask without a host", User{Nick: "x5", Mask: "ident@"}, ErrInvalidUser},
		{"mask without an @", User{Nick: "x6", Mask: "identhost"}, ErrInvalidUser},
		{"mask with two @", User{Nick: "x7", Mask: "a@b@c"}, ErrInvalidUser},
		{"mask with a space", User{Nick: "x8", Mask: "a b@c"}, ErrInvalidUser},
		{"mask", User{Nick: "x9", Mask: "id@host.example", User: "ignored", Host: "ignored"}, nil},
	}
	for _, tc := range tests {
		if err := c.AddUser(tc.u); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
		}
	}
	c.mu.Lock()
	if u := c.findUser("x9"); u == nil || !sameUserHost(u, "id", "host.example") {
		t.Errorf("user given a mask: got %+v, want ident id and host host.example", u)
	}
	if u := c.findUser("x3"); u == nil || !sameUserHost(u, "user", testServer) {
		t.Errorf("user given neither: got %+v, want ident user and host %s", u, testServer)
	}
	c.mu.Unlock()
	if err := c.CreateChannel("nochan", ""); !errors.Is(err, ErrInvalidChannel) {
		t.Errorf("got %v, want ErrInvalidChannel", err)
	}
	if err := c.CreateChannel("#OTHER", ""); !errors.Is(err, ErrChannelExists) {
		t.Errorf("got %v, want ErrChannelExists", err)
	}
	if err := c.RenameUser("tom", "ann"); !errors.Is(err, ErrNickInUse) {
		t.Errorf("got %v, want ErrNickInUse", err)
	}
	if err := c.RenameUser("nobody", "x9"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("got %v, want ErrNoSuchUser", err)
	}
	if err := c.RenameUser("tom", "9x"); !errors.Is(err, ErrInvalidNick) {
		t.Errorf("got %v, want ErrInvalidNick", err)
	}
}

func TestDrivingAPI(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	tom := &irc.Prefix{Name: "tom", User: "tom", Host: "msim"}
	tests := []struct {
		name  string
		caps  []string
		drive func(c *Client)
		want  []want
		from  []string // expected prefix names, "" = skip
	}{
		{"join user voiced", nil, func(c *Client) {
			_ = c.AddUser(User{Nick: "bob", Host: "h"})
			c.JoinUser("&bitlbee", "bob", true)
		}, []want{w("JOIN", "&bitlbee"), w("MODE", "&bitlbee", "+v", "bob")}, []string{"bob", testServer}},
		{"join user to unjoined channel is silent", nil, func(c *Client) { c.JoinUser("#other", "ghost", false) }, nil, nil},
		{"part user", nil, func(c *Client) { c.PartUser("&bitlbee", "ann", "bye") }, []want{w("PART", "&bitlbee", "bye")}, []string{"ann"}},
		{"voice", nil, func(c *Client) {
			c.SetVoice("&bitlbee", "tom", false)
			c.SetVoice("&bitlbee", "tom", false)
			c.SetVoice("&bitlbee", "ann", true)
		}, []want{w("MODE", "&bitlbee", "-v", "tom"), w("MODE", "&bitlbee", "+v", "ann")}, nil},
		{"rename", nil, func(c *Client) { _ = c.RenameUser("tom", "Thomas") }, []want{w("NICK", "Thomas")}, []string{"tom"}},
		{"remove visible", nil, func(c *Client) {
			c.RemoveUser("tom", "gone offline")
			c.RemoveUser("ghost", "unseen")
		}, []want{w("QUIT", "gone offline")}, []string{"tom"}},
		{"away without away-notify is silent", nil, func(c *Client) { c.SetPresence("ann", "busy", true) }, nil, nil},
		{"away-notify", []string{"away-notify"}, func(c *Client) {
			c.SetPresence("ann", "busy", true)
			c.SetPresence("ann", "busy", true)
			c.SetPresence("tom", "", true)
			c.SetPresence("ghost", "not shared", true)
		}, []want{w("AWAY", "busy"), w("AWAY")}, []string{"ann", "tom"}},
		{"away-notify on join", []string{"away-notify"}, func(c *Client) {
			_ = c.AddUser(User{Nick: "zed", Away: "zzz"})
			c.JoinUser("&bitlbee", "zed", false)
		}, []want{w("JOIN", "&bitlbee"), w("AWAY", "zzz")}, nil},
		{"join client", nil, func(c *Client) {
			c.JoinUser("#other", "ghost", false)
			c.JoinClient("#other", time.Time{})
			c.JoinClient("#other", time.Time{})
		}, []want{w("JOIN", "#other"), w("353", "me", "=", "#other", "me ghost"), w("366", nil...)}, []string{"me"}},
		{"remove channel", nil, func(c *Client) { c.RemoveChannel("&bitlbee") }, []want{w("PART", "&bitlbee", "Channel removed")}, []string{"me"}},
		{"op without multi-prefix", nil, func(c *Client) {
			c.SetOp("&bitlbee", "tom", true)
			c.JoinClient("&bitlbee", time.Time{})
		}, []want{w("MODE", "&bitlbee", "+o", "tom")}, nil},
		{"server notice", nil, func(c *Client) { c.Deliver(Delivery{Command: "NOTICE", Text: "hello\nworld"}) }, []want{w("NOTICE", "me", "hello"), w("NOTICE", "me", "world")}, []string{testServer, testServer}},
		{"deliver private", nil, func(c *Client) { c.Deliver(Delivery{From: "tom", Text: "hi"}) }, []want{w("PRIVMSG", "me", "hi")}, []string{"tom"}},
		{"deliver channel notice", nil, func(c *Client) {
			c.Deliver(Delivery{Command: "NOTICE", From: "ann", Target: "&BITLBEE", Text: "hey"})
		}, []want{w("NOTICE", "&bitlbee", "hey")}, []string{"ann"}},
		{"deliver to unjoined channel falls back", nil, func(c *Client) {
			c.Deliver(Delivery{From: "ghost", Target: "#other", Text: "lost?"})
		}, []want{w("NOTICE", "me", "[#other] <ghost> lost?")}, []string{testServer}},
		// An action shows as one, without its CTCP framing, which a
		// client would show as is in the middle of the notice.
		{"action to unjoined channel falls back", nil, func(c *Client) {
			c.Deliver(Delivery{From: "ghost", Target: "#other", Text: "\x01ACTION waves\x01"})
			c.Deliver(Delivery{From: "ghost", Target: "#other", Text: "\x01VERSION\x01"})
		}, []want{w("NOTICE", "me", "[#other] * ghost waves"), w("NOTICE", "me", "[#other] <ghost> CTCP VERSION")}, []string{testServer, testServer}},
		{"deliver from unknown nick", nil, func(c *Client) { c.Deliver(Delivery{From: "stranger", Text: "hi"}) }, []want{w("PRIVMSG", "me", "hi")}, []string{"stranger"}},
		{"tagmsg needs message-tags", nil, func(c *Client) {
			c.Deliver(Delivery{Command: "TAGMSG", From: "tom", Tags: irc.Tags{"+typing": "active"}})
		}, nil, nil},
		{"typing relayed", []string{"message-tags"}, func(c *Client) {
			c.Deliver(Delivery{Command: "TAGMSG", From: "tom", Tags: irc.Tags{"+typing": "active", "time": "forged"}})
		}, []want{w("TAGMSG", "me")}, []string{"tom"}},
		{"history without batch", nil, func(c *Client) {
			c.DeliverHistory("tom", []Delivery{{From: "tom", Text: "one"}, {From: "tom", Text: "two"}})
		}, []want{w("PRIVMSG", "me", "one"), w("PRIVMSG", "me", "two")}, nil},
		{"history in batch", []string{"batch"}, func(c *Client) {
			c.DeliverHistory("tom", []Delivery{{From: "tom", Text: "one"}, {From: "tom", Text: "two"}})
		}, []want{w("BATCH", "?", "chathistory", "tom"), w("PRIVMSG", "me", "one"), w("PRIVMSG", "me", "two"), w("BATCH", "?")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tcl, fc, _ := register(t, addr, b, "me", tc.caps...)
			tc.drive(fc.c)
			got := tcl.sync(t)
			checkMsgs(t, got, tc.want)
			for i, name := range tc.from {
				if name != "" && got[i].Name != name {
					t.Errorf("got prefix %q on %q, want %s", got[i].Prefix, got[i], name)
				}
			}
			if tc.name == "join user voiced" && got[0].Prefix.String() != "bob!user@h" {
				t.Errorf("got prefix %q, want bob!user@h", got[0].Prefix)
			}
			if tc.name == "rename" && *got[0].Prefix != *tom {
				t.Errorf("got prefix %q, want %q", got[0].Prefix, tom)
			}
			if tc.name == "typing relayed" && (got[0].Tags["+typing"] != "active" || len(got[0].Tags) != 1) {
				t.Errorf("got tags %v, want only +typing=active", got[0].Tags)
			}
			if tc.name == "history in batch" {
				ref := strings.TrimPrefix(got[0].Param(0), "+")
				if got[1].Tags["batch"] != ref || got[2].Tags["batch"] != ref || got[3].Param(0) != "-"+ref {
					t.Errorf("got batch tags %v %v end %q, want %s", got[1].Tags, got[2].Tags, got[3].Param(0), ref)
				}
			}
		})
	}
}

func TestMultiPrefix(t *testing.T) {
	t.Parallel()
	b := newBackend()
	b.setup = func(c *Client) error {
		if err := stdWorld(c); err != nil {
			return err
		}
		c.SetOp("&bitlbee", "tom", true)
		return nil
	}
	addr, _ := startServer(t, testConfig(), b)
	for _, tc := range []struct {
		caps            []string
		names, who, pfx string
	}{
		{nil, "me @tom ann", "G@", "@"},
		{[]string{"multi-prefix"}, "me @+tom ann", "G@+", "@+"},
	} {
		c, _, _ := register(t, addr, b, "me", tc.caps...)
		c.send(t, "NAMES &bitlbee", "WHO tom", "WHO &bitlbee", "WHOIS tom")
		got := c.sync(t)
		checkMsg(t, got[0], w("353", "me", "=", "&bitlbee", tc.names))
		checkMsg(t, got[6], w("352", "me", "&bitlbee", "tom", "msim", testServer, "tom", tc.who, "0 Tom"))
		checkMsg(t, got[9], w("319", "me", "tom", tc.pfx+"&bitlbee"))
	}
}

func TestServerTimeAndEcho(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	at := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
	for _, tc := range []struct {
		caps     []string
		wantTime bool
		wantEcho bool
	}{
		{nil, false, false},
		{[]string{"server-time"}, true, false},
		{[]string{"echo-message"}, false, true},
		{[]string{"server-time", "echo-message", "message-tags"}, true, true},
	} {
		c, fc, _ := register(t, addr, b, "me", tc.caps...)
		fc.c.Deliver(Delivery{From: "ann", Text: "then", Time: at})
		fc.c.Deliver(Delivery{From: "ann", Text: "now"})
		c.send(t, "@+typing=active PRIVMSG ann :hi")
		got := c.sync(t)
		n := 2
		if tc.wantEcho {
			n = 3
		}
		if len(got) != n {
			t.Fatalf("caps %v: got %v, want %d messages", tc.caps, msgStrings(got), n)
		}
		if ts, ok := got[0].Tags["time"]; ok != tc.wantTime || (ok && ts != "2024-05-06T07:08:09.123Z") {
			t.Fatalf("caps %v: got time tag %q (present %v), want present %v", tc.caps, ts, ok, tc.wantTime)
		}
		if ts, ok := got[1].Tags["time"]; ok != tc.wantTime {
			t.Fatalf("caps %v: got time tag %q on live message", tc.caps, ts)
		} else if ok {
			if tm, err := time.Parse(timeFormat, ts); err != nil || time.Since(tm) > time.Minute {
				t.Fatalf("caps %v: got time %q (%v), want about now", tc.caps, ts, err)
			}
		}
		if tc.wantEcho {
			checkMsg(t, got[2], w("PRIVMSG", "ann", "hi"))
			if got[2].Name != "me" {
				t.Fatalf("got echo prefix %q, want me", got[2].Prefix)
			}
			_, hasTime := got[2].Tags["time"]
			if hasTime != tc.wantTime || (got[2].Tags["+typing"] == "active") != (len(tc.caps) == 3) {
				t.Fatalf("caps %v: got echo tags %v", tc.caps, got[2].Tags)
			}
		}
		if evs := fc.drain(); len(evs) != 1 || evs[0] != "message PRIVMSG ann hi tags=+typing=active" {
			t.Fatalf("got events %q", evs)
		}
	}
}

func TestJoinClientLargeChannel(t *testing.T) {
	t.Parallel()
	const n = 1000
	b := newBackend()
	b.setup = func(c *Client) error {
		if err := c.CreateChannel("#big", "many"); err != nil {
			return err
		}
		for i := range n {
			nick := fmt.Sprintf("buddy%04d", i)
			if err := c.AddUser(User{Nick: nick}); err != nil {
				return err
			}
			c.JoinUser("#big", nick, i%2 == 0)
		}
		c.JoinClient("#big", time.Time{})
		return nil
	}
	addr, _ := startServer(t, testConfig(), b)
	start := time.Now()
	c, _, got := register(t, addr, b, "me")
	el := time.Since(start)
	c.keep = true
	if got[0].Command != "JOIN" || got[1].Command != irc.RPL_TOPIC || got[2].Command != rplTopicWhoTime || got[len(got)-1].Command != irc.RPL_ENDOFNAMES {
		t.Fatalf("got %v..., want JOIN, 332, 333, 353..., 366", msgStrings(got[:3]))
	}
	seen := map[string]bool{}
	for _, m := range got[3 : len(got)-1] {
		checkMsg(t, m, w("353", "me", "=", "#big", "?"))
		if l := len(m.String()) + 2; l > 512 {
			t.Fatalf("got a %d-byte 353 line, want <= 512", l)
		}
		for nick := range strings.FieldsSeq(m.Trailing()) {
			seen[nick] = true
		}
	}
	if len(seen) != n+1 || !seen["me"] || !seen["+buddy0000"] || !seen["buddy0001"] {
		t.Fatalf("got %d names, want %d with prefixes", len(seen), n+1)
	}
	if el > 2*time.Second {
		t.Fatalf("registration with %d members took %v", n, el)
	}
	t.Logf("registration and NAMES for %d members: %v", n, el)
}

// TestWorldBookkeeping: memberships follow renames and go with removed
// users and channels.
func TestWorldBookkeeping(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me")
	cl := fc.c
	cl.JoinUser("#other", "tom", false)
	cl.SetOp("#other", "tom", true)
	if err := cl.RenameUser("tom", "Thomas"); err != nil {
		t.Fatal(err)
	}
	c.sync(t)
	c.send(t, "WHOIS thomas", "NAMES &bitlbee", "MODE &bitlbee +v thomas", "MODE &bitlbee +v tom")
	got := c.sync(t)
	checkMsgs(t, got, []want{
		w("311", "me", "Thomas", "tom", "msim", "*", "Tom"),
		w("319", "me", "Thomas", "+&bitlbee @#other"),
		w("312", nil...), w("301", nil...),
		w("317", nil...), w("318", nil...),
		w("353", "me", "=", "&bitlbee", "me +Thomas ann"), w("366", nil...),
		w("482", "me", "&bitlbee", "?"),
		w("441", "me", "tom", "&bitlbee", "?"),
	})

	cl.RemoveChannel("#other")
	cl.RemoveUser("thomas", "bye")
	if err := cl.AddUser(User{Nick: "thomas", RealName: "Another"}); err != nil {
		t.Fatal(err)
	}
	cl.JoinUser("&bitlbee", "thomas", false)
	c.sync(t)
	c.send(t, "WHOIS thomas", "WHOIS ann")
	got = c.sync(t)
	checkMsgs(t, got, []want{
		w("311", "me", "thomas", "user", testServer, "*", "Another"),
		w("319", "me", "thomas", "&bitlbee"),
		w("312", nil...), w("317", nil...), w("318", nil...),
		w("311", "me", "ann", "?", "?", "*", "Ann"),
		w("319", "me", "ann", "&bitlbee"),
		w("312", nil...), w("317", nil...), w("318", nil...),
	})
}

// TestLongPartsFitALine: a 390-byte topic (TOPICLEN) on a channel with a
// 64-byte name, for a 30-byte nick under a long server name, still gives
// lines of at most 512 bytes: RPL_TOPIC and RPL_LIST cut the topic at a
// UTF-8 boundary rather than go over.
func TestLongPartsFitALine(t *testing.T) {
	t.Parallel()
	b := newBackend()
	name := "&" + strings.Repeat("c", ChannelLen-1)
	topic := strings.Repeat("t", TopicLen-3*40) + strings.Repeat("é", 60) // 390 bytes
	b.setup = func(c *Client) error {
		if err := c.CreateChannel(name, topic); err != nil {
			return err
		}
		c.JoinClient(name, time.Time{})
		return nil
	}
	cfg := testConfig()
	cfg.ServerName = "irc.msimircd.example.net"
	addr, _ := startServer(t, cfg, b)
	nick := strings.Repeat("n", NickLen)
	c, _, got := register(t, addr, b, nick)
	c.send(t, "LIST", "TOPIC "+name)
	got = append(got, c.sync(t)...)
	seen := map[string]int{}
	for _, m := range got {
		m.Tags = nil
		if l := len(m.String()) + 2; l > 512 {
			t.Errorf("got a %d-byte line %.40q..., want <= 512", l, m.String())
		}
		switch m.Command {
		case irc.RPL_TOPIC, irc.RPL_LIST:
			seen[m.Command]++
			tr := m.Trailing()
			if !utf8.ValidString(tr) || !strings.HasPrefix(topic, tr) || len(tr) < TopicLen-30 {
				t.Errorf("%s topic: %d bytes %q..., want a valid prefix of the topic", m.Command, len(tr), tr[:20])
			}
		}
	}
	if seen[irc.RPL_TOPIC] != 2 || seen[irc.RPL_LIST] != 1 {
		t.Errorf("got %v RPL_TOPIC and RPL_LIST lines, want 2 and 1", seen)
	}
}

// A channel name that is not UTF-8 is no channel: the backend cannot
// create one, nor deliver history, a read marker or a raw line to one,
// and a client's line naming one is refused whole (FAIL INVALID_UTF8,
// before any command runs), as every line that is not UTF-8 is.
func TestChannelNameNotUTF8(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, fc := e.client(t, "me", "batch", "server-time", "message-tags", "draft/read-marker")
	for _, name := range []string{"#caf\xc3", "&\xff", "#a\xed\xa0\x80b"} { // cut, a bad byte, a surrogate
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			if err := fc.c.CreateChannel(name, ""); !errors.Is(err, ErrInvalidChannel) {
				t.Errorf("CreateChannel: got %v, want ErrInvalidChannel", err)
			}
			fc.c.JoinClient(name, time.Time{})
			fc.c.SendReadMarker(name, time.Now())
			sent := make(chan bool, 1)
			if fc.c.DeliverHistory(name, []Delivery{{From: "tom", Text: "hello", Sent: func(ok bool) { sent <- ok }}}) {
				t.Error("DeliverHistory: got true, want false")
			}
			if <-sent {
				t.Error("DeliverHistory's Sent: got true, want false")
			}
			if got := c.sync(t); len(got) != 0 {
				t.Errorf("got %q, want nothing sent", msgStrings(got))
			}
			c.send(t, "JOIN "+name, "PRIVMSG "+name+" :hi", "MARKREAD "+name)
			checkMsgs(t, c.sync(t), []want{
				w("FAIL", "JOIN", "INVALID_UTF8", "?"),
				w("FAIL", "PRIVMSG", "INVALID_UTF8", "?"),
				w("FAIL", "MARKREAD", "INVALID_UTF8", "?"),
			})
			if evs := fc.drain(); len(evs) != 0 {
				t.Errorf("backend got %q, want nothing", evs)
			}
		})
	}
}

// sameUserHost reports whether u's ident and host are ident and host.
// Caller holds c.mu.
func sameUserHost(u *vuser, ident, host string) bool {
	i, h := u.userHost()
	return i == ident && h == host
}
