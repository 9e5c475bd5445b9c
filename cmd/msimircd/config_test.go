package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/msimircd/msimircd/store"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Users) != 1 || cfg.Users[0].Accounts[0].Email != "alice@example.com" || cfg.IRC.Listen[0] != "127.0.0.1:6667" {
		t.Errorf("got %+v", cfg)
	}
	if cfg.MSIM.ReconnectMax.Minutes() != 5 {
		t.Errorf("reconnect_max: got %v", cfg.MSIM.ReconnectMax)
	}
	if got, want := cfg.Store, Defaults().Store; got != want {
		t.Errorf("[store]: got %+v, want the defaults %+v", got, want)
	}
}

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("FromFile1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"syntax", "[irc]\nlisten = [\"127.0.0.1:6667\"\n", []string{"line "}},
		{"unknown key", "[irc]\nlisten = [\"127.0.0.1:6667\"]\ncolour = 3\n", []string{"line 3", `unknown key "irc.colour"`}},
		{"unknown dotted key", "\n\nirc.colour = 3\n", []string{"line 3", `unknown key "irc.colour"`}},
		{"unknown key in a later table", "[irc]\nlisten = [\"127.0.0.1:6667\"]\n[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\nname = \"x\"\n", []string{"line 8", `unknown key "user.account.name"`}},
		{"bad duration", "[msim]\n\nreconnect_min = \"soon\"\n", []string{"line 3", "reconnect_min", "not a duration"}},
		{"wrong type", "[irc]\nflood_rate = \"fast\"\n", []string{"line 2", "flood_rate"}},
		{"bad listen", "[irc]\nlisten = [\"nowhere\"]\n", []string{"line 2", "irc.listen", "host:port"}},
		{"bad level", "[log]\nlevel = \"loud\"\n", []string{"line 2", "log.level"}},
		{"user without name", "[[user]]\npassword = \"x\"\n", []string{"line 1", "user[1].name"}},
		{"user in the demo namespace", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n[[user]]\nname = \"Demo/bob@example.com\"\n[[user.account]]\nemail = \"b@b\"\npassword = \"p\"\n",
			[]string{"line 7", "user[2].name", "demo/"}},
		{"user name past NICKLEN", "[[user]]\nname = \"" + strings.Repeat("n", 31) + "\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n",
			[]string{"line 2", "user[1].name", "longer than 30"}},
		{"bad email", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n[[user]]\nname = \"b\"\n[[user.account]]\nemail = \"nope\"\npassword = \"p\"\n",
			[]string{"line 9", "user[2].account[1].email", "not an e-mail"}},
		{"both passwords", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\npassword_file = \"/x\"\n", []string{"line 5", "user[1].account[1].password", "exactly one"}},
		{"missing password file", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword_file = \"/nonexistent/pw\"\n", []string{"line 5", "password_file", "cannot read"}},
		{"public without password", "[irc]\nlisten = [\"0.0.0.0:6667\"]\n[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n", []string{"line 3", "user[1].password", "not on loopback"}},
		{"public demo without password", "[irc]\nlisten = [\"0.0.0.0:6667\"]\n", []string{"irc.password", "not on loopback"}},
		{"key after a multi-line string", "[irc]\nmotd = ['''\n# not a comment\n[[user]]\ncolour = 1\n''']\ncolour = 3\n", []string{"line 7", `unknown key "irc.colour"`}},
		{"key after a basic multi-line string", "[irc]\nmotd = [\"\"\"\nx = \\\"\"\"\n[log]\ncolour = 1 \"\"\"]\ncolour = 3\n", []string{"line 6", `unknown key "irc.colour"`}},
		{"# in quotes", "[[user]]\nname = 'a#\"b'\npassword = \"x#y\" # '\n[[user.account]]\nemail = \"nope\" # \"\n", []string{"line 5", "user[1].account[1].email"}},
		{"# in single quotes before a multi-line string", "[irc]\nmotd = ['#', '''\nserver_name = 'fake'\n''']\nserver_name = 'a b'\n", []string{"line 5", "irc.server_name"}},
		{"bad server name", "[irc]\nserver_name = \"my server\"\n", []string{"line 2", "irc.server_name"}},
		{"bad service nick", "[irc]\n\nservice_nick = \"the service\"\n", []string{"line 3", "irc.service_nick", "not a valid nick"}},
		{"long service nick", "[irc]\nservice_nick = \"" + strings.Repeat("s", 25) + "\"\n", []string{"line 2", "irc.service_nick", "not a valid nick"}},
		{"long server name", "[irc]\nserver_name = \"" + strings.Repeat("s.", 32) + "net\"\n", []string{"line 2", "irc.server_name", "63"}},
		{"unknown store driver", "[store]\ndriver = \"mysql\"\n", []string{"line 2", "store.driver", "sqlite or postgres"}},
		{"postgres without dsn", "[store]\n\ndriver = \"postgres\"\n", []string{"line 1", "store.dsn", "PGPASSFILE"}},
		{"sqlite URI", "[store]\ndsn = \"file:x.db?mode=ro\"\n", []string{"line 2", "store.dsn", "plain path"}},
		{"cluster on sqlite", "[cluster]\ninstance = \"a\"\n", []string{"line 2", "cluster.instance", "postgres"}},
		{"cluster on the embedded network", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://x@127.0.0.1/db\"\n[cluster]\ninstance = \"a\"\n", []string{"line 5", "cluster.instance", "msim.server"}},
		{"bad instance name", "[cluster]\ninstance = \"a b\"\n", []string{"line 2", "cluster.instance", "letters"}},
		{"short lease", "[cluster]\nlease_ttl = \"10ms\"\n", []string{"line 2", "cluster.lease_ttl", "1s or more"}},
		{"negative sendq", "[irc]\nflood_rate = 10.0\nsendq = -1\n", []string{"line 3", "irc.sendq", "negative"}},
		{"negative flood burst", "[irc]\nflood_rate = 10.0\nflood_burst = -1\n", []string{"line 3", "irc.flood_burst", "negative"}},
		{"negative clients per user", "[irc]\nmax_clients_per_user = -1\n", []string{"line 2", "irc.max_clients_per_user", "negative"}},
		{"negative queue limit", "[msim]\nqueue_limit = -1\n", []string{"line 2", "msim.queue_limit", "negative"}},
		{"same user as a nick", "[[user]]\nname = \"Ali[\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n[[user]]\nname = \"ali{\"\n[[user.account]]\nemail = \"c@d\"\npassword = \"p\"\n",
			[]string{"line 7", "user[2].name", "duplicate"}},
		{"same account twice for a user", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n[[user.account]]\nemail = \"A@B\"\npassword = \"q\"\n",
			[]string{"line 7", "user[1].account[2].email", "user[1].account[1] already"}},
		{"same account for two users", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n[[user]]\nname = \"b\"\n[[user.account]]\nemail = \"c@d\"\npassword = \"p\"\n[[user.account]]\nemail = \"a@B\"\npassword = \"p\"\n",
			[]string{"line 12", "user[2].account[2].email", "user[1].account[1] already"}},
		{"bad channel", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\nchannel = \"nochan\"\n", []string{"line 6", "channel"}},
		{"user name with a client's name", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n[[user]]\nname = \"alice/phone\"\n[[user.account]]\nemail = \"b@b\"\npassword = \"p\"\n",
			[]string{"line 7", "user[2].name", `"/"`}},
		{"user named as the bridge's newcomers", "[[user]]\nname = \"newcomer/nina\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n",
			[]string{"line 2", "user[1].name", `"/"`}},
		{"user name with a control character", "[[user]]\n\nname = \"bob\\u0007smith\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n",
			[]string{"line 3", "user[1].name", "control character"}},
		{"user with more accounts than a user may have", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n[[user]]\nname = \"b\"\n" + userAccounts("b", store.MaxAccounts+1),
			[]string{"line 6", "user[2].account", fmt.Sprintf("at most %d", store.MaxAccounts)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tc.text))
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	cfg, err := LoadConfig(writeConfig(t, "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword_file = \""+pwFile+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Users[0].Accounts[0].Password; got != "FromFile1" {
		t.Errorf("password from file: got %q", got)
	}
}

// userAccounts is n [[user.account]] tables of the user name, each with an
// account of its own.
func userAccounts(name string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[user.account]]\nemail = \"%s%d@example.com\"\npassword = \"p\"\n", name, i+1)
	}
	return b.String()
}

// TestUserNamesTheBridgeTakes: a [[user]] may be named what no nick is
// ("bob smith", "Carol": SASL PLAIN and PASS name:password name it), but
// not with a '/' (which starts a client's name: alice/phone is alice's
// phone, and the bridge's own users, demo/..., newcomer/..., are named
// so), and it lists as many MSIM accounts as a registered user may have
// (store.MaxAccounts), not one more (TestConfigErrorsNameKeyAndLine).
func TestUserNamesTheBridgeTakes(t *testing.T) {
	for _, name := range []string{"bob smith", "Carol", "ann:b", "Ali[", strings.Repeat("n", 30)} {
		if _, err := LoadConfig(writeConfig(t, fmt.Sprintf("[[user]]\nname = %q\n", name)+userAccounts("a", 1))); err != nil {
			t.Errorf("[[user]] %q: %v", name, err)
		}
	}
	if _, err := LoadConfig(writeConfig(t, "[[user]]\nname = \"a\"\n"+userAccounts("a", store.MaxAccounts))); err != nil {
		t.Errorf("a [[user]] with %d accounts: %v", store.MaxAccounts, err)
	}
}

// TestPasswordFileFirstLine: a password_file's first line is the password
// (as config.toml.example says); a file whose first line never ends within
// the bound, a device that never ends among them, is refused without being
// read whole, and an empty first line is refused. No error shows the file's
// text.
func TestPasswordFileFirstLine(t *testing.T) {
	dir := t.TempDir()
	file := func(name, text string) string { return writeFile(t, dir, name, text) }
	config := func(pwFile string) string {
		return "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword_file = \"" + pwFile + "\"\n"
	}
	for _, tc := range []struct{ name, text, want string }{
		{"one line", "FromFile1\n", "FromFile1"},
		{"no line end", "FromFile1", "FromFile1"},
		{"CRLF", "FromFile1\r\n", "FromFile1"},
		{"more lines", "FromFile1\nSecondLine2\n", "FromFile1"},
		{"a long first line, then more", strings.Repeat("p", maxPasswordLine) + "\n" + strings.Repeat("q", 3*maxPasswordLine), strings.Repeat("p", maxPasswordLine)},
	} {
		cfg, err := LoadConfig(writeConfig(t, config(file(tc.name, tc.text))))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := cfg.Users[0].Accounts[0].Password; got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct{ name, path, want string }{
		{"over the bound", file("long", strings.Repeat("x", maxPasswordLine+1)), fmt.Sprintf("over %d bytes", maxPasswordLine)},
		{"a device that never ends", "/dev/zero", fmt.Sprintf("over %d bytes", maxPasswordLine)},
		{"empty", file("empty", ""), "is empty"},
		{"empty first line", file("blank", "\nSecret1\n"), "is empty"},
		{"missing", filepath.Join(dir, "none"), "cannot read it"},
	} {
		if tc.path == "/dev/zero" {
			if _, err := os.Stat(tc.path); err != nil {
				t.Logf("%s: %v", tc.name, err)
				continue
			}
		}
		_, err := LoadConfig(writeConfig(t, config(tc.path)))
		if err == nil {
			t.Errorf("%s: got no error", tc.name)
			continue
		}
		for _, w := range []string{"line 5", "user[1].account[1].password_file", tc.want} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "Secret1") || strings.Contains(err.Error(), "xxxx") {
			t.Errorf("%s: error %q shows the file's text", tc.name, err)
		}
	}
}

// FuzzDecodeConfig: whatever a config file holds, decoding it gives a
// config that validates or an error naming the file, and the line a key's
// error names is one of the file's lines; nothing panics.
func FuzzDecodeConfig(f *testing.F) {
	example, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	for _, s := range []string{
		"[irc]\nlisten = [\"127.0.0.1:6667\"]\ncolour = 3\n",
		"[[user]]\nname = 'a#\"b'\npassword = \"x#y\" # '\n[[user.account]]\nemail = \"nope\" # \"\n",
		"[irc]\nmotd = ['''\n# not a comment\n[[user]]\ncolour = 1\n''']\ncolour = 3\n",
		"[irc]\nmotd = [\"\"\"\nx = \\\"\"\"\n[log]\ncolour = 1 \"\"\"]\ncolour = 3\n",
		"[msim]\nreconnect_min = \"soon\"\n[history]\nretention = \"90d\"\n",
		"[store]\ndriver = \"postgres\"\n[cluster]\ninstance = \"a b\"\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var files Config
		if _, err := toml.Decode(text, &files); err == nil {
			for _, u := range files.Users {
				for _, a := range u.Accounts {
					if a.PasswordFile != "" {
						t.Skip("names a password file: reading one is TestPasswordFileFirstLine's")
					}
				}
			}
		}
		const path = "fuzz.toml"
		cfg, err := decodeConfig(path, []byte(text))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config "+path) {
				t.Fatalf("error %q does not name the file", err)
			}
			var line int
			if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "config "+path+": "), "line %d:", &line); scanErr == nil && line > strings.Count(text, "\n")+1 {
				t.Fatalf("error %q names a line past the file's end", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("a decoded config does not validate again: %v", err)
		}
	})
}

// TestPasswordFileStarts: a config whose account's password is in a
// password_file is accepted by the command line's parsing (which validates
// the config again once the flags are applied) and by a second Validate,
// which reads the file again.
func TestPasswordFileStarts(t *testing.T) {
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "alice.pw", "FromFile1\n")
	path := writeConfig(t, "[[user]]\nname = \"alice\"\n[[user.account]]\nemail = \"alice@example.com\"\npassword_file = \""+pwFile+"\"\n")
	o, err := parseOptions([]string{"-config", path, "-state", filepath.Join(dir, "state")}, nil)
	if err != nil {
		t.Fatalf("parseOptions: %v", err)
	}
	if got := o.cfg.Users[0].Accounts[0].Password; got != "FromFile1" {
		t.Errorf("password: got %q", got)
	}
	writeFile(t, dir, "alice.pw", "Changed2\n")
	if err := o.cfg.Validate(); err != nil {
		t.Fatalf("Validate again: %v", err)
	}
	if got := o.cfg.Users[0].Accounts[0].Password; got != "Changed2" {
		t.Errorf("password after the file changed: got %q", got)
	}
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	if err := o.cfg.Validate(); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("Validate with the file gone: got %v, want an error naming password_file", err)
	}
}

// TestPasswordFilePipe: a password_file may be a pipe (a FIFO, a process
// substitution): its first line is read as soon as it is written, even
// while the writer keeps the pipe open.
func TestPasswordFilePipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pw")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	w := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			w <- nil
			return
		}
		_, _ = f.WriteString("FromPipe1\nmore to come")
		w <- f // kept open until the test has its answer
	}()
	got := make(chan string, 1)
	go func() {
		pw, err := readPasswordFile(fifo)
		if err != nil {
			pw = "error: " + err.Error()
		}
		got <- pw
	}()
	select {
	case pw := <-got:
		if pw != "FromPipe1" {
			t.Errorf("got %q, want FromPipe1", pw)
		}
		if f := <-w; f != nil {
			f.Close()
		}
	case <-time.After(time.Minute):
		t.Error("the read waited for the pipe to close")
		if f := <-w; f != nil {
			f.Close() // ends the read
		}
		<-got
	}
}

// TestFoldEmail: two addresses have one key exactly when strings.EqualFold
// finds them equal, as the bridge compares e-mails.
func TestFoldEmail(t *testing.T) {
	for _, p := range [][2]string{
		{"ann@example.com", "ANN@Example.COM"},
		{"kim@example.com", "\u212aim@example.com"}, // the Kelvin sign folds to k
		{"ſam@example.com", "sam@example.com"},      // the long s folds to s
		{"ann@example.com", "anne@example.com"},
		{"a[b@example.com", "a{b@example.com"}, // not nicks: no rfc1459 folding
	} {
		if got, want := foldEmail(p[0]) == foldEmail(p[1]), strings.EqualFold(p[0], p[1]); got != want {
			t.Errorf("%q and %q: one key %v, EqualFold %v", p[0], p[1], got, want)
		}
	}
}
