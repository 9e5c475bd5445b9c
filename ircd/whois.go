package ircd

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
)

// rplTryAgain is 263 RPL_TRYAGAIN, which gopkg.in/irc.v4 does not define.
const rplTryAgain = "263"

// maxWhoisInFlight bounds the WHOIS replies one client may have waiting for
// the backend; a WHOIS beyond it gets 263 RPL_TRYAGAIN.
const maxWhoisInFlight = 16

// whoisReq is a WHOIS reply waiting for its turn: for an AsyncWhoisHandler's
// answer about a virtual user, or (for the client itself or an unknown nick)
// only for the replies asked before it. Guarded by Client.mu.
type whoisReq struct {
	target string      // the nick as asked, or the user's nick when asked
	u      *vuser      // the virtual user asked about; nil for self or unknown
	self   bool        // the client asked about itself
	ready  bool        // answered (or timed out, or needing no answer)
	rb     *replyBuf   // the labeled reply it completes; nil if unlabeled
	info   []string    // the answer's lines, cleaned
	stop   func() bool // stops the timeout; nil if none
}

func cmdWhois(c *Client, m *irc.Message) *ircError {
	target, _, _ := strings.Cut(m.Params[len(m.Params)-1], ",")
	if target == "" {
		return newErr(irc.ERR_NONICKNAMEGIVEN, "No nickname given")
	}
	self := Nick(target).Key() == Nick(c.nick).Key()
	var u *vuser
	if !self {
		u = c.findUser(target)
	}
	if ah, ok := c.handler.(AsyncWhoisHandler); ok && (u != nil || len(c.whois) > 0) {
		c.askWhois(ah, target, self, u)
		return nil
	}
	switch {
	case self:
		c.whoisSelf()
		return nil
	case u == nil:
		c.noSuchNick(target)
		return nil
	}
	c.whoisUser(u, nil)
	return nil
}

// cmdWhowas answers WHOWAS. No history of nicks is kept, so every nick
// was no such nick; the reply still ends with RPL_ENDOFWHOWAS, which clients
// (irssi after a WHOIS that found no one) wait for.
func cmdWhowas(c *Client, m *irc.Message) *ircError {
	nick, _, _ := strings.Cut(m.Params[0], ",")
	if nick == "" {
		return newErr(irc.ERR_NONICKNAMEGIVEN, "No nickname given")
	}
	c.numeric(irc.ERR_WASNOSUCHNICK, nick, "There was no such nickname")
	c.numeric(irc.RPL_ENDOFWHOWAS, nick, "End of WHOWAS")
	return nil
}

// askWhois queues a WHOIS reply behind those asked before it and, for a
// virtual user, asks ah for its lines once c.mu is released, with a timeout.
// Caller holds c.mu.
func (c *Client) askWhois(ah AsyncWhoisHandler, target string, self bool, u *vuser) {
	if len(c.whois) >= maxWhoisInFlight {
		c.numeric(rplTryAgain, "WHOIS", "Please wait a while and try again.")
		return
	}
	r := &whoisReq{target: target, self: self, u: u, ready: u == nil, rb: c.takeReply()}
	c.whois = append(c.whois, r)
	if u == nil {
		return // the queue was not empty, so its head is still waiting
	}
	r.target = u.Nick
	r.stop = c.srv.afterFunc(c.srv.cfg.WhoisTimeout, func() {
		if c.answerWhois(r, nil) {
			c.logger().WithField("nick", r.target).Debug("WHOIS: no answer from the backend in time")
		}
	})
	c.later(func() { ah.WhoisAsync(r.target, func(lines []string) { c.answerWhois(r, lines) }) })
}

// answerWhois records the answer to r and sends every reply now due. It
// reports whether this was the first answer; later ones are ignored.
func (c *Client) answerWhois(r *whoisReq, lines []string) bool {
	info := cleanInfo(lines)
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.ready {
		return false
	}
	r.ready, r.info = true, info
	if r.stop != nil {
		r.stop()
	}
	for len(c.whois) > 0 && c.whois[0].ready {
		r := c.whois[0]
		c.whois[0] = nil
		c.whois = c.whois[1:]
		c.sendReply(r.rb, func() { c.replyWhois(r) })
	}
	if len(c.whois) == 0 {
		c.whois = nil
	}
	return true
}

// replyWhois sends the whole reply to r, showing the user as it is now.
// Caller holds c.mu.
func (c *Client) replyWhois(r *whoisReq) {
	switch {
	case r.self:
		c.whoisSelf()
	case r.u == nil || c.findUser(r.u.Nick) != r.u: // unknown, or removed meanwhile
		c.noSuchNick(r.target)
	default:
		c.whoisUser(r.u, r.info)
	}
}

// dropWhois forgets the replies still waiting and stops their timeouts, for
// a connection that ended. Caller holds c.mu.
func (c *Client) dropWhois() {
	for _, r := range c.whois {
		if r.stop != nil {
			r.stop()
		}
	}
	c.whois = nil
}

// cleanInfo makes a backend's WHOIS lines safe: CR, LF and NUL never reach
// the wire, and long lines are split.
func cleanInfo(info []string) []string {
	var out []string
	for _, l := range info {
		out = append(out, splitText(l, 380)...)
	}
	return out
}

// whoisSelf sends the WHOIS reply about the real client. Caller holds c.mu.
func (c *Client) whoisSelf() {
	server := c.srv.cfg.ServerName
	c.numeric(irc.RPL_WHOISUSER, c.nick, c.user, c.host, "*", c.realName)
	var chans []string
	for _, ch := range c.sortedChans() {
		if ch.joined {
			chans = append(chans, ch.name)
		}
	}
	c.whoisChannels(c.nick, chans)
	c.numeric(irc.RPL_WHOISSERVER, c.nick, server, c.srv.cfg.Network)
	if c.away != "" {
		c.numeric(irc.RPL_AWAY, c.nick, c.away)
	}
	if c.account != "" {
		c.numeric(rplWhoisAccount, c.nick, c.account, "is logged in as")
	}
	c.whoisIdle(c.nick, c.lastActive, c.signon)
	c.numeric(irc.RPL_ENDOFWHOIS, c.nick, "End of /WHOIS list.")
}

func (c *Client) noSuchNick(nick string) {
	c.numeric(irc.ERR_NOSUCHNICK, nick, "No such nick/channel")
	c.numeric(irc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list.")
}

// whoisUser sends the WHOIS reply about virtual user u, with info as its 320
// lines. Caller holds c.mu.
func (c *Client) whoisUser(u *vuser, info []string) {
	multi := c.caps["multi-prefix"]
	ident, host := u.userHost()
	c.numeric(irc.RPL_WHOISUSER, u.Nick, ident, host, "*", u.RealName)
	var chans []string
	for _, ch := range c.chans {
		if st, ok := ch.members.get(u); ok {
			chans = append(chans, st.prefixes(multi)+ch.name)
		}
	}
	sort.Strings(chans)
	c.whoisChannels(u.Nick, chans)
	c.numeric(irc.RPL_WHOISSERVER, u.Nick, c.srv.cfg.ServerName, c.srv.cfg.Network)
	if away := c.awayOf(u); away != "" {
		c.numeric(irc.RPL_AWAY, u.Nick, away)
	}
	for _, l := range info {
		c.numeric(rplWhoisSpecial, u.Nick, l)
	}
	c.whoisIdle(u.Nick, c.time(u.lastSpoke), c.time(u.signon))
	c.numeric(irc.RPL_ENDOFWHOIS, u.Nick, "End of /WHOIS list.")
}

// whoisChannels sends RPL_WHOISCHANNELS, in as many lines as the
// channels fill. Caller holds c.mu.
func (c *Client) whoisChannels(nick string, chans []string) {
	c.numericList(irc.RPL_WHOISCHANNELS, []string{nick}, chans, " ", "")
}

func (c *Client) whoisIdle(nick string, last, signon time.Time) {
	idle := strconv.Itoa(int(time.Since(last).Seconds()))
	c.numeric(irc.RPL_WHOISIDLE, nick, idle, strconv.FormatInt(signon.Unix(), 10), "seconds idle, signon time")
}
