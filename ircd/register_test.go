package ircd

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

const allCaps302 = "away-notify batch cap-notify draft/multiline=max-bytes=4096,max-lines=100 echo-message extended-join labeled-response message-tags multi-prefix sasl=PLAIN server-time setname standard-replies userhost-in-names"

// capsWithoutValues is allCaps302 as CAP LS without 302 lists it.
var capsWithoutValues = strings.NewReplacer("=PLAIN", "", "=max-bytes=4096,max-lines=100", "").Replace(allCaps302)

func TestCapNegotiation(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	tests := []struct {
		name string
		send []string
		want []want
	}{
		{"ls 302", []string{"CAP LS 302"}, []want{w("CAP", "*", "LS", allCaps302)}},
		{"ls plain", []string{"CAP LS"}, []want{w("CAP", "*", "LS", capsWithoutValues)}},
		// A lower version (or none) after 302 gets a reply of its own
		// version, while 302 stays stored: cap-notify stays on.
		{"ls plain after 302", []string{"CAP LS 302", "CAP LS", "CAP LS 301", "CAP LIST"}, []want{
			w("CAP", "*", "LS", allCaps302),
			w("CAP", "*", "LS", capsWithoutValues),
			w("CAP", "*", "LS", capsWithoutValues),
			w("CAP", "*", "LIST", "cap-notify"),
		}},
		{"list after 302 has cap-notify", []string{"CAP LS 302", "CAP LIST"}, []want{w("CAP", nil...), w("CAP", "*", "LIST", "cap-notify")}},
		{"list plain is empty", []string{"CAP LS", "CAP LIST"}, []want{w("CAP", nil...), w("CAP", "*", "LIST", "")}},
		{"req ack", []string{"CAP REQ :server-time echo-message", "CAP LIST"}, []want{
			w("CAP", "*", "ACK", "server-time echo-message"), w("CAP", "*", "LIST", "echo-message server-time"),
		}},
		{"req is all or nothing", []string{"CAP REQ :server-time bogus", "CAP LIST"}, []want{
			w("CAP", "*", "NAK", "server-time bogus"), w("CAP", "*", "LIST", ""),
		}},
		{"req disable", []string{"CAP REQ :batch multi-prefix", "CAP REQ -batch", "CAP LIST"}, []want{
			w("CAP", "*", "ACK", "batch multi-prefix"), w("CAP", "*", "ACK", "-batch"), w("CAP", "*", "LIST", "multi-prefix"),
		}},
		{"cap-notify sticks with 302", []string{"CAP LS 302", "CAP REQ -cap-notify"}, []want{w("CAP", nil...), w("CAP", "*", "NAK", "-cap-notify")}},
		{"empty req", []string{"CAP REQ :"}, []want{w("CAP", "*", "NAK", "")}},
		{"req needs param", []string{"CAP REQ"}, []want{w("461", "*", "CAP", "?")}},
		{"bad subcommand", []string{"CAP FROB"}, []want{w("410", "*", "FROB", "Invalid CAP command")}},
		{"cap needs param", []string{"CAP"}, []want{w("461", "*", "CAP", "?")}},
		{"negotiation holds registration", []string{"CAP LS 302", "NICK me", "USER u 0 * :R"}, []want{w("CAP", nil...)}},
		{"before registration", []string{"JOIN &bitlbee", "PRIVMSG ann :hi", "FROB", "LUSERS"}, []want{
			w("451", "*", "You have not registered"), w("451", "*", "?"), w("451", "*", "?"), w("451", "*", "?"),
		}},
		{"nick errors before registration", []string{"NICK", "NICK -x"}, []want{w("431", "*", "?"), w("432", "*", "-x", "?")}},
		{"authenticate without cap", []string{"AUTHENTICATE PLAIN"}, []want{w("904", "*", "?")}},
		{"user with empty realname", []string{"USER u 0 * :", "USER u 0 *"}, []want{w("461", "*", "USER", "?"), w("461", "*", "USER", "?")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			c.send(t, tc.send...)
			checkMsgs(t, c.sync(t), tc.want)
		})
	}
}

func TestCapEndRegisters(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c := dial(t, addr)
	c.send(t, "CAP LS 302", "NICK me", "USER u 0 * :R", "CAP REQ :server-time")
	checkMsgs(t, c.sync(t), []want{w("CAP", nil...), w("CAP", "me", "ACK", "server-time")})
	c.send(t, "CAP END")
	expect(t, c, irc.RPL_WELCOME)
	c.readUntil(t, irc.RPL_ENDOFMOTD)
	fc := b.conn(t, c)
	if !fc.c.HasCap("server-time") || fc.c.HasCap("echo-message") || fc.c.Nick() != "me" {
		t.Fatalf("got caps server-time=%v echo-message=%v nick %q", fc.c.HasCap("server-time"), fc.c.HasCap("echo-message"), fc.c.Nick())
	}
	// CAP after registration uses the nick and does not block anything.
	c.sync(t)
	c.send(t, "CAP LIST")
	checkMsgs(t, c.sync(t), []want{w("CAP", "me", "LIST", "cap-notify server-time")})
}

func TestBackendRefuses(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c := dial(t, addr)
	c.send(t, "PASS wrong", "NICK me", "USER u 0 * :R")
	m := expect(t, c, irc.ERR_PASSWDMISMATCH)
	if m.Trailing() != "invalid password" {
		t.Fatalf("got 464 %q, want the backend's text", m.Trailing())
	}
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Access denied: invalid password)" {
		t.Fatalf("got ERROR %q", got)
	}
}

func saslPlain(account, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + account + "\x00" + pass))
}

// chunks splits an AUTHENTICATE payload into 400-byte lines, ending with
// "AUTHENTICATE +" when the last chunk is full.
func chunks(payload string) []string {
	var out []string
	for len(payload) >= saslChunk {
		out = append(out, "AUTHENTICATE "+payload[:saslChunk])
		payload = payload[saslChunk:]
	}
	if payload == "" {
		return append(out, "AUTHENTICATE +")
	}
	return append(out, "AUTHENTICATE "+payload)
}

func TestSASL(t *testing.T) {
	t.Parallel()
	longPass := "secret" + strings.Repeat("x", 500)
	b := newBackend()
	var askedEmpty atomic.Bool
	b.authErr = func(account, password string) error {
		if password == "" {
			askedEmpty.Store(true)
		}
		if password == "secret" || password == longPass || password == strings.Repeat("y", 293) {
			return nil
		}
		return fmt.Errorf("bad password")
	}
	addr, srv := startServer(t, testConfig(), b)
	_ = srv
	tests := []struct {
		name    string
		send    []string
		want    []want
		account string // "" = registration without an account
	}{
		{"success", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + saslPlain("alice", "secret")}, []want{
			w("AUTHENTICATE", "+"), w("900", "*", "*!*@127.0.0.1", "alice", "You are now logged in as alice"), w("903", "*", "SASL authentication successful"),
		}, "alice"},
		{"authzid must match", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("bob\x00alice\x00secret"))}, []want{
			w("AUTHENTICATE", "+"), w("904", "*", "?"),
		}, ""},
		{"failure", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + saslPlain("alice", "nope")}, []want{
			w("AUTHENTICATE", "+"), w("904", "*", "SASL authentication failed"),
		}, ""},
		{"retry after failure", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + saslPlain("alice", "nope"), "AUTHENTICATE PLAIN", "AUTHENTICATE " + saslPlain("alice", "secret")}, []want{
			w("AUTHENTICATE", "+"), w("904", nil...), w("AUTHENTICATE", "+"), w("900", nil...), w("903", nil...),
		}, "alice"},
		{"already authenticated", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + saslPlain("alice", "secret"), "AUTHENTICATE PLAIN"}, []want{
			w("AUTHENTICATE", "+"), w("900", nil...), w("903", nil...), w("907", "*", "?"),
		}, "alice"},
		{"abort", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE *"}, []want{w("AUTHENTICATE", "+"), w("906", "*", "?")}, ""},
		{"cap end aborts", []string{"AUTHENTICATE PLAIN", "CAP END"}, []want{w("AUTHENTICATE", "+"), w("906", "*", "?")}, ""},
		// Turning sasl off ends the exchange: the next AUTHENTICATE PLAIN,
		// with sasl on again, starts a new one rather than being its data.
		{"cap req -sasl aborts", []string{"AUTHENTICATE PLAIN", "CAP REQ -sasl", "CAP REQ sasl", "AUTHENTICATE PLAIN", "AUTHENTICATE " + saslPlain("alice", "secret")}, []want{
			w("AUTHENTICATE", "+"), w("CAP", "*", "ACK", "-sasl"), w("906", "*", "?"), w("CAP", "*", "ACK", "sasl"),
			w("AUTHENTICATE", "+"), w("900", nil...), w("903", nil...),
		}, "alice"},
		{"unknown mechanism", []string{"AUTHENTICATE EXTERNAL"}, []want{w("908", "*", "PLAIN", "?"), w("904", "*", "?")}, ""},
		{"bad base64", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE !!!"}, []want{w("AUTHENTICATE", "+"), w("904", "*", "?")}, ""},
		{"chunked", append([]string{"AUTHENTICATE PLAIN"}, chunks(saslPlain("alice", longPass))...), []want{
			w("AUTHENTICATE", "+"), w("900", nil...), w("903", nil...),
		}, "alice"},
		{"exact multiple of 400 ends with +", append([]string{"AUTHENTICATE PLAIN"}, chunks(saslPlain("alice", strings.Repeat("y", 293)))...), []want{
			w("AUTHENTICATE", "+"), w("900", nil...), w("903", nil...),
		}, "alice"},
		{"chunk too long", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + strings.Repeat("A", 401)}, []want{
			w("AUTHENTICATE", "+"), w("905", "*", "?"),
		}, ""},
		{"payload too long: one 905, the rest ignored", append([]string{"AUTHENTICATE PLAIN"}, chunks(saslPlain("alice", strings.Repeat("z", 3000)))...), []want{
			w("AUTHENTICATE", "+"), w("905", "*", "?"),
		}, ""},
		{"retry after a payload too long", append(append([]string{"AUTHENTICATE PLAIN"}, chunks(saslPlain("alice", strings.Repeat("z", 3000)))...),
			"AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "secret")), []want{
			w("AUTHENTICATE", "+"), w("905", "*", "?"), w("AUTHENTICATE", "+"), w("900", nil...), w("903", nil...),
		}, "alice"},
		{"abort while ignoring a payload too long", append(append([]string{"AUTHENTICATE PLAIN"}, chunks(saslPlain("alice", strings.Repeat("z", 3000)))[:6]...),
			"AUTHENTICATE *", "AUTHENTICATE PLAIN"), []want{
			w("AUTHENTICATE", "+"), w("905", "*", "?"), w("906", "*", "?"), w("AUTHENTICATE", "+"),
		}, ""},
		{"empty password", []string{"AUTHENTICATE PLAIN", "AUTHENTICATE " + saslPlain("alice", "")}, []want{
			w("AUTHENTICATE", "+"), w("904", "*", "?"),
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.name == "exact multiple of 400 ends with +" && len(saslPlain("alice", strings.Repeat("y", 293)))%saslChunk != 0 {
				t.Fatalf("payload length %d is not a multiple of 400", len(saslPlain("alice", strings.Repeat("y", 293))))
			}
			c := dial(t, addr)
			c.send(t, "CAP LS 302", "CAP REQ :sasl")
			c.sync(t)
			c.send(t, tc.send...)
			checkMsgs(t, c.sync(t), tc.want)
			c.send(t, "CAP END", "NICK me", "USER u 0 * :R")
			c.readUntil(t, irc.RPL_ENDOFMOTD)
			if fc := b.conn(t, c); fc.reg.Account != tc.account {
				t.Fatalf("got account %q, want %q", fc.reg.Account, tc.account)
			}
		})
	}
	t.Cleanup(func() {
		if askedEmpty.Load() {
			t.Error("the backend was asked about an empty password")
		}
	})
}

func TestPasswordsNotLogged(t *testing.T) {
	t.Parallel()
	b := newBackend()
	log, hook := testLog()
	srv := NewServer(testConfig(), b, log)
	addr, _ := startWith(t, srv)
	c := dial(t, addr)
	c.send(t, "CAP REQ :sasl", "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "hunter2"))
	c.readUntil(t, irc.ERR_SASLFAIL)
	c.send(t, "PASS wrong", "CAP END", "NICK me", "USER u 0 * :R")
	c.expectClosed(t)
	if len(hook.AllEntries()) == 0 {
		t.Fatal("got no log entries, want the failures logged")
	}
	for _, e := range hook.AllEntries() {
		line, _ := e.String()
		if strings.Contains(line, "hunter2") || strings.Contains(line, saslPlain("alice", "hunter2")) {
			t.Fatalf("log entry %q holds the password", line)
		}
	}
}

func TestRegistrationTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RegistrationTimeout = 200 * time.Millisecond
	addr, _ := startServer(t, cfg, newBackend())
	c := dial(t, addr)
	c.send(t, "NICK me")
	if got := c.expectClosed(t); got != "Closing link: 127.0.0.1 (Registration timed out)" {
		t.Fatalf("got ERROR %q", got)
	}
}

func TestPingTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.PingInterval = 100 * time.Millisecond
	cfg.PingTimeout = 500 * time.Millisecond
	b := newBackend()
	addr, _ := startServer(t, cfg, b)

	alive, _, _ := register(t, addr, b, "me")
	for range 3 { // answered pings keep the connection up
		m := expect(t, alive, "PING")
		if m.Trailing() != testServer {
			t.Fatalf("got PING %q, want %s", m.Trailing(), testServer)
		}
		alive.send(t, "PONG :"+testServer)
	}

	dead, fc, _ := register(t, addr, b, "me")
	expect(t, dead, "PING")
	if got := dead.expectClosed(t); !strings.HasPrefix(got, "Closing link: 127.0.0.1 (Ping timeout: ") {
		t.Fatalf("got ERROR %q, want a ping timeout", got)
	}
	if got := fc.waitClosed(t); !strings.HasPrefix(got, "Ping timeout") {
		t.Fatalf("got Closed(%q), want a ping timeout", got)
	}
}

func TestFloodThrottles(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.FloodRate = 50
	cfg.FloodBurst = 2
	b := newBackend()
	addr, _ := startServer(t, cfg, b)
	c, _, _ := register(t, addr, b, "me")
	const n = 20
	start := time.Now()
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("PING %d", i))
	}
	c.send(t, lines...)
	var got []string
	for range n {
		got = append(got, expect(t, c, "PONG").Trailing())
	}
	if !slices.Equal(got, lines2tokens(n)) {
		t.Fatalf("got PONGs %v, want all %d in order", got, n)
	}
	// The registration lines and the sync used the burst; 20 lines at 50/s
	// take at least ~0.3 s.
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("got %v for %d lines, want throttling to >= 300ms", el, n)
	}
}

func lines2tokens(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(i)
	}
	return out
}

// TestUserClientName: a client's name after a '/' in USER's user name
// reaches the backend in Registration.User; the hostmask shows the user
// name alone.
func TestUserClientName(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c := dial(t, addr)
	c.send(t, "NICK me", "USER ivy/phone 0 * :R")
	c.readUntil(t, irc.RPL_ENDOFMOTD, irc.ERR_NOMOTD)
	c.send(t, "WHOIS me")
	ms := c.readUntil(t, irc.RPL_WHOISUSER)
	if m := ms[len(ms)-1]; m.Param(2) != "ivy" {
		t.Errorf("WHOIS user name: got %q, want ivy", m.Param(2))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := b.regs[len(b.regs)-1].User; got != "ivy/phone" {
		t.Errorf("Registration.User: got %q, want ivy/phone", got)
	}
}

// TestSASLAlreadyAfterRegistration: a client that logged in with SASL and
// then registered gets 907 for another AUTHENTICATE, as sasl-3.1 requires
// (462 only for one that never logged in: reregistering is not offered).
func TestSASLAlreadyAfterRegistration(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c := dial(t, addr)
	c.send(t, "CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("alice", "secret"))
	c.readUntil(t, irc.RPL_SASLSUCCESS)
	c.send(t, "CAP END", "NICK me", "USER u 0 * :R")
	c.readUntil(t, irc.RPL_ENDOFMOTD)
	b.conn(t, c)
	c.sync(t)
	c.send(t, "AUTHENTICATE PLAIN")
	checkMsgs(t, c.sync(t), []want{w(irc.ERR_SASLALREADY, "me", "You have already authenticated using SASL")})
}

// TestSASLAbortedByRegistration: registration that completes while a SASL
// exchange is under way (CAP END came before it, NICK and USER after)
// aborts the exchange with 906 before the welcome, as sasl-3.1 asks; a
// CAP END after registration is ignored.
func TestSASLAbortedByRegistration(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c := dial(t, addr)
	c.send(t, "CAP LS 302", "CAP REQ :sasl", "CAP END", "AUTHENTICATE PLAIN")
	checkMsgs(t, c.sync(t), []want{w("CAP", nil...), w("CAP", "*", "ACK", "sasl"), w("AUTHENTICATE", "+")})
	c.send(t, "NICK me", "USER u 0 * :R")
	checkMsg(t, c.read(t), w(irc.ERR_SASLABORTED, "me", "SASL authentication aborted"))
	expect(t, c, irc.RPL_WELCOME)
	c.readUntil(t, irc.RPL_ENDOFMOTD)
	b.conn(t, c)
	c.sync(t)
	c.send(t, "CAP END")
	checkMsgs(t, c.sync(t), nil)
}

// TestCapRepliesSplit: CAP LS and LIST replies too long for one line (a
// long server name, a nick of NickLen, every capability offered and
// enabled) come in as many lines as it takes, each within 512 bytes, every
// capability whole and listed once; a client of CAP version 302 sees "*"
// before the list on every line but the last, an older one plain lines.
func TestCapRepliesSplit(t *testing.T) {
	t.Parallel()
	offered := append(strings.Fields(allCaps302), historyCaps...)
	slices.Sort(offered)
	var names []string // without values
	for _, n := range offered {
		n, _, _ = strings.Cut(n, "=")
		names = append(names, n)
	}
	nick := "n" + strings.Repeat("x", NickLen-1)
	for _, tc := range []struct {
		name, server string
	}{
		{"longest host name", strings.Repeat("s.", 126) + "t"}, // 253 bytes, the most DNS allows
		{"longer server name", strings.Repeat("s", 300)},       // every reply takes two lines
	} {
		for _, v := range []string{"302", ""} {
			t.Run(tc.name+" "+v, func(t *testing.T) {
				t.Parallel()
				cfg := testConfig()
				cfg.ServerName, cfg.History = tc.server, true
				addr, _ := startServer(t, cfg, newBackend())
				c := dial(t, addr)
				c.keep = true
				// lists checks the lines of one reply and returns the
				// capabilities they list.
				lists := func(sub string) []string {
					t.Helper()
					c.raw = nil
					got := c.sync(t)
					for _, l := range c.raw {
						if l = strings.TrimRight(l, "\r\n"); strings.Contains(l, " CAP ") && len(l)+2 > 512 {
							t.Errorf("line of %d bytes: …%q", len(l)+2, l[len(l)-80:])
						}
					}
					var out []string
					for i, m := range got {
						last := i == len(got)-1
						wantParams := 3
						if v == "302" && !last {
							wantParams = 4
						}
						if m.Command != "CAP" || len(m.Params) != wantParams || m.Param(0) != nick || m.Param(1) != sub ||
							(wantParams == 4 && m.Param(2) != "*") {
							t.Fatalf("line %d of %d: got %q, want CAP %s %s with \"*\" before the list: %v", i+1, len(got), m, nick, sub, v == "302" && !last)
						}
						out = append(out, strings.Fields(m.Trailing())...)
					}
					return out
				}
				c.send(t, "NICK "+nick, "CAP LS "+v)
				want := names
				if v == "302" {
					want = offered
				}
				if got := lists("LS"); !slices.Equal(got, want) {
					t.Errorf("LS: got %q, want %q", got, want)
				}
				c.send(t, "CAP REQ :"+strings.Join(names, " "))
				c.sync(t)
				c.send(t, "CAP LIST")
				if got := lists("LIST"); !slices.Equal(got, names) {
					t.Errorf("LIST: got %q, want %q", got, names)
				}
			})
		}
	}
}

// TestCapLines: capLines puts as many whole names on a line as fit with
// the continuation's "*", in order, a name too long for any line alone,
// and no names in one empty list.
func TestCapLines(t *testing.T) {
	t.Parallel()
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprintf("example.org/cap-%03d", i))
	}
	const fixed = 200
	room := maxLineBody - fixed - len(" * :")
	lists := capLines(names, fixed)
	if len(lists) < 2 {
		t.Fatalf("got %d lists, want several", len(lists))
	}
	var all []string
	for i, l := range lists {
		if len(l) > room {
			t.Errorf("list %d: got %d bytes, want at most %d", i, len(l), room)
		}
		ns := strings.Fields(l)
		if i < len(lists)-1 && len(l)+len(" ")+len(names[len(all)+len(ns)]) <= room {
			t.Errorf("list %d: got %d bytes, want the next name on it too", i, len(l))
		}
		all = append(all, ns...)
	}
	if !slices.Equal(all, names) {
		t.Errorf("got %q, want %q", all, names)
	}

	huge := strings.Repeat("h", room+1)
	if got := capLines([]string{"a", huge, "b"}, fixed); !slices.Equal(got, []string{"a", huge, "b"}) {
		t.Errorf("a name longer than a line: got %q, want it alone", got)
	}
	if got := capLines(nil, fixed); !slices.Equal(got, []string{""}) {
		t.Errorf("no names: got %q, want one empty list", got)
	}
}

// TestUserRealNameBound: the real name USER gives is cut to NAMELEN
// (RealNameLen, as ISUPPORT advertises) on a character boundary, as a
// virtual user's is: the backend, WHOIS and WHO see the cut name.
func TestUserRealNameBound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, real, want string
	}{
		{"ASCII", strings.Repeat("x", 450), strings.Repeat("x", RealNameLen)},
		{"two-byte characters", "y" + strings.Repeat("é", 220), "y" + strings.Repeat("é", (RealNameLen-1)/2)},
		{"at the limit", strings.Repeat("z", RealNameLen), strings.Repeat("z", RealNameLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend()
			addr, _ := startServer(t, testConfig(), b)
			c := dial(t, addr)
			c.send(t, "NICK me", "USER u 0 * :"+tc.real)
			c.readUntil(t, irc.RPL_ENDOFMOTD, irc.ERR_NOMOTD)
			b.conn(t, c)
			b.mu.Lock()
			got := b.regs[len(b.regs)-1].RealName
			b.mu.Unlock()
			if got != tc.want {
				t.Errorf("Registration.RealName: got %d bytes, want %d", len(got), len(tc.want))
			}
			c.send(t, "WHOIS me")
			ms := c.readUntil(t, irc.RPL_WHOISUSER)
			if got := ms[len(ms)-1].Trailing(); got != tc.want {
				t.Errorf("WHOIS: got %d bytes %q…, want %d", len(got), got[:min(len(got), 20)], len(tc.want))
			}
			c.send(t, "WHO me")
			ms = c.readUntil(t, irc.RPL_WHOREPLY)
			if got := ms[len(ms)-1].Trailing(); got != "0 "+tc.want {
				t.Errorf("WHO: got %d bytes, want %d", len(got), len("0 "+tc.want))
			}
			c.sync(t)
		})
	}
}

// TestCapAnswerSplit: an ACK or NAK too long for one line (a request of
// most of a line, a nick of NickLen) is sent over as many lines as it
// takes, each within 512 bytes and of whole names, the names in the order
// of the request; no "*" on any line, which the spec defines for LS and
// LIST only. The request is accepted or refused whole.
func TestCapAnswerSplit(t *testing.T) {
	t.Parallel()
	var names []string
	for _, n := range strings.Fields(capsWithoutValues) {
		if n != "sasl" { // ends an exchange: not of interest here
			names = append(names, n)
		}
	}
	var req []string
	for i := 0; len(strings.Join(req, " "))+1+len(names[i%len(names)]) <= 495; i++ {
		req = append(req, names[i%len(names)])
	}
	nick := "n" + strings.Repeat("x", NickLen-1)
	for _, tc := range []struct {
		name, sub string
		req       []string
	}{
		{"ACK", "ACK", req},
		{"NAK", "NAK", append(slices.Clone(req[:len(req)-1]), "example.org/none")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := startServer(t, testConfig(), newBackend())
			c := dial(t, addr)
			c.keep = true
			c.send(t, "NICK "+nick, "CAP LS 302")
			c.sync(t)
			c.raw = nil
			c.send(t, "CAP REQ :"+strings.Join(tc.req, " "))
			got := c.sync(t)
			for _, l := range c.raw {
				if l = strings.TrimRight(l, "\r\n"); len(l)+2 > 512 {
					t.Errorf("line of %d bytes: …%q", len(l)+2, l[len(l)-80:])
				}
			}
			if len(got) < 2 {
				t.Errorf("got %d lines, want several", len(got))
			}
			var listed []string
			for i, m := range got {
				if m.Command != "CAP" || len(m.Params) != 3 || m.Param(0) != nick || m.Param(1) != tc.sub {
					t.Fatalf("line %d: got %q, want CAP %s %s and a list", i+1, m, nick, tc.sub)
				}
				listed = append(listed, strings.Fields(m.Trailing())...)
			}
			if !slices.Equal(listed, tc.req) {
				t.Errorf("got names %q, want %q", listed, tc.req)
			}
			want := "cap-notify" // refused: only what LS 302 enabled
			if tc.sub == "ACK" {
				want = strings.Join(names, " ")
			}
			c.send(t, "CAP LIST")
			if m := expect(t, c, "CAP"); m.Trailing() != want {
				t.Errorf("LIST: got %q, want %q", m.Trailing(), want)
			}
		})
	}
}

// TestCapNakOverlongName: a name too long for any line alone (no
// capability is; it can only be refused) is the one name a NAK cuts, on a
// line of its own, within 512 bytes, keeping at least the first 100
// characters the spec wants of a NAK's list; the names before it go
// whole, and nothing changes.
func TestCapNakOverlongName(t *testing.T) {
	t.Parallel()
	addr, _ := startServer(t, testConfig(), newBackend())
	c := dial(t, addr)
	c.keep = true
	nick := "n" + strings.Repeat("x", NickLen-1)
	c.send(t, "NICK "+nick, "CAP LS 302")
	c.sync(t)
	c.raw = nil
	long := "example.org/" + strings.Repeat("y", 470)
	c.send(t, "CAP REQ :server-time "+long)
	got := c.sync(t)
	for _, l := range c.raw {
		if l = strings.TrimRight(l, "\r\n"); len(l)+2 > 512 {
			t.Errorf("line of %d bytes: …%q", len(l)+2, l[len(l)-80:])
		}
	}
	if len(got) != 2 {
		t.Fatalf("got %q, want two NAK lines", msgStrings(got))
	}
	for i, m := range got {
		if m.Command != "CAP" || len(m.Params) != 3 || m.Param(0) != nick || m.Param(1) != "NAK" {
			t.Fatalf("line %d: got %q, want CAP %s NAK and a list", i+1, m, nick)
		}
	}
	if l := got[0].Trailing(); l != "server-time" {
		t.Errorf("first NAK: got %q, want %q", l, "server-time")
	}
	if l := got[1].Trailing(); len(l) < 100 || !strings.HasPrefix(long, l) {
		t.Errorf("second NAK: got %d bytes %.20q…, want at least 100 of the long name", len(l), l)
	}
	c.send(t, "CAP LIST")
	if m := expect(t, c, "CAP"); m.Trailing() != "cap-notify" {
		t.Errorf("LIST: got %q, want %q", m.Trailing(), "cap-notify")
	}
}

// TestHasCapTakesNoLock: HasCap answers while the client's lock is held
// (as it is while a line is run), and follows CAP REQ and its removals.
func TestHasCapTakesNoLock(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	hasCap := func(name string) bool {
		t.Helper()
		got := make(chan bool, 1)
		c.mu.Lock()
		defer c.mu.Unlock()
		go func() { got <- c.HasCap(name) }()
		select {
		case on := <-got:
			return on
		case <-time.After(10 * time.Second):
			t.Fatalf("HasCap(%q) waited for the client's lock", name)
			return false
		}
	}
	if hasCap("server-time") {
		t.Fatal("server-time before CAP REQ: got true, want false")
	}
	c.handleLine([]byte("CAP REQ :server-time echo-message\r\n"))
	if !hasCap("server-time") || !hasCap("echo-message") || hasCap("message-tags") {
		t.Errorf("after CAP REQ :server-time echo-message: got server-time %v, echo-message %v, message-tags %v; want true, true, false",
			hasCap("server-time"), hasCap("echo-message"), hasCap("message-tags"))
	}
	c.handleLine([]byte("CAP REQ :-server-time\r\n"))
	if hasCap("server-time") || !hasCap("echo-message") {
		t.Errorf("after CAP REQ :-server-time: got server-time %v, echo-message %v; want false, true", hasCap("server-time"), hasCap("echo-message"))
	}
	c.handleLine([]byte("CAP LS 302\r\n"))
	if !hasCap("cap-notify") {
		t.Error("after CAP LS 302: cap-notify false, want true")
	}
}
