package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func TestMSIMAccountPasswords(t *testing.T) {
	for _, tc := range []struct {
		name          string
		flags         []string
		stdin         string
		want          []string
		onCommandLine bool
		wantErr       string
	}{
		{"from stdin", []string{"a@x", "b@x"}, "Pass A\r\nPassB\n", []string{"a@x:Pass A", "b@x:PassB"}, false, ""},
		{"last line without newline", []string{"a@x"}, "PassA", []string{"a@x:PassA"}, false, ""},
		{"on the command line", []string{"a@x:PassA", "b@x"}, "PassB\n", []string{"a@x:PassA", "b@x:PassB"}, true, ""},
		{"stdin runs out", []string{"a@x", "b@x"}, "PassA\n", nil, false, "no password for it"},
		{"empty line", []string{"a@x"}, "\n", nil, false, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a accountList
			for _, f := range tc.flags {
				if err := a.Set(f); err != nil {
					t.Fatal(err)
				}
			}
			got, cl, err := a.passwords(strings.NewReader(tc.stdin))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") || cl != tc.onCommandLine {
				t.Errorf("got %q, %v, %v; want %q, %v", got, cl, err, tc.want, tc.onCommandLine)
			}
		})
	}
}

// TestMalformedAccountFlag: a malformed -msim-account value is refused
// without being repeated (the flag package's own error would quote it, and
// it may hold a password), saying which one it is.
func TestMalformedAccountFlag(t *testing.T) {
	const secret = "s3cret"
	for _, bad := range []string{"nobody:" + secret, secret, "a@x:", ""} {
		_, err := parseOptions([]string{"-msim-account", "a@x:pw", "-msim-account", bad}, strings.NewReader(""))
		if err == nil {
			t.Errorf("-msim-account %q: got no error", bad)
			continue
		}
		if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "the 2nd -msim-account") {
			t.Errorf("-msim-account %q: got %q, want the 2nd named, the value not shown", bad, err)
		}
	}
}

func TestAccountsFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "accounts")
	if err := os.WriteFile(good, []byte("# made for the MSIM clients\ncarol@example.com:Carol1\n\nbob@example.com:pass:with:colons\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(writeConfig(t, "[msim]\naccounts_file = '"+good+"'\naccounts = [\"dan@example.com:Dan1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "dan@example.com:Dan1|carol@example.com:Carol1|bob@example.com:pass:with:colons"
	if got := strings.Join(cfg.MSIM.allAccounts(), "|"); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := cfg.Validate(); err != nil || len(cfg.MSIM.allAccounts()) != 3 {
		t.Errorf("validated again: %v, %d accounts; want 3", err, len(cfg.MSIM.allAccounts()))
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("carol@example.com:Carol1\nSecretWithoutEmail\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(writeConfig(t, "[msim]\naccounts_file = '"+bad+"'\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2 of "+bad) || !strings.Contains(err.Error(), "msim.accounts_file") || strings.Contains(err.Error(), "Secret") {
		t.Errorf("got %v, want line 2 of the file named, without the line", err)
	}
	if err := run([]string{"-msim-account-file", filepath.Join(dir, "missing")}, strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "accounts_file") {
		t.Errorf("missing file: got %v", err)
	}
	// A line over the bound (a binary, a device that never ends) is
	// refused once the bound is passed, not read whole.
	long := filepath.Join(dir, "long")
	if err := os.WriteFile(long, []byte("carol@example.com:Carol1\n"+strings.Repeat("Secret", maxAccountLine)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{long, "/dev/zero"} {
		if _, err := os.Stat(path); err != nil {
			t.Logf("%s: %v", path, err)
			continue
		}
		_, err = LoadConfig(writeConfig(t, "[msim]\naccounts_file = '"+path+"'\n"))
		want := fmt.Sprintf("over %d bytes", maxAccountLine)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "msim.accounts_file") || strings.Contains(err.Error(), "Secret") {
			t.Errorf("%s: got %v, want an error naming msim.accounts_file and saying %q", path, err, want)
		}
	}
}

// TestSecretsFileModeWarning: a config holding passwords that group or
// others may read is warned about, with the fix.
func TestSecretsFileModeWarning(t *testing.T) {
	withPW := "[irc]\npassword = \"gate\"\n"
	withoutPW := "[irc]\nnetwork = \"x\"\n"
	for _, tc := range []struct {
		name string
		text string
		mode os.FileMode
		warn bool
	}{
		{"passwords, world-readable", withPW, 0o644, true},
		{"passwords, group-readable", withPW, 0o640, true},
		{"passwords, owner only", withPW, 0o600, false},
		{"no passwords", withoutPW, 0o644, false},
		{"account password", "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword = \"p\"\n", 0o604, true},
		{"embedded accounts", "[msim]\naccounts = [\"a@b:p\"]\n", 0o644, true},
		{"postgres password", "[store]\ndriver = \"postgres\"\ndsn = \"host=db dbname=gw password=pw\"\n", 0o644, true},
		{"postgres password, spaces around =", "[store]\ndriver = \"postgres\"\ndsn = \"host=db dbname=gw password = pw\"\n", 0o644, true},
		{"postgres password, tab before =", "[store]\ndriver = \"postgres\"\ndsn = \"host=db Password\t=pw\"\n", 0o644, true},
		{"postgres client key password", "[store]\ndriver = \"postgres\"\ndsn = \"host=db sslpassword =pw\"\n", 0o644, true},
		{"postgres URL with a password", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://gw:pw@db/gw\"\n", 0o644, true},
		{"postgres URL, password parameter", "[store]\ndriver = \"postgres\"\ndsn = \"postgresql://db/gw?password=pw\"\n", 0o644, true},
		{"postgres URL, client key password", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://gw@db/gw?sslpassword=pw\"\n", 0o644, true},
		{"postgres without a password", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://gw@db/gw\"\n", 0o644, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.text)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			l, hook := logtest.NewNullLogger()
			warnReadableSecrets(path, cfg.holdsPasswords(), cfg, logrus.NewEntry(l))
			got := len(hook.AllEntries()) > 0
			if got != tc.warn {
				t.Fatalf("got warning %v (%v), want %v", got, hook.AllEntries(), tc.warn)
			}
			if got && !strings.Contains(hook.LastEntry().Message, "chmod 600 "+path) {
				t.Errorf("warning %q does not say how to fix it", hook.LastEntry().Message)
			}
		})
	}
	// A password file is checked too, whether or not the config holds one.
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("Secret1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(writeConfig(t, "[[user]]\nname = \"a\"\n[[user.account]]\nemail = \"a@b\"\npassword_file = \""+pw+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, hook := logtest.NewNullLogger()
	warnReadableSecrets("", cfg.holdsPasswords(), cfg, logrus.NewEntry(l))
	if len(hook.AllEntries()) != 1 || !strings.Contains(hook.LastEntry().Message, "chmod 600 "+pw) {
		t.Errorf("password file: got %v, want one warning naming it", hook.AllEntries())
	}
}

func TestDemoKeyFile(t *testing.T) {
	data := filepath.Join(t.TempDir(), "msim.db")
	key, path, err := demoKey(data)
	if err != nil || len(key) != demoKeySize || path != data+".irc-key" {
		t.Fatalf("got %d bytes at %s, %v", len(key), path, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	again, _, err := demoKey(data)
	if err != nil || string(again) != string(key) {
		t.Errorf("second start: got another key (%v)", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := demoKey(data); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("readable key file: got %v, want a refusal saying chmod 600", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := demoKey(data); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("short key file: got %v", err)
	}
	if key, path, err := demoKey(""); key != nil || path != "" || err != nil {
		t.Errorf("no data file: got %v, %q, %v; want nothing", key, path, err)
	}
}
