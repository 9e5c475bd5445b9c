package channel

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// StaticUser is a configured IRC user.
type StaticUser struct {
	Name     string
	Password string // "" = none of its own (the server password applies)
	Accounts []Account
}

// StaticDirectory serves the users of a configuration file. A client names
// its user with SASL, with PASS "name:password", or by its nick (then PASS
// is the password).
type StaticDirectory struct {
	Users          []StaticUser
	ServerPassword string // required of users without a password of their own
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (d *StaticDirectory) find(name string) *StaticUser {
	for i := range d.Users {
		if strings.EqualFold(d.Users[i].Name, name) {
			return &d.Users[i]
		}
	}
	return nil
}

func (d *StaticDirectory) check(u *StaticUser, password string) error {
	want := u.Password
	if want == "" {
		want = d.ServerPassword
	}
	if want != "" && !eq(password, want) {
		return ErrAuth
	}
	return nil
}

// Authenticate implements Directory.
func (d *StaticDirectory) Authenticate(account, password string) error {
	u := d.find(account)
	if u == nil {
		return ErrAuth
	}
	return d.check(u, password)
}

// Lookup implements Directory.
func (d *StaticDirectory) Lookup(reg ircd.Registration) (User, error) {
	var u *StaticUser
	switch {
	case reg.Account != "": // SASL already checked the password
		if u = d.find(reg.Account); u == nil {
			return User{}, ErrAuth
		}
	default:
		name, pw, ok := strings.Cut(reg.Pass, ":")
		if ok {
			u = d.find(name)
		}
		if u == nil {
			u, pw = d.find(reg.Nick), reg.Pass
		}
		if u == nil {
			return User{}, ErrAuth // the same answer as a wrong password
		}
		if err := d.check(u, pw); err != nil {
			return User{}, err
		}
	}
	return User{Name: u.Name, Accounts: u.Accounts}, nil
}

// DemoDirectory gives every IRC user an account on the embedded MSIM network,
// named after their nick and created on first use. The account's password is
// the one the client gave (PASS or SASL); a client that gave none gets a
// random one, remembered for its nick while the process runs.
type DemoDirectory struct {
	// CreateAccount creates an MSIM account (the embedded server's API).
	CreateAccount func(email, password, userName string) (msim.UID, error)
	// Exists reports whether CreateAccount's error means "e-mail taken".
	Exists func(error) bool
	// CheckPassword verifies an existing account's password, so that a
	// nick's account cannot be taken with another password.
	CheckPassword func(email, password string) error
	// Domain of the demo e-mail addresses; default "msimircd.local".
	Domain string

	mu        sync.Mutex
	generated map[string]string // nick key → password
	sasl      map[string]string // account → password, from Authenticate
}

// Authenticate implements Directory: any account name is accepted; its
// password protects the demo account it creates.
func (d *DemoDirectory) Authenticate(account, password string) error {
	if demoUserName(account) == "" {
		return ErrAuth
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sasl == nil {
		d.sasl = map[string]string{}
	}
	if len(d.sasl) >= 1000 {
		clear(d.sasl) // bounded: stale entries of clients that never registered
	}
	d.sasl[strings.ToLower(account)] = password
	return nil
}

// demoUserName makes an MSIM user name (letters, digits, '_'; at most 25)
// from a nick.
func demoUserName(nick string) string {
	var b strings.Builder
	for _, r := range nick {
		switch {
		case r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_'):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	n := strings.ToLower(strings.Trim(b.String(), "_"))
	if allDigits(n) {
		n = "u" + n // an all-digit user name reads as "none set"
	}
	if len(n) > 25 {
		n = n[:25]
	}
	return n
}

// Lookup implements Directory.
func (d *DemoDirectory) Lookup(reg ircd.Registration) (User, error) {
	who := reg.Nick
	if reg.Account != "" {
		who = reg.Account
	}
	name := demoUserName(who)
	if name == "" {
		return User{}, fmt.Errorf("%w: cannot make an MSIM user name from %q", ErrAuth, who)
	}
	domain := d.Domain
	if domain == "" {
		domain = "msimircd.local"
	}
	d.mu.Lock()
	pw := reg.Pass
	if reg.Account != "" {
		pw = d.sasl[strings.ToLower(reg.Account)]
		delete(d.sasl, strings.ToLower(reg.Account))
	}
	if pw == "" {
		if d.generated == nil {
			d.generated = map[string]string{}
		}
		if pw = d.generated[name]; pw == "" {
			var b [12]byte
			_, _ = rand.Read(b[:])
			pw = base64.RawURLEncoding.EncodeToString(b[:])
			d.generated[name] = pw
		}
	}
	d.mu.Unlock()
	email := name + "@" + domain
	_, err := d.CreateAccount(email, pw, name)
	for i := 2; err != nil && !d.Exists(err) && i < 100; i++ {
		// The user name is taken by another e-mail (e.g. "tom"): number it.
		email = fmt.Sprintf("%s%d@%s", name, i, domain)
		_, err = d.CreateAccount(email, pw, fmt.Sprintf("%s%d", name, i))
	}
	if err != nil && !d.Exists(err) {
		return User{}, fmt.Errorf("creating the demo account: %w", err)
	}
	if err != nil && d.CheckPassword != nil && d.CheckPassword(email, pw) != nil {
		return User{}, fmt.Errorf("%w: the account of nick %s has another password", ErrAuth, name)
	}
	local, _, _ := strings.Cut(email, "@")
	return User{Name: "demo/" + email, Accounts: []Account{{
		Email: email, Password: pw, Channel: "&" + local, AutoConnect: true,
	}}}, nil
}
