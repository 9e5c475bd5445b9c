package ircd

import (
	"time"

	"gopkg.in/irc.v4"
)

// Numerics that gopkg.in/irc.v4 does not define (modern IRC's HELP).
const (
	rplHelpStart = "704"
	rplHelpTxt   = "705"
	rplEndOfHelp = "706"
)

func cmdTime(c *Client, _ *irc.Message) *ircError {
	c.numeric(irc.RPL_TIME, c.srv.cfg.ServerName, time.Now().Format(time.RFC1123Z))
	return nil
}

func cmdInfo(c *Client, _ *irc.Message) *ircError {
	cfg := &c.srv.cfg
	for _, l := range []string{
		cfg.Version + " on " + cfg.ServerName,
		"An IRC server that shows each connection a world of its own.",
		"Running since " + c.srv.created.UTC().Format(time.RFC1123),
	} {
		c.numeric(irc.RPL_INFO, l)
	}
	c.numeric(irc.RPL_ENDOFINFO, "End of /INFO list.")
	return nil
}

func cmdAdmin(c *Client, _ *irc.Message) *ircError {
	cfg := &c.srv.cfg
	c.numeric(irc.RPL_ADMINME, cfg.ServerName, "Administrative info")
	c.numeric(irc.RPL_ADMINLOC1, cfg.Network+" gateway")
	c.numeric(irc.RPL_ADMINLOC2, "Run by whoever runs this host")
	c.numeric(irc.RPL_ADMINEMAIL, "No contact address configured")
	return nil
}

// cmdHelp answers any subject alike: this server's own commands are the
// standard ones; what it is for is explained in its control channels.
func cmdHelp(c *Client, m *irc.Message) *ircError {
	subject := m.Param(0)
	if subject == "" {
		subject = "*"
	}
	c.numeric(rplHelpStart, subject, "Help for this server")
	c.numeric(rplHelpTxt, subject, "Commands for the gateway are typed as plain messages in a control channel: type help there.")
	c.numeric(rplEndOfHelp, subject, "End of /HELP.")
	return nil
}

// match reports whether s matches the glob mask ('*' any run, '?' any one
// byte), comparing both casemapped.
func match(mask, s string) bool {
	mask, s = foldCase(mask), foldCase(s)
	star, resume := -1, 0 // the last '*' in mask and where s resumes after it
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(mask) && (mask[i] == '?' || mask[i] == s[j]):
			i++
			j++
		case i < len(mask) && mask[i] == '*':
			star, resume = i, j
			i++
		case star >= 0:
			resume++
			i, j = star+1, resume
		default:
			return false
		}
	}
	for i < len(mask) && mask[i] == '*' {
		i++
	}
	return i == len(mask)
}
