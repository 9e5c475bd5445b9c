package channel

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
	"github.com/msimircd/msimircd/store"
)

// A control command typed in a control channel (or to the service nick).
type command struct {
	usage string
	help  string
	min   int // least number of arguments
	run   func(s *session, r replyCtx, args []string)
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"help":       {"help [command]", "Lists the commands, or explains one.", 0, (*session).cmdHelp},
		"add":        {"add <user name|e-mail>", "Adds an MSIM user to your buddy list.", 1, (*session).cmdAdd},
		"remove":     {"remove <nick>", "Removes a buddy from your list.", 1, (*session).cmdRemove},
		"block":      {"block <nick>", "Blocks a user: their messages are dropped and you appear offline to them.", 1, (*session).cmdBlock},
		"allow":      {"allow <nick>", "Unblocks a user: a buddy you blocked goes back on your list; anyone else is only unblocked (add them to have them on it).", 1, (*session).cmdAllow},
		"info":       {"info <nick>", "Shows a user's MSIM profile.", 1, (*session).cmdInfo},
		"status":     {"status [online|idle|away|invisible] [text]", "Shows or sets this account's status and status text (kept for its next logins if you are registered).", 0, (*session).cmdStatus},
		"rename":     {"rename <nick> <new nick>", "Gives a buddy another nick, remembered from now on.", 2, (*session).cmdRename},
		"zap":        {"zap <nick> [zap]", "Sends a zap: " + zapNames() + " (default zap).", 1, (*session).cmdZap},
		"set":        {"set [key [value]]", "Shows or changes a setting: show_offline, away_devoice, typing (true/false); auto_away <text>, your away text on MSIM while no IRC client is attached (off: none). Example: set auto_away not at my desk", 0, (*session).cmdSet},
		"connect":    {"connect", "Connects this account to MSIM.", 0, (*session).cmdConnect},
		"history":    {"history <nick> [n]", "Shows your last n messages with a buddy (default 10), with their times; for IRC clients without CHATHISTORY. Also: log. Example: history tom 20", 1, (*session).cmdHistory},
		"log":        {"log <nick> [n]", "The same as history.", 1, (*session).cmdHistory},
		"disconnect": {"disconnect", "Logs this account out of MSIM (and stops reconnecting).", 0, (*session).cmdDisconnect},
	}
	for name, c := range selfServiceCommands() {
		commands[name] = c
	}
}

// accountless are the commands that need no MSIM account to act on.
var accountless = map[string]bool{"help": true, "set": true, "register": true, "identify": true,
	"drop": true, "account": true, "blist": true, "save": true, "yes": true}

func zapNames() string {
	var names []string
	for z := markup.Zap(0); z <= 9; z++ {
		names = append(names, strings.ToLower(z.Name()))
	}
	return strings.Join(names, ", ")
}

func (s *session) command(r replyCtx, line string) {
	line = strings.TrimSpace(line)
	args := strings.Fields(line)
	if len(args) == 0 {
		return
	}
	name := strings.ToLower(args[0])
	if !s.dropUntil.IsZero() && name != "yes" {
		s.dropUntil = time.Time{}
		s.reply(r, "drop cancelled; nothing was deleted.")
	}
	c, ok := commands[name]
	if !ok {
		s.reply(r, "Unknown command %q. Type help for the list.", args[0])
		return
	}
	if len(args)-1 < c.min {
		s.reply(r, "Usage: %s", c.usage)
		return
	}
	if r.a == nil && !accountless[name] {
		s.reply(r, "You have no MSIM account to do that with. Add one with: account add msim <e-mail> <password>")
		return
	}
	if name == "status" {
		// Keep the status text as typed.
		rest := strings.TrimSpace(line[len(args[0]):])
		args = append([]string{args[0]}, strings.SplitN(rest, " ", 2)...)
		if rest == "" {
			args = args[:1]
		}
	}
	c.run(s, r, args[1:])
}

func (s *session) cmdHelp(r replyCtx, args []string) {
	if len(args) > 0 {
		c, ok := commands[strings.ToLower(args[0])]
		if !ok {
			s.reply(r, "No command %q. Type help for the list.", args[0])
			return
		}
		s.reply(r, "%s — %s", c.usage, c.help)
		return
	}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	s.reply(r, "Commands: %s. Type help <command> for details. To message a buddy: /msg <nick> text, or <nick>: text in the channel. A command acts on its channel's account (sent to %s in private: on the first account).", strings.Join(names, ", "), s.b.cfg.ServiceNick)
}

// online returns the account's client, or says why there is none.
func (s *session) online(r replyCtx) MSIMClient {
	if r.a.client == nil {
		s.reply(r, "Account %s is not connected (%s). Type connect first.", r.a.cfg.Email, r.a.state)
		return nil
	}
	return r.a.client
}

// findBuddy resolves a nick to a buddy of the reply's account.
func (s *session) findBuddy(r replyCtx, nick string) *buddy {
	bd := s.buddyByNick(nick)
	if bd == nil {
		s.reply(r, "No buddy is called %q.", nick)
		return nil
	}
	if bd.a != r.a {
		s.reply(r, "%s belongs to account %s; use its channel %s.", bd.nick, bd.a.cfg.Email, bd.a.channel)
		return nil
	}
	return bd
}

// async runs f (an MSIM request) off the session goroutine and hands its
// result to done on it.
func (s *session) async(f func(ctx context.Context) error, done func(error)) {
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.RequestTimeout)
		err := f(ctx)
		cancel()
		s.post(call(func() { done(err) }))
	}()
}

func (s *session) cmdAdd(r replyCtx, args []string) {
	cl := s.online(r)
	if cl == nil {
		return
	}
	who := args[0]
	a := r.a
	self := a.self.UID
	var p msim.Profile
	s.async(func(ctx context.Context) error {
		var err error
		if p, err = cl.LookupUser(ctx, who); err != nil {
			return err
		}
		if p.UID == self {
			return errors.New("that is you")
		}
		return cl.AddBuddy(ctx, p.UID, "")
	}, func(err error) {
		if errors.Is(err, msim.ErrNoSuchUser) {
			s.reply(r, "No MSIM user is called %q.", who)
			return
		}
		if err != nil {
			s.reply(r, "Adding %s failed: %v", who, err)
			return
		}
		s.upsertContact(a, msim.Contact{UID: p.UID, UserName: p.UserName, DisplayName: p.DisplayName})
		bd := a.buddy(p.UID)
		s.reply(r, "Added %s (uid %d) to your buddy list as %s.", nameOr(p.UserName, who), p.UID, bd.nick)
	})
}

func (s *session) cmdRemove(r replyCtx, args []string) {
	cl := s.online(r)
	bd := s.findBuddy(r, args[0])
	if cl == nil || bd == nil {
		return
	}
	if bd.blocked {
		// Blocking took them off the list; MSIM's remove would also take
		// them off the block list.
		s.reply(r, "%s is blocked, so not on your buddy list; type allow %s to unblock them.", bd.nick, bd.nick)
		return
	}
	s.async(func(ctx context.Context) error { return cl.RemoveBuddy(ctx, bd.UID()) }, func(err error) {
		if err != nil {
			s.reply(r, "Removing %s failed: %v", bd.nick, err)
			return
		}
		bd.contact = false
		s.applyPresence(bd)
		s.reply(r, "Removed %s from your buddy list.", bd.nick)
	})
}

func (s *session) cmdBlock(r replyCtx, args []string) {
	cl := s.online(r)
	bd := s.findBuddy(r, args[0])
	if cl == nil || bd == nil {
		return
	}
	s.async(func(ctx context.Context) error { return cl.Block(ctx, bd.UID()) }, func(err error) {
		if err != nil {
			s.reply(r, "Blocking %s failed: %v", bd.nick, err)
			return
		}
		bd.blocked = true
		s.applyPresence(bd)
		s.reply(r, "Blocked %s.", bd.nick)
	})
}

func (s *session) cmdAllow(r replyCtx, args []string) {
	cl := s.online(r)
	bd := s.findBuddy(r, args[0])
	if cl == nil || bd == nil {
		return
	}
	s.async(func(ctx context.Context) error { return cl.Allow(ctx, bd.UID()) }, func(err error) {
		if err != nil {
			s.reply(r, "Unblocking %s failed: %v", bd.nick, err)
			return
		}
		// The MSIM client puts a blocked buddy back on the list, and its
		// contact events (updated or removed) say where they stand: taken
		// now, as they may wait behind this reply.
		if s.msimWaiting.Swap(false) {
			s.takeMSIM()
		}
		bd.blocked = false
		s.applyPresence(bd)
		if bd.contact {
			s.reply(r, "Unblocked %s; they are on your buddy list again.", bd.nick)
			return
		}
		s.reply(r, "Unblocked %s. Type add %s to put them on your list.", bd.nick, nameOr(bd.userName, bd.UID().String()))
	})
}

func (s *session) cmdInfo(r replyCtx, args []string) {
	cl := s.online(r)
	bd := s.findBuddy(r, args[0])
	if cl == nil || bd == nil {
		return
	}
	var p msim.Profile
	s.async(func(ctx context.Context) (err error) { p, err = cl.Profile(ctx, bd.UID()); return err }, func(err error) {
		if err != nil {
			s.reply(r, "Cannot fetch %s's profile: %v", bd.nick, err)
			return
		}
		info := s.whoisInfo(bd, &p)
		st, text := s.presence(bd)
		if bd.blocked {
			s.reply(r, "%s is blocked: their status does not reach you.", bd.nick)
		} else {
			s.reply(r, "%s is %s%s.", bd.nick, st, suffix(": ", text))
		}
		for _, l := range info {
			s.reply(r, "%s", l)
		}
	})
}

var statusNames = map[string]msim.Status{
	"online": msim.StatusOnline, "idle": msim.StatusIdle, "away": msim.StatusAway, "invisible": msim.StatusInvisible,
}

func (s *session) cmdStatus(r replyCtx, args []string) {
	a := r.a
	if len(args) == 0 {
		if a.state != linkUp {
			s.reply(r, "%s is offline (link: %s); it will be %s%s when it connects.", a.cfg.Email, a.state, a.status, suffix(": ", a.statusText))
			return
		}
		s.reply(r, "%s is %s%s (link: %s).", a.cfg.Email, a.status, suffix(": ", a.statusText), a.state)
		return
	}
	st, ok := statusNames[strings.ToLower(args[0])]
	if !ok {
		s.reply(r, "Unknown status %q. Usage: %s", args[0], commands["status"].usage)
		return
	}
	text := ""
	if len(args) > 1 {
		text = strings.TrimSpace(args[1])
	}
	s.setStatus(a, st, text, r)
	s.saveStatus(a)
}

func (s *session) cmdRename(r replyCtx, args []string) {
	bd := s.findBuddy(r, args[0])
	if bd == nil {
		return
	}
	nn := args[1]
	if !validNick(nn) {
		s.reply(r, "%q is not a valid nick (letters, digits and []\\`_^{|}-, not starting with a digit or -, at most %d).", nn, NickLen)
		return
	}
	if nickKey(nn) != nickKey(bd.nick) && (s.nickTaken(nickKey(nn)) || s.mem.ownedByOther(nickKey(nn), buddyKey{bd.a.cfg.Email, bd.UID()})) {
		s.reply(r, "The nick %s is taken.", nn)
		return
	}
	old := bd.nick
	if err := s.irc.RenameUser(old, nn); err != nil {
		s.reply(r, "Cannot rename %s: %v", old, err)
		return
	}
	s.setNick(bd, nn)
	s.mem.setNick(buddyKey{bd.a.cfg.Email, bd.UID()}, nn, false)
	s.reply(r, "%s is now known as %s.", old, nn)
}

func (s *session) cmdZap(r replyCtx, args []string) {
	cl := s.online(r)
	bd := s.findBuddy(r, args[0])
	if cl == nil || bd == nil {
		return
	}
	arg := ""
	if len(args) > 1 {
		arg = args[1]
	}
	z, ok := zapByArg(arg)
	if !ok {
		s.reply(r, "Unknown zap %q. Zaps: %s.", arg, zapNames())
		return
	}
	s.async(func(ctx context.Context) error { return cl.SendZap(ctx, bd.UID(), z) }, func(err error) {
		if err != nil {
			s.reply(r, "Zapping %s failed: %v", bd.nick, err)
			return
		}
		s.b.met.zapToMSIM()
		s.record(store.HistoryEntry{MsgID: ircd.NewMsgID(), Time: time.Now(), Account: bd.a.cfg.Email, Buddy: bd.UID(), Outgoing: true, Kind: kindZap, Text: z.Name()})
		s.reply(r, "Sent %s a zap: %s.", bd.nick, z.Name())
	})
}

var settingDefaults = map[string]string{"show_offline": "false", "away_devoice": "true", "typing": "true", "auto_away": ""}

// textSettings take any text; "" (set with off or none) turns them off.
var textSettings = map[string]bool{"auto_away": true}

func (s *session) setting(k string) string {
	if v, ok := s.mem.setting(k); ok {
		return v
	}
	return settingDefaults[k]
}

func (s *session) cmdSet(r replyCtx, args []string) {
	if len(args) == 0 {
		keys := make([]string, 0, len(settingDefaults))
		for k := range settingDefaults {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s.reply(r, "%s = %s", k, s.setting(k))
		}
		return
	}
	k := strings.ToLower(args[0])
	if _, ok := settingDefaults[k]; !ok {
		s.reply(r, "Unknown setting %q. Usage: %s", args[0], commands["set"].usage)
		return
	}
	if len(args) == 1 {
		s.reply(r, "%s = %s", k, s.setting(k))
		return
	}
	if textSettings[k] {
		v := strings.Join(args[1:], " ")
		if lv := strings.ToLower(v); lv == "off" || lv == "none" || lv == "false" {
			v = ""
		}
		s.mem.setSetting(k, v)
		s.reply(r, "%s = %s", k, v)
		if k == "auto_away" {
			s.updateAway()
		}
		return
	}
	v := strings.ToLower(args[1])
	switch v {
	case "true", "on", "yes", "1":
		v = "true"
	case "false", "off", "no", "0":
		v = "false"
	default:
		s.reply(r, "%s takes true or false, not %q.", k, args[1])
		return
	}
	s.mem.setSetting(k, v)
	s.reply(r, "%s = %s", k, v)
	for _, a := range s.accounts {
		for _, bd := range a.buddies.All() {
			s.applyPresence(bd)
		}
	}
}

func (s *session) cmdConnect(r replyCtx, _ []string) {
	a := r.a
	switch a.state {
	case linkUp:
		s.reply(r, "%s is already connected.", a.cfg.Email)
	case linkConnecting:
		s.reply(r, "%s is already connecting.", a.cfg.Email)
	default:
		a.delay = 0
		s.connect(a)
	}
}

func (s *session) cmdDisconnect(r replyCtx, _ []string) {
	a := r.a
	if a.state == linkDown || a.state == linkStopped {
		s.reply(r, "%s is not connected.", a.cfg.Email)
		return
	}
	s.disconnect(a, fmt.Sprintf("Disconnected %s from MSIM. Type connect to log in again.", a.cfg.Email))
	s.failQueue(a, "the account was disconnected")
}

// zapByArg finds a zap by name or number; "" = Zap.
func zapByArg(arg string) (markup.Zap, bool) {
	if arg == "" {
		return markup.Zap(0), true
	}
	var n int
	if _, err := fmt.Sscanf(arg, "%d", &n); err == nil && fmt.Sprint(n) == arg {
		if n >= 0 && n <= 9 {
			return markup.Zap(n), true
		}
		return 0, false
	}
	return markup.ZapByName(arg)
}
