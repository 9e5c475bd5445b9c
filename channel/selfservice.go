// Self-service commands, after BitlBee's: register, identify, drop, save,
// and the switch of a session from one user to another that they cause.
// account and blist are in accounts.go.

package channel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
)

// dropWait is how long drop waits for its yes.
const dropWait = time.Minute

func selfServiceCommands() map[string]command {
	return map[string]command{
		"register": {"register <password>",
			"Registers your current nick with a password: from then on the nick needs it (PASS, SASL or identify), and your accounts, settings and nicks are kept. On the embedded network it also sets up your nick's MSIM account. Example: register hunter2", 1, (*session).cmdRegister},
		"identify": {"identify [-noload|-force] <password>",
			"Gives the password of your registered nick and loads your accounts (BitlBee's -noload and -force are accepted; with everything saved as it changes they change nothing). Example: /msg root identify hunter2", 1, (*session).cmdIdentify},
		"drop": {"drop <password>",
			"Deletes your registration and everything kept for you (accounts, settings, nicks, held IMs), after you confirm with yes within a minute. Example: drop hunter2, then yes", 1, (*session).cmdDrop},
		"yes":  {"yes", "Confirms a drop.", 0, (*session).cmdYes},
		"save": {"save", "Nothing to do: your settings and accounts are saved as you change them.", 0, (*session).cmdSave},
		"account": {"account add msim <e-mail> <password> | account list | account on|off | account <n|e-mail|channel> on|off|del | account <n|e-mail|channel> set [<key> [<value>]]",
			"Manages your MSIM accounts (myspace is accepted for msim). Settings: channel, autoconnect, password (never shown), status (online|idle|away|invisible, used at each login) and status_text. An account is named by its number in account list, its e-mail or its channel. Examples: account add msim me@example.com secret; account list; account 0 off; account on (every autoconnect account); account me@example.com set autoconnect false; account 0 set channel &me; account 0 del", 1, (*session).cmdAccount},
		"blist": {"blist [all|online|offline|away]",
			"Lists your buddies with their status, on every account (default: online and away ones). Example: blist all", 0, (*session).cmdBlist},
	}
}

func (s *session) cmdSave(r replyCtx, _ []string) {
	switch {
	case s.user.registered || s.b.cfg.Store != nil && !s.user.Ephemeral:
		s.reply(r, "Your accounts, settings and nicks are saved as you change them; there is nothing to save.")
	case s.b.users != nil && s.user.identify == "":
		s.reply(r, "Your settings are kept while you are connected. Type register <password> to have them kept for good.")
	case s.b.users != nil:
		s.reply(r, "Type identify <password> first.")
	default:
		s.reply(r, "This gateway keeps settings in memory only (it has no database), until it stops.")
	}
}

// storeUsers returns the stored users, or says why there are none.
func (s *session) storedUsers(r replyCtx) *storeDirectory {
	if s.b.users == nil {
		s.reply(r, "This gateway keeps no registered users (it has no database).")
		return nil
	}
	if s.busy {
		s.reply(r, "Wait: your last register, identify or drop is not finished.")
		return nil
	}
	return s.b.users
}

func (s *session) cmdRegister(r replyCtx, args []string) {
	d := s.storedUsers(r)
	if d == nil {
		return
	}
	nick := s.irc.Nick()
	switch {
	case s.user.registered:
		s.reply(r, "You are registered already.")
		return
	case s.user.identify != "" && s.user.identify == UserName(nick):
		// (After a change to another nick, that one may be registered.)
		s.reply(r, "The nick %s is registered. Type identify <password>.", nick)
		return
	case d.registration == RegistrationClosed:
		s.reply(r, "Registration is closed on this gateway: an administrator creates users, with msimircd user add <nick>.")
		return
	case s.user.identify != "" && d.newcomerPassword() != "":
		// Unidentified, the connection gave no password: registering
		// another nick would make it a newcomer that never gave
		// irc.password, which a newcomer must (storeDirectory.newcomer).
		s.reply(r, "To register the nick %s, connect with it and the server password.", nick)
		return
	case len(args) != 1:
		s.reply(r, "Usage: register <password> (one word)")
		return
	}
	if d.configures(nick) || !ircd.Nick(nick).Valid() {
		s.reply(r, "The nick %s cannot be registered here.", nick)
		return
	}
	if s.b.dropUnderWay(UserName(nick)) {
		s.reply(r, "%s is being dropped; try again in a moment.", nick)
		return
	}
	remote := s.remoteAddr()
	if q := s.b.cfg.Registrations; q != nil && !q.Allow(guard.AddrKey(remote)) {
		s.log.WithField("key", guard.AddrKey(remote)).Warn("registration quota reached; refusing a registration")
		s.reply(r, "Too many nicks were registered from your address; try again later.")
		return
	}
	password := args[0]
	name := UserName(nick)
	s.busy = true
	s.spawn(func() func() {
		err := d.create(name, password)
		return func() {
			if errors.Is(err, store.ErrExists) {
				s.busy = false
				s.reply(r, "The nick %s is registered already. Type identify <password> if it is yours.", nick)
				return
			}
			if err != nil {
				s.busy = false
				s.log.WithError(err).Error("store: register failed")
				s.reply(r, "Registering failed: %v", errStore)
				return
			}
			s.log.WithField("name", name).Info("a user registered")
			s.provision(r, d, nick, name, password, remote)
		}
	})
}

// provision ends register: the embedded network's account of the nick is
// set up (after the session's ephemeral one, which holds its user name,
// has logged out) and the session becomes the registered user.
func (s *session) provision(r replyCtx, d *storeDirectory, nick, name, password string, remote net.Addr) {
	p, ok := d.next.(provisioner)
	old := s.user
	settings := s.mem.allSettings() // kept while connected, as save says: the registered user's now
	var have []Account
	if ok {
		for _, a := range s.accounts {
			have = append(have, a.cfg)
		}
		if old.Ephemeral {
			for _, a := range slices.Clone(s.accounts) {
				s.removeAccount(a, "The account without a password is replaced by your registered one.", "as your accounts changed")
			}
			have = nil
		}
	}
	s.spawn(func() func() {
		var perr error
		if ok {
			if old.Ephemeral && len(old.Accounts) > 0 {
				d.Forget(old) // frees the nick's MSIM user name
			}
			var a Account
			if a, perr = p.provision(nick, password, remote, have); perr == nil {
				ctx, cancel := storeCtx()
				perr = d.st.AddAccount(ctx, name, store.Account{Email: a.Email, Password: a.Password, Channel: a.Channel, Autoconnect: a.AutoConnect})
				cancel()
			}
		}
		var serr error
		for k, v := range settings {
			ctx, cancel := storeCtx()
			if err := d.st.SetSetting(ctx, name, k, v); err != nil {
				serr = err
			}
			cancel()
		}
		u, err := d.load(name)
		return func() {
			s.busy = false
			r = s.where(r)
			if err != nil {
				s.log.WithError(err).Error("store: loading a registered user failed")
				s.reply(r, "You are registered, but your accounts cannot be loaded (%v); reconnect with your password.", errStore)
				return
			}
			if old.Ephemeral {
				old.Accounts = nil // forgotten already
			}
			s.reply(r, "The nick %s is registered. From now on connect with your password (PASS or SASL), or type identify <password> after connecting.", nick)
			if serr != nil {
				s.log.WithError(serr).Error("store: register could not keep the settings")
				s.reply(r, "The settings you made before registering could not be kept (%v); set them again.", errStore)
			}
			if perr != nil {
				s.log.WithError(perr).Warn("register: the nick's MSIM account could not be set up")
				s.reply(r, "Your MSIM account on this gateway's network could not be set up (%s); add an account with account add msim <e-mail> <password>.", provisionError(perr))
			}
			s.becomeUser(r, u, old)
		}
	})
}

func provisionError(err error) string {
	switch {
	case errors.Is(err, errRetired):
		return "the nick's account there was closed for good when the nick was dropped; register another nick for a new one"
	case errors.Is(err, ErrAuth):
		return "its user name is taken"
	case errors.Is(err, ErrCreationQuota):
		return "too many new accounts from your address"
	}
	return "the network failed"
}

// create makes a stored user.
func (d *storeDirectory) create(name, password string) error {
	hash, err := store.HashPassword(password)
	if err != nil {
		return err
	}
	ctx, cancel := storeCtx()
	defer cancel()
	_, err = d.st.CreateUser(ctx, name, hash)
	return err
}

// spawn runs work off the session goroutine and the function it returns on
// it.
func (s *session) spawn(work func() func()) {
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		done := work()
		s.post(call(done))
	}()
}

// guessKeys are the limiter keys of a password guess for user name.
func (s *session) guessKeys(name string) (addr, user string) {
	return guard.AddrKey(s.remoteAddr()), ircd.AccountKey(name)
}

// checkGuess verifies a stored user's password off the session goroutine,
// slowed (and refused) as guesses are, and hands the result to done.
func (s *session) checkGuess(r replyCtx, d *storeDirectory, name, password string, done func(User)) {
	addr, user := s.guessKeys(name)
	wa, err := s.b.failAddr.Check(addr)
	if errors.Is(err, guard.ErrRefused) {
		s.reply(r, "Too many wrong passwords from your address; try again later.")
		return
	}
	s.busy = true
	s.spawn(func() func() {
		// The per-user counts may be in the store: asked off the
		// session's goroutine.
		wu, _ := s.b.failUser.Check(user)
		if wait := max(wa, wu); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return func() {}
			}
		}
		u, err := d.check(name, password)
		var outs []guard.Outcome
		switch {
		case errors.Is(err, ErrAuth):
			outs = s.b.failUser.Fail(user)
		case err == nil:
			// The address's failures stay: a right password for one
			// user says nothing about guesses at others.
			s.b.failUser.Succeed(user)
		}
		return func() {
			s.busy = false
			switch {
			case errors.Is(err, ErrAuth):
				for _, o := range append(s.b.failAddr.Fail(addr), outs...) {
					if o.Slowed || o.Refused {
						s.log.WithField("key", o.Key).WithField("failures", o.Failures).Warn("wrong passwords to identify or drop; slowing them")
					}
				}
				s.reply(r, "Incorrect password.")
			case err != nil:
				s.log.WithError(err).Error("store: checking a password failed")
				s.reply(r, "%v", errStore)
			default:
				done(u)
			}
		}
	})
}

func (s *session) cmdIdentify(r replyCtx, args []string) {
	d := s.storedUsers(r)
	if d == nil {
		return
	}
	if s.user.registered {
		s.reply(r, "You are identified already.")
		return
	}
	nick := s.irc.Nick() // the nick now: the client may have changed it
	u, ok, err := d.stored(nick)
	if err != nil {
		s.log.WithError(err).Error("store: looking up a user failed")
		s.reply(r, "%v", errStore)
		return
	}
	if !ok {
		s.reply(r, "The nick %s is not registered. Type register <password> to register it.", nick)
		return
	}
	if s.b.dropUnderWay(u.Name) {
		s.reply(r, "%s is being dropped; try again in a moment.", u.Name)
		return
	}
	// BitlBee's -noload (identify without loading the saved accounts, to
	// save over them) and -force (load them over accounts added before
	// identifying) have nothing to act on here: every change is saved as
	// it is made, and an unidentified connection can add no account.
	for len(args) > 1 && (strings.EqualFold(args[0], "-noload") || strings.EqualFold(args[0], "-force")) {
		s.reply(r, "identify %s does nothing here: your accounts and settings are saved as you change them, so there is nothing to skip or overwrite.", strings.ToLower(args[0]))
		args = args[1:]
	}
	old := s.user
	s.checkGuess(r, d, u.Name, strings.Join(args, " "), func(u User) {
		s.reply(r, "Password accepted. Loading your accounts.")
		s.becomeUser(r, u, old)
	})
}

func (s *session) cmdDrop(r replyCtx, args []string) {
	d := s.storedUsers(r)
	if d == nil {
		return
	}
	if !s.user.registered {
		s.reply(r, "You are not registered (or not identified): there is nothing to drop.")
		return
	}
	s.checkGuess(r, d, s.user.Name, strings.Join(args, " "), func(User) {
		s.dropUntil = s.b.cfg.Clock.Now().Add(dropWait)
		s.reply(r, "This deletes your registration and everything kept for you: your accounts, settings, nicks and held IMs. Type yes within a minute to go ahead; anything else cancels.")
	})
}

func (s *session) cmdYes(r replyCtx, _ []string) {
	if s.dropUntil.IsZero() {
		s.reply(r, "Nothing to confirm.")
		return
	}
	until := s.dropUntil
	s.dropUntil = time.Time{}
	if s.b.cfg.Clock.Now().After(until) {
		s.reply(r, "Too late: type drop <password> again.")
		return
	}
	// The user's history stops, and its writes under way are waited for,
	// before the user is deleted: none reaches the store after. The
	// session goes on meanwhile, its accounts online; what the user types
	// waits for the drop (busy).
	var writes []<-chan struct{}
	for _, ps := range s.saving {
		writes = append(writes, ps.done)
	}
	if len(s.markers) > 0 { // the first is being written (markread.go)
		writes = append(writes, s.markers[0].written)
	}
	s.busy, s.dropping, s.dropTold = true, true, false
	s.mem.setDropping() // what a login begun before keeps adds to no history, and holds nothing in the store, either (recordOwned, holdIn)
	var accounts []Account
	for _, a := range s.accounts {
		accounts = append(accounts, a.cfg)
	}
	b, d, hist, name, mem, log := s.b, s.b.users, s.b.hist, s.user.Name, s.mem, s.log
	left := make(chan dropLeftovers, 1)
	s.dropLeft = left
	p, _ := d.next.(unprovisioner)
	s.goWrite(func(ctx context.Context) {
		err := deleteUser(ctx, d.st, hist, mem, name, writes)
		var perr error
		if err == nil && p != nil {
			perr = p.unprovision(name, accounts)
		}
		switch { // logged here, whichever way the session takes the result
		case err != nil:
			log.WithError(err).Error("store: drop failed")
		case perr != nil:
			log.WithError(perr).WithField("name", name).Error("drop: the nick's account on the embedded network could not be retired")
			fallthrough
		default:
			log.WithField("name", name).Info("a user dropped their registration")
		}
		s.postAnswer(func() { s.dropped(r, name, err, perr) },
			func() { b.droppedAfterEnd(name, mem, log, err, left) })
	})
}

// deleteUser deletes a dropped user once the writes of their history
// under way are through (writes closed, the history writer's queue
// appended) and those of their memory queued so far (settings, nicks,
// held IMs); a user already gone is no failure.
func deleteUser(ctx context.Context, st store.Store, hist *historyWriter, mem *userMemory, name string, writes []<-chan struct{}) error {
	for _, w := range writes {
		select {
		case <-w:
		case <-ctx.Done():
		}
	}
	mem.settle()
	if hist != nil {
		hist.sync(ctx, name)
	}
	dctx, cancel := storeCtx()
	defer cancel()
	if err := st.DeleteUser(dctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// dropped ends a drop (cmdYes) once the store has deleted the user (err
// nil): the session becomes an ephemeral user's, without the accounts.
// If the store failed, nothing changes.
func (s *session) dropped(r replyCtx, name string, err, perr error) {
	s.busy, s.dropping, s.dropLeft = false, false, nil
	kept, lost := s.dropHist, s.dropHistLost
	s.dropHist, s.dropHistLost = nil, 0
	if err != nil {
		// What came meanwhile for the accounts the session let go is
		// kept for the user after all, and what of it was left out of
		// the history is told with the session's own.
		lost += s.mem.keepDropKept(s.mem.endDrop(true), s.log)
		for _, e := range kept { // what came meanwhile, in the history after all
			s.record(e)
		}
		s.markersResume()
		s.reply(s.where(r), "Dropping failed: %v. Nothing was deleted: your registration and accounts are kept.", errStore)
		if lost > 0 {
			s.b.met.historyDroppedN(lost)
			s.log.WithField("entries", lost).Warn("history: entries that came while a drop failed were left out")
			s.reply(s.where(r), "%d IMs that came while the drop was under way are missing from your history (they were delivered as usual).", lost)
		}
		return
	}
	s.b.mu.Lock()
	if s.b.sessions[name] == s {
		delete(s.b.sessions, name)
	}
	delete(s.b.memory, name)
	s.mem.endDrop(false).dropKeptLost(s.b.met, s.log) // a login under way keeps nothing for the deleted user
	rel := s.b.lease.drop(name)
	s.user = User{Name: "dropped/" + name + "/" + fmt.Sprint(s.b.cfg.Clock.Now().UnixNano()), Ephemeral: true}
	s.mem = newUserMemory() // what the accounts leave is kept there, not for the deleted user
	s.mem.user, s.mem.log, s.mem.met = s.user.Name, s.b.log, s.b.met
	s.b.sessions[s.user.Name] = s
	// Kept as any user's without a password, so that the bridge forgets
	// it with them (forget: identify, register, the session's end), and
	// what still comes for the accounts then is told lost, not held.
	s.b.memory[s.user.Name] = s.mem
	s.b.mu.Unlock()
	s.markersResume() // the user is gone: they end unwritten
	s.dropOutbox(s.where(r))
	for _, a := range slices.Clone(s.accounts) {
		s.removeAccount(a, "Your registration was dropped.", "as your registration was dropped")
	}
	// What closing them left to tell (holdTaken) is in the new memory,
	// which keeps it for a next connection that never comes: it is told
	// now, and the IMs it holds lost.
	s.tellNotes()
	s.tellHeldLost()
	// The user is deleted and their accounts logged out: another instance
	// may take the name.
	s.releaseLater(rel)
	r = s.where(r)
	if perr != nil {
		s.reply(r, "Your MSIM account on this gateway's network could not be closed (the network failed); ask the operator to remove it.")
	}
	s.reply(r, "Your registration and everything kept for you are deleted.")
	if len(s.cl.ats) == 0 {
		// An always-on session the client left after "yes": no client
		// can name the user it is now, so none can attach to it. It
		// ends, as a session whose last client leaves does; its end logs
		// what it held and noted (Bridge.ended).
		s.log.Info("the registration was dropped with no IRC client attached; the session ends")
		s.cancel()
	}
}

// dropUnderWay reports whether the drop of the user name is under way:
// the store may have deleted the user already (the name is free there),
// but until the drop ends (dropped, droppedAfterEnd) the bridge keeps
// their memory and session, which a user made with the name meanwhile
// would get: their nicks, settings, channels and held IMs. Such a user
// waits for the drop's end instead; a drop that fails leaves the user as
// they were.
func (b *Bridge) dropUnderWay(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.memory[name]
	return m != nil && m.dropping.Load()
}

// droppedAfterEnd ends a drop whose session ended while the store deleted
// the user: the bridge forgets what it kept of them (mem); the session's
// end forgets the rest.
func (b *Bridge) droppedAfterEnd(name string, mem *userMemory, log *logrus.Entry, err error, left <-chan dropLeftovers) {
	if err != nil {
		// What came meanwhile for the accounts the session let go is
		// kept for the user after all; what of it was left out of the
		// history (recordOwned) is counted and told with the session's.
		l := dropLeftovers{lost: mem.keepDropKept(mem.endDrop(true), log)}
		// The session's end hands them over (dropEnd) before it waits for
		// this worker, perhaps after the refusal that brought it here.
		select {
		case sl := <-left:
			sl.lost += l.lost
			l = sl
		case <-time.After(dropLeftWait):
			log.Error("drop: what came while the drop was under way was not handed over; it is not in the history")
		}
		b.keepDropLeftovers(name, l, log)
		if l.lost > 0 { // no session is left to tell: told at the next connection
			mem.note(fmt.Sprintf("%s that came while your drop was under way (it failed) are missing from your history (they were delivered or kept for you as usual).", plural(l.lost, "IM", "IMs")))
		}
		return
	}
	mem.endDrop(false).dropKeptLost(b.met, log) // a login under way keeps nothing for the deleted user
	b.mu.Lock()
	if b.memory[name] == mem {
		delete(b.memory, name)
	}
	b.mu.Unlock()
}

// dropLeftWait bounds the wait of a failed drop's worker for what its
// session kept meanwhile (dropEnd runs as the session ends, before it
// waits for its workers).
const dropLeftWait = time.Minute

// dropLeftovers is what a session that ended while its user's drop was
// under way kept for the drop's failure: the history entries to record,
// and the read markers asked for meanwhile.
type dropLeftovers struct {
	hist  []store.HistoryEntry
	lost  int // entries left out past maxDropHist
	marks []markLeft
}

type markLeft struct {
	c conversation
	t time.Time
}

// dropEnd, as the session ends while a drop is under way, hands what the
// session kept for the drop's failure to the drop's worker (dropLeft),
// and ends the MARKREADs waiting for the drop: their clients are gone.
func (s *session) dropEnd() {
	if !s.dropping {
		return
	}
	l := dropLeftovers{lost: s.dropHistLost}
	l.hist, s.dropHist, s.dropHistLost = s.dropHist, nil, 0
	waiting := s.markers
	if len(waiting) > 0 && waiting[0].started { // its write is under way: the drop waits for it
		waiting = waiting[1:]
		s.markers = s.markers[:1]
	} else {
		s.markers = nil
	}
	for _, w := range waiting {
		l.marks = append(l.marks, markLeft{w.c, w.t})
		w.done()
	}
	s.dropLeft <- l
}

// keepDropLeftovers keeps, for a drop that failed after its session
// ended, what the session kept meanwhile (dropEnd): the history entries
// are recorded and the read markers written, off any session.
func (b *Bridge) keepDropLeftovers(name string, l dropLeftovers, log *logrus.Entry) {
	if l.lost > 0 {
		b.met.historyDroppedN(l.lost)
		log.WithField("entries", l.lost).Warn("history: entries that came while a drop failed were left out")
	}
	if b.hist != nil {
		failed := func(err error) {
			b.met.historyDropped()
			log.WithError(err).Error("store: an IM was not added to the history")
		}
		for _, e := range l.hist {
			e.Text = storable(e.Text)
			b.hist.append(name, e, failed)
		}
	}
	for _, m := range l.marks {
		ctx, cancel := storeCtx()
		_, err := b.cfg.Store.SetReadMarker(ctx, name, m.c.email, m.c.uid, m.t)
		cancel()
		if err != nil {
			log.WithError(err).Error("store: a read marker could not be saved")
		}
	}
}

// becomeUser makes the session u's (after identify or register): the
// accounts of old go, a session u had elsewhere is replaced, and u's
// accounts get their control channels and connect. A name whose drop is
// under way is refused (dropUnderWay), as register and identify refuse
// it: this looks again, as the drop may have begun since.
func (s *session) becomeUser(r replyCtx, u User, old User) {
	b := s.b
	if b.dropUnderWay(u.Name) {
		s.reply(s.where(r), "%s is being dropped; try again in a moment.", u.Name)
		return
	}
	if b.lease.needs(u) && !b.lease.holds(u.Name) {
		// Another instance may serve u: u's lease first (lease.go).
		s.claimThen(r, u, func() { s.becomeUser(r, u, old) })
		return
	}
	for _, a := range slices.Clone(s.accounts) {
		s.removeAccount(a, "", "as your accounts changed")
	}
	if old.Ephemeral {
		// What closing them left to tell (holdTaken) is in a memory the
		// bridge forgets: told now.
		s.tellNotesNow()
	} else {
		s.keepNotesWaiting() // old's, for old's next connection
	}
	s.leaveOutbox(s.where(r), old)
	b.mu.Lock()
	prev := b.sessions[u.Name]
	if prev != nil && prev != s && !u.Ephemeral {
		// u's session runs on with no connection, or another one: this
		// connection joins it there, and this session, holding nothing
		// of u's, ends.
		b.mu.Unlock()
		at := s.cl.ats[0]
		// Its misses are u's in prev from the moment it is there; if
		// it stays, old's miss is as it was.
		undo := at.missesOf(u.Name)
		moved, err := s.handOver(at, prev)
		if !moved {
			undo()
		}
		if moved {
			s.handedTo = at
			if old.Ephemeral {
				// This session ends, and with it what the bridge keeps of
				// old: forgotten now, while the connection is there to
				// be told.
				b.mu.Lock()
				lost := b.forget(old, &s.out)
				b.mu.Unlock()
				s.tellLostOn(at, lost)
			}
			return
		}
		if err != nil {
			s.reply(r, "%v", err)
			return
		}
		<-prev.done // it ended meanwhile: take u over here
		b.mu.Lock()
		prev = nil
	}
	if read, err := b.readStateFirst(u); read {
		if err != nil {
			s.reply(r, "Your accounts cannot be loaded: %v", errStore)
			return
		}
		s.becomeUser(r, u, old)
		return
	}
	mem := b.memory[u.Name]
	if mem.dropping.Load() { // its drop began since the look above
		b.mu.Unlock()
		s.reply(s.where(r), "%s is being dropped; try again in a moment.", u.Name)
		return
	}
	if b.sessions[old.Name] == s {
		delete(b.sessions, old.Name)
	}
	var lost []lostHeld
	if old.Ephemeral {
		lost = b.forget(old, &s.out)
	}
	rel := b.lease.drop(old.Name) // its accounts are gone
	b.sessions[u.Name] = s
	s.user, s.mem = u, mem
	for _, at := range s.cl.ats {
		at.missesOf(u.Name)
	}
	b.mu.Unlock()
	s.releaseLater(rel)
	if old.Ephemeral && len(old.Accounts) > 0 {
		if f, ok := b.cfg.Directory.(Forgetter); ok {
			f.Forget(old)
		}
	}
	if prev != nil && prev != s {
		prev.closeClients("Replaced by a new connection")
		// A session running with no connection (always on) ends too.
		prev.endWith("as a new connection replaced the old one")
		<-prev.done // it has logged out of MSIM and held what it had
	}
	oldLog := s.log // what was lost is logged as old's
	s.log = b.log.WithField("user", u.Name)
	// The history told of is the user's: the new user is told of theirs.
	s.histFailed, s.historyFull, s.historyFailed = nil, false, false
	s.replayWritten = nil // the old user's history
	r = s.where(r)
	s.tellLost(oldLog, lost)
	s.tellNotesAs("PRIVMSG", r.target) // as reply says it
	for _, ac := range u.Accounts {
		a := s.newAccount(ac)
		s.accounts = append(s.accounts, a)
		s.openAccount(a)
	}
	// As when it connects with its password (start): the connection is
	// replayed, by its name, what it missed since it last left as u.
	for _, at := range s.cl.ats {
		s.replay(at)
	}
	if s.mem.hasNotes() { // queued IMs that could not be read, say
		s.tellNotes()
	}
	if len(u.Accounts) == 0 {
		s.reply(r, "You have no MSIM accounts yet. Add one with: account add msim <e-mail> <password>")
	}
}

// tellNotes tells the session's connections, if any, the notes its
// memory keeps, as a connection that attaches is told them (build),
// paced (pumpNotes).
func (s *session) tellNotes() { s.tellNotesAs("NOTICE", "") }

// tellNotesAs is tellNotes, each note a cmd to target ("": the user).
func (s *session) tellNotesAs(cmd, target string) {
	if len(s.cl.ats) == 0 {
		return // kept for the next one
	}
	for _, n := range s.mem.takeNotes() {
		s.notesWait = append(s.notesWait, ircd.Delivery{Command: cmd, From: s.b.cfg.ServiceNick, Target: target, Text: n})
	}
	s.pumpNotes()
}

// notesBurst bounds the lines of notes handed to ircd and not yet written
// (lineBudget estimates them), per session; a note longer than that goes
// alone. Up to store.MaxNotes notes wait for a user, each of several lines
// maybe (an IM's text): told at once, they could overflow the client's
// SendQ (ircd's default is 4096 lines), which cuts the client off, keeps
// every note again (noteSent) and does the same to the next connection.
// Paced so, they take half the SendQ room the outbox leaves free
// (outReserve) for all but IMs, as each report makes room for the next.
const notesBurst = outReserve / 2

// pumpNotes tells the notes that wait (notesWait) while fewer than
// notesBurst of their lines are in flight. Each note's report (noteReport)
// wakes the session to tell more (afterReports). A note no connection
// writes is kept again for the next one (noteSent), not lost with the
// connection that dropped; what still waits when the last connection
// goes is given back to the memory (keepNotesWaiting).
func (s *session) pumpNotes() {
	for len(s.notesWait) > 0 && len(s.cl.ats) > 0 {
		d := s.notesWait[0]
		lines := int64(len(d.Text)/lineBudget + strings.Count(d.Text, "\n") + 1)
		if busy := s.notesOut.Load(); busy > 0 && busy+lines > notesBurst {
			return // a report wakes the session for the next
		}
		s.notesWait[0] = ircd.Delivery{}
		s.notesWait = s.notesWait[1:]
		s.notesOut.Add(lines)
		d.Sent = s.noteReport(d.Text, lines)
		s.irc.Deliver(d)
	}
	if len(s.notesWait) == 0 {
		s.notesWait = nil // let a burst's array go
	}
}

// noteReport is the Sent report of a note of lines lines handed to ircd:
// the memory keeps it again if it was not written (noteSent), and the
// session, woken, tells the next (pumpNotes). It never waits.
func (s *session) noteReport(note string, lines int64) func(bool) {
	kept := s.mem.noteSent(note)
	return func(ok bool) {
		kept(ok)
		s.notesOut.Add(-lines)
		s.out.drained.Store(true)
		s.kick()
	}
}

// keepNotesWaiting gives the notes that wait to be told (notesWait) back
// to the memory, for the next connection: the last one went, or the
// memory they came from is the session's no longer.
func (s *session) keepNotesWaiting() {
	if len(s.notesWait) == 0 {
		return
	}
	texts := make([]string, len(s.notesWait))
	for i, d := range s.notesWait {
		texts[i] = d.Text
	}
	s.notesWait = nil
	s.mem.keepNotes(texts)
}

// tellNotesNow tells the session's connections, at once, the notes that
// wait and those the memory keeps: for a memory the bridge is about to
// forget (a user without a password), where a note not told is lost.
// They are few: what closing the user's accounts left to tell.
func (s *session) tellNotesNow() {
	if len(s.cl.ats) == 0 {
		return
	}
	for _, n := range s.mem.takeNotes() {
		s.notesWait = append(s.notesWait, ircd.Delivery{Command: "NOTICE", From: s.b.cfg.ServiceNick, Text: n})
	}
	for _, d := range s.notesWait {
		d.Sent = s.mem.noteSent(d.Text)
		s.irc.Deliver(d)
	}
	s.notesWait = nil
}

// tellHeldLost tells the session's connections, if any, of the IMs its
// memory holds, lost: its user keeps nothing and has no accounts (a
// drop), and no connection can come for them. With none attached, the
// session's end logs them (forget).
func (s *session) tellHeldLost() {
	if len(s.cl.ats) == 0 {
		return
	}
	lost := s.mem.takeHeldLost()
	for _, l := range lost {
		s.b.met.imsDropped(l.n)
	}
	s.tellLost(s.log, lost)
}

// tellLost tells the session's connections of the IMs held for the user
// it left, who keeps nothing, lost as the bridge forgot them (forget),
// and logs them with log, that user's: the session may be another
// user's by now.
func (s *session) tellLost(log *logrus.Entry, lost []lostHeld) {
	for _, l := range lost {
		logTold(log, l)
		for _, d := range lostNotices(s.b.cfg.ServiceNick, l) {
			s.irc.Deliver(d)
		}
	}
}

// tellLostOn tells the connection at, which this session handed over to
// another (handOver), of the IMs held for the user it left, who keeps
// nothing, lost as the bridge forgot them (forget): on that session's
// goroutine, after the connection's world there is built. If the
// connection has left meanwhile, they are logged (logLost).
func (s *session) tellLostOn(at *attachment, lost []lostHeld) {
	if len(lost) == 0 {
		return
	}
	b, u, log := s.b, s.user, s.log // nothing of s is read on the other session's goroutine
	untold := func() { b.logLost(u, lost) }
	at.do(func(to *session) {
		if !to.cl.attached(at) {
			untold()
			return
		}
		for _, l := range lost {
			logTold(log, l)
			for _, d := range lostNotices(b.cfg.ServiceNick, l) {
				at.c.Deliver(d)
			}
		}
	}, untold)
}

// logTold logs l, told to the user.
func logTold(log *logrus.Entry, l lostHeld) {
	log = log.WithField("account", l.email)
	if l.n > 0 {
		log.WithField("lost", l.n).Warn("IMs held for a user without a password were lost as the session became another user's; they are told")
	}
	if len(l.unsent) > 0 {
		log.WithField("unsent", len(l.unsent)).Warn("IMs a user without a password typed while the MSIM link was down were never sent, as the session became another user's; they are told")
	}
}

// lostNotices, from the service nick svc, tell of l, lost as the bridge
// forgot the memory that held them: the IMs held, and each IM the user
// typed that was queued for the link, with its text.
func lostNotices(svc string, l lostHeld) []ircd.Delivery {
	var out []ircd.Delivery
	if l.n > 0 {
		out = append(out, ircd.Delivery{Command: "NOTICE", From: svc, Text: fmt.Sprintf(
			"MSIM account %s: IMs sent to you were lost: %d from %s were held for it when your accounts changed, and what they were held for keeps nothing (a nick without a password, or a dropped registration).",
			l.email, l.n, strings.Join(l.from, ", "))})
	}
	for _, q := range l.unsent {
		out = append(out, ircd.Delivery{Command: "NOTICE", From: svc, Text: fmt.Sprintf(
			"MSIM account %s: Not sent to %s (it was queued while the MSIM link was down, and the queue went when your accounts changed: a nick without a password keeps nothing): %s",
			l.email, q.nick, q.text)})
	}
	return out
}

// where is r, or a private reply once r's channel is gone.
func (s *session) where(r replyCtx) replyCtx {
	if r.target != "" && s.byChannel[nickKey(r.target)] == nil {
		return replyCtx{}
	}
	return r
}

// removeAccount takes an account out of the session: it logs out (release:
// what its link still held is kept, and what it leaves to tell says the
// link closed as), its buddies and control channel go; why, if not empty,
// is said in its control channel. What the user typed for it while its
// link was down stays kept.
func (s *session) removeAccount(a *account, why, as string) {
	a.gen++
	delete(s.queueUnread, a) // its queue stays in the store, for its next login
	s.release(a, as)
	a.state = linkStopped // uncounted by release: not setState
	if why != "" && a.joined {
		s.say(a, "%s", why)
	}
	for _, bd := range a.buddies.All() {
		if s.buddyByNick(bd.nick) == bd {
			s.nicks.Delete(bd.nick)
		}
		s.irc.RemoveUser(bd.nick, "Account removed")
	}
	a.buddies, a.typing = newBuddyIndex(), nil
	a.queue = nil
	if s.byChannel[nickKey(a.channel)] == a {
		delete(s.byChannel, nickKey(a.channel))
	}
	s.irc.RemoveChannel(a.channel)
	s.accounts = slices.DeleteFunc(s.accounts, func(x *account) bool { return x == a })
}
