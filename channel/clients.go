// The session's IRC side: every connection attached to it at once.

package channel

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/msimircd/msimircd/ircd"
)

// DefaultMaxClients is how many IRC connections may be attached to one
// user at once when Config.MaxClients is not set.
const DefaultMaxClients = 8

// clients is the session's ircConn: what the session does to the IRC
// world is done in each attached connection, so every client sees the same
// control channels, buddies and presence. With none attached, an IM is
// reported not sent (the outbox holds it for the next client) and a notice
// or message for the user is kept as a note. Owned by the session
// goroutine.
type clients struct {
	s    *session
	ats  []*attachment
	nick string // the user's nick when none is attached (the last one seen)
}

func (c *clients) attached(at *attachment) bool { return slices.Contains(c.ats, at) }

func (c *clients) add(at *attachment) { c.ats = append(c.ats, at) }

func (c *clients) remove(at *attachment) {
	if len(c.ats) == 1 && c.ats[0] == at {
		c.nick = at.c.Nick()
	}
	c.ats = slices.DeleteFunc(c.ats, func(x *attachment) bool { return x == at })
}

// Deliver gives d to every attached client. Its Sent is called once, when
// each has reported: true if any showed it. With no client, d is refused
// (Sent(false)), or kept as a note if it is a message without Sent. A d
// with a Time comes late (see deliver).
func (c *clients) Deliver(d ircd.Delivery) bool { return c.deliver(d, !d.Time.IsZero()) }

// deliver is Deliver; late: d comes late, and a client without
// server-time is shown its Time before its text (stampLate).
func (c *clients) deliver(d ircd.Delivery, late bool) bool {
	if len(c.ats) == 0 {
		if d.Sent != nil {
			d.Sent(false)
			return false
		}
		if (d.Command == "NOTICE" || d.Command == "PRIVMSG") && d.Text != "" {
			from := d.From
			if from == "" {
				from = c.s.b.cfg.ServiceNick
			}
			c.s.mem.note(fmt.Sprintf("While you were away, %s: %s", from, d.Text))
		}
		return false
	}
	if len(c.ats) == 1 {
		// The common case: Sent goes as it is, with no merging, and what
		// the sole client misses is held (Sent(false)).
		at := c.ats[0]
		if at.c.Deliver(stampFor(d, late, at.c)) {
			return true
		}
		at.miss(c.s.user.Name, d.MsgID)
		return false
	}
	user := c.s.user.Name // whose message it is, as the reports come
	var agg *sentOnce
	if d.Sent != nil {
		agg = &sentOnce{left: len(c.ats), f: d.Sent}
	}
	ok := false
	for _, at := range c.ats {
		dd := stampFor(d, late, at.c)
		if agg != nil {
			dd.Sent = agg.report
			if d.MsgID != "" {
				// What one client misses, another may show: its own
				// position must know.
				msgid := d.MsgID
				dd.Sent = func(ok bool) {
					if !ok {
						at.miss(user, msgid)
					}
					agg.report(ok)
				}
			}
		}
		if at.c.Deliver(dd) {
			ok = true
		} else {
			at.miss(user, d.MsgID) // now: Sent may come after the session let the client go
		}
	}
	return ok
}

// stampFor is d as c is given it: a late one stamped with its time for a
// client without server-time (stampLate). Only a late one asks c's caps.
func stampFor(d ircd.Delivery, late bool, c ircConn) ircd.Delivery {
	if !late {
		return d
	}
	return stampLate(d, true, c.HasCap("server-time"))
}

// sentOnce merges the Sent reports of one delivery to several clients.
type sentOnce struct {
	mu   sync.Mutex
	left int
	ok   bool
	f    func(bool)
}

func (o *sentOnce) report(ok bool) {
	o.mu.Lock()
	o.ok = o.ok || ok
	o.left--
	done := o.left == 0
	o.mu.Unlock()
	if done {
		o.f(o.ok)
	}
}

// Room is what the roomiest client's SendQ still takes: IMs are paced by
// the fastest reader, and a client that falls too far behind is dropped by
// ircd (the others go on).
func (c *clients) Room() int {
	if len(c.ats) == 0 {
		return 1 << 20
	}
	r := 0
	for _, at := range c.ats {
		r = max(r, at.c.Room())
	}
	return r
}

func (c *clients) HasCap(name string) bool {
	for _, at := range c.ats {
		if at.c.HasCap(name) {
			return true
		}
	}
	return false
}

// Nick is the user's nick: the first attached client's.
func (c *clients) Nick() string {
	if len(c.ats) == 0 {
		return c.nick
	}
	return c.ats[0].c.Nick()
}

// nickIs reports whether the user goes by the nick of key in any
// attached client (each keeps the nick it chose), or last did when none is.
func (c *clients) nickIs(key string) bool {
	if len(c.ats) == 0 {
		return key == nickKey(c.nick)
	}
	for _, at := range c.ats {
		if key == nickKey(at.c.Nick()) {
			return true
		}
	}
	return false
}

func (c *clients) Close(reason string) {
	for _, at := range c.ats {
		at.c.Close(reason)
	}
}

// AddUser adds u in every client; the error is the first client's.
func (c *clients) AddUser(u ircd.User) error {
	var first error
	for i, at := range c.ats {
		if err := at.c.AddUser(u); err != nil && i == 0 {
			first = err
		}
	}
	return first
}

func (c *clients) RenameUser(oldNick, newNick string) error {
	var first error
	for i, at := range c.ats {
		if err := at.c.RenameUser(oldNick, newNick); err != nil && i == 0 {
			first = err
		}
	}
	return first
}

func (c *clients) CreateChannel(name, topic string) error {
	var first error
	for i, at := range c.ats {
		if err := at.c.CreateChannel(name, topic); err != nil && i == 0 {
			first = err
		}
	}
	return first
}

func (c *clients) each(f func(ircConn)) {
	for _, at := range c.ats {
		f(at.c)
	}
}

func (c *clients) Reserve(ch string, n int) { c.each(func(x ircConn) { x.Reserve(ch, n) }) }
func (c *clients) SetPresence(nick, away string, online bool) {
	c.each(func(x ircConn) { x.SetPresence(nick, away, online) })
}
func (c *clients) SetRealName(nick, name string) {
	c.each(func(x ircConn) { x.SetRealName(nick, name) })
}
func (c *clients) SetOwnRealName(name string) {
	c.each(func(x ircConn) { x.SetOwnRealName(name) })
}
func (c *clients) JoinUser(ch, nick string, voice bool) {
	c.each(func(x ircConn) { x.JoinUser(ch, nick, voice) })
}
func (c *clients) PartUser(ch, nick, reason string) {
	c.each(func(x ircConn) { x.PartUser(ch, nick, reason) })
}
func (c *clients) SetVoice(ch, nick string, voice bool) {
	c.each(func(x ircConn) { x.SetVoice(ch, nick, voice) })
}
func (c *clients) SetOp(ch, nick string, op bool) { c.each(func(x ircConn) { x.SetOp(ch, nick, op) }) }
func (c *clients) JoinClient(ch string, marker time.Time) {
	c.each(func(x ircConn) { x.JoinClient(ch, marker) })
}
func (c *clients) RemoveUser(nick, reason string) {
	c.each(func(x ircConn) { x.RemoveUser(nick, reason) })
}
func (c *clients) RemoveChannel(name string) { c.each(func(x ircConn) { x.RemoveChannel(name) }) }

// DeliverHistory replays past messages to every attached client.
func (c *clients) DeliverHistory(target string, ds []ircd.Delivery) bool {
	ok := false
	for _, at := range c.ats {
		if at.c.DeliverHistory(target, ds) {
			ok = true
		}
	}
	return ok
}

func (c *clients) SendReadMarker(target string, t time.Time) {
	c.each(func(x ircConn) { x.SendReadMarker(target, t) })
}

var _ ircConn = (*clients)(nil)
