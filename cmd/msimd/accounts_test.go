package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// TestAddUserPasswordOnStdin: "adduser EMAIL" reads the password as one
// line of standard input, without the command-line warning; a missing or
// oversized line is refused.
func TestAddUserPasswordOnStdin(t *testing.T) {
	cases := []struct {
		name     string
		stdin    string
		args     []string // after -data PATH
		pw       string   // the password that logs in
		wantNick string   // "" = the uid (no user name)
		wantErr  string
	}{
		{"one line", "hunter2\n", []string{"adduser", "bob@example.com"}, "hunter2", "", ""},
		{"CRLF and -username", "Secret1\r\n", []string{"adduser", "-username", "bobby", "bob@example.com"}, "Secret1", "bobby", ""},
		{"-username before adduser, no newline", "pw3", []string{"-username", "carl", "adduser", "bob@example.com"}, "pw3", "carl", ""},
		{"only the first line", "first\nsecond\n", []string{"adduser", "bob@example.com"}, "first", "", ""},
		{"empty input", "", []string{"adduser", "bob@example.com"}, "", "", "no password on standard input"},
		{"blank line", "\n", []string{"adduser", "bob@example.com"}, "", "", "no password on standard input"},
		{"oversized line", strings.Repeat("x", 2*maxPasswordLine), []string{"adduser", "bob@example.com"}, "", "", "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "msim.db")
			logs, err := cli(tc.stdin, append([]string{"-data", data}, tc.args...)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("adduser: %v\n%s", err, logs)
			}
			if strings.Contains(logs, tc.pw) || strings.Contains(logs, "other local users") {
				t.Errorf("the log shows the password or warns about the command line:\n%s", logs)
			}
			addr, _ := start(t, "-data", data)
			_, m := login(t, addr, "bob@example.com", tc.pw)
			nick, _ := m.Str("uniquenick")
			uid, _ := m.Int("userid")
			if !m.Is("lc") || (tc.wantNick != "" && nick != tc.wantNick) || (tc.wantNick == "" && nick != itoa(uid)) {
				t.Errorf("login: got %v, want lc 2 with uniquenick %q", m, tc.wantNick)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// TestAccountFile: -account-file creates its accounts; a file others may
// read, or a bad line, stops msimd with a clear error that shows no
// password.
func TestAccountFile(t *testing.T) {
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr []string
	}{
		{"owner only", "# accounts\n\nann@example.com:pw1\n  ben@example.com:pw2  \n", 0o600, nil},
		{"readable by the group", "ann@example.com:pw1\n", 0o640, []string{"mode 0640", "chmod 600"}},
		{"readable by others", "ann@example.com:pw1\n", 0o604, []string{"mode 0604", "chmod 600"}},
		{"bad line", "ann@example.com:pw1\nnot a spec secretpw\n", 0o600, []string{"line 2", "EMAIL:PASSWORD"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "accounts")
			writeFile(t, file, tc.content, tc.mode)
			if tc.wantErr != nil {
				_, err := cli("", "-listen", "127.0.0.1:0", "-account-file", file)
				for _, w := range tc.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("got %v, want an error saying %q", err, w)
					}
				}
				if err != nil && (strings.Contains(err.Error(), "pw1") || strings.Contains(err.Error(), "secretpw")) {
					t.Errorf("the error shows a password: %v", err)
				}
				return
			}
			addr, logs := start(t, "-account-file", file)
			for _, a := range [][2]string{{"ann@example.com", "pw1"}, {"ben@example.com", "pw2"}} {
				if _, m := login(t, addr, a[0], a[1]); !m.Is("lc") {
					t.Errorf("login %s: got %v, want lc 2", a[0], m)
				}
			}
			if s := logs.String(); strings.Contains(s, "pw1") || strings.Contains(s, "other local users") {
				t.Errorf("the log shows a password or warns about the command line:\n%s", s)
			}
		})
	}
}

// TestAddUserWhileServing: adduser on the database of a running msimd
// adds an account that logs in at once; an account added to the running
// server's account file works after SIGHUP.
func TestAddUserWhileServing(t *testing.T) {
	dir := t.TempDir()
	data, file := filepath.Join(dir, "msim.db"), filepath.Join(dir, "accounts")
	writeFile(t, file, "ann@example.com:pw1\n", 0o600)
	addr, _, reload := startReload(t, "-data", data, "-account-file", file)

	if logs, err := cli("pw2\n", "-data", data, "adduser", "new@example.com"); err != nil {
		t.Fatalf("adduser on the database of a running msimd: %v\n%s", err, logs)
	}
	if _, m := login(t, addr, "new@example.com", "pw2"); !m.Is("lc") {
		t.Errorf("login of the account adduser made: got %v, want lc 2", m)
	}

	writeFile(t, file, "ann@example.com:pw1\nfile@example.com:pw3\n", 0o600)
	reload <- struct{}{}
	reload <- struct{}{} // taken only once the first reload is done
	if _, m := login(t, addr, "file@example.com", "pw3"); !m.Is("lc") {
		t.Errorf("login after the reload: got %v, want lc 2", m)
	}
}

// TestKeyFlag: -key puts the key file where it says (mode 0600); the data
// file does not open without it.
func TestKeyFlag(t *testing.T) {
	dir := t.TempDir()
	data, key := filepath.Join(dir, "msim.db"), filepath.Join(t.TempDir(), "secret.key")
	if logs, err := cli("pw1\n", "-data", data, "-key", key, "adduser", "ann@example.com"); err != nil {
		t.Fatalf("adduser: %v\n%s", err, logs)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: got %v, %v; want mode 0600", st, err)
	}
	if _, err := os.Stat(data + ".key"); err == nil {
		t.Error("a key file was made at the default path too")
	}
	if _, err := cli("", "-listen", "127.0.0.1:0", "-data", data); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("serving without the key file: got %v, want an error saying it is missing", err)
	}
	if _, err := cli("", "-key", key); !errors.Is(err, errUsage) {
		t.Errorf("-key without -data: got %v, want a usage error", err)
	}
	addr, _ := start(t, "-data", data, "-key", key)
	if _, m := login(t, addr, "ann@example.com", "pw1"); !m.Is("lc") {
		t.Errorf("login: got %v, want lc 2", m)
	}
}

// TestLimitFlags: the connection cap flags reach the server.
func TestLimitFlags(t *testing.T) {
	addr, _ := start(t, "-max-conns-per-addr", "1")
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	c := &conn{t: t, nc: first, dec: msim.NewDecoder(first)}
	c.next(func(m *msim.Message) bool { return m.Is("lc") })
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	c2 := &conn{t: t, nc: second, dec: msim.NewDecoder(second)}
	m := c2.next(func(m *msim.Message) bool { return m.Is("lc") || m.Is("error") })
	if code, _ := m.Int("err"); code != server.ErrCodeRefused {
		t.Errorf("second connection: got %v, want err %d", m, server.ErrCodeRefused)
	}
}
