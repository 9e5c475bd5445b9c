package ircd

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/internal/maproom"
)

// User is a virtual user of one client's world.
type User struct {
	Nick     string
	User     string // ident; default "user"
	Host     string // default the server name
	RealName string
	Away     string // "" = here
	// Offline is a user in the world but not on the network: ISON leaves
	// it out and MONITOR calls it offline (SetPresence changes it).
	Offline bool
	// Mask is "ident@host", in place of User and Host: one string the
	// backend may keep packed with others. When set, User and Host are
	// not read.
	Mask string
}

// vuser is kept small: a world may hold hundreds of them per connection.
// Its channels are found through the channels' member maps (a world has few
// channels), and its times are seconds after the client's signon.
type vuser struct {
	Nick, mask, RealName string // mask: ident "@" host
	away                 uint16 // the away text's index in the client's awayTexts
	off                  bool   // not on the network (User.Offline)
	id                   uint32 // the client's number for it, in the order added: its place in memberList
	signon, lastSpoke    stamp
}

// userHost is the user's ident and host, before and after the mask's '@'
// (which neither part may hold).
func (u *vuser) userHost() (ident, host string) {
	ident, host, _ = strings.Cut(u.mask, "@")
	return ident, host
}

// stamp is a time as whole seconds after the client's signon.
type stamp uint32

// stamp returns the current time as a stamp. It reads the clock once per
// second at most: the stamp it reads stays current until a timer set for
// the next second's start runs. A stamp taken between that start and the
// timer running (the timer's latency, as small as the writer's in
// starting to write a line just queued) is a second behind, as if it had
// been taken that much earlier. Caller holds c.mu.
func (c *Client) stamp() stamp {
	if c.stampStop != nil {
		return c.now
	}
	d := c.srv.now().Sub(c.signon)
	c.now = stamp(d / time.Second)
	if c.isClosed() {
		return c.now // an ended connection keeps no timer: it reads the clock each time
	}
	c.stampStop = c.srv.stampAfter(time.Second-d%time.Second, c.staleStamp)
	return c.now
}

// dropStamp stops the timer that ends the current stamp. Caller holds c.mu.
func (c *Client) dropStamp() {
	if c.stampStop != nil {
		c.stampStop()
		c.stampStop = nil
	}
}

// staleStamp makes the next stamp read the clock.
func (c *Client) staleStamp() {
	c.mu.Lock()
	c.stampStop = nil
	c.mu.Unlock()
}

// time turns a stamp back into a time.
func (c *Client) time(s stamp) time.Time { return c.signon.Add(time.Duration(s) * time.Second) }

func (u *vuser) prefix() *irc.Prefix {
	ident, host := u.userHost()
	return &irc.Prefix{Name: u.Nick, User: ident, Host: host}
}

// status is a member's channel status: a set of the flags below.
type status uint8

const (
	stOp status = 1 << iota
	stVoice
)

func (st status) has(f status) bool { return st&f != 0 }

type vchan struct {
	name    string
	key     string
	topic   string
	topicBy string
	topicAt time.Time
	created time.Time
	members memberList
	joined  bool // the real client is in the channel
}

// prefixes returns the member's NAMES/WHO prefix.
func (st status) prefixes(multi bool) string {
	switch {
	case st.has(stOp) && st.has(stVoice) && multi:
		return "@+"
	case st.has(stOp):
		return "@"
	case st.has(stVoice):
		return "+"
	}
	return ""
}

// clean makes backend text safe for a single parameter.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n':
			return ' '
		case 0:
			return '\uFFFD'
		}
		return r
	}, s)
	if len(s) > max {
		s = truncUTF8(s, max)
	}
	return s
}

// Nick returns the real client's current nick ("*" before NICK).
func (c *Client) Nick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nick
}

// HasCap reports whether the client negotiated the named capability. It
// takes no lock: the backend asks it for every message it delivers.
func (c *Client) HasCap(name string) bool {
	if on := c.capsOn.Load(); on != nil {
		return (*on)[name]
	}
	return false
}

// publishCaps makes the capabilities negotiated (caps) the ones HasCap
// reads, once they have changed. Caller holds c.mu.
func (c *Client) publishCaps() {
	on := maps.Clone(c.caps)
	c.capsOn.Store(&on)
}

// visible reports whether u shares a channel with the client. Caller holds
// c.mu.
func (c *Client) visible(u *vuser) bool {
	for _, ch := range c.chans {
		if ch.joined && ch.members.has(u) {
			return true
		}
	}
	return false
}

// AddUser adds a virtual user. It is seen once it joins a channel the client
// is in, or sends it a message.
func (c *Client) AddUser(u User) error {
	n := Nick(u.Nick)
	if !n.Valid() {
		return ErrInvalidNick
	}
	mask := u.Mask
	if mask != "" {
		ident, host, _ := strings.Cut(mask, "@")
		if !validWord(ident, UserLen) || !validWord(host, HostLen) {
			return ErrInvalidUser
		}
	} else {
		if u.User == "" {
			u.User = "user"
		}
		if u.Host == "" {
			u.Host = c.srv.cfg.ServerName
		}
		if !validWord(u.User, UserLen) || !validWord(u.Host, HostLen) {
			return ErrInvalidUser
		}
		mask = u.User + "@" + u.Host
	}
	u.RealName = clean(u.RealName, RealNameLen)
	u.Away = clean(u.Away, TopicLen)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.findUser(u.Nick) != nil || n.Key() == Nick(c.nick).Key() {
		return ErrNickInUse
	}
	now := c.stamp()
	vu := c.room.Take()
	if c.lastUserID == math.MaxUint32 {
		c.renumberUsers()
	}
	c.lastUserID++
	*vu = vuser{Nick: u.Nick, mask: mask, RealName: u.RealName, away: c.aways.hold(u.Away), off: u.Offline, id: c.lastUserID, signon: now, lastSpoke: now}
	c.users.Add(vu, vu.Nick)
	c.monitorOn(vu)
	return nil
}

// renumberUsers gives the virtual users ids from 1 again, in the order of
// their ids, once the last id was taken (after four billion users added
// to one connection), and puts the channels' members in that order.
// Caller holds c.mu.
func (c *Client) renumberUsers() {
	us := slices.Clone(c.users.All())
	slices.SortFunc(us, func(a, b *vuser) int { return cmp.Compare(a.id, b.id) })
	for i, u := range us {
		u.id = uint32(i + 1)
	}
	c.lastUserID = uint32(len(us))
	for _, ch := range c.chans {
		ch.members.sort()
	}
}

// Reserve makes room for n more virtual users, about to be added, and for
// them as members of channel (if it exists): the index of users and the
// channel's members are sized once rather than regrown step by step, and
// the users share one allocation.
// The backend calls it before adding a contact list; it changes nothing a
// client sees.
func (c *Client) Reserve(channel string, n int) {
	if n < maproom.Min {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users.Grow(n)
	c.room.Make(n)
	if ch := c.channel(channel); ch != nil {
		ch.members.grow(n)
	}
}

// findUser looks up a virtual user. Caller holds c.mu.
func (c *Client) findUser(nick string) *vuser {
	u, _ := c.users.Get(nick)
	return u
}

// cmpUser orders virtual users by nick, case folded: c.users' order.
func cmpUser(u *vuser, nick string) int { return compareFolded(u.Nick, nick) }

// isMember reports whether nick is a virtual user in ch. Caller holds c.mu.
func (c *Client) isMember(ch *vchan, nick string) bool {
	u := c.findUser(nick)
	if u == nil {
		return false
	}
	return ch.members.has(u)
}

// channel looks up a channel. Caller holds c.mu.
func (c *Client) channel(name string) *vchan { return c.chans[foldCase(name)] }

// SetPresence sets a virtual user's away text ("" = back) and says
// whether it is on the network (see User.Offline). Clients with
// away-notify that share a channel with the user see an AWAY line when
// the text changes; clients watching its nick with MONITOR are told when
// it comes on or goes off.
func (c *Client) SetPresence(nick, away string, online bool) {
	away = clean(away, TopicLen)
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.findUser(nick)
	if u == nil {
		return
	}
	c.setAway(u, away)
	switch {
	case online && u.off:
		u.off = false
		c.monitorOn(u)
	case !online && !u.off:
		c.monitorOff(u)
		u.off = true
	}
}

// setAway sets u's away text, cleaned, as SetPresence does. Caller holds
// c.mu.
func (c *Client) setAway(u *vuser, text string) {
	if c.awayOf(u) == text {
		return
	}
	c.aways.release(u.away)
	u.away = c.aways.hold(text)
	if c.caps["away-notify"] && c.visible(u) {
		c.emitAway(u)
	}
}

// emitAway queues u's AWAY (away-notify). Caller holds c.mu.
func (c *Client) emitAway(u *vuser) {
	if away := c.awayOf(u); away == "" {
		c.emitUserLine(u, "AWAY")
	} else {
		c.emitUserLine(u, "AWAY", away)
	}
}

// awayOf is u's away text ("" = here). Caller holds c.mu.
func (c *Client) awayOf(u *vuser) string { return c.aways.text(u.away) }

// SetRealName replaces a virtual user's real name (WHOIS, WHO). The bridge
// calls it when a buddy's display name changes. A client with setname
// that shares a channel with the user sees a SETNAME line.
func (c *Client) SetRealName(nick, name string) {
	name = clean(name, RealNameLen)
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.findUser(nick)
	if u == nil || u.RealName == name {
		return
	}
	u.RealName = name
	if c.caps["setname"] && c.visible(u) {
		c.emitUserLine(u, "SETNAME", name)
	}
}

// SetOwnRealName replaces the real client's own real name (WHOIS, WHO),
// as another client of the same user set it with SETNAME (see
// RealNameHandler). A client with setname sees a SETNAME line from itself
// when the name changes; an empty name is ignored.
func (c *Client) SetOwnRealName(name string) {
	name = clean(name, RealNameLen)
	c.mu.Lock()
	defer c.mu.Unlock()
	if name == "" || name == c.realName {
		return
	}
	c.realName = name
	if c.caps["setname"] {
		c.emit(msg(c.selfPrefix(), "SETNAME", name))
	}
}

// RenameUser changes a virtual user's nick and tells the client with NICK.
func (c *Client) RenameUser(oldNick, newNick string) error {
	n := Nick(newNick)
	if !n.Valid() {
		return ErrInvalidNick
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.findUser(oldNick)
	if u == nil {
		return ErrNoSuchUser
	}
	if other := c.findUser(newNick); (other != nil && other != u) || n.Key() == Nick(c.nick).Key() {
		return ErrNickInUse
	}
	c.emitUserLine(u, "NICK", newNick)
	c.users.Delete(u.Nick)
	c.monitorOff(u)
	u.Nick = newNick
	c.users.Add(u, u.Nick)
	c.monitorOn(u)
	return nil
}

// RemoveUser deletes a virtual user; the client sees QUIT if they shared a
// channel. The bridge calls it for the buddies of an account the user
// deletes.
func (c *Client) RemoveUser(nick, reason string) {
	reason = clean(reason, TopicLen)
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.findUser(nick)
	if u == nil {
		return
	}
	if c.visible(u) {
		c.emitUserLine(u, "QUIT", reason)
	}
	for _, ch := range c.chans {
		ch.members.remove(u)
	}
	c.users.Delete(u.Nick)
	c.aways.release(u.away)
	u.away = 0
	c.monitorOff(u)
}

// CreateChannel adds a channel (CHANTYPES #&) to the client's world.
func (c *Client) CreateChannel(name, topic string) error {
	if !validChannel(name) {
		return ErrInvalidChannel
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := foldCase(name)
	if c.chans[key] != nil {
		return ErrChannelExists
	}
	ch := &vchan{name: name, key: key, created: time.Now()}
	if topic = clean(topic, TopicLen); topic != "" {
		ch.topic, ch.topicBy, ch.topicAt = topic, c.srv.cfg.ServerName, ch.created
	}
	c.chans[key] = ch
	return nil
}

// RemoveChannel deletes a channel; the client sees PART if it was in it.
// The bridge calls it for the control channel of an account the user
// moves to another channel.
func (c *Client) RemoveChannel(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.channel(name)
	if ch == nil {
		return
	}
	if ch.joined {
		c.emit(msg(c.selfPrefix(), "PART", ch.name, "Channel removed"))
	}
	delete(c.chans, ch.key)
}

// JoinUser puts a virtual user in a channel, voiced or not. The client sees
// JOIN (and MODE +v) if it is in the channel.
func (c *Client) JoinUser(channel, nick string, voice bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, u := c.channel(channel), c.findUser(nick)
	if ch == nil || u == nil {
		c.logger().WithFields(map[string]any{"channel": channel, "nick": nick}).Warn("JoinUser: no such channel or user")
		return
	}
	if ch.members.has(u) {
		c.setMode(ch, u, stVoice, voice)
		return
	}
	var st status
	if voice {
		st = stVoice
	}
	ch.members.set(u, st)
	if !ch.joined {
		return
	}
	if c.caps["extended-join"] { // no account: a virtual user logs in to none
		c.emitUserLine(u, "JOIN", ch.name, "*", u.RealName)
	} else {
		c.emitUserLine(u, "JOIN", ch.name)
	}
	if voice {
		c.emitServerLine("MODE", ch.name, "+v", u.Nick)
	}
	if u.away != 0 && c.caps["away-notify"] {
		c.emitAway(u)
	}
}

// PartUser takes a virtual user out of a channel.
func (c *Client) PartUser(channel, nick, reason string) {
	reason = clean(reason, TopicLen)
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, u := c.channel(channel), c.findUser(nick)
	if ch == nil || u == nil {
		return
	}
	if !ch.members.remove(u) {
		return
	}
	if ch.joined {
		if reason == "" {
			c.emitUserLine(u, "PART", ch.name)
		} else {
			c.emitUserLine(u, "PART", ch.name, reason)
		}
	}
}

// SetVoice gives or takes a virtual user's voice; the client sees MODE.
func (c *Client) SetVoice(channel, nick string, on bool) { c.setStatus(channel, nick, stVoice, on) }

// SetOp gives or takes a virtual user's channel operator status.
func (c *Client) SetOp(channel, nick string, on bool) { c.setStatus(channel, nick, stOp, on) }

func (c *Client) setStatus(channel, nick string, f status, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, u := c.channel(channel), c.findUser(nick)
	if ch == nil || u == nil {
		return
	}
	if ch.members.has(u) {
		c.setMode(ch, u, f, on)
	}
}

// setMode gives or takes member u's +o (stOp) or +v (stVoice) and announces
// it. Caller holds c.mu.
func (c *Client) setMode(ch *vchan, u *vuser, f status, on bool) {
	st, _ := ch.members.get(u)
	if st.has(f) == on {
		return
	}
	if on {
		ch.members.set(u, st|f)
	} else {
		ch.members.set(u, st&^f)
	}
	if ch.joined {
		change := "-v"
		switch {
		case f == stOp && on:
			change = "+o"
		case f == stOp:
			change = "-o"
		case on:
			change = "+v"
		}
		c.emitServerLine("MODE", ch.name, change, u.Nick)
	}
}

// JoinClient puts the real client in a channel of its world: it sees JOIN,
// the topic (332/333) and NAMES (353/366), and, with draft/read-marker,
// MARKREAD with marker (the channel's read marker; zero: none, "*") before
// the end of the names, as a JOIN it sends itself gets.
func (c *Client) JoinClient(channel string, marker time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.channel(channel)
	if ch == nil {
		c.logger().WithField("channel", channel).Warn("JoinClient: no such channel")
		return
	}
	if ch.joined {
		return
	}
	out := c.emit
	if c.srv.cfg.History && c.caps["draft/read-marker"] {
		out = func(m *irc.Message) {
			if m.Command == irc.RPL_ENDOFNAMES {
				c.emit(c.markreadMsg(ch.name, marker))
			}
			c.emit(m)
		}
	}
	c.joinSelf(ch, out)
}

// joinSelf marks the client joined and sends JOIN, topic and names through
// out. Caller holds c.mu.
func (c *Client) joinSelf(ch *vchan, out func(*irc.Message)) {
	ch.joined = true
	if c.caps["extended-join"] {
		out(msg(c.selfPrefix(), "JOIN", ch.name, middleParam(c.account), c.realName))
	} else {
		out(msg(c.selfPrefix(), "JOIN", ch.name))
	}
	if ch.topic != "" {
		c.topicReply(ch, out)
	}
	c.names(ch, out)
}

func (c *Client) topicReply(ch *vchan, out func(*irc.Message)) {
	out(msg(c.serverPrefix(), irc.RPL_TOPIC, c.nick, ch.name, ch.topic))
	out(msg(c.serverPrefix(), rplTopicWhoTime, c.nick, ch.name, ch.topicBy, strconv.FormatInt(ch.topicAt.Unix(), 10)))
}

// names sends 353 lines and 366 for ch. Caller holds c.mu.
func (c *Client) names(ch *vchan, out func(*irc.Message)) {
	multi, full := c.caps["multi-prefix"], c.caps["userhost-in-names"]
	list := make([]string, 0, ch.members.len()+1)
	for i, u := range ch.members.us {
		st := ch.members.st[i]
		if full {
			list = append(list, st.prefixes(multi)+u.prefix().String())
		} else {
			list = append(list, st.prefixes(multi)+u.Nick)
		}
	}
	sort.Strings(list)
	if ch.joined {
		if full {
			list = append([]string{c.selfPrefix().String()}, list...)
		} else {
			list = append([]string{c.nick}, list...)
		}
	}
	fixed := len(":") + len(c.srv.cfg.ServerName) + len(" 353 ") + len(c.nick) + len(" = ") + len(ch.name) + len(" :")
	joinFit(list, " ", maxLineBody-fixed, func(names string) {
		out(msg(c.serverPrefix(), irc.RPL_NAMREPLY, c.nick, "=", ch.name, names))
	})
	out(msg(c.serverPrefix(), irc.RPL_ENDOFNAMES, c.nick, ch.name, "End of /NAMES list."))
}
