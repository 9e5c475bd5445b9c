package ircd

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
)

type command struct {
	fn     func(*Client, *irc.Message) *ircError
	min    int  // parameters required
	preReg bool // allowed before registration
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"ADMIN":        {cmdAdmin, 0, false},
		"AUTHENTICATE": {cmdAuthenticate, 1, true},
		"AWAY":         {cmdAway, 0, false},
		"BATCH":        {cmdBatch, 1, false},
		"CAP":          {cmdCap, 1, true},
		"CHATHISTORY":  {cmdChathistory, 1, false},
		"HELP":         {cmdHelp, 0, false},
		"INFO":         {cmdInfo, 0, false},
		"ISON":         {cmdIson, 1, false},
		"JOIN":         {cmdJoin, 1, false},
		"LIST":         {cmdList, 0, false},
		"LUSERS":       {func(c *Client, _ *irc.Message) *ircError { c.lusers(); return nil }, 0, false},
		"MARKREAD":     {cmdMarkread, 0, false},
		"MODE":         {cmdMode, 1, false},
		"MONITOR":      {cmdMonitor, 1, false},
		"MOTD":         {func(c *Client, _ *irc.Message) *ircError { c.motd(); return nil }, 0, false},
		"NAMES":        {cmdNames, 0, false},
		"NICK":         {cmdNick, 0, true},
		"NOTICE":       {cmdMessage, 0, false},
		"PART":         {cmdPart, 1, false},
		"PASS":         {cmdPass, 1, true},
		"PING":         {cmdPing, 1, true},
		"PONG":         {func(*Client, *irc.Message) *ircError { return nil }, 0, true},
		"PRIVMSG":      {cmdMessage, 0, false},
		"QUIT":         {cmdQuit, 0, true},
		"SETNAME":      {cmdSetname, 1, false},
		"TAGMSG":       {cmdMessage, 0, false},
		"TIME":         {cmdTime, 0, false},
		"TOPIC":        {cmdTopic, 1, false},
		"USER":         {cmdUser, 4, true},
		"USERHOST":     {cmdUserhost, 1, false},
		"VERSION":      {cmdVersion, 0, false},
		"WHO":          {cmdWho, 0, false},
		"WHOIS":        {cmdWhois, 1, false},
		"WHOWAS":       {cmdWhowas, 1, false},
	}
}

func cmdPing(c *Client, m *irc.Message) *ircError {
	c.send(msg(c.serverPrefix(), "PONG", c.srv.cfg.ServerName, m.Params[0]))
	return nil
}

func cmdQuit(c *Client, m *irc.Message) *ircError {
	reason := "Client Quit"
	if t := m.Param(0); t != "" {
		reason = "Quit: " + clean(t, TopicLen)
	}
	c.shutdown(reason, true)
	return nil
}

func cmdVersion(c *Client, _ *irc.Message) *ircError {
	c.numeric(irc.RPL_VERSION, c.srv.cfg.Version, c.srv.cfg.ServerName, "")
	toks := c.isupport()
	for len(toks) > 0 {
		n := min(len(toks), 12)
		c.numeric(irc.RPL_ISUPPORT, append(toks[:n:n], "are supported by this server")...)
		toks = toks[n:]
	}
	return nil
}

func cmdJoin(c *Client, m *irc.Message) *ircError {
	switch m.Params[0] {
	case "":
		return newErr(irc.ERR_NEEDMOREPARAMS, "JOIN", "Not enough parameters")
	case "0":
		for _, ch := range c.chans {
			if ch.joined {
				c.partSelf(ch, "")
			}
		}
		return nil
	}
	jm := c.newJoinMarkers() // read markers go before each RPL_ENDOFNAMES
	for name := range strings.SplitSeq(m.Params[0], ",") {
		ch := c.channel(name)
		switch {
		case name == "": // "#a,,#b": no channel there
		case ch == nil:
			c.numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel")
		case !ch.joined:
			c.joinSelf(ch, jm.out(c, ch.name))
			c.withHandler(func(h Handler) { h.Join(ch.name) })
		}
	}
	jm.ask(c)
	return nil
}

func cmdPart(c *Client, m *irc.Message) *ircError {
	if m.Params[0] == "" {
		return newErr(irc.ERR_NEEDMOREPARAMS, "PART", "Not enough parameters")
	}
	reason := clean(m.Param(1), TopicLen)
	for name := range strings.SplitSeq(m.Params[0], ",") {
		ch := c.channel(name)
		switch {
		case name == "":
		case ch == nil:
			c.numeric(irc.ERR_NOSUCHCHANNEL, name, "No such channel")
		case !ch.joined:
			c.numeric(irc.ERR_NOTONCHANNEL, ch.name, "You're not on that channel")
		default:
			c.partSelf(ch, reason)
		}
	}
	return nil
}

// partSelf takes the client out of ch and tells the handler. Caller holds c.mu.
func (c *Client) partSelf(ch *vchan, reason string) {
	ch.joined = false
	if reason == "" {
		c.send(msg(c.selfPrefix(), "PART", ch.name))
	} else {
		c.send(msg(c.selfPrefix(), "PART", ch.name, reason))
	}
	c.withHandler(func(h Handler) { h.Part(ch.name, reason) })
}

func cmdNames(c *Client, m *irc.Message) *ircError {
	if len(m.Params) == 0 {
		for _, ch := range c.sortedChans() {
			if ch.joined {
				c.names(ch, c.send)
			}
		}
		c.numeric(irc.RPL_ENDOFNAMES, "*", "End of /NAMES list.")
		return nil
	}
	name, _, _ := strings.Cut(m.Params[0], ",")
	if ch := c.channel(name); ch != nil {
		c.names(ch, c.send)
		return nil
	}
	c.numeric(irc.RPL_ENDOFNAMES, name, "End of /NAMES list.")
	return nil
}

func (c *Client) sortedChans() []*vchan {
	out := make([]*vchan, 0, len(c.chans))
	for _, ch := range c.chans {
		out = append(out, ch)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// cmdList lists the client's channels, or those its first parameter names
// (casemapped, or by a glob mask such as #ms*); a parameter that names no
// channel, such as an ELIST condition, filters nothing.
func cmdList(c *Client, m *irc.Message) *ircError {
	var names []string
	for name := range strings.SplitSeq(m.Param(0), ",") {
		if isChannel(name) {
			names = append(names, name)
		}
	}
	c.numeric(irc.RPL_LISTSTART, "Channel", "Users  Name")
	for _, ch := range c.sortedChans() {
		if names != nil && !slices.ContainsFunc(names, func(n string) bool { return match(n, ch.name) }) {
			continue
		}
		n := ch.members.len()
		if ch.joined {
			n++
		}
		c.numeric(irc.RPL_LIST, ch.name, strconv.Itoa(n), ch.topic)
	}
	c.numeric(irc.RPL_LISTEND, "End of /LIST")
	return nil
}

func cmdTopic(c *Client, m *irc.Message) *ircError {
	ch := c.channel(m.Params[0])
	switch {
	case ch == nil:
		return newErr(irc.ERR_NOSUCHCHANNEL, m.Params[0], "No such channel")
	case len(m.Params) > 1 && !ch.joined:
		return newErr(irc.ERR_NOTONCHANNEL, ch.name, "You're not on that channel")
	case len(m.Params) > 1:
		return newErr(errNoPrivs, ch.name, "You're not channel operator")
	case ch.topic == "":
		c.numeric(irc.RPL_NOTOPIC, ch.name, "No topic is set")
	default:
		c.topicReply(ch, c.send)
	}
	return nil
}

func cmdAway(c *Client, m *irc.Message) *ircError {
	text := clean(m.Param(0), TopicLen)
	c.away = text
	if text == "" {
		c.numeric(irc.RPL_UNAWAY, "You are no longer marked as being away")
	} else {
		c.numeric(irc.RPL_NOWAWAY, "You have been marked as being away")
	}
	c.withHandler(func(h Handler) { h.Away(text) })
	return nil
}

// cmdMessage handles PRIVMSG, NOTICE and TAGMSG. A NOTICE never gets an
// automatic reply, not even an error (RFC 1459 §4.4.2).
func cmdMessage(c *Client, m *irc.Message) *ircError {
	err := c.message(m, false)
	if m.Command == "NOTICE" {
		return nil
	}
	return err
}

// message sends a PRIVMSG, NOTICE or TAGMSG; batched says it came as a
// multiline batch, which its echo mirrors.
func (c *Client) message(m *irc.Message, batched bool) *ircError {
	if len(m.Params) == 0 || m.Params[0] == "" {
		return newErr(irc.ERR_NORECIPIENT, "No recipient given ("+m.Command+")")
	}
	text := ""
	if m.Command != "TAGMSG" {
		if len(m.Params) < 2 || m.Params[1] == "" {
			return newErr(irc.ERR_NOTEXTTOSEND, "No text to send")
		}
		text = m.Params[1]
	}
	return c.messageTo(m.Command, m.Params[0], text, m.Tags, batched)
}

// messageTo is message for a command (PRIVMSG, NOTICE or TAGMSG) with
// its targets (not empty), text (not empty but for TAGMSG) and the
// line's tags (mtags, nil for none). It takes no message, so that a
// caller's can stay on its stack (plainMessage).
func (c *Client) messageTo(cmd, targets, text string, mtags irc.Tags, batched bool) *ircError {
	numeric := func(code string, params ...string) {
		if cmd != "NOTICE" { // a NOTICE gets no error replies
			c.numeric(code, params...)
		}
	}
	if strings.Count(targets, ",") >= maxTargets {
		return newErr(irc.ERR_TOOMANYTARGETS, targets, "Too many targets")
	}
	var tags irc.Tags // nil unless the client sent client-only tags
	for k, v := range mtags {
		if clientTag(k) {
			if tags == nil {
				tags = irc.Tags{}
			}
			tags[k] = v
		}
	}
	at := c.readTime()
	c.lastActive = at
	for t := range strings.SplitSeq(targets, ",") { // no list: most messages have one target
		var name string
		switch {
		case t == "": // "a,,b": no target there
			continue
		case isChannel(t):
			ch := c.channel(t)
			if ch == nil {
				numeric(irc.ERR_NOSUCHCHANNEL, t, "No such channel")
				continue
			}
			if !ch.joined {
				numeric(irc.ERR_CANNOTSENDTOCHAN, ch.name, "Cannot send to channel")
				continue
			}
			name = ch.name
		case compareFolded(t, c.nick) == 0: // Nick(t).Key() == Nick(c.nick).Key(), folding nothing
			// A message to oneself: with echo-message, the echo (part of
			// a labeled reply); then the delivery, a side effect that never
			// carries the label (labeled-response). TAGMSG only to a client
			// with message-tags.
			if cmd == "TAGMSG" && !c.caps["message-tags"] {
				continue
			}
			now := inputTime(at)
			id := c.msgID(now)
			batch := c.batchLines(cmd, c.nick, text, batched)
			if c.caps["echo-message"] {
				for _, e := range c.echoLines(cmd, c.nick, text, tags, id, now, batch) {
					c.send(e)
				}
			}
			for _, e := range c.echoLines(cmd, c.nick, text, tags, id, now, batch) {
				c.sideEffect(e)
			}
			continue
		default:
			u := c.findUser(t)
			if u == nil {
				numeric(irc.ERR_NOSUCHNICK, t, "No such nick/channel")
				continue
			}
			name = u.Nick
			if away := c.awayOf(u); away != "" && cmd == "PRIVMSG" {
				c.numeric(irc.RPL_AWAY, u.Nick, away)
			}
		}
		now := inputTime(at)
		in := Input{Command: cmd, Target: name, Text: text, MsgID: c.msgID(now), Time: now}
		in.Lines = c.batchLines(cmd, name, text, batched)
		if c.caps["echo-message"] && (cmd != "TAGMSG" || c.caps["message-tags"]) {
			for _, e := range c.echoLines(cmd, name, text, tags, in.MsgID, in.Time, in.Lines) {
				c.send(e)
			}
		}
		if tags != nil {
			in.Tags = tags.Copy()
		}
		if h := c.handler; h != nil { // as withHandler, without a closure (dispatch)
			c.inputs, c.inputsTo = append(c.inputs, in), h
		}
	}
	return nil
}

// clientTag reports whether k names a client-only tag as message-tags'
// grammar has it: '+', an optional vendor (a host name) and '/', then
// letters, digits and '-'. A client's tag named otherwise is dropped, as
// ergo drops it, rather than relayed to the user's other clients, which
// may not parse it; a backend's, which may hold a space, ';' or '='
// (no client's can), would make a malformed line.
func clientTag(k string) bool {
	name, ok := strings.CutPrefix(k, "+")
	if !ok {
		return false
	}
	if vendor, key, found := strings.Cut(name, "/"); found {
		if !tagWord(vendor, true) {
			return false
		}
		name = key
	}
	return tagWord(name, false)
}

// tagWord reports whether s is not empty and holds only ASCII letters,
// digits and '-', and, with dots, '.'.
func tagWord(s string, dots bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		case c == '.' && dots:
		default:
			return false
		}
	}
	return true
}

// batchLines returns the lines of a message to target that came as a
// multiline batch (batched), as its echo and its Input have them: the text
// split again for a line from the client (multilinePieces); nil for one
// that did not, or that is no batch's (CTCP). Caller holds c.mu.
func (c *Client) batchLines(cmd, target, text string, batched bool) []BatchLine {
	if !batched || cmd == "TAGMSG" {
		return nil
	}
	lines, _ := multilinePieces(text, lineBudget(c.selfPrefix(), cmd, target))
	return lines
}

// echoLines is echo for a text that may not fit one line (a multiline
// batch's): one multiline batch to a client that takes them, else the
// text split as Deliver splits it, the msgid on the first line. A text
// that came as a multiline batch goes back as one, of its lines (batch,
// from batchLines), to a client that takes them even when it fits a line,
// as the client sent it.
func (c *Client) echoLines(cmd, target, text string, tags irc.Tags, id string, t time.Time, batch []BatchLine) []*irc.Message {
	budget := lineBudget(c.selfPrefix(), cmd, target)
	if cmd == "TAGMSG" || !needsMultiline(text, budget) && !(batch != nil && c.multilineOn()) {
		return []*irc.Message{c.echo(cmd, target, text, tags, id, t)}
	}
	if c.multilineOn() {
		mp, ok := batch, batch != nil
		if !ok {
			mp, ok = multilinePieces(text, budget)
		}
		if ok {
			open := c.echo(cmd, target, "", tags, id, t)
			return c.multilineBatch(c.selfPrefix(), cmd, target, mp, open.Tags)
		}
	}
	var out []*irc.Message
	for i, p := range splitText(text, budget) {
		if i > 0 {
			id = ""
		}
		out = append(out, c.echo(cmd, target, p, tags, id, t))
	}
	return out
}

// echo builds the copy of the client's own message it receives back, with
// its msgid and time when the client takes them.
func (c *Client) echo(cmd, target, text string, tags irc.Tags, id string, t time.Time) *irc.Message {
	var out *irc.Message
	if cmd == "TAGMSG" {
		out = msg(c.selfPrefix(), cmd, target)
	} else {
		out = msg(c.selfPrefix(), cmd, target, text)
	}
	out.Tags = irc.Tags{}
	if c.caps["message-tags"] {
		out.Tags = tags.Copy()
		if id != "" {
			out.Tags["msgid"] = id
		}
	}
	if c.caps["server-time"] {
		out.Tags["time"] = t.Format(timeFormat)
	}
	if len(out.Tags) == 0 {
		out.Tags = nil
	}
	return out
}

// cmdWho lists a channel's members, or the users of the client's world
// (itself included) whose nick, nick!user@host or real name matches a glob
// mask, casemapped.
func cmdWho(c *Client, m *irc.Message) *ircError {
	mask, asked := m.Param(0), m.Param(0) // asked: the mask 315 names
	if mask == "" || mask == "0" {
		mask = "*"
	}
	if asked == "" {
		asked = "*"
	}
	reply := c.whoReplier(m.Param(1))
	if ch := c.channel(mask); ch != nil {
		if ch.joined {
			reply(c.selfWho(ch.name, ""))
		}
		multi := c.caps["multi-prefix"]
		for _, mb := range sortedMembers(ch) {
			reply(c.userWho(mb.u, ch.name, mb.st.prefixes(multi)))
		}
		c.numeric(irc.RPL_ENDOFWHO, asked, "End of /WHO list.")
		return nil
	}
	matches := func(nick, user, host, real string) bool {
		return match(mask, nick) || match(mask, nick+"!"+user+"@"+host) || match(mask, real)
	}
	if matches(c.nick, c.user, c.host, c.realName) {
		reply(c.selfWho("*", ""))
	}
	for _, u := range c.users.All() { // in nick order
		if ident, host := u.userHost(); !matches(u.Nick, ident, host, u.RealName) {
			continue
		}
		reply(c.userWho(u, "*", ""))
	}
	c.numeric(irc.RPL_ENDOFWHO, asked, "End of /WHO list.")
	return nil
}

func (c *Client) whoFlags(away, prefix string) string {
	if away != "" {
		return "G" + prefix
	}
	return "H" + prefix
}

// member is a channel member with its status, as listed by sortedMembers.
type member struct {
	u  *vuser
	st status
}

func sortedMembers(ch *vchan) []member {
	out := make([]member, ch.members.len())
	for i, u := range ch.members.us {
		out[i] = member{u, ch.members.st[i]}
	}
	slices.SortFunc(out, func(a, b member) int { return compareFolded(a.u.Nick, b.u.Nick) })
	return out
}

func cmdIson(c *Client, m *irc.Message) *ircError {
	var on []string
	for _, p := range m.Params {
		for n := range strings.FieldsSeq(p) {
			if u := c.findUser(n); u != nil && !u.off {
				on = append(on, u.Nick)
			} else if Nick(n).Key() == Nick(c.nick).Key() {
				on = append(on, c.nick)
			}
		}
	}
	c.listReply(irc.RPL_ISON, on)
	return nil
}

// cmdSetname changes the client's own real name (IRCv3 setname): WHO and
// WHOIS show it from then on, and a RealNameHandler is told. A client with
// the capability sees it confirmed by its own SETNAME line; a name that is
// empty, too long or not one line gets FAIL SETNAME INVALID_REALNAME.
func cmdSetname(c *Client, m *irc.Message) *ircError {
	name := m.Params[0]
	if name == "" || len(name) > RealNameLen || strings.ContainsAny(name, "\x00\r\n") {
		c.fail("SETNAME", "INVALID_REALNAME", "Realname is not valid")
		return nil
	}
	c.realName = name
	if c.caps["setname"] {
		c.send(msg(c.selfPrefix(), "SETNAME", name))
	}
	if h, ok := c.handler.(RealNameHandler); ok {
		c.later(func() { h.RealName(name) })
	}
	return nil
}

func cmdUserhost(c *Client, m *irc.Message) *ircError {
	var out []string
	for i, n := range m.Params {
		if i == 5 {
			break
		}
		switch u := c.findUser(n); {
		case u != nil:
			out = append(out, u.Nick+"="+awaySign(c.awayOf(u))+u.mask)
		case Nick(n).Key() == Nick(c.nick).Key():
			out = append(out, c.nick+"="+awaySign(c.away)+c.user+"@"+c.host)
		}
	}
	c.listReply(irc.RPL_USERHOST, out)
	return nil
}

// listReply sends ISON's or USERHOST's reply: the items, space-separated,
// in as many lines as they fill (one with a long server name and masks
// may not fit one line), or one empty reply when there are none. Caller
// holds c.mu.
func (c *Client) listReply(code string, items []string) {
	if len(items) == 0 {
		c.numeric(code, "")
		return
	}
	c.numericList(code, nil, items, " ", "")
}

func awaySign(away string) string {
	if away != "" {
		return "-"
	}
	return "+"
}

func cmdMode(c *Client, m *irc.Message) *ircError {
	target := m.Params[0]
	if !isChannel(target) {
		return c.userMode(m)
	}
	ch := c.channel(target)
	if ch == nil {
		return newErr(irc.ERR_NOSUCHCHANNEL, target, "No such channel")
	}
	if len(m.Params) == 1 {
		c.numeric(irc.RPL_CHANNELMODEIS, ch.name, "+nt")
		c.numeric(rplCreationTime, ch.name, strconv.FormatInt(ch.created.Unix(), 10))
		return nil
	}
	modes := m.Params[1]
	args := m.Params[2:]
	change := false
	// One reply of each kind for the command, as solanum sends them: a
	// mode string of a line's length would otherwise get a line per
	// letter, enough to overflow the client's own SendQ.
	var listed [3]bool // b, e, I
	unknown := false
	for _, r := range modes {
		switch r {
		case '+', '-':
		case 'b', 'e', 'I':
			if len(args) > 0 {
				change = true
				args = args[1:]
				continue
			}
			i := strings.IndexRune("beI", r)
			if listed[i] {
				continue
			}
			listed[i] = true
			switch r {
			case 'b':
				c.numeric(irc.RPL_ENDOFBANLIST, ch.name, "End of channel ban list")
			case 'e':
				c.numeric(rplEndOfExcepts, ch.name, "End of channel exception list")
			default:
				c.numeric(rplEndOfInvites, ch.name, "End of channel invite list")
			}
		case 'o', 'v':
			if len(args) == 0 {
				return newErr(irc.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
			}
			if !c.isMember(ch, args[0]) && Nick(args[0]).Key() != Nick(c.nick).Key() {
				c.numeric(irc.ERR_USERNOTINCHANNEL, args[0], ch.name, "They aren't on that channel")
			} else {
				change = true
			}
			args = args[1:]
		case 'n', 't':
			change = true
		default:
			if !unknown { // the first unknown letter only
				unknown = true
				c.numeric(irc.ERR_UNKNOWNMODE, string(r), "is unknown mode char to me")
			}
		}
	}
	if change {
		if !ch.joined {
			return newErr(irc.ERR_NOTONCHANNEL, ch.name, "You're not on that channel")
		}
		return newErr(errNoPrivs, ch.name, "You're not channel operator")
	}
	return nil
}

func (c *Client) userMode(m *irc.Message) *ircError {
	target := m.Params[0]
	if Nick(target).Key() != Nick(c.nick).Key() {
		if c.findUser(target) == nil {
			return newErr(irc.ERR_NOSUCHNICK, target, "No such nick/channel")
		}
		return newErr(irc.ERR_USERSDONTMATCH, "Cannot change mode for other users")
	}
	if len(m.Params) == 1 {
		c.numeric(irc.RPL_UMODEIS, "+"+c.umodes)
		return nil
	}
	adding := true
	var applied strings.Builder
	sign := byte(0)
	unknown := false
	for _, r := range m.Params[1] {
		switch r {
		case '+':
			adding = true
		case '-':
			adding = false
		case 'i', 'w':
			has := strings.ContainsRune(c.umodes, r)
			if has == adding {
				continue
			}
			if adding {
				c.umodes += string(r)
			} else {
				c.umodes = strings.ReplaceAll(c.umodes, string(r), "")
			}
			want := byte('-')
			if adding {
				want = '+'
			}
			if sign != want {
				applied.WriteByte(want)
				sign = want
			}
			applied.WriteRune(r)
		default:
			if !unknown { // one 501 for the command, not one per letter
				unknown = true
				c.numeric(irc.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
			}
		}
	}
	if applied.Len() > 0 {
		c.send(msg(c.selfPrefix(), "MODE", c.nick, applied.String()))
	}
	return nil
}
