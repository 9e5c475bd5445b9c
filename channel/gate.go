package channel

import "github.com/msimircd/msimircd/ircd"

// WithServerPassword returns a Directory that requires the server password
// before d sees a client; with password "" it returns d itself.
//
// A client gives the password with PASS or SASL PLAIN, either alone
// ("SERVERPW") or followed by a password of its own ("SERVERPW:OWN"), which
// d then receives as the client's password: on the demo network, OWN
// protects the nick's account. The server password may itself contain ':':
// what follows it, after one ':', is OWN. It is compared in constant time.
// A refusal is ErrAuth, so ircd counts it as a failed guess.
//
// The result keeps d's optional interfaces (Forgetter), so ephemeral
// accounts behind the gate are still retired.
func WithServerPassword(password string, d Directory) Directory {
	if password == "" {
		return d
	}
	g := &passwordGate{password: password, next: d}
	if f, ok := d.(Forgetter); ok {
		return &forgettingGate{passwordGate: g, f: f}
	}
	return g
}

type passwordGate struct {
	password string
	next     Directory
}

// open checks the server password at the start of given and returns the
// client's own part after it.
func (g *passwordGate) open(given string) (own string, ok bool) {
	server := given
	if n := len(g.password); len(given) > n && given[n] == ':' {
		server, own = given[:n], given[n+1:]
	}
	if !eq(server, g.password) {
		return "", false
	}
	return own, true
}

// Authenticate implements Directory: SASL PLAIN's password holds the server
// password.
func (g *passwordGate) Authenticate(account, password string) error {
	own, ok := g.open(password)
	if !ok {
		return ErrAuth
	}
	return g.next.Authenticate(account, own)
}

// Lookup implements Directory: PASS holds the server password, unless SASL
// already checked it; then the client's own part of the SASL password goes
// on to d.
func (g *passwordGate) Lookup(reg ircd.Registration) (User, error) {
	given := &reg.Pass
	if reg.Account != "" {
		given = &reg.SASLPassword
	}
	own, ok := g.open(*given)
	if !ok {
		return User{}, ErrAuth
	}
	*given = own
	return g.next.Lookup(reg)
}

// users finds the store's users behind the gate.
func (g *passwordGate) users() *storeDirectory { return findUsers(g.next) }

// forgettingGate is a passwordGate in front of a Forgetter.
type forgettingGate struct {
	*passwordGate
	f Forgetter
}

// Forget implements Forgetter.
func (g *forgettingGate) Forget(u User) { g.f.Forget(u) }

// Interface checks.
var (
	_ Directory = (*passwordGate)(nil)
	_ Forgetter = (*forgettingGate)(nil)
)
