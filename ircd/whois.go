package ircd

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
)

func cmdWhois(c *Client, m *irc.Message) *ircError {
	target, _, _ := strings.Cut(m.Params[len(m.Params)-1], ",")
	server := c.srv.cfg.ServerName
	if Nick(target).Key() == Nick(c.nick).Key() {
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
		return nil
	}
	u := c.findUser(target)
	if u == nil {
		c.noSuchNick(target)
		return nil
	}
	wh, ok := c.handler.(WhoisHandler)
	if !ok {
		c.whoisUser(u, c.info[u])
		return nil
	}
	// Ask the backend without the lock, then send the whole reply under it,
	// so that no other line comes between its numerics.
	nick := u.Nick
	c.later(func() {
		info := cleanInfo(wh.Whois(nick))
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.users[Nick(u.Nick).Key()] != u { // removed while the backend was asked
			c.noSuchNick(nick)
			return
		}
		c.whoisUser(u, info)
	})
	return nil
}

func (c *Client) noSuchNick(nick string) {
	c.numeric(irc.ERR_NOSUCHNICK, nick, "No such nick/channel")
	c.numeric(irc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list.")
}

// whoisUser sends the WHOIS reply about virtual user u, with info as its 320
// lines. Caller holds c.mu.
func (c *Client) whoisUser(u *vuser, info []string) {
	multi := c.caps["multi-prefix"]
	c.numeric(irc.RPL_WHOISUSER, u.Nick, u.ident, u.Host, "*", u.RealName)
	var chans []string
	for _, ch := range c.chans {
		if st, ok := ch.members[u]; ok {
			chans = append(chans, st.prefixes(multi)+ch.name)
		}
	}
	sort.Strings(chans)
	c.whoisChannels(u.Nick, chans)
	c.numeric(irc.RPL_WHOISSERVER, u.Nick, c.srv.cfg.ServerName, c.srv.cfg.Network)
	if u.Away != "" {
		c.numeric(irc.RPL_AWAY, u.Nick, u.Away)
	}
	for _, l := range info {
		c.numeric(rplWhoisSpecial, u.Nick, l)
	}
	c.whoisIdle(u.Nick, c.time(u.lastSpoke), c.time(u.signon))
	c.numeric(irc.RPL_ENDOFWHOIS, u.Nick, "End of /WHOIS list.")
}

func (c *Client) whoisChannels(nick string, chans []string) {
	for len(chans) > 0 {
		n, size := 0, 0
		for n < len(chans) && (n == 0 || size+len(chans[n]) < 400) {
			size += len(chans[n]) + 1
			n++
		}
		c.numeric(irc.RPL_WHOISCHANNELS, nick, strings.Join(chans[:n], " "))
		chans = chans[n:]
	}
}

func (c *Client) whoisIdle(nick string, last, signon time.Time) {
	idle := strconv.Itoa(int(time.Since(last).Seconds()))
	c.numeric(irc.RPL_WHOISIDLE, nick, idle, strconv.FormatInt(signon.Unix(), 10), "seconds idle, signon time")
}
