// Users kept in the store: nicks registered with register (or by an
// administrator) need their password, and their MSIM accounts come from the
// store.

package channel

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
)

// Registration modes of WithStore.
const (
	RegistrationOpen   = "open"   // anyone may register their nick
	RegistrationClosed = "closed" // users are made by an administrator
)

// WithStore returns a Directory in which a nick registered in st (see
// register) must give its password: with PASS, SASL PLAIN or, after
// connecting, identify. Its MSIM accounts are those kept in st. A
// registered nick that connects without a password gets a session with no
// accounts, in which root asks it to identify. Every other nick, and every
// user that d's configuration names (StaticDirectory), goes to d as before;
// when d is a configuration's (StaticDirectory, LiveDirectory) and refuses
// a nick it does not name, that nick comes in as a newcomer while
// registration is open: a session with no accounts, in which it may
// register, as in BitlBee (see newcomer).
//
// registration is RegistrationOpen (also ""), which lets a connected user
// register their nick, or RegistrationClosed. The result keeps d's
// Forgetter. A refusal is ErrAuth, so ircd counts it as a failed guess.
//
// Stored users are named by their nick casemapped as ircd does
// (ircd.Nick.Key); UserName gives that name.
func WithStore(st store.Store, d Directory, registration string) Directory {
	if registration == "" {
		registration = RegistrationOpen
	}
	return &storeDirectory{st: st, next: d, registration: registration, sasl: map[string]int{}}
}

// UserName is the name under which the store keeps the user of a nick.
func UserName(nick string) string { return nickKey(nick) }

// storeDirectory is WithStore's Directory.
type storeDirectory struct {
	st           store.Store
	next         Directory
	registration string

	mu sync.Mutex
	// sasl counts, per stored user, the SASL logins checked here and not
	// yet registered: a user's clients may log in at once.
	sasl map[string]int
}

// configured is an optional interface of a Directory: it names the users
// its configuration holds, which the store never takes over.
type configured interface {
	configured(name string) bool
}

func (d *StaticDirectory) configured(name string) bool { return d.Find(name) != nil }

// accountHolder is an optional interface of a Directory: it names the user
// of its configuration who lists an MSIM account, or "" if none does. An
// account logs in for one user only, so the store gives none of these to
// another user.
type accountHolder interface {
	accountHolder(email string) string
}

// accountHolder implements accountHolder: e-mails compare as the bridge
// compares them (strings.EqualFold).
func (d *StaticDirectory) accountHolder(email string) string {
	for _, u := range d.Users {
		if accountIndex(u.Accounts, email) >= 0 {
			return u.Name
		}
	}
	return ""
}

// provisioner is an optional interface of a Directory that runs an MSIM
// network of its own (DemoDirectory): provision makes sure the nick's
// account exists there with password, and returns it. An account in have
// that is the nick's is returned as it is.
type provisioner interface {
	provision(nick, password string, remote net.Addr, have []Account) (Account, error)
}

// unprovisioner is the other half of a provisioner: drop hands it the
// dropped user's accounts, and it retires the one provision made.
type unprovisioner interface {
	unprovision(nick string, accounts []Account) error
}

// storeUsers is how the bridge finds the storeDirectory behind gates.
type storeUsers interface {
	users() *storeDirectory
}

func (d *storeDirectory) users() *storeDirectory { return d }

// findUsers returns the storeDirectory of dir, or nil.
func findUsers(dir Directory) *storeDirectory {
	if su, ok := dir.(storeUsers); ok {
		return su.users()
	}
	return nil
}

// errStore is what a client is told when the store fails (it is logged).
var errStore = errors.New("the gateway's database is not available; try again later")

func storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeWait)
}

// stored returns the stored user of a nick; ok false if the nick is not one
// the store decides (invalid, configured, or not registered). An entry the
// configuration used to name (leftConfiguration: a password nobody knows)
// is no registration: the nick goes to the next directory, as if the entry
// were gone (the reload that removed the user deletes it once their session
// has ended, or else the next start's SaveUsers).
func (d *storeDirectory) stored(nick string) (store.User, bool, error) {
	if !ircd.Nick(nick).Valid() {
		return store.User{}, false, nil
	}
	if d.configures(nick) {
		return store.User{}, false, nil
	}
	ctx, cancel := storeCtx()
	defer cancel()
	u, err := d.st.User(ctx, UserName(nick))
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, false, nil
	}
	if err != nil {
		return store.User{}, false, err
	}
	if leftConfiguration(u, true) {
		return store.User{}, false, nil
	}
	return u, true, nil
}

// configures reports whether the configuration names the user.
func (d *storeDirectory) configures(name string) bool {
	c, ok := d.next.(configured)
	return ok && c.configured(name)
}

// accountHolder returns the user of the configuration who lists the MSIM
// account email, or "".
func (d *storeDirectory) accountHolder(email string) string {
	if h, ok := d.next.(accountHolder); ok {
		return h.accountHolder(email)
	}
	return ""
}

// Authenticate implements Directory.
func (d *storeDirectory) Authenticate(account, password string) error {
	u, ok, err := d.stored(account)
	if err != nil {
		return errStore
	}
	if !ok {
		return d.next.Authenticate(account, password)
	}
	if store.CheckPassword(u.PasswordHash, password) != nil {
		return ErrAuth
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.sasl) >= 1000 {
		clear(d.sasl) // bounded: clients that never finished registering
	}
	d.sasl[u.Name]++
	return nil
}

// Lookup implements Directory.
func (d *storeDirectory) Lookup(reg ircd.Registration) (User, error) {
	who := reg.Nick
	if reg.Account != "" {
		who = reg.Account
	}
	u, ok, err := d.stored(who)
	if err != nil {
		return User{}, errStore
	}
	if !ok {
		nu, err := d.next.Lookup(reg)
		if !errors.Is(err, ErrAuth) {
			return nu, err
		}
		if n, ok := d.newcomer(reg); ok {
			return n, nil
		}
		return User{}, err
	}
	switch {
	case reg.Account != "":
		d.mu.Lock()
		checked := d.sasl[u.Name] > 0
		if d.sasl[u.Name]--; d.sasl[u.Name] <= 0 {
			delete(d.sasl, u.Name)
		}
		d.mu.Unlock()
		if !checked {
			return User{}, ErrAuth
		}
	case reg.Pass == "":
		return unidentified(u.Name), nil
	default:
		if store.CheckPassword(u.PasswordHash, reg.Pass) != nil {
			return User{}, ErrAuth
		}
	}
	return d.load(u.Name)
}

// unidentified is the user of a connection that has not yet given the
// password of the registered user name: nothing of name's is loaded.
func unidentified(name string) User {
	return User{Name: "unidentified/" + name + "/" + rand.Text(), Ephemeral: true, identify: name}
}

// newcomers is an optional interface of a Directory whose users are a
// configuration's (StaticDirectory, LiveDirectory): a nick it does not
// name may come in as a newcomer (storeDirectory.newcomer), with the
// password newcomerPassword returns ("": none).
type newcomers interface {
	newcomerPassword() string
}

func (d *StaticDirectory) newcomerPassword() string { return d.ServerPassword }

// newcomerPassword is the password a newcomer gives to come in ("": none,
// or d takes no newcomers).
func (d *storeDirectory) newcomerPassword() string {
	if n, ok := d.next.(newcomers); ok {
		return n.newcomerPassword()
	}
	return ""
}

// newcomer returns the user of a connection that d.next refused, whose
// nick neither the store nor the configuration has: with registration
// open, it comes in with no accounts and may register the nick (or
// another), as in BitlBee; ok false if it is refused. Only a directory
// of a configuration's users (newcomers) takes newcomers: the demo
// network's gives every nick an account of its own, and refuses only
// what it must. A newcomer's PASS is the server password, exactly, or
// none when there is none: any other password was a login that failed
// (a [[user]]'s, a removed one's), and its refusal stands. SASL names an
// account, which a newcomer has none of.
func (d *storeDirectory) newcomer(reg ircd.Registration) (User, bool) {
	n, ok := d.next.(newcomers)
	if !ok || d.registration != RegistrationOpen || reg.Account != "" ||
		!ircd.Nick(reg.Nick).Valid() || d.configures(reg.Nick) || !eq(reg.Pass, n.newcomerPassword()) {
		return User{}, false
	}
	return User{Name: "newcomer/" + UserName(reg.Nick) + "/" + rand.Text(), Ephemeral: true, newcomer: true}, true
}

// check verifies a stored user's password and returns the user; ErrAuth if
// it does not match.
func (d *storeDirectory) check(name, password string) (User, error) {
	ctx, cancel := storeCtx()
	u, err := d.st.User(ctx, name)
	cancel()
	if errors.Is(err, store.ErrNotFound) {
		return User{}, ErrAuth // dropped meanwhile
	}
	if err != nil {
		return User{}, err
	}
	if store.CheckPassword(u.PasswordHash, password) != nil {
		return User{}, ErrAuth
	}
	return d.load(name)
}

// load returns a stored user with their accounts.
func (d *storeDirectory) load(name string) (User, error) {
	ctx, cancel := storeCtx()
	defer cancel()
	st, err := d.st.LoadUser(ctx, name)
	if err != nil {
		return User{}, err
	}
	u := User{Name: name, registered: true}
	for _, a := range st.Accounts {
		if a.Unreadable != nil {
			continue // not logged in: the user's memory tells them (loadUserMemory)
		}
		u.Accounts = append(u.Accounts, Account{Email: a.Email, Password: a.Password, Channel: a.Channel, AutoConnect: a.Autoconnect,
			status: a.Settings["status"], statusText: a.Settings["status_text"]})
	}
	return u, nil
}

// Forget implements Forgetter for the directory behind.
func (d *storeDirectory) Forget(u User) {
	if f, ok := d.next.(Forgetter); ok {
		f.Forget(u)
	}
}

// Interface checks.
var (
	_ Directory     = (*storeDirectory)(nil)
	_ Forgetter     = (*storeDirectory)(nil)
	_ storeUsers    = (*storeDirectory)(nil)
	_ configured    = (*StaticDirectory)(nil)
	_ accountHolder = (*StaticDirectory)(nil)
	_ accountHolder = (*LiveDirectory)(nil)
	_ newcomers     = (*StaticDirectory)(nil)
	_ newcomers     = (*LiveDirectory)(nil)
)

// AccountClash is an MSIM account that a user of the configuration lists
// and a user kept in the store, whom the configuration does not name,
// holds too.
type AccountClash struct {
	Email      string // as the configuration lists it
	Configured string // the configuration's user
	Stored     string // the stored user
}

// AccountClashes returns the MSIM accounts that users (a configuration's)
// list and a user kept in st holds too: a user of register or msimircd
// user add, or a nick of the demo network (the store keeps them, and with
// always-on their accounts log in at start). Both users' sessions would
// log such an account in, each login logging the other out, and its IMs
// would reach whichever held it. The stored users that users name are not
// looked at: the configuration's user is theirs; nor is one that a
// configuration used to name (leftConfiguration), whose accounts nothing
// logs in.
func AccountClashes(ctx context.Context, st store.Store, users []StaticUser) ([]AccountClash, error) {
	d := staticCopy(users, "")
	stored, err := st.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the stored users: %w", err)
	}
	var clashes []AccountClash
	for _, su := range stored {
		if d.configured(su.Name) || leftConfiguration(su, false) { // a configuration: no demo
			continue
		}
		state, err := st.LoadUser(ctx, su.Name)
		if isNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("loading the stored user %s: %w", su.Name, err)
		}
		for _, a := range state.Accounts {
			for _, u := range d.Users {
				if i := accountIndex(u.Accounts, a.Email); i >= 0 {
					clashes = append(clashes, AccountClash{Email: u.Accounts[i].Email, Configured: u.Name, Stored: su.Name})
				}
			}
		}
	}
	return clashes, nil
}

// leftConfiguration reports whether su, a stored user whom the
// configuration does not name, is one it used to name: a [[user]] since
// removed from the file or renamed, whose entry SaveUsers left with a
// password nobody knows (UnusablePassword), so that nobody logs in as it.
// Always-on does not log its accounts in. The demo network's nicks are
// kept with such a password too (every session of a user whom another
// directory serves is saved so), and log in again with theirs while the
// embedded network serves nicks (demo): their names tell them apart;
// otherwise nobody can log in as them either, and they are left too. A
// configuration user that a build before the recognisable unusable
// password saved, and that no start since has saved again, looks like a
// registered user and is not recognised.
func leftConfiguration(su store.User, demo bool) bool {
	return store.UnusablePassword(su.PasswordHash) && (!demo || !demoUser(su.Name))
}

// NameClashes returns the names of users (a configuration's) that a user
// kept in st has, spelled exactly, with a password of their own: a user of
// register or msimircd user add. SaveUsers would make that entry the
// configuration user's: their password one nobody knows, and their MSIM
// accounts (with the MSIM passwords), settings and history the
// configuration user's to log in to and read. The names are those whose
// entries SaveUsers refuses (registration, see entryOf): a user that
// SaveUsers saved before (a password nobody knows) is the configuration's
// own, and no clash, nor is an undecided entry (SaveUsers keeps it as it
// is); nor is another spelling of the nick, which is another entry (the
// configuration's user wins its logins).
func NameClashes(ctx context.Context, st store.Store, users []StaticUser) ([]string, error) {
	var clashes []string
	for _, u := range users {
		su, err := st.User(ctx, u.Name)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("loading the stored user %s: %w", u.Name, err)
		}
		if store.UnusablePassword(su.PasswordHash) {
			continue
		}
		state, err := st.LoadUser(ctx, su.Name)
		if isNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("loading the stored user %s: %w", u.Name, err)
		}
		if registration(state, u.Accounts) {
			clashes = append(clashes, u.Name)
		}
	}
	return clashes, nil
}

// ErrRegistered: a configuration's user is named as a user kept in the
// store with a password of their own (see NameClashes).
var ErrRegistered = errors.New("the name is a registered user's (register or msimircd user add), holding none of the accounts the configuration lists")

// entryKind is what an entry kept in the store for a name a
// configuration's user has is to that user (entryOf).
type entryKind int

const (
	// entryConfigured: the configuration's own, which SaveUsers makes
	// match the configuration (its password one nobody knows, the
	// accounts it no longer lists deleted).
	entryConfigured entryKind = iota
	// entryUndecided: a password that looks usable, with some of the
	// accounts the user lists and some it does not. An earlier build's
	// save of the user whose file has since dropped an account looks so,
	// and so does a registered user who holds an account the user lists
	// besides accounts of their own: nothing in the store tells them
	// apart. The name is not refused (an upgrade starts), but the entry is
	// kept as it is: its password and the accounts the user does not list,
	// with what was kept for them, are not touched.
	entryUndecided
	// entryRegistered: a registration of the name (register, msimircd
	// user add): a password of its own and none of the accounts. The
	// configuration's user is refused (ErrRegistered, NameClashes).
	entryRegistered
)

// entryOf says what state, kept in the store for a name a configuration's
// user listing accounts has, is to that user. A recognised unusable
// password (UnusablePasswordHash) is the configuration's. Builds before
// it saved the configuration's users with one that looks like any other
// (and never removed an account the file dropped): an entry with such a
// password holding only accounts this user lists, one at least, is the
// configuration's own, or the same person's (a registered user holding
// them knows their MSIM passwords); holding none of them, a
// registration; holding some and others besides, undecided.
func entryOf(state store.UserState, accounts []Account) entryKind {
	switch {
	case store.UnusablePassword(state.User.PasswordHash):
		return entryConfigured
	case !sharesAccount(state.Accounts, accounts):
		return entryRegistered
	case allListed(state.Accounts, accounts):
		return entryConfigured
	default:
		return entryUndecided
	}
}

// registration reports whether state, kept in the store for a name a
// configuration's user listing accounts has, is a registration of that
// name (entryRegistered): the name is refused, by the start's and the
// reload's check (NameClashes) and by the save alike.
func registration(state store.UserState, accounts []Account) bool {
	return entryOf(state, accounts) == entryRegistered
}

// allListed reports whether every account stored holds is one a
// configuration's user lists.
func allListed(stored []store.AccountState, listed []Account) bool {
	for _, a := range stored {
		if accountIndex(listed, a.Email) < 0 {
			return false
		}
	}
	return true
}

// sharesAccount reports whether stored holds an account that a
// configuration's user lists.
func sharesAccount(stored []store.AccountState, listed []Account) bool {
	for _, a := range stored {
		if accountIndex(listed, a.Email) >= 0 {
			return true
		}
	}
	return false
}
