package channel

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/guard"
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
// is the password). Names match as nicks do (ircd.AccountKey: rfc1459
// casemapping and Unicode case folding), so a configured user is the same
// user under every spelling of its nick, as a registered nick is.
type StaticDirectory struct {
	Users          []StaticUser
	ServerPassword string // required of users without a password of their own
	// byName indexes Users by userKey, for a directory whose Users do not
	// change (staticCopy's); nil: Find scans Users.
	byName map[string]int
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// userKey is what configured user names are compared by.
func userKey(name string) string { return ircd.AccountKey(name) }

// Find returns the user that name names, or nil: names match as nicks do,
// the first user of a name winning. Whatever compares a name with the
// configured users (msimircd user, say) asks it, so that it finds them as
// logins do.
func (d *StaticDirectory) Find(name string) *StaticUser {
	k := userKey(name)
	if d.byName != nil {
		if i, ok := d.byName[k]; ok {
			return &d.Users[i]
		}
		return nil
	}
	for i := range d.Users {
		if userKey(d.Users[i].Name) == k {
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
	u := d.Find(account)
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
		if u = d.Find(reg.Account); u == nil {
			return User{}, ErrAuth
		}
	default:
		name, pw, ok := strings.Cut(reg.Pass, ":")
		if ok {
			u = d.Find(name)
		}
		if u == nil {
			u, pw = d.Find(reg.Nick), reg.Pass
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

// DemoDirectory gives every IRC user an account on the embedded MSIM
// network, named after their nick and created on first use.
//
// A nick maps to exactly one MSIM user name (see DemoUserName): nicks that
// differ only in case are one account; any other difference makes another.
// The user name's holder decides how the client gets in:
//   - nobody: a client with a password creates the account; one without
//     gets an ephemeral account, retired (its user name freed) when the
//     bridge forgets the user, so the next client with that nick starts
//     fresh, as in BitlBee;
//   - the nick's passworded demo account: the client's password must match;
//   - an operator's account (Seeded): the client's password must be its
//     password, in full;
//   - anyone else (Tom, an ephemeral account in use, an account an MSIM
//     client named): the client is refused.
//
// The MSIM password of a demo account is not the IRC password (MSIM counts
// only its first 10 characters, case-insensitively): it is derived from it
// with Key, so the IRC password counts in full and case-sensitively, and a
// demo account cannot be reached from MSIM. Every refusal reads the same, so
// it never tells whether an account exists or is connected.
type DemoDirectory struct {
	// CreateAccount creates an MSIM account (the embedded server's API).
	CreateAccount func(email, password, userName string) (msim.UID, error)
	// Exists reports whether CreateAccount's error means "e-mail taken".
	Exists func(error) bool
	// CheckPassword verifies an existing account's MSIM password.
	CheckPassword func(email, password string) error
	// UserNameOwner returns the e-mail address of the account holding an
	// MSIM user name, or "" if none does.
	UserNameOwner func(userName string) (email string, err error)
	// Retire frees an account's user name and makes its password unusable.
	// Without it an ephemeral account's nick cannot be used again while the
	// process runs.
	Retire func(email string) error
	// Key derives the demo accounts' MSIM passwords; keep it secret and
	// stable (a lost key locks every demo account). Empty: a random key for
	// this directory only.
	Key []byte
	// Seeded are the operator's accounts (-msim-account): the nick that
	// maps to one's user name logs in with its password.
	Seeded []Account
	// Creations limits the accounts made per client address; nil: no limit.
	Creations *guard.Quota
	// Domain of the demo e-mail addresses; default "msimircd.local".
	Domain string
	// Log receives refusals of the quota and failures of the network; nil
	// discards them.
	Log *logrus.Entry

	mu        sync.Mutex
	key       []byte
	ephemeral map[string]string // user name → e-mail of its ephemeral account in use
}

// ErrCreationQuota refuses a client whose address made too many accounts.
var ErrCreationQuota = errors.New("channel: too many new accounts from your address; try again later")

// errNetwork hides the embedded network's internal errors (they name
// accounts) from the client; they are logged.
var errNetwork = errors.New("channel: the MSIM network could not set up your account; try again later")

const demoPasswordLen = 10 // all of an MSIM password that counts

// DemoUserName returns the MSIM user name of a nick: the nick casemapped as
// ircd does (rfc1459), with letters, digits, '_' and '-' kept and each of
// the other nick characters {}|^` written as '.' and a letter, so distinct
// nicks never share a user name. It fails when the name would be longer than
// MSIM's 25 characters, or the nick is not valid.
func DemoUserName(nick string) (string, error) {
	if !ircd.Nick(nick).Valid() {
		return "", fmt.Errorf("channel: %q is not a valid nick", nick)
	}
	var b strings.Builder
	for _, c := range []byte(ircd.Nick(nick).Key()) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			i := strings.IndexByte("{}|^`", c)
			if i < 0 {
				return "", fmt.Errorf("channel: %q is not a valid nick", nick)
			}
			b.WriteByte('.')
			b.WriteByte("abcde"[i])
		}
	}
	if b.Len() > 25 {
		return "", fmt.Errorf("channel: the nick %s is too long for an MSIM user name: use at most 25 characters, counting each of []\\`^{|} as two", nick)
	}
	return b.String(), nil
}

func (d *DemoDirectory) domain() string {
	if d.Domain == "" {
		return "msimircd.local"
	}
	return d.Domain
}

func (d *DemoDirectory) log() *logrus.Entry {
	if d.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		return logrus.NewEntry(l)
	}
	return d.Log
}

// msimPassword derives the MSIM password of a demo account from its IRC
// password: ten characters (all MSIM counts) of a keyed hash.
func (d *DemoDirectory) msimPassword(email, password string) string {
	d.mu.Lock()
	key := d.Key
	if len(key) == 0 {
		if d.key == nil {
			d.key = make([]byte, 32)
			_, _ = rand.Read(d.key) // never fails (crypto/rand)
		}
		key = d.key
	}
	d.mu.Unlock()
	m := hmac.New(sha256.New, key)
	m.Write([]byte("msimircd demo account\x00" + strings.ToLower(email) + "\x00" + password))
	return demoEncoding.EncodeToString(m.Sum(nil))[:demoPasswordLen]
}

var demoEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func randomWord(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return demoEncoding.EncodeToString(b)
}

// demoLogin is how a client gets into its nick's account.
type demoLogin struct {
	account   Account
	ephemeral bool
}

// resolve finds the account of user name name for password (""
// = none) and checks the password. With create it also makes a missing
// account, within remote's quota; without it a missing account is fine.
func (d *DemoDirectory) resolve(name, password string, remote net.Addr, create bool) (demoLogin, error) {
	d.mu.Lock()
	_, inUse := d.ephemeral[name]
	d.mu.Unlock()
	if inUse {
		return demoLogin{}, ErrAuth
	}
	email := name + "@" + d.domain()
	owner := ""
	if d.UserNameOwner != nil {
		var err error
		if owner, err = d.UserNameOwner(name); err != nil {
			d.log().WithError(err).WithField("name", name).Error("demo directory: looking up an MSIM user name")
			return demoLogin{}, errNetwork
		}
	}
	switch {
	case owner == "":
	case strings.EqualFold(owner, email):
		if password == "" {
			return demoLogin{}, ErrAuth
		}
		pw := d.msimPassword(email, password)
		if err := d.checkPassword(email, pw); err != nil {
			return demoLogin{}, err
		}
		return demoLogin{account: Account{Email: owner, Password: pw}}, nil
	case d.seeded(owner) != nil:
		a := d.seeded(owner)
		if password == "" || !eq(password, a.Password) {
			return demoLogin{}, ErrAuth
		}
		return demoLogin{account: Account{Email: a.Email, Password: a.Password}}, nil
	case d.isEphemeral(name, owner) && d.Retire != nil:
		// Left over by a process that ended before its user left: nobody
		// holds its password, so free the name.
		if err := d.Retire(owner); err != nil {
			d.log().WithError(err).WithField("email", owner).Error("demo directory: retiring an ephemeral account")
			return demoLogin{}, errNetwork
		}
	default:
		return demoLogin{}, ErrAuth
	}
	if !create {
		return demoLogin{}, nil
	}
	if d.Creations != nil && !d.Creations.Allow(guard.AddrKey(remote)) {
		d.log().WithField("key", guard.AddrKey(remote)).Warn("demo directory: account creation quota reached; refusing a new account")
		return demoLogin{}, ErrCreationQuota
	}
	if password == "" {
		return d.createEphemeral(name)
	}
	pw := d.msimPassword(email, password)
	if _, err := d.CreateAccount(email, pw, name); err != nil {
		if d.Exists == nil || !d.Exists(err) {
			d.log().WithError(err).WithField("email", email).Warn("demo directory: creating an account")
			return demoLogin{}, ErrAuth // most likely the user name was taken meanwhile
		}
		if err := d.checkPassword(email, pw); err != nil { // made meanwhile
			return demoLogin{}, err
		}
	}
	return demoLogin{account: Account{Email: email, Password: pw}}, nil
}

func (d *DemoDirectory) checkPassword(email, pw string) error {
	if d.CheckPassword == nil {
		return nil // the MSIM login checks it then (attach: the session's accounts)
	}
	if d.CheckPassword(email, pw) != nil {
		return ErrAuth
	}
	return nil
}

func (d *DemoDirectory) seeded(email string) *Account {
	for i := range d.Seeded {
		if strings.EqualFold(d.Seeded[i].Email, email) {
			return &d.Seeded[i]
		}
	}
	return nil
}

// Ephemeral accounts are name+WORD@domain.
func (d *DemoDirectory) isEphemeral(name, email string) bool {
	local, dom, _ := strings.Cut(strings.ToLower(email), "@")
	rest, ok := strings.CutPrefix(local, name+"+")
	return ok && rest != "" && dom == strings.ToLower(d.domain())
}

// createEphemeral makes a fresh account for a client without a password;
// its password is random and kept only while it is in use.
func (d *DemoDirectory) createEphemeral(name string) (demoLogin, error) {
	email := name + "+" + randomWord(5) + "@" + d.domain()
	pw := randomWord(demoPasswordLen)[:demoPasswordLen]
	d.mu.Lock()
	if _, inUse := d.ephemeral[name]; inUse {
		d.mu.Unlock()
		return demoLogin{}, ErrAuth
	}
	if d.ephemeral == nil {
		d.ephemeral = map[string]string{}
	}
	d.ephemeral[name] = email
	d.mu.Unlock()
	if _, err := d.CreateAccount(email, pw, name); err != nil {
		d.mu.Lock()
		delete(d.ephemeral, name)
		d.mu.Unlock()
		d.log().WithError(err).WithField("email", email).Warn("demo directory: creating an account")
		return demoLogin{}, ErrAuth // most likely the user name was taken meanwhile
	}
	return demoLogin{account: Account{Email: email, Password: pw}, ephemeral: true}, nil
}

// Authenticate implements Directory: the password must be that of the
// account's existing account; a missing one is made at Lookup, with the
// password the connection's own SASL login gave (reg.SASLPassword).
func (d *DemoDirectory) Authenticate(account, password string) error {
	name, err := DemoUserName(account)
	if err != nil {
		return ErrAuth
	}
	_, err = d.resolve(name, password, nil, false)
	return err
}

// Lookup implements Directory. A SASL login's password is checked again
// (the account may have been made since Authenticate) or creates the
// account.
func (d *DemoDirectory) Lookup(reg ircd.Registration) (User, error) {
	who, password := reg.Nick, reg.Pass
	if reg.Account != "" {
		who, password = reg.Account, reg.SASLPassword
	}
	name, err := DemoUserName(who)
	if err != nil {
		return User{}, err
	}
	l, err := d.resolve(name, password, reg.Remote, true)
	if err != nil {
		return User{}, err
	}
	l.account.Channel = "&" + ircd.Nick(who).Key()
	l.account.AutoConnect = true
	return User{Name: demoUserPrefix + l.account.Email, Accounts: []Account{l.account}, Ephemeral: l.ephemeral}, nil
}

// demoUserPrefix starts the name of every user of the demo directory (its
// account's e-mail follows), which no nick has.
const demoUserPrefix = "demo/"

// demoUser reports whether name is one the demo directory gives its users.
func demoUser(name string) bool { return strings.HasPrefix(name, demoUserPrefix) }

// DemoNamespace reports whether name, in any case, starts as the names the
// demo directory gives its users: the store keeps those users under such
// names, so no other user (a [[user]] of the configuration) may have one.
func DemoNamespace(name string) bool {
	return len(name) >= len(demoUserPrefix) && strings.EqualFold(name[:len(demoUserPrefix)], demoUserPrefix)
}

// Forget implements Forgetter: an ephemeral user's account is retired, so
// the next client with the nick gets a fresh one.
func (d *DemoDirectory) Forget(u User) {
	if !u.Ephemeral || len(u.Accounts) == 0 {
		return
	}
	email := u.Accounts[0].Email
	if d.Retire != nil {
		if err := d.Retire(email); err != nil {
			// The next Lookup of the nick retries it.
			d.log().WithError(err).WithField("email", email).Error("demo directory: retiring an ephemeral account")
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, e := range d.ephemeral {
		if e == email {
			delete(d.ephemeral, name)
		}
	}
}

// unprovision implements unprovisioner: drop retires the nick's account on
// the embedded network (the one register set up, if accounts holds it), so
// nothing registration made outlives it and the user name is free again.
func (d *DemoDirectory) unprovision(nick string, accounts []Account) error {
	name := demoUserName(nick)
	if name == "" || d.Retire == nil {
		return nil
	}
	email := name + "@" + d.domain()
	for _, a := range accounts {
		if strings.EqualFold(a.Email, email) {
			return d.Retire(a.Email)
		}
	}
	return nil
}

// errRetired: the nick's account on the embedded network was retired
// (drop), and a retired account is not opened again.
var errRetired = fmt.Errorf("%w: the nick's account was retired", ErrAuth)

// retired reports whether the account of user name name was retired: its
// e-mail address refused a new account while nobody holds the user name.
func (d *DemoDirectory) retired(name string) bool {
	if d.UserNameOwner == nil {
		return false
	}
	owner, err := d.UserNameOwner(name)
	return err == nil && owner == ""
}

// demoUserName is DemoUserName without the reason: "" when the nick has no
// user name.
func demoUserName(nick string) string {
	n, _ := DemoUserName(nick)
	return n
}

// provision implements provisioner: register on the embedded network makes
// sure the nick's account exists with the password-derived MSIM password,
// as a first connection with that password does. The session's own
// account of the nick (in have) is kept as it is.
func (d *DemoDirectory) provision(nick, password string, remote net.Addr, have []Account) (Account, error) {
	name, err := DemoUserName(nick)
	if err != nil {
		return Account{}, err
	}
	email := name + "@" + d.domain()
	for _, a := range have {
		if strings.EqualFold(a.Email, email) {
			return a, nil
		}
	}
	l, err := d.resolve(name, password, remote, true)
	if errors.Is(err, ErrAuth) && d.retired(name) {
		return Account{}, errRetired
	}
	if err != nil {
		return Account{}, err
	}
	l.account.Channel = "&" + ircd.Nick(nick).Key()
	l.account.AutoConnect = true
	return l.account, nil
}
