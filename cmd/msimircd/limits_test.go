package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// TestLimitKeys: the limit keys reach the servers' configurations, 0 and
// absence meaning the libraries' defaults and a negative value no cap; the
// embedded server's limits are refused when there is no embedded server.
func TestLimitKeys(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "[irc]\nmax_connections = 7\nmax_connections_per_addr = -1\n"+
		"[msim]\nmax_connections = 9\nmax_connections_per_addr = 3\noffline_bytes_per_recipient = -1\noffline_bytes_per_sender = 4096\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IRC.MaxConnections != 7 || cfg.IRC.MaxConnectionsPerAddr != -1 {
		t.Errorf("irc: got %d and %d, want 7 and -1", cfg.IRC.MaxConnections, cfg.IRC.MaxConnectionsPerAddr)
	}
	sc := embeddedConfig(cfg.MSIM)
	got := []int64{int64(sc.MaxConnections), int64(sc.MaxConnectionsPerAddr), sc.OfflinePerRecipientBytes, sc.OfflinePerSenderBytes}
	want := []int64{9, 3, -1, 4096}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("server.Config limits: got %v, want %v", got, want)
			break
		}
	}
	if !sc.Demo || len(sc.TrustedNets) == 0 {
		t.Errorf("server.Config: got Demo %v and TrustedNets %v, want Tom and the bridge's addresses", sc.Demo, sc.TrustedNets)
	}

	upstream := "[msim]\nserver = \"im.example.net:1863\"\n%s\n[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n"
	for _, tc := range []struct {
		name, line string
		wantErr    string // "" = loads
	}{
		{"default value allowed upstream", "max_connections = 10000", ""},
		{"zero allowed upstream", "offline_bytes_per_sender = 0", ""},
		{"connection cap upstream", "max_connections = 5", "msim.max_connections"},
		{"per-address cap upstream", "max_connections_per_addr = -1", "msim.max_connections_per_addr"},
		{"recipient bytes upstream", "offline_bytes_per_recipient = 10", "msim.offline_bytes_per_recipient"},
		{"sender bytes upstream", "offline_bytes_per_sender = 10", "msim.offline_bytes_per_sender"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, strings.Replace(upstream, "%s", tc.line, 1)))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "line 3")):
				t.Errorf("got %v, want an error naming %s at line 3", err, tc.wantErr)
			}
		})
	}
}

// TestExampleConfigStatesTheDefaults: the limits written in the example
// config are the libraries' defaults, so its comments stay true.
func TestExampleConfigStatesTheDefaults(t *testing.T) {
	cfg, err := LoadConfig("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	d := ircd.DefaultConfig()
	for _, c := range []struct {
		key       string
		got, want int64
	}{
		{"irc.max_connections", int64(cfg.IRC.MaxConnections), int64(d.MaxConnections)},
		{"irc.max_connections_per_addr", int64(cfg.IRC.MaxConnectionsPerAddr), int64(d.MaxConnectionsPerAddr)},
		{"msim.max_connections", int64(cfg.MSIM.MaxConnections), server.DefaultMaxConnections},
		{"msim.max_connections_per_addr", int64(cfg.MSIM.MaxConnectionsPerAddr), server.DefaultMaxConnectionsPerAddr},
		{"msim.offline_bytes_per_recipient", cfg.MSIM.OfflineBytesPerRecipient, server.DefaultOfflinePerRecipientBytes},
		{"msim.offline_bytes_per_sender", cfg.MSIM.OfflineBytesPerSender, server.DefaultOfflinePerSenderBytes},
		{"msim.account_creation_per_hour", int64(cfg.MSIM.AccountCreationPerHour), int64(Defaults().MSIM.AccountCreationPerHour)},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %d in the example, want the default %d", c.key, c.got, c.want)
		}
	}
}

// TestIRCConnectionCaps: [irc] max_connections and max_connections_per_addr
// reach the IRC server: the connection over a cap gets an ERROR naming it.
func TestIRCConnectionCaps(t *testing.T) {
	defaultPerAddr := ircd.DefaultConfig().MaxConnectionsPerAddr
	for _, tc := range []struct {
		name           string
		total, perAddr int
		open           int    // connections made; the last is checked
		wantRefusal    string // "" = the last is served
	}{
		{"default per address", 0, 0, defaultPerAddr + 1, "Too many connections from your address"},
		{"per address", 0, 2, 3, "Too many connections from your address"},
		{"total", 2, 0, 3, "Too many connections to this server"},
		{"no cap per address", 0, -1, defaultPerAddr + 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.IRC.MaxConnections, cfg.IRC.MaxConnectionsPerAddr = tc.total, tc.perAddr
			at, _ := startServe(t, cfg)
			var last *irc.Message
			for i := range tc.open {
				last = firstReply(t, at.irc[0])
				if i < tc.open-1 && last.Command == "ERROR" {
					t.Fatalf("connection %d: got %q, want it served", i+1, last.Trailing())
				}
			}
			switch {
			case tc.wantRefusal == "" && last.Command == "ERROR":
				t.Errorf("connection %d: got ERROR %q, want it served", tc.open, last.Trailing())
			case tc.wantRefusal != "" && (last.Command != "ERROR" || !strings.Contains(last.Trailing(), tc.wantRefusal)):
				t.Errorf("connection %d: got %s %q, want ERROR %q", tc.open, last.Command, last.Trailing(), tc.wantRefusal)
			}
		})
	}
}

// firstReply opens an IRC connection that stays open until the test ends,
// asks CAP LS and returns the first message it gets: the CAP reply, or the
// ERROR of a refusal. Either way the server has counted the connection.
func firstReply(t *testing.T, addr string) *irc.Message {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	_ = irc.NewWriter(nc).Write("CAP LS 302")
	m, err := irc.NewReader(nc).ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

// TestEmbeddedMSIMLimits: the [msim] limits reach the embedded MSIM server:
// offline IMs over the byte caps are refused with the server's reason while
// those under them are kept, and a connection over max_connections is
// refused.
func TestEmbeddedMSIMLimits(t *testing.T) {
	cfg := Defaults()
	cfg.MSIM.MaxConnections = 4
	cfg.MSIM.OfflineBytesPerSender = 2000
	cfg.MSIM.OfflineBytesPerRecipient = 3000
	cfg.MSIM.Accounts = []string{"carol@example.com:Carol1", "bob@example.com:Bob1", "dave@example.com:Dave1", "eve@example.com:Eve1"}
	at, _ := startServe(t, cfg)

	bob := msimDial(t, at.msim, "bob@example.com", "Bob1")
	dave := msimDial(t, at.msim, "dave@example.com", "Dave1")
	eve := msimDial(t, at.msim, "eve@example.com", "Eve1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	carolUID := lookupUID(t, bob, "carol")
	text := func(from string) string { return from + ": " + strings.Repeat("x", 1200) }
	for _, tc := range []struct {
		from    *msim.Client
		name    string
		wantErr string // "" = stored
	}{
		{bob, "bob", ""},
		{bob, "bob", "you have too much waiting for user"}, // over 2000 bytes from bob
		{dave, "dave", ""},
		{eve, "eve", "the offline mailbox is full"}, // over 3000 bytes for carol
	} {
		if err := tc.from.SendIM(ctx, carolUID, text(tc.name)); err != nil {
			t.Fatal(err)
		}
		got := errorsUntilTom(t, tc.from)
		switch {
		case tc.wantErr == "" && got != "":
			t.Errorf("offline IM from %s: got error %q, want it stored", tc.name, got)
		case tc.wantErr != "" && !strings.Contains(got, tc.wantErr):
			t.Errorf("offline IM from %s: got error %q, want %q", tc.name, got, tc.wantErr)
		}
	}

	carol := msimDial(t, at.msim, "carol@example.com", "Carol1") // the third connection
	var froms []string
	for len(froms) < 2 {
		select {
		case ev := <-carol.Events():
			if im, ok := ev.(msim.IMEvent); ok {
				from, _, _ := strings.Cut(im.Text, ":")
				froms = append(froms, from)
			}
		case <-ctx.Done():
			t.Fatalf("carol got the offline IMs from %v, want bob and dave", froms)
		}
	}
	if strings.Join(froms, ",") != "bob,dave" {
		t.Errorf("carol got the offline IMs from %v, want bob and dave", froms)
	}

	if c, err := msim.Dial(ctx, msim.ClientConfig{Addr: at.msim, Email: "bob@example.com", Password: "Bob1"}); err == nil {
		c.Close()
		t.Error("a fifth connection with max_connections = 4 was let in")
	} else if !strings.Contains(err.Error(), "too many connections to this server (limit 4)") {
		t.Errorf("the fifth connection: got %v, want the connection cap's refusal", err)
	}
}

// errorsUntilTom messages Tom and returns the texts of the errors cl gets
// before his answer (the server handles a connection's messages in order,
// so they are those of what cl sent before).
func errorsUntilTom(t *testing.T, cl *msim.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.SendIM(ctx, server.TomUID, "barrier"); err != nil {
		t.Fatal(err)
	}
	var errs []string
	for {
		select {
		case ev := <-cl.Events():
			switch ev := ev.(type) {
			case msim.ErrorEvent:
				errs = append(errs, ev.Message)
			case msim.IMEvent:
				if ev.From == server.TomUID {
					return strings.Join(errs, "; ")
				}
			case msim.DisconnectedEvent:
				t.Fatalf("disconnected: %v", ev.Err)
			}
		case <-ctx.Done():
			t.Fatal("Tom did not answer")
		}
	}
}

// TestGuessesShareOneBudget: wrong identify passwords and failed PASS
// logins from one address count as one address's failed logins, as the
// limits table has it: after three wrong identify passwords (the free
// ones), a wrong PASS at another nick waits the first delay.
func TestGuessesShareOneBudget(t *testing.T) {
	cfg := Defaults()
	cfg.Store.StateDir = t.TempDir()
	at, _ := startServe(t, cfg)
	registerNick(t, at.irc[0], "", "una", "una-pw", "una-pw")
	if _, m := ircRegister(t, at.irc[0], "vic", "vic-pw"); m.Command != "001" {
		t.Fatalf("vic: got %v, want 001", m)
	}

	guesser, m := ircRegister(t, at.irc[0], "una", "")
	if m.Command != "001" {
		t.Fatalf("una without a password: got %v, want 001", m)
	}
	for i := range 3 {
		_ = guesser.w.Write("PRIVMSG root :identify guess" + string(rune('0'+i)))
		guesser.wait(rootSays("Incorrect password"))
	}
	start := time.Now()
	if _, m := ircRegister(t, at.irc[0], "vic", "guess"); m.Command != "464" {
		t.Fatalf("vic with a wrong password: got %v, want 464", m)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("a wrong PASS after 3 wrong identify passwords from the address was answered in %v, without the 1 s delay of a 4th failure", took)
	}
}

// TestServerPasswordAloneForgetsNoGuesses: behind irc.password, a
// registered nick given the server password alone gets a session left to
// identify, which checked no password of the user's: the wrong passwords
// tried at the nick before (each from another address, so that only the
// nick's count adds up) still slow the next one.
func TestServerPasswordAloneForgetsNoGuesses(t *testing.T) {
	cfg := Defaults()
	cfg.Store.StateDir = t.TempDir()
	cfg.IRC.Password = "Sesame-Pw"
	at, _ := startServe(t, cfg)
	registerNick(t, at.irc[0], "127.0.0.2", "una", "Sesame-Pw", "una-pw")

	for i := range 3 {
		from := fmt.Sprintf("127.0.0.%d", 10+i)
		if _, m := ircRegisterFrom(t, at.irc[0], from, "una", fmt.Sprintf("Sesame-Pw:guess%d", i)); m.Command != "464" {
			t.Fatalf("guess %d: got %v, want 464", i, m)
		}
	}
	s, m := ircRegisterFrom(t, at.irc[0], "127.0.0.20", "una", "Sesame-Pw")
	if m.Command != "001" {
		t.Fatalf("una with the server password alone: got %v, want 001 (left to identify)", m)
	}
	_ = s.w.Write("QUIT")
	s.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })
	start := time.Now()
	if _, m := ircRegisterFrom(t, at.irc[0], "127.0.0.21", "una", "Sesame-Pw:guess3"); m.Command != "464" {
		t.Fatalf("guess 3: got %v, want 464", m)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("a 4th wrong password at una, after a login with the server password alone, was answered in %v, without the 1 s delay", took)
	}
}

// registerNick connects from from ("" = any) as nick with PASS pass,
// registers the nick with password and leaves.
func registerNick(t *testing.T, addr, from, nick, pass, password string) {
	t.Helper()
	s, m := ircRegisterFrom(t, addr, from, nick, pass)
	if m.Command != "001" {
		t.Fatalf("%s: got %v, want 001", nick, m)
	}
	s.loggedIn("&" + nick)
	_ = s.w.Write("PRIVMSG root :register " + password)
	s.wait(rootSays("is registered"))
	_ = s.w.Write("QUIT")
	s.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })
}
