// Replacing the configured users while the bridge runs (a reload of
// msimircd's config).

package channel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/ircd"
)

// LiveDirectory is a StaticDirectory whose users and server password can be
// replaced while clients connect: give it to the bridge (alone or behind
// WithStore) and change it with Bridge.ReloadUsers.
type LiveDirectory struct {
	cur atomic.Pointer[StaticDirectory]
}

// NewLiveDirectory returns a LiveDirectory serving users, with the server
// password required of those without a password of their own.
func NewLiveDirectory(users []StaticUser, serverPassword string) *LiveDirectory {
	d := &LiveDirectory{}
	d.cur.Store(staticCopy(users, serverPassword))
	return d
}

// staticCopy is a StaticDirectory holding its own copy of users, which
// nothing changes: its users are found through an index rather than by a
// scan, which every login made (quadratic in a login storm).
func staticCopy(users []StaticUser, serverPassword string) *StaticDirectory {
	us := make([]StaticUser, len(users))
	byName := make(map[string]int, len(users))
	for i, u := range users {
		u.Accounts = slices.Clone(u.Accounts)
		us[i] = u
		k := userKey(u.Name)
		if _, dup := byName[k]; !dup {
			byName[k] = i // the first of the same name, as a scan finds
		}
	}
	return &StaticDirectory{Users: us, ServerPassword: serverPassword, byName: byName}
}

// Authenticate implements Directory.
func (d *LiveDirectory) Authenticate(account, password string) error {
	return d.cur.Load().Authenticate(account, password)
}

// Lookup implements Directory.
func (d *LiveDirectory) Lookup(reg ircd.Registration) (User, error) {
	return d.cur.Load().Lookup(reg)
}

func (d *LiveDirectory) configured(name string) bool { return d.cur.Load().configured(name) }

func (d *LiveDirectory) accountHolder(email string) string { return d.cur.Load().accountHolder(email) }

func (d *LiveDirectory) newcomerPassword() string { return d.cur.Load().newcomerPassword() }

// UsersChange is what ReloadUsers changed, by user name.
type UsersChange struct {
	Added   []string
	Removed []string // their sessions were ended
	Changed []string // password or accounts
}

// Empty reports whether nothing changed.
func (c UsersChange) Empty() bool { return len(c.Added)+len(c.Removed)+len(c.Changed) == 0 }

// ErrNotLive is ReloadUsers' error for a bridge whose users do not come
// from a LiveDirectory (the demo network's).
var ErrNotLive = errors.New("channel: the bridge's users are not a LiveDirectory's; they change only with a restart")

// liveUsers finds the LiveDirectory of the bridge's directory.
func (b *Bridge) liveUsers() *LiveDirectory {
	d := b.cfg.Directory
	if sd, ok := d.(*storeDirectory); ok {
		d = sd.next
	}
	ld, _ := d.(*LiveDirectory)
	return ld
}

// The reasons told to a user whose session a reload ends or changes.
const (
	reloadRemoved  = "Your user was removed from the gateway's configuration"
	reloadPassword = "Your password was changed in the gateway's configuration: connect again with the new one"
	reloadShadowed = "Your nick is now a user of the gateway's configuration: connect again with its password"
)

// ReloadUsers makes users and serverPassword those of the bridge's
// LiveDirectory and applies the difference while clients stay connected:
//   - an added user may log in at once;
//   - a removed user can no longer log in, and their session is ended with
//     a notice saying why;
//   - a user whose password (their own, or the server password they use)
//     changed must log in with the new one: their session is ended too;
//   - a user whose accounts changed keeps their session: a removed
//     account is deleted as account del does (its link closed, what was
//     kept for it forgotten), an added one is added and connected as
//     account add does, and a changed one (password, channel, autoconnect)
//     has its link closed and made again with the new settings;
//   - a user whose entry did not change is not touched.
//
// With a store, added and changed users are saved there first; if that
// fails nothing changes and the error is returned. A removed user's entry
// is deleted once their session has ended (logged out of MSIM), with
// their accounts and sealed MSIM passwords, as a start's SaveUsers
// deletes it: by ReloadUsers, or, if the session has not ended within
// its wait, as it ends; if that fails (it is logged), the next start
// deletes it, and their nick is no registration meanwhile.
// ReloadUsers returns once every session concerned has applied the
// change.
func (b *Bridge) ReloadUsers(users []StaticUser, serverPassword string) (UsersChange, error) {
	d := b.liveUsers()
	if d == nil {
		return UsersChange{}, ErrNotLive
	}
	next := staticCopy(users, serverPassword)
	old := d.cur.Load()
	var ch UsersChange
	var save []User
	type reloaded struct {
		name     string
		accounts []Account // nil: end the session with why
		why      string
	}
	var todo []reloaded
	for _, o := range old.Users {
		n := next.Find(o.Name)
		switch {
		case n == nil || n.Name != o.Name: // renamed counts as removed and added
			ch.Removed = append(ch.Removed, o.Name)
			todo = append(todo, reloaded{name: o.Name, why: reloadRemoved})
		case !eq(old.password(&o), next.password(n)):
			ch.Changed = append(ch.Changed, o.Name)
			save = append(save, User{Name: n.Name, Accounts: n.Accounts})
			todo = append(todo, reloaded{name: o.Name, why: reloadPassword})
		case !sameAccounts(o.Accounts, n.Accounts):
			ch.Changed = append(ch.Changed, o.Name)
			save = append(save, User{Name: n.Name, Accounts: n.Accounts})
			todo = append(todo, reloaded{name: o.Name, accounts: n.Accounts})
		}
	}
	for _, n := range next.Users {
		if o := old.Find(n.Name); o == nil || o.Name != n.Name {
			ch.Added = append(ch.Added, n.Name)
			save = append(save, User{Name: n.Name, Accounts: n.Accounts})
			// A session of the name is a user of the store's (register),
			// whom the configuration's now hides.
			todo = append(todo, reloaded{name: n.Name, why: reloadShadowed})
		}
	}
	// The removed users whose entries a session's late end may delete
	// (deleteOnEnd), looking at the old users until the swap below: one
	// this reload names again is saved again once the swap is done and
	// any such deletion is over.
	pending := map[string]bool{}
	b.mu.Lock()
	for _, name := range b.removedEnd {
		pending[name] = true
	}
	for name := range b.deleting {
		pending[name] = true
	}
	b.mu.Unlock()
	if st := b.cfg.Store; st != nil && len(save) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), storeWait)
		err := saveUsers(ctx, st, save)
		cancel()
		if err != nil {
			return UsersChange{}, fmt.Errorf("store: the config's users: %w", err)
		}
	}
	// The swap waits for the connections being looked up to have their
	// sessions registered, so none registers with the old users unseen.
	b.lookups.Lock()
	d.cur.Store(next)
	b.mu.Lock()
	sessions := make([]*session, len(todo))
	for i, r := range todo {
		name := r.name
		if r.why == reloadShadowed && ircd.Nick(name).Valid() {
			name = UserName(name) // the registered user's, by the nick's key
		}
		sessions[i] = b.sessions[name]
	}
	// A removed user's entry deleted, or being deleted, as their session
	// ended (ended) was looked at with the old users: if this reload
	// names them again, they are saved again once that is over.
	var resave []User
	var overs []chan struct{}
	for _, u := range save {
		over := b.deleting[u.Name]
		if over != nil || pending[u.Name] {
			resave = append(resave, u)
		}
		if over != nil {
			overs = append(overs, over)
		}
	}
	b.mu.Unlock()
	b.lookups.Unlock()
	for _, over := range overs {
		<-over
	}
	if len(resave) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), storeWait)
		err := saveUsers(ctx, b.cfg.Store, resave)
		cancel()
		if err != nil {
			b.log.WithError(err).Error("store: saving again the config's users whose entries were being deleted failed; the next start saves them")
		}
	}

	for i, r := range todo {
		s := sessions[i]
		if r.why == reloadRemoved || r.why == reloadShadowed {
			ended := s == nil || s.endFor(r.why, configChangedAs)
			if r.why == reloadRemoved && !next.named(r.name) {
				if !ended && b.deleteOnEnd(s, r.name) {
					b.log.WithField("user", r.name).Warn("store: the session of a user removed from the config has not ended; their entry is deleted once it does")
				} else {
					b.deleteRemoved(r.name, nil)
				}
			}
			continue
		}
		gone := removedAccounts(old.Find(r.name).Accounts, next.Find(r.name).Accounts)
		applied := false
		switch {
		case s == nil:
		case r.why != "":
			s.endFor(r.why, configChangedAs)
		default:
			applied = s.reloadAccounts(r.name, r.accounts)
		}
		b.deleteAccounts(r.name, gone)
		if !applied { // after the deletion: a read of the user's state then sees it
			b.forgetAccounts(r.name, gone)
		}
	}
	// Always on: an added user's accounts, and those of a user whose
	// session a password change ended, log in at once.
	for _, name := range append(slices.Clone(ch.Added), ch.Changed...) {
		if u := next.Find(name); u != nil {
			if _, err := b.bringOnline(User{Name: u.Name, Accounts: u.Accounts}); err != nil {
				b.log.WithError(err).WithField("user", name).Error("always on: the reloaded user's accounts were not brought online; they log in when the user connects")
			}
		}
	}
	return ch, nil
}

func (d *LiveDirectory) roster(ctx context.Context) ([]User, error) {
	return d.cur.Load().roster(ctx)
}

// named reports whether d has a user of exactly this name (Find matches
// another spelling of the nick too, which is another stored entry).
func (d *StaticDirectory) named(name string) bool {
	return slices.ContainsFunc(d.Users, func(u StaticUser) bool { return u.Name == name })
}

// password is the password u must give: their own, else the server's.
func (d *StaticDirectory) password(u *StaticUser) string {
	if u.Password != "" {
		return u.Password
	}
	return d.ServerPassword
}

// sameAccount reports whether two configured accounts are the same.
func sameAccount(a, b Account) bool {
	return strings.EqualFold(a.Email, b.Email) && a.Password == b.Password && a.Channel == b.Channel && a.AutoConnect == b.AutoConnect
}

// sameAccounts reports whether two lists hold the same accounts, in any
// order.
func sameAccounts(a, b []Account) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		i := accountIndex(b, x.Email)
		if i < 0 || !sameAccount(x, b[i]) {
			return false
		}
	}
	return true
}

func accountIndex(list []Account, email string) int {
	return slices.IndexFunc(list, func(a Account) bool { return strings.EqualFold(a.Email, email) })
}

// removedAccounts are the e-mail addresses of old's accounts that next
// does not have.
func removedAccounts(old, next []Account) []string {
	var gone []string
	for _, a := range old {
		if accountIndex(next, a.Email) < 0 {
			gone = append(gone, a.Email)
		}
	}
	return gone
}

// configChangedAs says, in what a link leaves to tell, that the gateway's
// configuration closed it.
const configChangedAs = "as the gateway's configuration changed"

// endWait bounds how long ReloadUsers waits for a session it ends.
const endWait = 10 * time.Second

// endFor ends the session with a notice saying why, and waits (at most
// endWait) until it has logged out of MSIM; false if it has not ended by
// then. as says why in what its links leave to tell (see endWith).
func (s *session) endFor(why, as string) bool {
	s.post(call(func() {
		s.irc.Deliver(ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Text: why + "; this connection ends."})
		s.irc.Close(why)
		s.endWith(as) // an always-on session ends too, not only its connections
	}))
	select {
	case <-s.done:
		return true
	case <-time.After(cmp.Or(s.b.endWait, endWait)):
		s.log.Warn("a session ended by a reload of the users has not ended yet")
		return false
	}
}

// reloadAccounts gives the session of user name the accounts next (see
// ReloadUsers); false if the session ended before it could.
func (s *session) reloadAccounts(name string, next []Account) bool {
	done := make(chan struct{})
	if !s.post(call(func() {
		defer close(done)
		if s.user.Name == name {
			s.applyAccounts(next)
		}
	})) {
		return false
	}
	select {
	case <-done:
		return true
	case <-s.done:
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
}

// applyAccounts makes the session's accounts next, as account del and
// account add do, leaving alone those that did not change. Run by the
// session goroutine.
func (s *session) applyAccounts(next []Account) {
	closed := false
	for _, a := range slices.Clone(s.accounts) {
		i := accountIndex(next, a.cfg.Email)
		switch {
		case i < 0:
			email := a.cfg.Email
			s.failQueue(a, "the account was removed from the gateway's configuration")
			s.removeAccount(a, "", configChangedAs)
			s.mem.forgetAccount(email)
			s.reply(replyCtx{}, "The account %s was removed from the gateway's configuration, with everything kept for it.", email)
			closed = true
		case !sameAccount(a.cfg, next[i]):
			at := slices.Index(s.accounts, a)
			s.removeAccount(a, "", configChangedAs)
			na := s.newAccount(next[i])
			s.accounts = slices.Insert(s.accounts, at, na)
			s.reply(replyCtx{}, "The account %s was changed in the gateway's configuration: it logs in again.", na.cfg.Email)
			closed = true
			s.openAccount(na)
		}
	}
	if closed {
		s.tellNotes() // what closing them left to tell (holdTaken), told now, as account del does
	}
	for _, ac := range next {
		if slices.ContainsFunc(s.accounts, func(a *account) bool { return strings.EqualFold(a.cfg.Email, ac.Email) }) {
			continue
		}
		a := s.newAccount(ac)
		s.accounts = append(s.accounts, a)
		s.reply(replyCtx{}, "The account %s was added in the gateway's configuration, in the channel %s.", ac.Email, a.channel)
		s.openAccount(a)
	}
	s.b.mu.Lock()
	s.user.Accounts = slices.Clone(next)
	s.b.mu.Unlock()
}

// forgetAccounts drops what the bridge remembers of a user's removed
// accounts when no session of theirs did.
func (b *Bridge) forgetAccounts(name string, emails []string) {
	m := b.memoryOf(name) // what a read under way installs, too
	if m == nil {
		return
	}
	for _, e := range emails {
		m.forgetAccount(e)
	}
}

// deleteAccounts deletes a user's removed accounts from the store, as
// account del does.
func (b *Bridge) deleteAccounts(name string, emails []string) {
	st := b.cfg.Store
	if st == nil {
		return
	}
	for _, e := range emails {
		ctx, cancel := context.WithTimeout(context.Background(), storeWait)
		err := st.DeleteAccount(ctx, name, e)
		cancel()
		if err != nil && !isNotFound(err) {
			b.log.WithError(err).WithFields(map[string]any{"user": name, "email": e}).Error("store: deleting an account removed from the config failed")
		}
	}
}
