package ircd

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"gopkg.in/irc.v4"
)

func TestRegistrationBurst(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c := dial(t, addr)
	c.send(t, "PASS hunter2", "NICK me", "USER u 0 * :Real Name")
	got := c.readUntil(t, irc.RPL_ENDOFMOTD)
	var cmds []string
	isupport := map[string]bool{}
	for _, m := range got {
		if m.Name != testServer {
			t.Fatalf("got prefix %q, want %s", m.Prefix, testServer)
		}
		if m.Param(0) != "me" {
			t.Fatalf("got target %q in %q, want me", m.Param(0), m)
		}
		if len(cmds) == 0 || cmds[len(cmds)-1] != m.Command {
			cmds = append(cmds, m.Command)
		}
		if m.Command == irc.RPL_ISUPPORT {
			for _, tok := range m.Params[1 : len(m.Params)-1] {
				isupport[tok] = true
			}
		}
	}
	wantCmds := []string{"001", "002", "003", "004", "005", "251", "254", "255", "265", "266", "375", "372", "376"}
	if !slices.Equal(cmds, wantCmds) {
		t.Fatalf("got burst %v, want %v", cmds, wantCmds)
	}
	if got[0].Trailing() != "Welcome to the TestNet IRC Network me!u@127.0.0.1" {
		t.Fatalf("got 001 %q", got[0].Trailing())
	}
	for _, tok := range []string{"CASEMAPPING=rfc1459", "CHANTYPES=#&", "PREFIX=(ov)@+", "NICKLEN=30", "CHANNELLEN=64", "NETWORK=TestNet", "UTF8ONLY"} {
		if !isupport[tok] {
			t.Errorf("ISUPPORT lacks %s; got %v", tok, isupport)
		}
	}
	fc := b.conn(t, c)
	if fc.reg != (Registration{Nick: "me", User: "u", RealName: "Real Name", Pass: "hunter2", Remote: fc.reg.Remote}) || fc.reg.Remote == nil {
		t.Fatalf("got registration %+v", fc.reg)
	}
	// The world built inside Connect arrives after the MOTD.
	checkMsgs(t, c.sync(t), []want{
		w("JOIN", "&bitlbee"),
		w("332", "me", "&bitlbee", "Welcome"),
		w("333", "me", "&bitlbee", testServer, "?"),
		w("353", "me", "=", "&bitlbee", "me +tom ann"),
		w("366", "me", "&bitlbee", "End of /NAMES list."),
	})
}

func TestCommands(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	tests := []struct {
		name   string
		caps   []string
		send   []string
		want   []want
		events []string
	}{
		{"ping", nil, []string{"PING tok"}, []want{w("PONG", testServer, "tok")}, nil},
		{"ping without token", nil, []string{"PING"}, []want{w("461", "me", "PING", "?")}, nil},
		{"pong is silent", nil, []string{"PONG x"}, nil, nil},
		{"unknown command", nil, []string{"FROB x"}, []want{w("421", "me", "FROB", "Unknown command")}, nil},
		{"join", nil, []string{"JOIN #other"}, []want{
			w("JOIN", "#other"), w("353", "me", "=", "#other", "me"), w("366", "me", "#other", "?"),
		}, []string{"join #other"}},
		{"join casefolded", nil, []string{"JOIN #OTHER"}, []want{
			w("JOIN", "#other"), w("353", "me", "=", "#other", "me"), w("366", "me", "#other", "?"),
		}, []string{"join #other"}},
		{"join unknown", nil, []string{"JOIN #nope,#other"}, []want{
			w("403", "me", "#nope", "No such channel"), w("JOIN", "#other"), w("353", nil...), w("366", nil...),
		}, []string{"join #other"}},
		{"join again is silent", nil, []string{"JOIN &bitlbee"}, nil, nil},
		{"join needs params", nil, []string{"JOIN"}, []want{w("461", "me", "JOIN", "?")}, nil},
		// An empty channel list is a missing parameter; an empty WHOIS
		// nick is no nick at all.
		{"empty parameters", nil, []string{"JOIN :", "PART :", "WHOIS :", "WHOIS irc.test :"}, []want{
			w("461", "me", "JOIN", "?"), w("461", "me", "PART", "?"),
			w("431", "me", "No nickname given"), w("431", "me", "No nickname given"),
		}, nil},
		{"join 0", nil, []string{"JOIN 0"}, []want{w("PART", "&bitlbee")}, []string{"part &bitlbee "}},
		{"part", nil, []string{"PART &bitlbee :bye now"}, []want{w("PART", "&bitlbee", "bye now")}, []string{"part &bitlbee bye now"}},
		{"part errors", nil, []string{"PART #other", "PART #nope"}, []want{
			w("442", "me", "#other", "?"), w("403", "me", "#nope", "?"),
		}, nil},
		{"names", nil, []string{"NAMES &bitlbee"}, []want{
			w("353", "me", "=", "&bitlbee", "me +tom ann"), w("366", "me", "&bitlbee", "?"),
		}, nil},
		{"names unknown", nil, []string{"NAMES #nope"}, []want{w("366", "me", "#nope", "?")}, nil},
		{"names all", nil, []string{"NAMES"}, []want{w("353", nil...), w("366", "me", "&bitlbee", "?"), w("366", "me", "*", "?")}, nil},
		{"who channel", nil, []string{"WHO &bitlbee"}, []want{
			w("352", "me", "&bitlbee", "u", "127.0.0.1", testServer, "me", "H", "0 Real Name"),
			w("352", "me", "&bitlbee", "ann", "msim", testServer, "ann", "H", "0 Ann"),
			w("352", "me", "&bitlbee", "tom", "msim", testServer, "tom", "G+", "0 Tom"),
			w("315", "me", "&bitlbee", "End of /WHO list."),
		}, nil},
		{"who nick", nil, []string{"WHO tom", "WHO nobody"}, []want{
			w("352", "me", "*", "tom", "msim", testServer, "tom", "G", "0 Tom"),
			w("315", "me", "tom", "?"),
			w("315", "me", "nobody", "?"),
		}, nil},
		{"whois virtual", nil, []string{"WHOIS tom"}, []want{
			w("311", "me", "tom", "tom", "msim", "*", "Tom"),
			w("319", "me", "tom", "+&bitlbee"),
			w("312", "me", "tom", testServer, "TestNet"),
			w("301", "me", "tom", "lunch"),
			w("317", "me", "tom", "?", "?", "seconds idle, signon time"),
			w("318", "me", "tom", "End of /WHOIS list."),
		}, nil},
		{"whois with server param", nil, []string{"WHOIS irc.test ghost"}, []want{
			w("311", "me", "ghost", "user", testServer, "*", "Ghost"),
			w("312", nil...), w("317", nil...), w("318", nil...),
		}, nil},
		{"whois self", nil, []string{"AWAY :out", "WHOIS ME"}, []want{
			w("306", nil...),
			w("311", "me", "me", "u", "127.0.0.1", "*", "Real Name"),
			w("319", "me", "me", "&bitlbee"),
			w("312", "me", "me", testServer, "TestNet"),
			w("301", "me", "me", "out"),
			w("317", nil...), w("318", nil...),
		}, []string{"away out"}},
		{"whois errors", nil, []string{"WHOIS nobody", "WHOIS"}, []want{
			w("401", "me", "nobody", "No such nick/channel"), w("318", "me", "nobody", "?"),
			w("461", "me", "WHOIS", "?"),
		}, nil},
		// No nick history is kept: WHOWAS (sent by clients after a
		// failed WHOIS) finds no one, and ends its reply as usual.
		{"whowas", nil, []string{"WHOWAS nobody", "WHOWAS tom 1", "WHOWAS :", "WHOWAS"}, []want{
			w("406", "me", "nobody", "There was no such nickname"), w("369", "me", "nobody", "End of WHOWAS"),
			w("406", "me", "tom", "?"), w("369", "me", "tom", "?"),
			w("431", "me", "No nickname given"),
			w("461", "me", "WHOWAS", "?"),
		}, nil},
		{"channel mode", nil, []string{"MODE &bitlbee", "MODE &bitlbee b", "MODE &bitlbee +v ann", "MODE &bitlbee +z", "MODE #nope"}, []want{
			w("324", "me", "&bitlbee", "+nt"), w("329", "me", "&bitlbee", "?"),
			w("368", "me", "&bitlbee", "?"),
			w("482", "me", "&bitlbee", "You're not channel operator"),
			w("472", "me", "z", "?"),
			w("403", "me", "#nope", "?"),
		}, nil},
		// However many unknown letters or list queries, one 472 (the
		// first unknown letter) and one end of each list for the command.
		{"channel mode unknown letters", nil, []string{"MODE &bitlbee +xyzzyx", "MODE &bitlbee bbeIIebq", "MODE &bitlbee +xtw"}, []want{
			w("472", "me", "x", "?"),
			w("368", "me", "&bitlbee", "?"), w("349", "me", "&bitlbee", "?"), w("347", "me", "&bitlbee", "?"), w("472", "me", "q", "?"),
			w("472", "me", "x", "?"), w("482", "me", "&bitlbee", "?"),
		}, nil},
		{"channel mode not on channel", nil, []string{"MODE #other +t", "MODE &bitlbee +v nobody"}, []want{
			w("442", "me", "#other", "?"), w("441", "me", "nobody", "&bitlbee", "?"),
		}, nil},
		{"user mode", nil, []string{"MODE me", "MODE me +iz", "MODE me", "MODE me -i", "MODE tom +i", "MODE nobody"}, []want{
			w("221", "me", "+"),
			w("501", "me", "?"), w("MODE", "me", "+i"),
			w("221", "me", "+i"),
			w("MODE", "me", "-i"),
			w("502", "me", "?"),
			w("401", "me", "nobody", "?"),
		}, nil},
		// However many unknown letters, one 501 for the command.
		{"user mode unknown letters", nil, []string{"MODE me +xyz", "MODE me +xiy-z"}, []want{
			w("501", "me", "?"),
			w("501", "me", "?"), w("MODE", "me", "+i"),
		}, nil},
		{"topic", nil, []string{"TOPIC &bitlbee", "TOPIC #other", "TOPIC #nope", "TOPIC &bitlbee :new", "TOPIC #other :new", "TOPIC"}, []want{
			w("332", "me", "&bitlbee", "Welcome"), w("333", "me", "&bitlbee", testServer, "?"),
			w("331", "me", "#other", "No topic is set"),
			w("403", "me", "#nope", "?"),
			w("482", "me", "&bitlbee", "?"),
			w("442", "me", "#other", "?"),
			w("461", "me", "TOPIC", "?"),
		}, nil},
		{"away", nil, []string{"AWAY :gone", "AWAY"}, []want{
			w("306", "me", "You have been marked as being away"), w("305", "me", "You are no longer marked as being away"),
		}, []string{"away gone", "away "}},
		{"privmsg", nil, []string{"PRIVMSG tom :hi there", "PRIVMSG ANN :yo", "NOTICE &bitlbee :note", "PRIVMSG ann,&bitlbee :both"}, []want{
			w("301", "me", "tom", "lunch"),
		}, []string{"message PRIVMSG tom hi there", "message PRIVMSG ann yo", "message NOTICE &bitlbee note",
			"message PRIVMSG ann both", "message PRIVMSG &bitlbee both"}},
		{"privmsg ctcp action is raw", nil, []string{"PRIVMSG ann :\x01ACTION waves\x01"}, nil,
			[]string{"message PRIVMSG ann \x01ACTION waves\x01"}},
		{"privmsg errors", nil, []string{"PRIVMSG nobody :x", "PRIVMSG #other :x", "PRIVMSG #nope :x", "PRIVMSG", "PRIVMSG ann", "PRIVMSG ann :", "PRIVMSG a,b,c,d,e :x"}, []want{
			w("401", "me", "nobody", "No such nick/channel"),
			w("404", "me", "#other", "Cannot send to channel"),
			w("403", "me", "#nope", "No such channel"),
			w("411", "me", "?"),
			w("412", "me", "No text to send"),
			w("412", "me", "No text to send"),
			w("407", "me", "a,b,c,d,e", "?"),
		}, nil},
		{"notice is never answered", nil, []string{"NOTICE nobody :x", "NOTICE #other :x", "NOTICE #nope :x", "NOTICE", "NOTICE ann", "NOTICE a,b,c,d,e :x", "NOTICE tom :x"}, nil,
			[]string{"message NOTICE tom x"}},
		{"privmsg self", nil, []string{"PRIVMSG me :note to self"}, []want{w("PRIVMSG", "me", "note to self")}, nil},
		// With echo-message, the echo and then the delivery; TAGMSG only
		// to a client with message-tags.
		{"privmsg self echoed", []string{"echo-message"}, []string{"PRIVMSG me :note to self", "TAGMSG me"}, []want{
			w("PRIVMSG", "me", "note to self"), w("PRIVMSG", "me", "note to self"),
		}, nil},
		{"tagmsg self", []string{"message-tags"}, []string{"@+typing=active TAGMSG me"}, []want{w("TAGMSG", "me")}, nil},
		// Empty items of a target list are skipped; a client's target that
		// cannot be a middle parameter is "*" in the numeric.
		{"odd targets", nil, []string{"PRIVMSG ann,,nobody :hi", "PRIVMSG ann,:x :hi", "PRIVMSG :a b", "JOIN #nope,,", "PART ,#nope", "NICK :a b"}, []want{
			w("401", "me", "nobody", "No such nick/channel"),
			w("401", "me", "*", "No such nick/channel"),
			w("412", "me", "No text to send"),
			w("403", "me", "#nope", "No such channel"),
			w("403", "me", "#nope", "No such channel"),
			w("432", "me", "*", "Erroneous nickname"),
		}, []string{"message PRIVMSG ann hi", "message PRIVMSG ann hi"}},
		{"no echo without cap", nil, []string{"PRIVMSG ann :hi"}, nil, []string{"message PRIVMSG ann hi"}},
		{"echo-message", []string{"echo-message"}, []string{"PRIVMSG ann :hi", "NOTICE &bitlbee :n"}, []want{
			w("PRIVMSG", "ann", "hi"), w("NOTICE", "&bitlbee", "n"),
		}, []string{"message PRIVMSG ann hi", "message NOTICE &bitlbee n"}},
		{"tagmsg typing", []string{"message-tags"}, []string{"@+typing=active TAGMSG ann", "@+typing=done;label=x TAGMSG &bitlbee"}, nil,
			[]string{"message TAGMSG ann  tags=+typing=active", "message TAGMSG &bitlbee  tags=+typing=done"}},
		{"lusers", nil, []string{"LUSERS"}, []want{
			w("251", "me", "There are 4 users and 0 invisible on 1 servers"), w("254", "me", "2", "channels formed"),
			w("255", "me", "?"), w("265", "me", "4", "4", "?"), w("266", "me", "4", "4", "?"),
		}, nil},
		{"motd", nil, []string{"MOTD"}, []want{w("375", nil...), w("372", "me", "- hello"), w("376", nil...)}, nil},
		{"reregister", nil, []string{"USER a b c :d", "PASS x", "AUTHENTICATE PLAIN"}, []want{
			w("462", "me", "?"), w("462", "me", "?"), w("462", "me", "?"),
		}, nil},
		{"nick change", nil, []string{"NICK Neo"}, []want{w("NICK", "Neo")}, []string{"nick Neo"}},
		{"nick case change", nil, []string{"NICK ME", "NICK ME"}, []want{w("NICK", "ME")}, []string{"nick ME"}},
		{"nick errors", nil, []string{"NICK TOM", "NICK 1abc", "NICK", "NICK a:b", "NICK " + strings.Repeat("n", 31)}, []want{
			w("433", "me", "TOM", "Nickname is already in use"),
			w("432", "me", "1abc", "Erroneous nickname"),
			w("431", "me", "No nickname given"),
			w("432", "me", "a:b", "?"),
			w("432", "me", strings.Repeat("n", 31), "?"),
		}, nil},
		{"ison and userhost", nil, []string{"ISON tom nobody ME", "USERHOST tom ann me"}, []want{
			w("303", "me", "tom me"), w("302", "me", "tom=-tom@msim ann=+ann@msim me=+u@127.0.0.1"),
		}, nil},
		{"list", nil, []string{"LIST"}, []want{
			w("321", nil...), w("322", "me", "#other", "0", ""), w("322", "me", "&bitlbee", "3", "Welcome"), w("323", nil...),
		}, nil},
		// LIST with channel names (or masks) lists those alone; a
		// parameter naming no channel (an ELIST condition) filters nothing.
		{"list named channels", nil, []string{"LIST &BITLBEE", "LIST #nope,&bi*", "LIST #nope", "LIST >1"}, []want{
			w("321", nil...), w("322", "me", "&bitlbee", "3", "Welcome"), w("323", nil...),
			w("321", nil...), w("322", "me", "&bitlbee", "3", "Welcome"), w("323", nil...),
			w("321", nil...), w("323", nil...),
			w("321", nil...), w("322", "me", "#other", "0", ""), w("322", "me", "&bitlbee", "3", "Welcome"), w("323", nil...),
		}, nil},
		{"version", nil, []string{"VERSION"}, []want{w("351", "me", "v-test", testServer, ""), w("005", nil...), w("005", nil...)}, nil},
		{"time", nil, []string{"TIME"}, []want{w("391", "me", testServer, "?")}, nil},
		{"info", nil, []string{"INFO"}, []want{w("371", "me", "?"), w("371", "me", "?"), w("371", "me", "?"), w("374", "me", "End of /INFO list.")}, nil},
		{"admin", nil, []string{"ADMIN"}, []want{
			w("256", "me", testServer, "Administrative info"), w("257", "me", "?"), w("258", "me", "?"), w("259", "me", "?"),
		}, nil},
		{"help", nil, []string{"HELP", "HELP join"}, []want{
			w("704", "me", "*", "?"), w("705", "me", "*", "?"), w("706", "me", "*", "?"),
			w("704", "me", "join", "?"), w("705", "me", "join", "?"), w("706", "me", "join", "?"),
		}, nil},
		{"who mask", nil, []string{"WHO t*", "WHO *@msim", "WHO TOM", "WHO *real*", "WHO nobody*"}, []want{
			w("352", "me", "*", "tom", "msim", testServer, "tom", "G", "0 Tom"),
			w("315", "me", "t*", "End of /WHO list."),
			w("352", "me", "*", "ann", "msim", testServer, "ann", "H", "0 Ann"),
			w("352", "me", "*", "tom", "msim", testServer, "tom", "G", "0 Tom"),
			w("315", "me", "*@msim", "?"),
			w("352", "me", "*", "tom", "msim", testServer, "tom", "G", "0 Tom"),
			w("315", "me", "TOM", "?"),
			w("352", "me", "*", "u", "127.0.0.1", testServer, "me", "H", "0 Real Name"),
			w("315", "me", "*real*", "?"),
			w("315", "me", "nobody*", "?"),
		}, nil},
		{"who everyone", nil, []string{"WHO *", "WHO"}, []want{
			w("352", "me", "*", "u", "127.0.0.1", testServer, "me", "H", "0 Real Name"),
			w("352", "me", "*", "ann", "msim", testServer, "ann", "H", "0 Ann"),
			w("352", "me", "*", "user", testServer, testServer, "ghost", "H", "0 Ghost"),
			w("352", "me", "*", "tom", "msim", testServer, "tom", "G", "0 Tom"),
			w("315", "me", "*", "?"),
			w("352", "me", "*", "u", "127.0.0.1", testServer, "me", "H", "0 Real Name"),
			w("352", nil...), w("352", nil...), w("352", nil...),
			w("315", "me", "*", "?"),
		}, nil},
		// WHO 0 lists everyone; its 315 names the mask as sent, which
		// clients match against the WHO they sent.
		{"who 0", nil, []string{"WHO 0"}, []want{
			w("352", nil...), w("352", nil...), w("352", nil...), w("352", nil...),
			w("315", "me", "0", "End of /WHO list."),
		}, nil},
		{"userhost-in-names", []string{"userhost-in-names"}, []string{"NAMES &bitlbee"}, []want{
			w("353", "me", "=", "&bitlbee", "me!u@127.0.0.1 +tom!tom@msim ann!ann@msim"), w("366", "me", "&bitlbee", "?"),
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, fc, _ := register(t, addr, b, "me", tc.caps...)
			c.send(t, tc.send...)
			got := c.sync(t)
			checkMsgs(t, got, tc.want)
			for _, m := range got {
				if strings.HasPrefix(m.Command, "JOIN") || m.Command == "PART" || m.Command == "NICK" || m.Command == "PRIVMSG" || m.Command == "NOTICE" {
					if m.Name != "me" || m.User != "u" || m.Host != "127.0.0.1" {
						t.Errorf("got prefix %q on %q, want me!u@127.0.0.1", m.Prefix, m)
					}
				}
			}
			if evs := fc.drain(); !slices.Equal(evs, tc.events) {
				t.Fatalf("got events %q, want %q", evs, tc.events)
			}
		})
	}
}

func TestQuit(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	for _, tc := range []struct{ line, reason string }{
		{"QUIT :see you", "Quit: see you"},
		{"QUIT", "Client Quit"},
	} {
		c, fc, _ := register(t, addr, b, "me")
		c.send(t, tc.line)
		if got, want := c.expectClosed(t), "Closing link: 127.0.0.1 ("+tc.reason+")"; got != want {
			t.Fatalf("got ERROR %q, want %q", got, want)
		}
		if got := fc.waitClosed(t); got != tc.reason {
			t.Fatalf("got Closed(%q), want %q", got, tc.reason)
		}
	}
}

// whoisLines reads until 318 and returns each message as "command
// trailing".
func whoisLines(t *testing.T, c *tclient) []string {
	t.Helper()
	var got []string
	for {
		m := c.read(t)
		got = append(got, m.Command+" "+m.Trailing())
		if m.Command == "318" {
			return got
		}
	}
}

// TestWhoisHandler: a Handler answering WhoisAsync at once supplies the
// 320 lines. It is asked without the lock (it may call the Client and take
// its time), and the reply comes in one piece after it.
func TestWhoisHandler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		whois func(fc *fakeConn, nick string) []string
		want  []string
	}{
		{"lines", func(fc *fakeConn, nick string) []string {
			fc.c.Deliver(Delivery{From: "ann", Text: "meanwhile"}) // would deadlock under the lock
			return []string{"Fetched for " + nick, "two\r\nlines", "nul\x00byte"}
		}, []string{"PRIVMSG meanwhile", "311 Tom", "319 +&bitlbee", "312 TestNet", "301 lunch",
			"320 Fetched for tom", "320 two", "320 lines", "320 nul\uFFFDbyte", "317 seconds idle, signon time", "318 End of /WHOIS list."}},
		{"no lines", func(*fakeConn, string) []string { return nil },
			[]string{"311 Tom", "319 +&bitlbee", "312 TestNet", "301 lunch", "317 seconds idle, signon time", "318 End of /WHOIS list."}},
		{"renamed meanwhile", func(fc *fakeConn, nick string) []string {
			if err := fc.c.RenameUser(nick, "thomas"); err != nil {
				t.Errorf("RenameUser: %v", err)
			}
			return []string{"Fetched for " + nick}
		}, []string{"NICK thomas", "311 Tom", "319 +&bitlbee", "312 TestNet", "301 lunch",
			"320 Fetched for tom", "317 seconds idle, signon time", "318 End of /WHOIS list."}},
		{"removed meanwhile", func(fc *fakeConn, nick string) []string {
			fc.c.RemoveUser(nick, "gone")
			return []string{"Fetched for " + nick}
		}, []string{"QUIT gone", "401 No such nick/channel", "318 End of /WHOIS list."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend()
			fcs := make(chan *fakeConn, 1)
			b.whois = func(nick string) []string {
				fc := <-fcs
				defer func() { fcs <- fc }()
				return tc.whois(fc, nick)
			}
			addr, _ := startServer(t, testConfig(), b)
			c, fc, _ := register(t, addr, b, "me")
			fcs <- fc
			c.send(t, "WHOIS tom")
			if got := whoisLines(t, c); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestWhoisHandlerBlocking: while the handler blocks, the backend keeps
// delivering from another goroutine; every line arrives whole and in order,
// and none comes between the numerics of the WHOIS reply.
func TestWhoisHandlerBlocking(t *testing.T) {
	t.Parallel()
	const n = 200
	b := newBackend()
	fcs := make(chan *fakeConn, 1)
	delivered := make(chan struct{})
	b.whois = func(nick string) []string {
		fc := <-fcs
		half := make(chan struct{})
		go func() {
			defer close(delivered)
			for i := range n {
				if i == n/2 {
					close(half)
				}
				fc.c.Deliver(Delivery{From: "ann", Text: fmt.Sprintf("line %d of a conversation going on during the WHOIS", i)})
			}
		}()
		<-half // a backend busy fetching the profile
		return []string{"Profile of " + nick}
	}
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me")
	fcs <- fc
	c.send(t, "WHOIS tom")
	whois := readWhoisAmid(t, c, n, func(i int) string {
		return fmt.Sprintf("line %d of a conversation going on during the WHOIS", i)
	})
	<-delivered
	if want := []string{"311", "319", "312", "301", "320", "317", "318"}; !slices.Equal(whois, want) {
		t.Errorf("got WHOIS numerics %v, want %v", whois, want)
	}
}

// TestISupportNetworkEscaped: a network name with a space, a backslash or
// '=' goes in ISUPPORT escaped (\x20, \x5C, \x3D), one token still,
// rather than as a token the line cannot carry.
func TestISupportNetworkEscaped(t *testing.T) {
	t.Parallel()
	b := newBackend()
	cfg := testConfig()
	cfg.Network = `My Net\2=b`
	addr, _ := startServer(t, cfg, b)
	c := dial(t, addr)
	c.send(t, "NICK me", "USER u 0 * :R")
	var toks []string
	for _, m := range c.readUntil(t, irc.RPL_ENDOFMOTD) {
		if m.Command == irc.RPL_ISUPPORT {
			toks = append(toks, m.Params[1:len(m.Params)-1]...)
		}
	}
	if !slices.Contains(toks, `NETWORK=My\x20Net\x5C2\x3Db`) || slices.Contains(toks, "*") {
		t.Fatalf(`got ISUPPORT %q, want NETWORK=My\x20Net\x5C2\x3Db`, toks)
	}
}
