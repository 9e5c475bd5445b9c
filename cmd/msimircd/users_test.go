package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/store"
)

// userCmd runs msimircd user with args against state directory dir.
func userCmd(t *testing.T, dir, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runUser(append([]string{"-state", dir}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), err
}

// storedHash is the password hash the state directory's store keeps for
// name.
func storedHash(t *testing.T, dir, name string) string {
	t.Helper()
	cfg := Defaults()
	if err := cfg.resolveStateDir(dir); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), cfg.withState().Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.User(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

// TestUserCommand: msimircd user add, passwd, list and del work on the
// state directory's store; passwords come from stdin only, and mistakes are
// errors that say what is wrong.
func TestUserCommand(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		stdin   string
		args    []string
		wantOut string
		wantErr string
	}{
		{"add", "first-pw\n", []string{"add", "Alice"}, "added alice", ""},
		{"add again", "x\n", []string{"add", "alice"}, "", "exists already"},
		{"password on the command line", "", []string{"add", "bob", "pw"}, "", "never given on the command line"},
		{"not a nick", "pw\n", []string{"add", "1bob"}, "", "not a valid nick"},
		{"empty stdin", "", []string{"add", "bob"}, "", "no password given"},
		{"two words", "a b\n", []string{"add", "bob"}, "", "one word"},
		{"unknown command", "", []string{"frob"}, "", "unknown command"},
		{"flag after the command", "", []string{"list", "-config", "/nonexistent.toml"}, "", "nonexistent"},
		{"list", "", []string{"list"}, "alice\t", ""},
		{"passwd", "second-pw\r\n", []string{"passwd", "alice"}, "password of alice changed", ""},
		{"passwd of nobody", "pw\n", []string{"passwd", "bob"}, "", "no user bob"},
		{"del of nobody", "", []string{"del", "bob"}, "", "no user bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := userCmd(t, dir, tc.stdin, tc.args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", out, err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("got %q, %v; want %q", out, err, tc.wantOut)
			}
		})
	}
	h := storedHash(t, dir, "alice")
	if store.CheckPassword(h, "second-pw") != nil || store.CheckPassword(h, "first-pw") == nil {
		t.Errorf("stored password: want second-pw (passwd), not first-pw")
	}
	if out, err := userCmd(t, dir, "", "del", "alice"); err != nil || !strings.Contains(out, "deleted alice") {
		t.Fatalf("del: got %q, %v", out, err)
	}
	if out, err := userCmd(t, dir, "", "list"); err != nil || strings.Contains(out, "alice") {
		t.Errorf("list after del: got %q, %v; want no alice", out, err)
	}
}

// TestUserAddOfConfiguredNick: user add and passwd refuse a nick that a
// [[user]] of the config names in any spelling the server takes for the
// same nick: that user would never be reached, the config's winning.
func TestUserAddOfConfiguredNick(t *testing.T) {
	path := writeConfig(t, "[[user]]\nname = \"Ali[\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n")
	for _, nick := range []string{"Ali[", "ali{", "ALI["} {
		out, err := userCmd(t, t.TempDir(), "pw\n", "-config", path, "add", nick)
		if err == nil || !strings.Contains(err.Error(), "config") {
			t.Errorf("add %s: got %q, %v; want an error naming the config", nick, out, err)
		}
	}
	// passwd would give the row the configuration's user is saved in a
	// password that opens it once the configuration drops the user.
	dir := t.TempDir()
	if _, err := userCmd(t, dir, "pw\n", "add", "ali{"); err != nil {
		t.Fatal(err)
	}
	if out, err := userCmd(t, dir, "pw2\n", "-config", path, "passwd", "ali{"); err == nil || !strings.Contains(err.Error(), "config") {
		t.Errorf("passwd ali{: got %q, %v; want an error naming the config", out, err)
	}
}

// TestRegistrationSetting: irc.registration defaults to open on loopback
// and closed on a public address; a value other than open or closed is
// refused, naming the key.
func TestRegistrationSetting(t *testing.T) {
	for _, tc := range []struct {
		name, listen, set, want string
	}{
		{"loopback default", "127.0.0.1:6667", "", "open"},
		{"public default", "0.0.0.0:6667", "", "closed"},
		{"public open", "0.0.0.0:6667", "open", "open"},
		{"loopback closed", "127.0.0.1:6667", "closed", "closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.IRC.Listen = []string{tc.listen}
			cfg.IRC.Registration = tc.set
			cfg.IRC.Password = "server-pw" // a public demo network needs one
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := cfg.registration(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	cfg := Defaults()
	cfg.IRC.Registration = "maybe"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "registration") {
		t.Errorf("registration = maybe: got %v, want an error naming the key", err)
	}
}

// TestRegistrationOpenBeyondLoopbackWarns: registration opened by the
// config on a listener beyond loopback, in front of [[user]]s or an
// upstream server (where it needs irc.password, see
// TestRegistrationOpenBeyondLoopbackNeedsPassword), starts with a warning
// naming the key and the listener: a registered nick connecting without
// its password reaches register without irc.password. The default there
// (closed), loopback, and the demo network, whose irc.password every
// client gives, warn of nothing.
func TestRegistrationOpenBeyondLoopbackWarns(t *testing.T) {
	users := []UserEntry{{Name: "gus", Password: "gus-irc", Accounts: []AccountEntry{{Email: "gus@example.com", Password: "gus-msim"}}}}
	for _, tc := range []struct {
		name, listen, set, password, server string
		users                               []UserEntry
		warn                                bool
	}{
		{"upstream, public, open, irc password", "0.0.0.0:6667", "open", "server-pw", "msim.example.net:1863", nil, true},
		{"users, public, open, irc password", "0.0.0.0:6667", "open", "server-pw", "", users, true},
		{"upstream, public, default", "0.0.0.0:6667", "", "", "msim.example.net:1863", users, false},
		{"upstream, public, closed", "0.0.0.0:6667", "closed", "", "msim.example.net:1863", users, false},
		{"upstream, loopback, open", "127.0.0.1:6667", "open", "", "msim.example.net:1863", users, false},
		{"demo, public, open, irc password", "0.0.0.0:6667", "open", "server-pw", "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.IRC.Listen = []string{tc.listen}
			cfg.IRC.Registration = tc.set
			cfg.IRC.Password = tc.password
			cfg.MSIM.Server = tc.server
			cfg.Users = tc.users
			if err := cfg.Validate(); err != nil {
				t.Fatalf("the config is refused (%v); want it taken", err)
			}
			w := cfg.registrationWarning()
			if got := w != ""; got != tc.warn {
				t.Fatalf("got warning %q, want one: %v", w, tc.warn)
			}
			if tc.warn && (!strings.Contains(w, "irc.registration") || !strings.Contains(w, tc.listen)) {
				t.Errorf("warning %q does not name irc.registration and %s", w, tc.listen)
			}
			if tc.warn && !strings.Contains(w, "whoever has irc.password") {
				t.Errorf("warning %q does not say whoever has irc.password may register", w)
			}
			if tc.password != "" && strings.Contains(w, tc.password) {
				t.Errorf("warning %q shows irc.password", w)
			}
		})
	}
}

// TestRegistrationOpenBeyondLoopbackNeedsPassword: irc.registration =
// "open" on a listener beyond loopback, in front of an upstream server or
// [[user]]s, is refused without irc.password, naming the keys and the
// listener: a nick nobody has then connects without any password and
// registers itself, so anyone who can reach the listener becomes a user
// of the gateway. With irc.password (which such a nick must give), on
// loopback, and on the demo network (whose irc.password every client
// gives, and which needs one beyond loopback anyway) it loads.
func TestRegistrationOpenBeyondLoopbackNeedsPassword(t *testing.T) {
	const (
		upstream = "[msim]\nserver = \"msim.example.net:1863\"\n"
		user     = "[[user]]\nname = \"gus\"\npassword = \"gus-irc\"\n[[user.account]]\nemail = \"gus@example.com\"\npassword = \"gus-msim\"\n"
	)
	for _, tc := range []struct {
		name, text string
		want       []string // nil: it loads
	}{
		{"upstream", "[irc]\nlisten = [\"0.0.0.0:6667\"]\nregistration = \"open\"\n" + upstream,
			[]string{"line 3", "irc.registration", "irc.password", "0.0.0.0:6667", `"closed"`}},
		{"upstream, TLS listener", "[irc]\nlisten = [\"127.0.0.1:6667\"]\n\nregistration = \"open\"\n[[irc.tls]]\nlisten = \"[::]:6697\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n" + upstream,
			[]string{"line 4", "irc.registration", "irc.password", "[::]:6697"}},
		{"users", "[irc]\nregistration = \"open\"\nlisten = [\"192.0.2.1:6667\"]\n" + user,
			[]string{"line 2", "irc.registration", "irc.password", "192.0.2.1:6667"}},
		{"upstream, irc password", "[irc]\nlisten = [\"0.0.0.0:6667\"]\nregistration = \"open\"\npassword = \"server-pw\"\n" + upstream, nil},
		{"users, irc password", "[irc]\nlisten = [\"0.0.0.0:6667\"]\nregistration = \"open\"\npassword = \"server-pw\"\n" + user, nil},
		{"upstream, loopback", "[irc]\nlisten = [\"127.0.0.1:6667\"]\nregistration = \"open\"\n" + upstream, nil},
		{"upstream, default", "[irc]\nlisten = [\"0.0.0.0:6667\"]\n" + upstream, nil},
		{"demo, irc password", "[irc]\nlisten = [\"0.0.0.0:6667\"]\nregistration = \"open\"\npassword = \"server-pw\"\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.text))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want the config loaded", err)
				}
				return
			}
			if err == nil {
				t.Fatal("the config loads; want it refused: anyone who reaches the listener may register")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestStoredUsersConnect: against the state directory of a running
// gateway, a user made with msimircd user add needs its password, and a
// nick registered from IRC (open registration on loopback) gets its
// embedded account back with its password after reconnecting; with closed
// registration, register says how users are made.
func TestStoredUsersConnect(t *testing.T) {
	dir := t.TempDir()
	if _, err := userCmd(t, dir, "ann-pw\n", "add", "ann"); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Store.StateDir = dir
	at, _ := startServe(t, cfg)
	addr := at.irc[0]
	if _, m := ircRegister(t, addr, "ann", "wrong"); m.Command != "464" {
		t.Errorf("ann with a wrong password: got %v, want 464", m)
	}
	ann, m := ircRegister(t, addr, "ann", "ann-pw")
	if m.Command != "001" {
		t.Fatalf("ann: got %v, want 001", m)
	}
	ann.wait(rootSays("no MSIM accounts"))

	zoe, _ := ircRegister(t, addr, "zoe", "")
	zoe.loggedIn("&zoe")
	_ = zoe.w.Write("PRIVMSG root :register zoe-pw")
	zoe.wait(rootSays("is registered"))
	zoe.loggedIn("&zoe")
	_ = zoe.w.Write("QUIT")
	zoe.wait(func(m *irc.Message) bool { return m.Command == "ERROR" })
	zoe, m = ircRegister(t, addr, "zoe", "zoe-pw")
	if m.Command != "001" {
		t.Fatalf("zoe with her password: got %v, want 001", m)
	}
	zoe.loggedIn("&zoe")

	closed := Defaults()
	closed.Store.StateDir = t.TempDir()
	closed.IRC.Registration = "closed"
	at, _ = startServe(t, closed)
	yan, _ := ircRegister(t, at.irc[0], "yan", "yan-pw")
	_ = yan.w.Write("PRIVMSG root :register yan-pw")
	yan.wait(rootSays("msimircd user add"))
}

func rootSays(text string) func(*irc.Message) bool {
	return func(m *irc.Message) bool {
		return m.Command == "PRIVMSG" && m.Prefix != nil && m.Name == "root" && strings.Contains(m.Trailing(), text)
	}
}

// TestBinaryUserAdd: the binary's user subcommand reads the password from
// its standard input (a pipe, not a terminal) and makes the user a running
// gateway then accepts.
func TestBinaryUserAdd(t *testing.T) {
	bin := binary(t, ".")
	dir := t.TempDir()
	cmd := exec.Command(bin, "user", "-state", dir, "add", "kim")
	cmd.Stdin = strings.NewReader("kim-pw\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "added kim") {
		t.Fatalf("msimircd user add kim: got %q, %v; want added kim", out, err)
	}
	if strings.Contains(string(out), "kim-pw") {
		t.Errorf("the password was echoed: %q", out)
	}
	cfg := Defaults()
	cfg.Store.StateDir = dir
	at, _ := startServe(t, cfg)
	if _, m := ircRegister(t, at.irc[0], "kim", "kim-pw"); m.Command != "001" {
		t.Errorf("kim with the password given to user add: got %v, want 001", m)
	}
}

// TestUserDelOfStoredName: user del deletes a stored user named as user
// list shows them, which the errors of a start or reload tell the
// operator to do: a [[user]] an earlier start saved under a name with
// capitals (Carol) or one that is no nick (bob smith) too. A nick still
// names the registered user of that nick (Ann is ann).
func TestUserDelOfStoredName(t *testing.T) {
	dir := t.TempDir()
	if err := buildFile(t, writeConfig(t, clashConfig(dir, [2]string{"Carol", "carol@example.com"}, [2]string{"bob smith", "bob@example.com"}))); err != nil {
		t.Fatal(err)
	}
	if _, err := userCmd(t, dir, "ann-pw\n", "add", "ann"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ arg, deleted string }{{"Carol", "Carol"}, {"bob smith", "bob smith"}, {"Ann", "ann"}} {
		out, err := userCmd(t, dir, "", "del", tc.arg)
		if err != nil || !strings.Contains(out, "deleted "+tc.deleted) {
			t.Errorf("del %q: got %q, %v; want %q deleted", tc.arg, out, err, tc.deleted)
		}
	}
	if out, err := userCmd(t, dir, "", "list"); err != nil || out != "" {
		t.Errorf("list after the deletions: got %q, %v; want no users", out, err)
	}
	if _, err := userCmd(t, dir, "", "del", "no one"); err == nil || !strings.Contains(err.Error(), `no user "no one"`) {
		t.Errorf("del of nobody: got %v, want no user \"no one\"", err)
	}
}
