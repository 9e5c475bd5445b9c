package main

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/term"

	"github.com/msimircd/msimircd/internal/keyfile"
	"github.com/msimircd/msimircd/internal/secretflag"
	"github.com/msimircd/msimircd/msim/server"
)

// accountList collects repeated -msim-account flags: EMAIL (its password
// comes from standard input) or EMAIL:PASSWORD, never shown (secretflag).
type accountList struct{ secretflag.List }

// check refuses a malformed -msim-account, saying which one but not what
// it holds.
func (a accountList) check() error {
	return a.Check("msim-account", "EMAIL (the password read from standard input) or EMAIL:PASSWORD", func(v string) bool {
		email, pw, hasPW := strings.Cut(v, ":")
		return strings.Contains(email, "@") && (!hasPW || pw != "")
	})
}

// passwords returns the accounts as EMAIL:PASSWORD specs, reading the
// password of each bare EMAIL from stdin: a line each, in order, or with a
// prompt and no echo when stdin is a terminal. onCommandLine reports
// whether a password was given on the command line.
func (a accountList) passwords(stdin io.Reader) (specs []string, onCommandLine bool, err error) {
	if err := a.check(); err != nil {
		return nil, false, err
	}
	var lines *bufio.Reader
	for _, v := range a.List {
		if strings.Contains(v, ":") {
			specs = append(specs, v)
			onCommandLine = true
			continue
		}
		var pw string
		if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprintf(os.Stderr, "Password of %s: ", v)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(os.Stderr)
			if err != nil {
				return nil, false, fmt.Errorf("-msim-account %s: reading its password: %w", v, err)
			}
			pw = string(b)
		} else {
			if lines == nil {
				lines = bufio.NewReader(stdin)
			}
			line, err := lines.ReadString('\n')
			if err != nil && !(errors.Is(err, io.EOF) && line != "") {
				return nil, false, fmt.Errorf("-msim-account %s: no password for it on standard input (one line per account)", v)
			}
			pw = strings.TrimRight(line, "\r\n")
		}
		if pw == "" {
			return nil, false, fmt.Errorf("-msim-account %s: its password is empty", v)
		}
		specs = append(specs, v+":"+pw)
	}
	return specs, onCommandLine, nil
}

// readAccountsFile reads EMAIL:PASSWORD lines; blank lines and lines
// starting with '#' are skipped. It reads line by line and refuses a line
// over maxAccountLine bytes, so a file named by mistake (a device that
// never ends, a binary) is refused, not read whole. Errors never show a
// password.
func readAccountsFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	defer f.Close()
	var specs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 512), maxAccountLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if t := strings.TrimSpace(line); t == "" || t[0] == '#' {
			continue
		}
		if email, pw, ok := strings.Cut(line, ":"); !ok || !strings.Contains(email, "@") || pw == "" {
			return nil, fmt.Errorf("line %d of %s is not EMAIL:PASSWORD", n, path)
		}
		specs = append(specs, line)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("line %d of %s is over %d bytes: not EMAIL:PASSWORD", n+1, path, maxAccountLine)
	} else if err != nil {
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	return specs, nil
}

// maxAccountLine bounds a line of an accounts file.
const maxAccountLine = 4 << 10

// holdsPasswords reports whether the config file itself holds a password
// (not one read from a password_file).
func (c *Config) holdsPasswords() bool {
	if c.IRC.Password != "" || len(c.MSIM.Accounts) > 0 {
		return true
	}
	if c.Store.Driver == "postgres" && dsnHasPassword(c.Store.DSN) {
		return true
	}
	for _, u := range c.Users {
		if u.Password != "" {
			return true
		}
		for _, a := range u.Accounts {
			if a.Password != "" && a.PasswordFile == "" {
				return true
			}
		}
	}
	return false
}

// dsnHasPassword reports whether a PostgreSQL connection string (a URL or
// key=value pairs) holds a password.
func dsnHasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		_, ok := u.User.Password()
		return ok || u.Query().Has("password") || u.Query().Has("sslpassword")
	}
	// A keyword, then "=", with spaces allowed around it (libpq's
	// format, which pgx takes too): "password = pw" holds one.
	return dsnPassword.MatchString(dsn)
}

// dsnPassword finds a password keyword (password, or sslpassword for the
// client key) of a key=value connection string.
var dsnPassword = regexp.MustCompile(`(?i)(^|\s)(ssl)?password\s*=`)

// warnReadable warns when a file that holds passwords may be read by
// group or others, and says how to fix it.
func warnReadable(path, what string, log *logrus.Entry) {
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	if perm := st.Mode().Perm(); perm&0o044 != 0 {
		log.Warnf("%s %s holds passwords and is readable by group or others (mode %04o): run chmod 600 %s", what, path, perm, path)
	}
}

// warnReadableSecrets checks the config file (when it holds passwords)
// and the password files it names.
func warnReadableSecrets(configPath string, configHasPasswords bool, c Config, log *logrus.Entry) {
	if configPath != "" && configHasPasswords {
		warnReadable(configPath, "config file", log)
	}
	if c.MSIM.AccountsFile != "" {
		warnReadable(c.MSIM.AccountsFile, "accounts file", log)
	}
	for _, u := range c.Users {
		for _, a := range u.Accounts {
			if a.PasswordFile != "" {
				warnReadable(a.PasswordFile, "password file", log)
			}
		}
	}
}

// demoKeySize is the size of the demo directory's key file: 32 random bytes.
const demoKeySize = 32

// demoKey returns the key from which the demo accounts' MSIM passwords are
// derived. It lives next to the embedded network's data file (path
// data+".irc-key", made mode 0600 on first start); without a data file the
// accounts die with the process, and so does a random key (nil here).
func demoKey(dataFile string) (key []byte, path string, err error) {
	if dataFile == "" {
		return nil, "", nil
	}
	path = dataFile + ".irc-key"
	key, _, err = keyfile.LoadOrCreate(path, demoKeySize)
	if err != nil {
		return nil, path, fmt.Errorf("demo key (without it no demo account with a password can log in): %w", err)
	}
	return key, path, nil
}

// userNameOwner returns the e-mail of the account holding an MSIM user
// name on store, "" if none.
func userNameOwner(store server.Store) func(string) (string, error) {
	return func(name string) (string, error) {
		a, err := store.AccountByUserName(name)
		if errors.Is(err, server.ErrNoSuchAccount) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return a.Email, nil
	}
}

// retireAccount frees an account's user name and makes its password
// unusable (a random hash no password has): what DemoDirectory does to an
// account without a password once its user leaves.
func retireAccount(store server.Store) func(string) error {
	return func(email string) error {
		a, err := store.AccountByEmail(email)
		if err != nil {
			return err
		}
		return store.UpdateAccount(a.UID, func(a *server.Account) error {
			a.UserName = ""
			_, _ = rand.Read(a.Hash[:])
			return nil
		})
	}
}
