package ircd

import (
	"cmp"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"
)

// rplWhoSpcRpl is WHOX's reply, RPL_WHOSPCRPL.
const rplWhoSpcRpl = "354"

// whoRow is one user as WHO lists them.
type whoRow struct {
	channel, user, ip, host, nick, flags, account, realName string
	idle                                                    time.Duration
}

// selfWho is the client itself as WHO lists it in channel ("*" for none).
// Caller holds c.mu.
func (c *Client) selfWho(channel, prefixes string) whoRow {
	ip := c.host
	if a, ok := c.remote.(*net.TCPAddr); ok {
		ip = hostOf(&net.IPAddr{IP: a.IP}) // "0::1" for "::1": a middle parameter
	}
	return whoRow{channel: channel, user: c.user, ip: ip, host: c.host, nick: c.nick,
		flags: c.whoFlags(c.away, prefixes), account: c.account, realName: c.realName,
		idle: time.Since(c.lastActive)}
}

// userWho is virtual user u as WHO lists it in channel. Caller holds c.mu.
func (c *Client) userWho(u *vuser, channel, prefixes string) whoRow {
	ident, host := u.userHost()
	return whoRow{channel: channel, user: ident, ip: "255.255.255.255", host: host, nick: u.Nick,
		flags: c.whoFlags(c.awayOf(u), prefixes), realName: u.RealName,
		idle: time.Duration(c.stamp()-u.lastSpoke) * time.Second}
}

// whoReplier returns how WHO answers with the options given after its
// mask: RPL_WHOREPLY, or with WHOX ("%fields[,token]") RPL_WHOSPCRPL
// holding the fields asked for, in WHOX's order (t c u i h s n f d l a o
// r) whatever order they were asked in. Caller holds c.mu.
func (c *Client) whoReplier(opts string) func(whoRow) {
	server := c.srv.cfg.ServerName
	_, spec, whox := strings.Cut(opts, "%")
	if !whox {
		return func(r whoRow) {
			c.numeric(irc.RPL_WHOREPLY, r.channel, r.user, r.host, server, r.nick, r.flags, "0 "+r.realName)
		}
	}
	spec, token, _ := strings.Cut(spec, ",")
	if token == "" || len(token) > 3 || strings.Trim(token, "0123456789") != "" {
		token = "0" // a token is 1-3 digits
	}
	has := func(f byte) bool { return strings.IndexByte(spec, f) >= 0 }
	return func(r whoRow) {
		var params []string
		add := func(f byte, v string) {
			if has(f) {
				params = append(params, v)
			}
		}
		add('t', token)
		add('c', r.channel)
		add('u', r.user)
		add('i', r.ip)
		add('h', r.host)
		add('s', server)
		add('n', r.nick)
		add('f', r.flags)
		add('d', "0")
		add('l', strconv.Itoa(int(r.idle.Seconds())))
		add('a', cmp.Or(r.account, "0"))
		add('o', "n/a")
		add('r', r.realName)
		if len(params) == 0 {
			return
		}
		c.numeric(rplWhoSpcRpl, params...)
	}
}
