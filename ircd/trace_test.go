package ircd

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"gopkg.in/irc.v4"
)

// TestMaskLine: ircd's own masks hide PASS, AUTHENTICATE payloads, OPER
// passwords and commands to NickServ, whatever the case, spacing, tags or
// prefix of the line, keep the rest, and leave other lines (and the
// message given) as they are.
func TestMaskLine(t *testing.T) {
	for _, tc := range []struct {
		line       string
		wantCmd    string
		wantParams []string // nil: the line is returned as it is
	}{
		{"PASS hunter2", "PASS", []string{Masked}},
		{"pass hunter2", "PASS", []string{Masked}},
		{"PASS :two words", "PASS", []string{Masked}},
		{"PASS   spaced   out", "PASS", []string{Masked}},
		{"PASS :", "PASS", []string{Masked}},
		{"@label=x :alice!a@h PASS server:own", "PASS", []string{Masked}},
		{"PASS", "PASS", nil},
		{"AUTHENTICATE PLAIN", "AUTHENTICATE", nil},
		{"authenticate plain", "AUTHENTICATE", nil},
		{"AUTHENTICATE SCRAM-SHA-256", "AUTHENTICATE", nil},
		{"AUTHENTICATE +", "AUTHENTICATE", nil},
		{"AUTHENTICATE *", "AUTHENTICATE", nil},
		{"AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")), "AUTHENTICATE", []string{Masked}},
		{"AUTHENTICATE :AGFsaWNlAHB3", "AUTHENTICATE", []string{Masked}},
		{"AUTHENTICATE ++", "AUTHENTICATE", []string{Masked}},
		{"AUTHENTICATE PLAIN AGFsaWNlAHB3", "AUTHENTICATE", []string{"PLAIN", Masked}},
		{"AUTHENTICATE AGFsaWNl AHB3", "AUTHENTICATE", []string{Masked}},
		{"OPER admin hunter2", "OPER", []string{"admin", Masked}},
		{"OPER admin", "OPER", nil},
		{"NICKSERV IDENTIFY hunter2", "NICKSERV", []string{"IDENTIFY " + Masked}},
		{"ns :identify alice hunter2", "NS", []string{"identify " + Masked}},
		{"PRIVMSG NickServ :IDENTIFY hunter2", "PRIVMSG", []string{"NickServ", "IDENTIFY " + Masked}},
		{"PRIVMSG nickserv IDENTIFY hunter2", "PRIVMSG", []string{"nickserv", "IDENTIFY " + Masked}},
		{"NOTICE tom,NickServ@services.example :identify hunter2", "NOTICE", []string{"tom,NickServ@services.example", "identify " + Masked}},
		{"PRIVMSG NickServ :help", "PRIVMSG", nil},
		{"PRIVMSG tom :PASS hunter2", "PRIVMSG", nil},
		{"NICK alice", "NICK", nil},
		{"@time=x :irc.test 001 alice :Welcome", "001", nil},
	} {
		t.Run(tc.line, func(t *testing.T) {
			m := irc.MustParseMessage(tc.line)
			before := m.Copy()
			got := maskLine(m)
			if m.Command != before.Command || !slices.Equal(m.Params, before.Params) || !maps.Equal(m.Tags, before.Tags) || *m.Prefix != *before.Prefix {
				t.Fatalf("maskLine modified its argument: got %q, was %q", m, before)
			}
			if tc.wantParams == nil {
				if got != m {
					t.Fatalf("got %q, want the line unchanged", got)
				}
				return
			}
			if got.Command != tc.wantCmd || !slices.Equal(got.Params, tc.wantParams) {
				t.Fatalf("got %s %q, want %s %q", got.Command, got.Params, tc.wantCmd, tc.wantParams)
			}
			if !maps.Equal(got.Tags, m.Tags) || got.Prefix.String() != m.Prefix.String() {
				t.Errorf("got tags %q prefix %q, want them kept: %q %q", got.Tags, got.Prefix, m.Tags, m.Prefix)
			}
		})
	}
}

// traceEntries returns the trace lines of the log, failing if any entry
// (fields included) holds one of secrets.
func traceEntries(t *testing.T, hook *logtest.Hook, secrets ...string) []*logrus.Entry {
	t.Helper()
	var out []*logrus.Entry
	for _, e := range hook.AllEntries() {
		line, err := e.String()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log line %q holds the secret %q", line, s)
			}
		}
		if strings.HasPrefix(e.Message, "irc ") {
			out = append(out, e)
		}
	}
	return out
}

// findTrace returns the first trace entry with message msg, or nil.
func findTrace(es []*logrus.Entry, msg string) *logrus.Entry {
	for _, e := range es {
		if e.Message == msg {
			return e
		}
	}
	return nil
}

// fakeRedact masks the word after "identify " in PRIVMSGs, as a backend
// would its own command's password, and counts its calls.
type fakeRedact struct{ calls atomic.Int64 }

func (f *fakeRedact) redact(m *irc.Message) *irc.Message {
	f.calls.Add(1)
	if m.Command != "PRIVMSG" || len(m.Params) < 2 {
		return m
	}
	cmd, _, ok := strings.Cut(m.Params[1], " ")
	if !ok || cmd != "identify" {
		return m
	}
	out := *m
	out.Params = []string{m.Params[0], cmd + " " + Masked}
	return &out
}

// traceServer runs a server with TraceLines on and fr as its Redact,
// logging at level.
func traceServer(t *testing.T, b *fakeBackend, fr *fakeRedact, level logrus.Level) (string, *logtest.Hook) {
	t.Helper()
	cfg := testConfig()
	cfg.TraceLines = true
	cfg.Redact = fr.redact
	log, hook := testLog()
	log.Logger.SetLevel(level)
	addr, _ := startWith(t, NewServer(cfg, b, log))
	return addr, hook
}

// TestTraceLines: a traced connection logs the lines it reads and writes,
// before and after registration, named by its connection fields and, once
// registered, its nick; PASS and the SASL payload are masked; the backend's
// Redact masks the client's lines and their echoes but is not given what
// others say, whose texts show as their sizes.
func TestTraceLines(t *testing.T) {
	const (
		passSecret = "pass-Plugh42"
		saslSecret = "sasl-Xyzzy42"
		cmdSecret  = "cmd-Frotz42"
	)
	b := newBackend()
	b.authErr = func(_, password string) error {
		if password != saslSecret {
			t.Errorf("SASL password: got %q, want %q", password, saslSecret)
		}
		return nil
	}
	fr := &fakeRedact{}
	addr, hook := traceServer(t, b, fr, logrus.DebugLevel)
	payload := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + saslSecret))

	c := dial(t, addr)
	c.send(t, "CAP LS 302", "CAP REQ :sasl echo-message", "PASS "+passSecret, "AUTHENTICATE PLAIN")
	c.readUntil(t, "AUTHENTICATE")
	c.send(t, "AUTHENTICATE "+payload)
	c.readUntil(t, irc.RPL_SASLSUCCESS)
	c.send(t, "CAP END", "NICK alice", "USER u 0 * :Real Name")
	c.readUntil(t, irc.RPL_ENDOFMOTD)
	fc := b.conn(t, c)
	c.sync(t)
	c.send(t, "PRIVMSG &bitlbee :identify "+cmdSecret)
	expect(t, c, "PRIVMSG") // the echo
	fc.c.Deliver(Delivery{From: "tom", Text: "identify tom-words"})
	if m := expect(t, c, "PRIVMSG"); m.Trailing() != "identify tom-words" {
		t.Fatalf("got %q, want tom's message", m)
	}
	// A buddy's lines are queued encoded (emitLine): traced all the same.
	if err := fc.c.AddUser(User{Nick: "bud", User: "bud", Host: "msim.1"}); err != nil {
		t.Fatal(err)
	}
	fc.c.JoinUser("&bitlbee", "bud", true)
	expect(t, c, "JOIN")
	expect(t, c, "MODE")
	c.sync(t)

	es := traceEntries(t, hook, passSecret, saslSecret, payload, cmdSecret)
	for _, tc := range []struct {
		msg  string
		nick string // "" = no nick field
	}{
		{"irc <- CAP LS 302", ""},
		{"irc <- PASS " + Masked, ""},
		{"irc <- AUTHENTICATE PLAIN", ""},
		{"irc -> :irc.test AUTHENTICATE +", ""},
		{"irc <- AUTHENTICATE " + Masked, ""},
		{"irc <- NICK alice", ""},
		{"irc -> :irc.test 001 alice :Welcome to the TestNet IRC Network alice!u@127.0.0.1", "alice"},
		// A command to the gateway is shown as its size too (masked first).
		{fmt.Sprintf("irc <- PRIVMSG &bitlbee :<%d bytes>", len("identify "+Masked)), "alice"},
		{fmt.Sprintf("irc -> :alice!u@127.0.0.1 PRIVMSG &bitlbee :<%d bytes>", len("identify "+Masked)), "alice"},
		{"irc -> :tom!tom@msim PRIVMSG alice :<18 bytes>", "alice"},
		{"irc -> :bud!bud@msim.1 JOIN &bitlbee", "alice"},
		{"irc -> :irc.test MODE &bitlbee +v bud", "alice"},
	} {
		e := findTrace(es, tc.msg)
		if e == nil {
			var got []string
			for _, e := range es {
				got = append(got, e.Message)
			}
			t.Fatalf("no trace line %q; got %q", tc.msg, got)
		}
		if e.Level != logrus.DebugLevel || e.Data["conn"] == nil || e.Data["remote"] != c.nc.LocalAddr().String() {
			t.Errorf("%q: got level %s fields %v, want debug with conn and remote %s", tc.msg, e.Level, e.Data, c.nc.LocalAddr())
		}
		if got, _ := e.Data["nick"].(string); got != tc.nick {
			t.Errorf("%q: got nick field %q, want %q", tc.msg, got, tc.nick)
		}
	}
}

// TestTraceRejectedLines: lines ircd rejects (too long, invalid UTF-8, a
// NUL byte, one that overflows the read buffer) are traced too, masked.
func TestTraceRejectedLines(t *testing.T) {
	const secret = "rejected-Gnusto42"
	for _, tc := range []struct {
		name   string
		line   string
		closes bool
	}{
		{"too long", "PASS " + secret + " " + strings.Repeat("x", 600), false},
		{"invalid UTF-8", "PASS " + secret + " \xff", false},
		{"NUL byte", "PASS " + secret + "\x00", true},
		{"overflowing the read buffer", "PASS " + secret + " " + strings.Repeat("x", 512+maxTagsLen), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, hook := traceServer(t, newBackend(), &fakeRedact{}, logrus.DebugLevel)
			c := dial(t, addr)
			c.send(t, tc.line)
			if tc.closes {
				c.expectClosed(t)
			} else {
				c.sync(t)
			}
			es := traceEntries(t, hook, secret)
			if findTrace(es, "irc <- PASS "+Masked) == nil {
				t.Errorf("no trace line %q", "irc <- PASS "+Masked)
			}
		})
	}
}

// TestTraceOff: without TraceLines, or with the logger above debug level,
// no line is traced, and none is given to Redact.
func TestTraceOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		trace bool
		level logrus.Level
	}{
		{"TraceLines off", false, logrus.DebugLevel},
		{"info level", true, logrus.InfoLevel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend()
			fr := &fakeRedact{}
			cfg := testConfig()
			cfg.TraceLines = tc.trace
			cfg.Redact = fr.redact
			log, hook := testLog()
			log.Logger.SetLevel(tc.level)
			addr, _ := startWith(t, NewServer(cfg, b, log))
			c, _, _ := register(t, addr, b, "alice", "echo-message")
			c.send(t, "PRIVMSG &bitlbee :identify x")
			c.sync(t)
			if es := traceEntries(t, hook); len(es) > 0 {
				t.Errorf("got %d trace lines (first %q), want none", len(es), es[0].Message)
			}
			if n := fr.calls.Load(); n != 0 {
				t.Errorf("Redact called %d times, want 0", n)
			}
		})
	}
}

// TestTraceHidesTexts: the trace shows the text of a PRIVMSG or NOTICE, in
// either direction and echoed, as its size, with its tags, prefix and
// target, unless a mask changed it (a command whose password was masked).
func TestTraceHidesTexts(t *testing.T) {
	const (
		im     = "meet me at the old mill"
		notice = "the old mill at noon"
		action = "\x01ACTION waves from the old mill\x01"
		words  = "old mill"
	)
	b := newBackend()
	addr, hook := traceServer(t, b, &fakeRedact{}, logrus.DebugLevel)
	c, fc, _ := register(t, addr, b, "alice", "echo-message")
	if err := fc.c.AddUser(User{Nick: "bud", User: "bud", Host: "msim.1"}); err != nil {
		t.Fatal(err)
	}
	c.send(t, "PRIVMSG bud :"+im, "NOTICE bud :"+notice, "PRIVMSG bud :"+action, "PRIVMSG bud old mill", "PRIVMSG &bitlbee :identify pw")
	c.sync(t) // the echoes
	fc.c.Deliver(Delivery{From: "bud", Text: im})
	expect(t, c, "PRIVMSG")
	c.sync(t)

	es := traceEntries(t, hook, words)
	var got []string
	for _, e := range es {
		got = append(got, e.Message)
	}
	for _, want := range []string{
		"irc <- PRIVMSG bud :<23 bytes>",
		"irc -> :alice!u@127.0.0.1 PRIVMSG bud :<23 bytes>", // echo-message
		"irc <- NOTICE bud :<20 bytes>",
		"irc -> :alice!u@127.0.0.1 NOTICE bud :<20 bytes>",
		fmt.Sprintf("irc <- PRIVMSG bud :<%d bytes>", len(action)),                  // CTCP ACTION
		"irc <- PRIVMSG bud :<8 bytes>",                                             // text in two parameters
		fmt.Sprintf("irc <- PRIVMSG &bitlbee :<%d bytes>", len("identify "+Masked)), // masked, then its size
		"irc -> :bud!bud@msim.1 PRIVMSG alice :<23 bytes>",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no trace line %q; got %q", want, got)
		}
	}
}
