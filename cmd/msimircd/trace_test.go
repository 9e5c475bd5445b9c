package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"gopkg.in/irc.v4"
)

// lockedBuffer is a log output the test reads once the gateway has
// stopped.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// traceClient is an IRC connection to the gateway that reads until what it
// waits for.
type traceClient struct {
	*ircSession
}

func dialTrace(t *testing.T, addr, nick string) *traceClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := irc.NewReader(nc)
	s := &ircSession{nc: nc, w: irc.NewWriter(nc)}
	s.wait = func(pred func(*irc.Message) bool) *irc.Message {
		t.Helper()
		for {
			m, err := r.ReadMessage()
			if err != nil {
				t.Fatalf("%s: read: %v", nick, err)
			}
			if pred(m) {
				return m
			}
		}
	}
	return &traceClient{s}
}

func (c *traceClient) send(lines ...string) {
	for _, l := range lines {
		_ = c.w.Write(l)
	}
}

func isCommand(cmd string) func(*irc.Message) bool {
	return func(m *irc.Message) bool { return m.Command == cmd }
}

// TestDebugTraceHidesSecrets: msimircd at debug level traces the IRC lines
// of a client in both directions, and none of the passwords the client
// gives (PASS, SASL PLAIN, register, identify, drop, account add, account
// set password) reaches the log, in clear or in base64, whether as typed
// or echoed back (echo-message).
func TestDebugTraceHidesSecrets(t *testing.T) {
	const (
		passPW = "PassWord-Qx7Trace1"
		saslPW = "SaslWord-Qx7Trace2"
		regPW  = "RegWord-Qx7Trace3"
		palPW  = "PalWord-Qx7Trace4"
		newPW  = "NewWord-Qx7Trace5"
	)
	cfg := Defaults()
	cfg.Store.StateDir = t.TempDir()
	cfg.MSIM.Accounts = []string{"pal@example.com:" + palPW}
	cfg.IRC.Listen = []string{"127.0.0.1:0"}
	cfg.Log.Level = "debug"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	l := logrus.New()
	l.SetOutput(out)
	l.SetFormatter(&logrus.JSONFormatter{})
	l.SetLevel(logrus.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logrus.NewEntry(l), ready) }()
	var at listening
	select {
	case at = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	payload := base64.StdEncoding.EncodeToString([]byte("\x00tia\x00" + saslPW))

	tia := dialTrace(t, at.irc[0], "tia")
	tia.send("CAP LS 302", "CAP REQ :sasl echo-message", "PASS "+passPW, "NICK tia", "USER tia 0 * :Tia", "AUTHENTICATE PLAIN")
	tia.wait(isCommand("AUTHENTICATE"))
	tia.send("AUTHENTICATE " + payload)
	tia.wait(isCommand("903"))
	tia.send("CAP END")
	tia.wait(isCommand("001"))
	tia.loggedIn("&tia")
	tia.send("PRIVMSG root :register " + regPW)
	tia.wait(rootSays("is registered"))
	tia.loggedIn("&tia")
	tia.send("PRIVMSG root :account add msim pal@example.com " + palPW)
	tia.wait(rootSays("Account 1 added"))
	tia.loggedIn("&pal")
	tia.send("PRIVMSG &pal :root: account 1 set password " + newPW)
	tia.wait(rootSays("password = ********"))
	tia.send("QUIT :bye")
	tia.wait(isCommand("ERROR"))

	again := dialTrace(t, at.irc[0], "tia")
	again.send("NICK tia", "USER tia 0 * :Tia")
	again.wait(rootSays("identify"))
	again.send("PRIVMSG root :identify " + regPW)
	again.wait(rootSays("Password accepted"))
	again.send("PRIVMSG root :drop " + regPW)
	again.wait(rootSays("Type yes"))
	again.send("QUIT :bye")
	again.wait(isCommand("ERROR"))

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	log := out.Bytes()
	var secrets []string
	for _, s := range []string{passPW, saslPW, regPW, palPW, newPW} {
		secrets = append(secrets, s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)))
	}
	secrets = append(secrets, payload)
	var traced []string
	for line := range bytes.Lines(log) {
		for _, s := range secrets {
			if bytes.Contains(line, []byte(s)) {
				t.Errorf("the log shows the secret %q: %s", s, line)
			}
		}
		var e struct{ Msg, Nick string }
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(e.Msg, "irc ") {
			traced = append(traced, e.Msg)
		}
	}
	for _, want := range []string{
		"irc <- PASS ***",
		"irc <- AUTHENTICATE PLAIN",
		"irc <- AUTHENTICATE ***",
		// Commands to the gateway are masked, then shown as their sizes,
		// as every PRIVMSG's text is.
		sized("irc <- PRIVMSG root", "register ***"),
		sized("irc -> :tia!tia@127.0.0.1 PRIVMSG root", "register ***"), // echo-message
		sized("irc <- PRIVMSG root", "account add msim pal@example.com ***"),
		sized("irc <- PRIVMSG &pal", "root: account 1 set password ***"),
		sized("irc <- PRIVMSG root", "identify ***"),
		sized("irc <- PRIVMSG root", "drop ***"),
		"irc <- QUIT :bye",
	} {
		if !slices.Contains(traced, want) {
			t.Errorf("no trace line %q in the log", want)
		}
	}
	if !slices.ContainsFunc(traced, func(m string) bool { return strings.HasPrefix(m, "irc -> :") && strings.Contains(m, " 001 tia ") }) {
		t.Errorf("no trace of the 001 sent to tia; traced lines: %q", traced)
	}
}

// sized is a traced PRIVMSG line, head, whose text is shown as its size.
func sized(head, text string) string {
	return fmt.Sprintf("%s :<%d bytes>", head, len(text))
}
