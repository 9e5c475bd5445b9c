// The account and blist commands.

package channel

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// hiddenPassword is what account set shows for a password.
const hiddenPassword = "********"

func (s *session) cmdAccount(r replyCtx, args []string) {
	switch strings.ToLower(args[0]) {
	case "add":
		s.accountAdd(r, args[1:])
		return
	case "list":
		s.accountList(r)
		return
	case "on", "off": // as BitlBee: every autoconnect account, or every connected one
		if s.findAccount(args[0]) == nil {
			s.accountsOnOff(r, strings.EqualFold(args[0], "on"))
			return
		}
	}
	a := s.findAccount(args[0])
	if a == nil {
		s.reply(r, "No account %q. Type account list to see yours.", args[0])
		return
	}
	if len(args) < 2 {
		s.reply(r, "Usage: %s", commands["account"].usage)
		return
	}
	ar := replyCtx{a: a, target: r.target} // answered where it was asked
	switch strings.ToLower(args[1]) {
	case "on":
		s.cmdConnect(ar, nil)
	case "off":
		s.cmdDisconnect(ar, nil)
	case "del":
		s.accountDel(r, a)
	case "set":
		s.accountSet(r, a, args[2:])
	default:
		s.reply(r, "Usage: %s", commands["account"].usage)
	}
}

// accountsOnOff is account on (connect every autoconnect account not
// connected) or account off (disconnect every connected account).
func (s *session) accountsOnOff(r replyCtx, on bool) {
	n := 0
	for _, a := range s.accounts {
		ar := replyCtx{a: a, target: r.target}
		switch {
		case on && a.cfg.AutoConnect && a.state != linkUp && a.state != linkConnecting:
			s.cmdConnect(ar, nil)
		case !on && a.state != linkDown && a.state != linkStopped:
			s.cmdDisconnect(ar, nil)
		default:
			continue
		}
		n++
	}
	switch {
	case n > 0:
	case on && len(s.accounts) == 0 && s.user.registered: // as BitlBee: none, not all connected
		s.reply(r, "No accounts yet. Add one with: account add msim <e-mail> <password>")
	case on && len(s.accounts) == 0:
		s.reply(r, "You have no MSIM accounts configured.")
	case on:
		s.reply(r, "No account to connect: every autoconnect account is connected (account <n> on connects another).")
	default:
		s.reply(r, "No account is connected.")
	}
}

// findAccount finds an account by number (from account list), e-mail or
// control channel.
func (s *session) findAccount(arg string) *account {
	if n, err := strconv.Atoi(arg); err == nil {
		if n >= 0 && n < len(s.accounts) {
			return s.accounts[n]
		}
		return nil
	}
	for _, a := range s.accounts {
		if strings.EqualFold(a.cfg.Email, arg) || nickKey(a.channel) == nickKey(arg) || nickKey(a.channel) == nickKey("&"+arg) {
			return a
		}
	}
	return nil
}

// mayChangeAccounts says whether the user's accounts are theirs to change
// (a registered user's), or tells them why not.
func (s *session) mayChangeAccounts(r replyCtx) bool {
	d := s.b.users
	switch {
	case s.user.registered && d != nil:
		return true
	case s.user.identify != "":
		s.reply(r, "Type identify <password> first.")
	case d == nil || d.configures(s.user.Name):
		s.reply(r, "Your accounts come from the gateway's configuration; they are changed there.")
	default:
		s.reply(r, "Only registered users keep accounts of their own: type register <password> first.")
	}
	return false
}

func (s *session) accountAdd(r replyCtx, args []string) {
	if len(args) != 3 {
		s.reply(r, "Usage: account add msim <e-mail> <password>")
		return
	}
	if p := strings.ToLower(args[0]); p != "msim" && p != "myspace" {
		s.reply(r, "Unknown protocol %q: this gateway speaks msim (also called myspace).", args[0])
		return
	}
	if !s.mayChangeAccounts(r) {
		return
	}
	email, password := args[1], args[2]
	if local, domain, ok := strings.Cut(email, "@"); !ok || local == "" || domain == "" || len(email) > 254 {
		// Not quoted: it may be the password, typed first.
		s.reply(r, "That is not an e-mail address. Usage: account add msim <e-mail> <password>")
		return
	}
	for _, a := range s.accounts {
		if strings.EqualFold(a.cfg.Email, email) {
			s.reply(r, "You have the account %s already (in %s).", a.cfg.Email, a.channel)
			return
		}
	}
	if holder := s.b.users.accountHolder(email); holder != "" {
		// Both users' sessions would log it in, each login logging the
		// other out, and its IMs would reach whichever held it.
		s.log.WithFields(logrus.Fields{"email": email, "configured_user": holder}).Warn("account add refused: a user of the config file has the account")
		s.reply(r, "The account %s belongs to a user of the gateway's configuration: an MSIM account logs in for one user only, so it cannot be added here.", email)
		return
	}
	ch := s.channelName(Account{Email: email})
	if s.byChannel[nickKey(ch)] != nil {
		ch = uniqueNick(ch, func(k string) bool { return s.byChannel[k] != nil })
	}
	ac := Account{Email: email, Password: password, Channel: ch, AutoConnect: true}
	ctx, cancel := storeCtx()
	// Bounded: each account is a stored password, a channel and an MSIM
	// login at every connection (the configuration's are the operator's).
	err := s.b.users.st.AddAccountBounded(ctx, s.user.Name, store.Account{Email: email, Password: password, Channel: ch, Autoconnect: true})
	if errors.Is(err, store.ErrExists) {
		// Kept, and not among the session's: one whose sealed password
		// could not be read (loadUserMemory told the user), sealed anew.
		err = s.b.users.st.UpdateAccount(ctx, s.user.Name, store.Account{Email: email, Password: password, Channel: ch, Autoconnect: true})
	}
	cancel()
	if errors.Is(err, store.ErrFull) {
		s.log.WithFields(logrus.Fields{"email": email, "max": store.MaxAccounts}).Info("account add refused: the user has as many accounts as one may")
		s.reply(r, "You have as many MSIM accounts as a user may, at most %d: delete one first (account <n> del) to add %s.", store.MaxAccounts, email)
		return
	}
	if err != nil {
		s.log.WithError(err).Error("store: adding an account failed")
		s.reply(r, "Adding the account failed: %v", errStore)
		return
	}
	a := s.newAccount(ac)
	s.accounts = append(s.accounts, a)
	s.reply(r, "Account %d added: %s, in the channel %s.", len(s.accounts)-1, email, a.channel)
	s.openAccount(a)
}

func (s *session) accountList(r replyCtx) {
	if len(s.accounts) == 0 {
		s.reply(r, "You have no MSIM accounts. Add one with: account add msim <e-mail> <password>")
		return
	}
	for i, a := range s.accounts {
		auto := ""
		if a.cfg.AutoConnect {
			auto = ", autoconnect"
		}
		s.reply(r, "%d (msim): %s in %s, %s%s", i, a.cfg.Email, a.channel, a.state, auto)
	}
}

func (s *session) accountDel(r replyCtx, a *account) {
	if !s.mayChangeAccounts(r) {
		return
	}
	s.mem.settle() // what the memory wrote of the account first (a nick), not after
	ctx, cancel := storeCtx()
	err := s.b.users.st.DeleteAccount(ctx, s.user.Name, a.cfg.Email)
	cancel()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.WithError(err).Error("store: deleting an account failed")
		s.reply(r, "Deleting the account failed: %v", errStore)
		return
	}
	s.failQueue(a, "the account was deleted")
	email := a.cfg.Email
	late := s.takeDeleted(a)
	s.removeAccount(a, "", deletedAs)
	s.mem.forgetAccount(email)
	if r.a == a {
		r = replyCtx{} // its channel is gone: answer in private
	}
	s.reply(r, "Account %s deleted, with everything kept for it.", email)
	for _, l := range late {
		s.mem.note(l)
	}
	// What closing it left to tell (those IMs, and holdTaken's: an IM its
	// client never sent) is told now, paced and kept if unwritten, while
	// the user is connected, not kept for the next connection.
	s.tellNotes()
}

// deletedAs says, in what a link leaves to tell, that account del closed it.
const deletedAs = "as the account was deleted"

// takeDeleted closes the link of a, deleted by account del (its rows are
// gone from the store), before the session lets it go (removeAccount),
// and returns the notices, with sender and text, of the IMs and zaps that
// letting it go would hold: those from strangers that wait for their
// profile, then those its MSIM client still held. Nothing is held for a
// deleted account (the store refuses it, forgetAccount drops what the
// memory keeps), so each is shown to the user now instead. The rest the
// client held (an IM of the user's it never sent, say) is noted as
// letting it go notes it (holdTaken), with why the link closed.
func (s *session) takeDeleted(a *account) []string {
	var late []seqEvent
	for uid, evs := range a.pending {
		late = append(late, evs...)
		delete(a.pending, uid) // not nil: released() is for removeAccount to say
	}
	slices.SortStableFunc(late, func(x, y seqEvent) int { return cmp.Compare(x.seq, y.seq) }) // as they came
	var lines []string
	show := func(uid msim.UID, ev msim.Event) {
		lines = append(lines, fmt.Sprintf("%s from %s to %s came as the account was deleted; it is shown here, as nothing is kept for a deleted account.",
			lostWhat(ev), s.nickOf(a, uid), a.cfg.Email))
	}
	for _, se := range late {
		show(msim.SenderOf(se.ev), se.ev)
	}
	if cl := a.client; cl != nil {
		a.client = nil
		_ = cl.Close()
		var rest []msim.Event
		for _, ev := range cl.TakeEvents(nil) {
			if historyEvent(ev) {
				show(msim.SenderOf(ev), ev)
				continue
			}
			rest = append(rest, ev)
		}
		s.holdTaken(a, rest, deletedAs)
	}
	return lines
}

// accountKeys are the settings of account set.
var accountKeys = []string{"autoconnect", "channel", "password", "status", "status_text"}

func (s *session) accountValue(a *account, key string) string {
	switch key {
	case "autoconnect":
		return strconv.FormatBool(a.cfg.AutoConnect)
	case "channel":
		return a.channel
	case "status":
		return a.status.String()
	case "status_text":
		return a.statusText
	}
	return hiddenPassword
}

// saveStatus keeps the account's status and status text as its settings,
// for a registered user (their accounts log in with it after a restart).
func (s *session) saveStatus(a *account) {
	if !s.user.registered || s.b.users == nil {
		return
	}
	ctx, cancel := storeCtx()
	defer cancel()
	st := s.b.users.st
	err := st.SetAccountSetting(ctx, s.user.Name, a.cfg.Email, "status", a.status.String())
	if err == nil && a.statusText == "" {
		err = st.DeleteAccountSetting(ctx, s.user.Name, a.cfg.Email, "status_text")
	} else if err == nil {
		err = st.SetAccountSetting(ctx, s.user.Name, a.cfg.Email, "status_text", a.statusText)
	}
	if err != nil {
		s.log.WithError(err).Error("store: saving an account's status failed")
		s.say(a, "Your status could not be saved (%v); it is used until you disconnect.", errStore)
	}
}

func (s *session) accountSet(r replyCtx, a *account, args []string) {
	if len(args) == 0 {
		for _, k := range accountKeys {
			s.reply(r, "%s = %s", k, s.accountValue(a, k))
		}
		return
	}
	key := strings.ToLower(args[0])
	if !contains(accountKeys, key) {
		s.reply(r, "Unknown account setting %q; they are %s.", args[0], strings.Join(accountKeys, ", "))
		return
	}
	if len(args) == 1 {
		s.reply(r, "%s = %s", key, s.accountValue(a, key))
		return
	}
	if len(args) > 2 && key != "status_text" {
		s.reply(r, "Usage: account <n> set %s <value> (one word)", key)
		return
	}
	if !s.mayChangeAccounts(r) {
		return
	}
	v := args[1]
	switch key {
	case "status":
		st, ok := statusNames[strings.ToLower(v)]
		if !ok {
			s.reply(r, "status is one of online, idle, away, invisible; not %q.", v)
			return
		}
		s.setStatus(a, st, a.statusText, replyCtx{})
		s.saveStatus(a)
		s.reply(r, "status = %s", a.status)
		return
	case "status_text":
		s.setStatus(a, a.status, strings.Join(args[1:], " "), replyCtx{})
		s.saveStatus(a)
		s.reply(r, "status_text = %s", a.statusText)
		return
	}
	next := a.cfg
	next.Channel = a.channel
	switch key {
	case "autoconnect":
		b, ok := parseBool(v)
		if !ok {
			s.reply(r, "autoconnect takes true or false, not %q.", v)
			return
		}
		next.AutoConnect = b
	case "password":
		next.Password = v
	case "channel":
		if !isChannelName(v) || !ircd.Nick(v[1:]).Valid() {
			s.reply(r, "%q is not a channel name: & or # then a nick's characters.", v)
			return
		}
		if o := s.byChannel[nickKey(v)]; o != nil && o != a {
			s.reply(r, "The channel %s is that of %s.", v, o.cfg.Email)
			return
		}
		next.Channel = v
	}
	ctx, cancel := storeCtx()
	err := s.b.users.st.UpdateAccount(ctx, s.user.Name, store.Account{Email: next.Email, Password: next.Password, Channel: next.Channel, Autoconnect: next.AutoConnect})
	cancel()
	if err != nil {
		s.log.WithError(err).Error("store: saving an account failed")
		s.reply(r, "Saving the setting failed: %v", errStore)
		return
	}
	a.cfg = next
	switch key {
	case "password":
		s.reply(r, "password = %s (used at the next login)", hiddenPassword)
		return
	case "channel":
		if next.Channel != a.channel {
			s.moveChannel(a, next.Channel)
			if r.a == a && r.target != "" { // asked in the channel that moved
				r.target = a.channel
			}
		}
	}
	s.reply(r, "%s = %s", key, s.accountValue(a, key))
}

// moveChannel gives an account another control channel.
func (s *session) moveChannel(a *account, ch string) {
	delete(s.byChannel, nickKey(a.channel))
	s.irc.RemoveChannel(a.channel)
	for _, bd := range a.buddies.All() {
		bd.inChan, bd.voiced = false, false
	}
	a.channel, a.joined = ch, false
	s.byChannel[nickKey(ch)] = a
	svc := s.b.cfg.ServiceNick
	if err := s.irc.CreateChannel(ch, "MSIM account "+a.cfg.Email+" — type help for commands"); err != nil {
		s.log.WithError(err).WithField("channel", ch).Warn("cannot create the control channel")
		return
	}
	s.irc.JoinUser(ch, svc, false)
	s.irc.SetOp(ch, svc, true)
	s.joinClient(a)
	for _, bd := range a.buddies.All() {
		s.applyPresence(bd)
	}
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "true", "on", "yes", "1":
		return true, true
	case "false", "off", "no", "0":
		return false, true
	}
	return false, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// blistClass is a buddy's class for blist: online, away or offline.
func blistClass(a *account, st msim.Status) string {
	if a.state != linkUp {
		return "offline"
	}
	switch st {
	case msim.StatusOnline:
		return "online"
	case msim.StatusIdle, msim.StatusAway:
		return "away"
	}
	return "offline"
}

func (s *session) cmdBlist(r replyCtx, args []string) {
	which := "visible"
	if len(args) > 0 {
		which = strings.ToLower(args[0])
		if !contains([]string{"all", "online", "offline", "away"}, which) {
			s.reply(r, "Usage: %s", commands["blist"].usage)
			return
		}
	}
	counts := map[string]int{}
	var lines []string
	for _, a := range s.accounts {
		for _, bd := range a.buddies.All() {
			if !bd.contact {
				continue
			}
			st, text := s.presence(bd)
			class := blistClass(a, st)
			counts[class]++
			show := which == "all" || which == class || which == "visible" && class != "offline"
			if !show {
				continue
			}
			status := "offline"
			if bd.blocked {
				status = "blocked"
			} else if class != "offline" {
				status = st.String() + suffix(": ", text)
			}
			lines = append(lines, fmt.Sprintf("%s (%s, %s): %s", bd.nick, nameOr(bd.userName, bd.UID().String()), a.cfg.Email, status))
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		s.reply(r, "%s", l)
	}
	total := counts["online"] + counts["away"] + counts["offline"]
	s.reply(r, "%s (%d online, %d away, %d offline)", plural(total, "buddy", "buddies"), counts["online"], counts["away"], counts["offline"])
}

// forgetAccount drops what the memory holds for a deleted account (the
// store has deleted its rows): its buddies' nicks, which no longer keep
// those nicks from others, its channel name and its held and queued IMs.
func (m *userMemory) forgetAccount(email string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, nick := range m.nicks {
		if k.email == email {
			delete(m.nicks, k)
			if m.byNick[nickKey(nick)] == k {
				delete(m.byNick, nickKey(nick))
			}
		}
	}
	delete(m.channels, email)
	delete(m.held, email)
	delete(m.queued, email)
}
