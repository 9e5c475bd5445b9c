package ircd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/msimircd/msimircd/internal/guard"
	"gopkg.in/irc.v4"
)

// capsSupported lists the capabilities offered in CAP LS, with their 302
// values.
var capsSupported = map[string]string{
	"away-notify":   "",
	"batch":         "",
	"cap-notify":    "",
	capMultiline:    "max-bytes=" + strconv.Itoa(MultilineMaxBytes) + ",max-lines=" + strconv.Itoa(MultilineMaxLines),
	"echo-message":  "",
	"extended-join": "",
	"message-tags":  "",
	"multi-prefix":  "",
	"sasl":          "PLAIN",
	"server-time":   "",
	"setname":       "",

	"standard-replies": "",

	"userhost-in-names": "",

	"labeled-response": "",
}

const (
	saslChunk   = 400
	saslMaxData = 4 * saslChunk
	authTimeout = 30 * time.Second
)

type saslState struct {
	active  bool // AUTHENTICATE PLAIN seen, collecting data
	discard bool // an over-long payload was refused: ignore its remaining chunks
	buf     []byte
}

func cmdPass(c *Client, m *irc.Message) *ircError {
	if c.connecting {
		return newErr(irc.ERR_ALREADYREGISTERED, "You may not reregister")
	}
	c.pass = m.Params[0]
	return nil
}

func cmdNick(c *Client, m *irc.Message) *ircError {
	if len(m.Params) == 0 || m.Params[0] == "" {
		return newErr(irc.ERR_NONICKNAMEGIVEN, "No nickname given")
	}
	n := Nick(m.Params[0])
	if !n.Valid() {
		return newErr(irc.ERR_ERRONEUSNICKNAME, string(n), "Erroneous nickname")
	}
	if c.findUser(string(n)) != nil {
		return newErr(irc.ERR_NICKNAMEINUSE, string(n), "Nickname is already in use")
	}
	if string(n) == c.nick {
		return nil
	}
	if !c.connecting {
		c.nick = string(n)
		c.tryRegister()
		return nil
	}
	c.send(msg(c.selfPrefix(), "NICK", string(n)))
	c.nick = string(n)
	c.withHandler(func(h Handler) { h.Nick(string(n)) })
	return nil
}

func cmdUser(c *Client, m *irc.Message) *ircError {
	if c.connecting || c.user != "" {
		return newErr(irc.ERR_ALREADYREGISTERED, "You may not reregister")
	}
	if m.Params[0] == "" || m.Params[3] == "" {
		return newErr(irc.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
	}
	c.user = cleanUser(m.Params[0])
	if u, client, ok := strings.Cut(c.user, "/"); ok && u != "" {
		// A client's name (alice/phone): the backend gets it; the
		// hostmask shows the user name alone.
		c.user, c.userClient = u, client
	}
	// Cut to NAMELEN (ISUPPORT), as a virtual user's real name is;
	// SETNAME refuses a longer one.
	c.realName = truncUTF8(m.Params[3], RealNameLen)
	c.tryRegister()
	return nil
}

// tryRegister finishes registration once NICK, USER and CAP END are in.
// Caller holds c.mu.
func (c *Client) tryRegister() {
	if c.connecting || c.nick == "*" || c.user == "" || c.capBlock {
		return
	}
	c.connecting = true
	c.abortSASL() // a SASL exchange under way ends unfinished (sasl-3.1)
	user := c.user
	if c.userClient != "" {
		user += "/" + c.userClient
	}
	reg := Registration{Nick: c.nick, User: user, RealName: c.realName, Pass: c.pass, Account: c.account, SASLPassword: c.saslPass, Remote: c.remote}
	c.pass, c.saslPass = "", ""
	c.later(func() { c.connect(reg) })
}

// connect asks the backend to accept the client, after the delay earlier
// failed guesses from its address, and at its account if it gave a PASS,
// call for (unless it logged in with SASL, which waited already), and
// counts a refusal as failed guesses do; it runs on the reader goroutine
// without c.mu.
func (c *Client) connect(reg Registration) {
	account := c.srv.accountOf(reg)
	keys := keysFor(c.remote, account)
	g := c.srv.guesses
	guess := reg.Pass != "" || reg.Account != "" // a password of the account's was given
	var h Handler
	var err error
	if reg.Account == "" { // SASL already waited and checked
		err = g.before(c.ctx, keys, guess)
	}
	switch {
	case errors.Is(err, guard.ErrRefused):
		err = errGuessRefused
	case err != nil:
		return // the connection is ending
	default:
		h, err = c.srv.backend.Connect(c, reg)
		switch {
		case errors.Is(err, ErrBadCredentials):
			g.failed(c.logger().WithField("account", account), keys, guess)
		case err == nil && checkedPassword(h, reg):
			g.succeeded(keys)
		}
	}
	c.mu.Lock()
	unsent := c.accept(h, err)
	c.mu.Unlock()
	report(unsent, false)
}

// accept welcomes the client the backend accepted, or closes it, and
// returns the held lines that were not queued. Caller holds c.mu.
func (c *Client) accept(h Handler, err error) (unsent []entry) {
	switch {
	case errors.Is(err, ErrBadCredentials):
		// The backend's text might tell whether the account exists.
		c.logger().WithError(err).Info("login refused")
		c.numeric(irc.ERR_PASSWDMISMATCH, "Password incorrect")
		c.shutdown("Password incorrect", true)
		return c.dropHeld()
	case err != nil:
		c.logger().WithError(err).Info("backend refused the connection")
		c.numeric(irc.ERR_PASSWDMISMATCH, clean(err.Error(), TopicLen))
		c.shutdown("Access denied: "+err.Error(), true)
		return c.dropHeld()
	case h == nil:
		c.shutdown("Internal error", true)
		return c.dropHeld()
	}
	c.handler = h
	c.welcome()
	c.welcomed = true
	unsent = c.queueHeld()
	c.burstQueued.Store(true)
	return unsent
}

// welcome sends 001-005, LUSERS and the MOTD. Caller holds c.mu.
func (c *Client) welcome() {
	cfg := &c.srv.cfg
	c.numeric(irc.RPL_WELCOME, fmt.Sprintf("Welcome to the %s IRC Network %s", cfg.Network, c.selfPrefix()))
	c.numeric(irc.RPL_YOURHOST, fmt.Sprintf("Your host is %s, running version %s", cfg.ServerName, cfg.Version))
	c.numeric(irc.RPL_CREATED, "This server was created "+c.srv.created.UTC().Format(time.RFC1123))
	c.numeric(irc.RPL_MYINFO, cfg.ServerName, cfg.Version, "iw", "beIntov", "beIov")
	toks := c.isupport()
	for len(toks) > 0 {
		n := min(len(toks), 12)
		c.numeric(irc.RPL_ISUPPORT, append(toks[:n:n], "are supported by this server")...)
		toks = toks[n:]
	}
	c.lusers()
	c.motd()
	if c.umodes != "" {
		c.send(msg(c.selfPrefix(), "MODE", c.nick, "+"+c.umodes))
	}
}

func (c *Client) isupport() []string {
	toks := isupport(&c.srv.cfg)
	if _, ok := c.historyHandler(); ok {
		toks = append(toks, historyTokens(&c.srv.cfg)...)
	}
	return toks
}

func isupport(cfg *Config) []string {
	return []string{
		"AWAYLEN=" + strconv.Itoa(TopicLen),
		"CASEMAPPING=rfc1459",
		"CHANLIMIT=#&:",
		"CHANMODES=beI,,,nt",
		"CHANNELLEN=" + strconv.Itoa(ChannelLen),
		"CHANTYPES=#&",
		"MAXTARGETS=" + strconv.Itoa(maxTargets),
		"MODES=4",
		"MONITOR=" + strconv.Itoa(MonitorLimit),
		"NAMELEN=" + strconv.Itoa(RealNameLen),
		"NETWORK=" + isupportValue(cfg.Network),
		"NICKLEN=" + strconv.Itoa(NickLen),
		"PREFIX=(ov)@+",
		"TARGMAX=NAMES:1,WHOIS:1,PRIVMSG:4,NOTICE:4,TAGMSG:4,JOIN:,PART:",
		"TOPICLEN=" + strconv.Itoa(TopicLen),
		"USERLEN=" + strconv.Itoa(UserLen),
		"UTF8ONLY",
		"WHOX",
	}
}

// isupportValue escapes s for an ISUPPORT token's value: a space, a
// backslash, '=' and control bytes as \xHH, so that the token stays one
// parameter that clients read back whole.
func isupportValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c == '\\' || c == '=' || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// welcomeLines is how many lines welcome sends, at most: 001-004, 005s,
// LUSERS, the MOTD and the user modes.
func welcomeLines(cfg *Config) int {
	n := 4 + (len(isupport(cfg))+len(historyTokens(cfg))+11)/12 + 5 + 1
	if len(cfg.MOTD) == 0 {
		return n + 1
	}
	n += 2
	for _, l := range cfg.MOTD {
		n += len(splitText(l, 400))
	}
	return n
}

// lusers sends 251-266 for the client's world. Caller holds c.mu.
func (c *Client) lusers() {
	n := strconv.Itoa(c.users.Len() + 1)
	c.numeric(irc.RPL_LUSERCLIENT, fmt.Sprintf("There are %s users and 0 invisible on 1 servers", n))
	c.numeric(irc.RPL_LUSERCHANNELS, strconv.Itoa(len(c.chans)), "channels formed")
	c.numeric(irc.RPL_LUSERME, fmt.Sprintf("I have %s clients and 0 servers", n))
	c.numeric(rplLocalUsers, n, n, fmt.Sprintf("Current local users %s, max %s", n, n))
	c.numeric(rplGlobalUsers, n, n, fmt.Sprintf("Current global users %s, max %s", n, n))
}

// motd sends 375/372/376, or 422 without a MOTD. Caller holds c.mu.
func (c *Client) motd() {
	cfg := &c.srv.cfg
	lines := c.srv.motdLines()
	if len(lines) == 0 {
		c.numeric(irc.ERR_NOMOTD, "MOTD File is missing")
		return
	}
	c.numeric(irc.RPL_MOTDSTART, fmt.Sprintf("- %s Message of the day - ", cfg.ServerName))
	for _, l := range lines {
		for _, p := range splitText(l, 400) {
			c.numeric(irc.RPL_MOTD, "- "+p)
		}
	}
	c.numeric(irc.RPL_ENDOFMOTD, "End of /MOTD command.")
}

// capList is the CAP LS list of the server with configuration cfg, sorted.
func capList(cfg *Config, withValues bool) []string {
	names := make([]string, 0, len(capsSupported)+len(historyCaps))
	for n, v := range capsSupported {
		if withValues && v != "" {
			n += "=" + v
		}
		names = append(names, n)
	}
	if cfg.History {
		names = append(names, historyCaps...)
	}
	sort.Strings(names)
	return names
}

// capReply sends a CAP LS or LIST reply (sub) of names, in as many lines
// as it takes for each to fit a line with every name whole. To a client of
// CAP version 302 every line but the last has a "*" before its list, so
// that it waits for the rest; an older client gets the lines as they are
// (capability negotiation, multiline replies). Caller holds c.mu.
func (c *Client) capReply(sub string, names []string) {
	fixed := len(":") + len(c.srv.cfg.ServerName) + len(" CAP ") + len(c.nick) + len(" ") + len(sub)
	lists := capLines(names, fixed)
	for i, l := range lists {
		m := msg(c.serverPrefix(), "CAP", c.nick, sub, l)
		if i < len(lists)-1 && c.capVersion >= 302 {
			m = msg(c.serverPrefix(), "CAP", c.nick, sub, "*", l)
		}
		c.send(m)
	}
}

// capLines splits names into the lists of a CAP reply whose line takes
// fixed bytes before its list: as many whole names a line as fit with a
// continuation's " *" and the list's " :"; one empty list for no names.
func capLines(names []string, fixed int) []string {
	var lists []string
	joinFit(names, " ", maxLineBody-fixed-len(" * :"), func(l string) { lists = append(lists, l) })
	if len(lists) == 0 {
		return []string{""}
	}
	return lists
}

// capAnswer sends the ACK or NAK (sub) of a CAP REQ whose list is req:
// the list as the client gave it when the line fits, else its names split
// over as many lines as it takes, whole names a line and in order. The
// spec has no continuation for ACK and NAK (the "*" is for LS and LIST),
// but has a client wait for the last line of an ACK spread over several
// before it changes capabilities. The request is accepted or refused
// whole, and its lines are queued together, under c.mu, so no line the
// change affects comes between them. A name too long for any line alone goes
// alone, cut to fit (the floor under every line); only a name the server
// does not offer, in a NAK, is that long. Caller holds c.mu.
func (c *Client) capAnswer(sub, req string) {
	fixed := len(":") + len(c.srv.cfg.ServerName) + len(" CAP ") + len(c.nick) + len(" ") + len(sub) + len(" :")
	sent := false
	if fixed+len(req) > maxLineBody {
		joinFit(strings.Fields(req), " ", maxLineBody-fixed, func(l string) {
			c.send(msg(c.serverPrefix(), "CAP", c.nick, sub, l))
			sent = true
		})
	}
	if !sent { // fits, or only spaces
		c.send(msg(c.serverPrefix(), "CAP", c.nick, sub, req))
	}
}

func cmdCap(c *Client, m *irc.Message) *ircError {
	sub := strings.ToUpper(m.Params[0])
	switch sub {
	case "LS":
		if !c.connecting {
			c.capBlock = true
		}
		v, _ := strconv.Atoi(m.Param(1))
		if v >= 302 && c.capVersion < 302 {
			c.capVersion = 302
			c.caps["cap-notify"] = true
			c.publishCaps()
		}
		// The reply is of the version asked for; a lower one keeps the
		// stored version.
		c.capReply("LS", capList(&c.srv.cfg, v >= 302))
	case "LIST":
		var on []string
		for n := range c.caps {
			on = append(on, n)
		}
		sort.Strings(on)
		c.capReply("LIST", on)
	case "REQ":
		if len(m.Params) < 2 {
			return newErr(irc.ERR_NEEDMOREPARAMS, "CAP", "Not enough parameters")
		}
		if !c.connecting {
			c.capBlock = true
		}
		req := strings.Fields(m.Params[1])
		ok := len(req) > 0
		for _, r := range req {
			name, off := strings.CutPrefix(r, "-")
			if !capOffered(&c.srv.cfg, name) || (off && name == "cap-notify" && c.capVersion >= 302) {
				ok = false
			}
		}
		if !ok {
			c.capAnswer("NAK", m.Params[1])
			return nil
		}
		for _, r := range req {
			if name, off := strings.CutPrefix(r, "-"); off {
				delete(c.caps, name)
			} else {
				c.caps[name] = true
			}
		}
		c.publishCaps()
		c.capAnswer("ACK", m.Params[1])
		if !c.caps["sasl"] { // an exchange under way ends with the capability
			c.abortSASL()
			c.sasl = saslState{}
		}
	case "END":
		if c.connecting {
			return nil // registered already: ignored
		}
		c.abortSASL()
		c.capBlock = false
		c.tryRegister()
	default:
		return newErr(irc.ERR_INVALIDCAPCMD, m.Params[0], "Invalid CAP command")
	}
	return nil
}

// abortSASL ends the SASL exchange under way, if any, with 906. Caller
// holds c.mu.
func (c *Client) abortSASL() {
	if c.sasl.active {
		c.sasl = saslState{}
		c.numeric(irc.ERR_SASLABORTED, "SASL authentication aborted")
	}
}

func cmdAuthenticate(c *Client, m *irc.Message) *ircError {
	arg := m.Params[0]
	switch {
	case c.account != "": // before or after registration (sasl-3.1)
		return newErr(irc.ERR_SASLALREADY, "You have already authenticated using SASL")
	case c.connecting:
		return newErr(irc.ERR_ALREADYREGISTERED, "You may not reregister")
	case !c.caps["sasl"]:
		return newErr(irc.ERR_SASLFAIL, "SASL authentication failed: sasl capability not enabled")
	case arg == "*":
		c.sasl = saslState{}
		return newErr(irc.ERR_SASLABORTED, "SASL authentication aborted")
	case c.sasl.discard:
		if len(arg) < saslChunk { // the refused payload's last chunk
			c.sasl = saslState{}
		}
		return nil
	case !c.sasl.active:
		if !strings.EqualFold(arg, "PLAIN") {
			c.numeric(irc.RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
			return newErr(irc.ERR_SASLFAIL, "SASL authentication failed")
		}
		c.sasl.active = true
		c.send(msg(c.serverPrefix(), "AUTHENTICATE", "+"))
		return nil
	}
	if len(arg) > saslChunk {
		c.sasl = saslState{}
		return newErr(irc.ERR_SASLTOOLONG, "SASL message too long")
	}
	if arg != "+" {
		c.sasl.buf = append(c.sasl.buf, arg...)
	}
	if len(c.sasl.buf) > saslMaxData {
		c.sasl = saslState{discard: len(arg) == saslChunk}
		return newErr(irc.ERR_SASLTOOLONG, "SASL message too long")
	}
	if len(arg) == saslChunk {
		return nil // more to come
	}
	data := c.sasl.buf
	c.sasl = saslState{}
	raw, err := base64.StdEncoding.DecodeString(string(data))
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 || parts[1] == "" || (parts[0] != "" && parts[0] != parts[1]) {
		return newErr(irc.ERR_SASLFAIL, "SASL authentication failed")
	}
	account, password := parts[1], parts[2]
	if password == "" || !validAccountName(account) { // authzid is empty or the same
		return newErr(irc.ERR_SASLFAIL, "SASL authentication failed")
	}
	c.later(func() { c.authenticate(account, password) })
	return nil
}

// authenticate asks the backend, after the delay earlier failures call for;
// it runs on the reader goroutine without c.mu. A failure changes nothing
// but the failure counts: the client may try again.
func (c *Client) authenticate(account, password string) {
	keys := keysFor(c.remote, withoutClient(account)) // as accountOf: alice/phone is alice
	g := c.srv.guesses
	if err := g.before(c.ctx, keys, true); err != nil {
		if errors.Is(err, guard.ErrRefused) {
			c.mu.Lock()
			c.numeric(irc.ERR_SASLFAIL, "SASL authentication failed")
			c.mu.Unlock()
		}
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, authTimeout)
	err := c.srv.backend.Authenticate(ctx, account, password)
	cancel()
	if err != nil {
		g.failed(c.logger().WithField("account", account), keys, true)
	} else {
		g.succeeded(keys)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.logger().WithField("account", account).WithError(err).Info("SASL authentication failed")
		c.numeric(irc.ERR_SASLFAIL, "SASL authentication failed")
		return
	}
	c.account, c.saslPass = account, password
	user := c.user
	if user == "" {
		user = "*"
	}
	c.numeric(irc.RPL_LOGGEDIN, c.nick+"!"+user+"@"+c.host, account, "You are now logged in as "+clean(account, len(account)))
	c.numeric(irc.RPL_SASLSUCCESS, "SASL authentication successful")
}

// validAccountName reports whether a SASL account name may be asked
// about: valid UTF-8, not empty, without control characters. The name is
// decoded from base64, so the checks every line gets (UTF-8, no NUL, no
// line end) have not seen it. A space or a leading ':' is allowed (a
// configuration's user may be named so): replies that carry the account
// as a middle parameter (RPL_LOGGEDIN, WHOIS, WHOX, extended-join) show
// such a name as "*" (middleParam). The user's name, before the first
// '/', is at most NickLen bytes, as NICKLEN advertises: users are named by
// their nick (a configuration's user names are bounded so too), and a
// longer name is refused before any lookup. A client's name, after it, is
// at most ClientNameLen bytes: RPL_LOGGEDIN repeats the whole name twice,
// and WHOIS, WHOX and extended-join carry it, lines that a longer one
// would push past 512 bytes and have cut.
func validAccountName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	if user, client, _ := strings.Cut(s, "/"); len(user) > NickLen || len(client) > ClientNameLen {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
