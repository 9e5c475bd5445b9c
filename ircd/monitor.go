package ircd

import (
	"slices"
	"strconv"
	"strings"

	"gopkg.in/irc.v4"
)

// MonitorLimit is how many nicks one connection may watch with MONITOR
// (the ISUPPORT MONITOR token). A contact list of a few hundred buddies
// fits in it.
const MonitorLimit = 512

// monitored is a connection's MONITOR list: the nicks as the client gave
// them, by their folded key. It is nil until the client first adds one.
type monitored map[string]string

// cmdMonitor is IRCv3 MONITOR: + adds targets and tells which are on, -
// removes them, C clears the list, L lists it and S tells the status of
// every target. A virtual user is on while it is in the client's world
// and not offline (User.Offline): AddUser, RemoveUser, RenameUser and
// SetPresence tell the client of the nicks it watches.
func cmdMonitor(c *Client, m *irc.Message) *ircError {
	sub := strings.ToUpper(m.Params[0])
	switch sub {
	case "+", "-":
		if len(m.Params) < 2 || m.Params[1] == "" {
			return newErr(irc.ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
		}
		if sub == "-" {
			for t := range strings.SplitSeq(m.Params[1], ",") {
				delete(c.monitor, Nick(t).Key())
			}
			return nil
		}
		c.monitorAdd(strings.Split(m.Params[1], ","))
	case "C":
		c.monitor = nil
	case "L":
		nicks := make([]string, 0, len(c.monitor))
		for _, n := range c.monitor {
			nicks = append(nicks, n)
		}
		slices.SortFunc(nicks, compareFolded)
		c.monitorReply(irc.RPL_MONLIST, nicks)
		c.numeric(irc.RPL_ENDOFMONLIST, "End of MONITOR list")
	case "S":
		nicks := make([]string, 0, len(c.monitor))
		for _, n := range c.monitor {
			nicks = append(nicks, n)
		}
		slices.SortFunc(nicks, compareFolded)
		c.monitorStatus(nicks)
	default:
		return newErr(errUnknownError, "MONITOR", "Unknown MONITOR subcommand")
	}
	return nil
}

// monitorAdd adds targets to the list in order, up to MonitorLimit, and
// tells the status of those it took. Targets past the limit get
// ERR_MONLISTFULL, as many lines of it as they fill. Caller holds c.mu.
func (c *Client) monitorAdd(targets []string) {
	var took, full []string
	for _, t := range targets {
		if !Nick(t).Valid() {
			continue // not a nick anyone can have: never on
		}
		k := Nick(t).Key()
		if _, ok := c.monitor[k]; ok {
			took = append(took, t)
			continue
		}
		if len(c.monitor) >= MonitorLimit {
			full = append(full, t)
			continue
		}
		if c.monitor == nil {
			c.monitor = make(monitored)
		}
		c.monitor[k] = t
		took = append(took, t)
	}
	c.numericList(irc.ERR_MONLISTFULL, []string{strconv.Itoa(MonitorLimit)}, full, ",", "Monitor list is full")
	c.monitorStatus(took)
}

// monitorStatus sends RPL_MONONLINE for the nicks that are on (with their
// masks) and RPL_MONOFFLINE for the others. Caller holds c.mu.
func (c *Client) monitorStatus(nicks []string) {
	var on, off []string
	for _, n := range nicks {
		switch u := c.findUser(n); {
		case u != nil && !u.off:
			on = append(on, u.Nick+"!"+u.mask)
		case Nick(n).Key() == Nick(c.nick).Key():
			on = append(on, c.nick+"!"+c.user+"@"+c.host)
		default:
			off = append(off, n)
		}
	}
	c.monitorReply(irc.RPL_MONONLINE, on)
	c.monitorReply(irc.RPL_MONOFFLINE, off)
}

// monitorReply sends targets as comma-separated lists in as few numerics
// as fit a line each. Caller holds c.mu.
func (c *Client) monitorReply(code string, targets []string) {
	c.numericList(code, nil, targets, ",", "")
}

// monitorOn tells the client that u is on, if it is and the client
// watches its nick. Caller holds c.mu.
func (c *Client) monitorOn(u *vuser) {
	if c.monitor == nil || u.off {
		return
	}
	if _, ok := c.monitor[Nick(u.Nick).Key()]; ok {
		c.emitServerLine(irc.RPL_MONONLINE, c.nick, u.Nick+"!"+u.mask) // held with the world's lines
	}
}

// monitorOff tells the client that u is no longer on, if it was and the
// client watches its nick. Caller holds c.mu.
func (c *Client) monitorOff(u *vuser) {
	if c.monitor == nil || u.off {
		return
	}
	if _, ok := c.monitor[Nick(u.Nick).Key()]; ok {
		c.emitServerLine(irc.RPL_MONOFFLINE, c.nick, u.Nick)
	}
}
