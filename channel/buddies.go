// Buddies and their presence: contacts become nicks, presence becomes
// voice and away, and WHOIS shows a buddy's profile.

package channel

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/msimircd/msimircd/internal/maproom"
	"github.com/msimircd/msimircd/internal/sortidx"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// buddy is an MSIM user the IRC client sees as a nick. Its presence is not
// kept here: the MSIM client's table holds it (see presence), and ircd's
// virtual user holds the away text shown.
type buddy struct {
	a           *account
	nick        string
	userName    string
	displayName string
	id          uint32 // the uid (see UID): MSIM's uids take 31 bits
	contact     bool   // on the contact list (not a stranger who wrote)
	blocked     bool
	inChan      bool
	voiced      bool
}

// UID is bd's uid.
func (bd *buddy) UID() msim.UID { return msim.UID(bd.id) }

// typing reports whether the IRC client was last told bd is typing.
func (bd *buddy) typing() bool { return slices.Contains(bd.a.typing, bd.UID()) }

// setTyping records what the IRC client was last told of bd's typing.
func (bd *buddy) setTyping(on bool) {
	a := bd.a
	if i := slices.Index(a.typing, bd.UID()); i >= 0 && !on {
		a.typing = slices.Delete(a.typing, i, i+1)
		if len(a.typing) == 0 {
			a.typing = nil
		}
	} else if i < 0 && on {
		a.typing = append(a.typing, bd.UID())
	}
}

// newBuddyIndex is an empty index of an account's buddies by uid.
func newBuddyIndex() sortidx.Index[*buddy, msim.UID] { return sortidx.New(cmpBuddyUID) }

func cmpBuddyUID(bd *buddy, uid msim.UID) int { return cmp.Compare(bd.UID(), uid) }

// cmpBuddyNick orders buddies by nick as the IRC server compares nicks.
func cmpBuddyNick(bd *buddy, nick string) int { return ircd.CompareNicks(bd.nick, nick) }

// buddy is a's buddy uid, or nil.
func (a *account) buddy(uid msim.UID) *buddy {
	bd, _ := a.buddies.Get(uid)
	return bd
}

// setNick gives bd another nick, moving it in s.nicks: the index is in
// nick order, so bd leaves it under its old nick first.
func (s *session) setNick(bd *buddy, nick string) {
	s.nicks.Delete(bd.nick)
	bd.nick = nick
	s.nicks.Add(bd, nick)
}

// buddyByNick is the buddy of any account known by nick, or nil.
func (s *session) buddyByNick(nick string) *buddy {
	bd, _ := s.nicks.Get(nick)
	return bd
}

// presence is bd's latest presence, read from the MSIM client's table:
// offline while the account has no link, and while bd is blocked (the
// block ends MSIM's presence subscription: the table's would go stale).
func (s *session) presence(bd *buddy) (msim.Status, string) {
	a := bd.a
	if a.client == nil || a.state != linkUp || bd.blocked {
		return msim.StatusOffline, ""
	}
	st, text, _ := a.client.PresenceOf(bd.UID())
	return st, fromMSIMLine(text)
}

// awayText is the away text a buddy with this presence shows on IRC.
func awayText(st msim.Status, text string) string {
	switch st {
	case msim.StatusOffline:
		return "Offline"
	case msim.StatusIdle:
		return nameOr(text, "Idle")
	case msim.StatusAway:
		return nameOr(text, "Away")
	}
	return ""
}

// nickOf is the nick of uid on a, or the uid itself for a user the bridge
// no longer knows.
func (s *session) nickOf(a *account, uid msim.UID) string {
	if bd := a.buddy(uid); bd != nil {
		return bd.nick
	}
	return uid.String()
}

// dropBuddies takes every buddy of a out of its channel (the link is down).
func (s *session) dropBuddies(a *account) {
	for _, bd := range a.buddies.All() {
		if bd.inChan {
			s.irc.PartUser(a.channel, bd.nick, "MSIM link down")
			bd.inChan, bd.voiced = false, false
		}
	}
}

// upsertContact creates or updates a buddy from the contact list.
func (s *session) upsertContact(a *account, c msim.Contact) {
	bd := a.buddy(c.UID)
	if bd == nil {
		bd = s.newBuddy(a, c.UID, c.UserName, c.DisplayName)
	} else if bd.userName == "" && bd.displayName == "" {
		s.nameNamelessBuddy(bd, c)
	}
	bd.contact = true
	bd.blocked = c.Blocked
	if c.UserName != "" {
		bd.userName = fromMSIMLine(c.UserName)
	}
	if dn := fromMSIMLine(c.DisplayName); dn != "" && dn != bd.displayName {
		bd.displayName = dn
		s.irc.SetRealName(bd.nick, dn) // WHO and WHOIS show the new name
	}
	s.applyPresence(bd)
}

// nameNamelessBuddy gives a buddy made before its names were known (an IM
// that came while the link was down, a stranger whose profile could not be
// read) the nick its names give, now that the contact list tells them, as
// a NICK change the IRC clients follow. A nick the user chose, or a
// collision suffix, stays.
func (s *session) nameNamelessBuddy(bd *buddy, c msim.Contact) {
	key := buddyKey{bd.a.cfg.Email, bd.UID()}
	base := baseNick(fromMSIMLine(c.UserName), fromMSIMLine(c.DisplayName), int(bd.UID()))
	if _, kept := s.mem.nick(key); kept || nickKey(base) == nickKey(bd.nick) {
		return
	}
	nick := uniqueNick(base, func(k string) bool {
		return (s.nickTaken(k) && k != nickKey(bd.nick)) || s.mem.ownedByOther(k, key)
	})
	if nickKey(nick) == nickKey(bd.nick) {
		return
	}
	if err := s.irc.RenameUser(bd.nick, nick); err != nil {
		s.log.WithError(err).WithField("nick", bd.nick).Warn("a buddy keeps the nick it had before its names were known")
		return
	}
	s.setNick(bd, nick)
	s.mem.setNick(key, nick, nick == base)
}

// reserveBuddies makes room for the contacts of a's list that are not yet
// its buddies, before they are added: the session's indexes and the IRC
// clients' are sized once, and the new buddies share one allocation, as do
// their masks (ident@host), rather than a small object each among a login's
// garbage. A removed buddy's record stays with the others until all go.
func (s *session) reserveBuddies(a *account, contacts []msim.Contact) {
	n, size := 0, 0
	for _, c := range contacts {
		if a.buddy(c.UID) == nil {
			n++
			size += maskSize(c.UserName, c.UID)
		}
	}
	if n < maproom.Min {
		return
	}
	a.buddies.Grow(n)
	s.nicks.Grow(n)
	a.room.Make(n)
	a.strs.grow(size)
	s.irc.Reserve(a.channel, n)
}

// newBuddy creates a buddy and its virtual user, with a stable nick.
func (s *session) newBuddy(a *account, uid msim.UID, userName, displayName string) *buddy {
	userName, displayName = fromMSIMLine(userName), fromMSIMLine(displayName)
	bd := a.room.Take()
	*bd = buddy{a: a, id: uint32(uid), userName: userName, displayName: displayName} // uid is valid: msim refuses others
	memKey := buddyKey{a.cfg.Email, uid}
	taken := func(k string) bool { return s.nickTaken(k) || s.mem.ownedByOther(k, memKey) }
	// A remembered nick (a rename) that is taken, by the nick the user's
	// client goes by, stays remembered: the buddy shows under another
	// for now and gets it back at a later login.
	nick, remembered := s.mem.nick(memKey)
	if !remembered || s.nickTaken(nickKey(nick)) {
		base := baseNick(userName, displayName, int(uid))
		nick = uniqueNick(base, taken)
		if !remembered {
			s.mem.setNick(memKey, nick, nick == base)
		}
	}
	bd.nick = nick
	mask := a.maskOf(userName, uid)
	if err := s.irc.AddUser(ircd.User{Nick: nick, Mask: mask,
		RealName: nameOr(displayName, userName), Away: "Offline", Offline: true}); err != nil {
		// The real client took this nick meanwhile: pick another.
		nick = uniqueNick(nick, func(k string) bool { return taken(k) || k == nickKey(nick) })
		bd.nick = nick
		if !remembered {
			s.mem.setNick(memKey, nick, false)
		}
		if err := s.irc.AddUser(ircd.User{Nick: nick, Mask: mask, RealName: nameOr(displayName, userName), Away: "Offline", Offline: true}); err != nil {
			s.log.WithError(err).WithField("nick", nick).Error("cannot add buddy nick")
		}
	}
	a.buddies.Add(bd, uid)
	s.nicks.Add(bd, nick)
	return bd
}

// nickTaken reports whether a nick key is used by a buddy, the service or
// the IRC user (in any of their attached clients).
func (s *session) nickTaken(key string) bool {
	if s.buddyByNick(key) != nil {
		return true
	}
	return key == nickKey(s.b.cfg.ServiceNick) || s.cl.nickIs(key)
}

// applyPresence makes the channel show bd's status: online = voiced;
// away or idle = present, marked away (devoiced unless away_devoice is off);
// offline = not present unless show_offline. (ircd tells the client of an
// away text only when it changes.)
func (s *session) applyPresence(bd *buddy) {
	a := bd.a
	st, text := s.presence(bd)
	s.irc.SetPresence(bd.nick, awayText(st, text), st != msim.StatusOffline)
	show := bd.contact && !bd.blocked && a.state == linkUp &&
		(st != msim.StatusOffline || s.setting("show_offline") == "true")
	voice := show && (st == msim.StatusOnline ||
		(st != msim.StatusOffline && s.setting("away_devoice") != "true"))
	switch {
	case show && !bd.inChan:
		s.irc.JoinUser(a.channel, bd.nick, voice)
		bd.inChan, bd.voiced = true, voice
	case !show && bd.inChan:
		reason := "Offline"
		if !bd.contact {
			reason = "Removed from the buddy list"
		} else if bd.blocked {
			reason = "Blocked"
		}
		s.irc.PartUser(a.channel, bd.nick, reason)
		bd.inChan, bd.voiced = false, false
	case show && voice != bd.voiced:
		s.irc.SetVoice(a.channel, bd.nick, voice)
		bd.voiced = voice
	}
}

// whoisInfo renders the extra WHOIS lines of a buddy, from its profile when
// one was fetched (p may be nil).
func (s *session) whoisInfo(bd *buddy, p *msim.Profile) []string {
	var out []string
	add := func(label, v string) {
		if v != "" {
			out = append(out, label+": "+fromMSIMLine(v))
		}
	}
	fetched := p != nil
	if p == nil {
		p = &msim.Profile{}
	}
	add("Display name", nameOr(p.DisplayName, bd.displayName))
	add("User name", fmt.Sprintf("%s (uid %d, account %s)", nameOr(nameOr(p.UserName, bd.userName), "(none)"), bd.UID(), bd.a.cfg.Email))
	add("Headline", p.Headline)
	switch {
	case p.BandName != "" && p.SongName != "":
		add("Now playing", p.BandName+" - "+p.SongName)
	default:
		add("Now playing", p.BandName+p.SongName)
	}
	add("Avatar", p.ImageURL)
	if fetched {
		add("Friends", fmt.Sprint(p.TotalFriends))
	}
	if !p.LastLogin.IsZero() {
		add("Last login", p.LastLogin.UTC().Format("2006-01-02 15:04 UTC"))
	}
	if p.Location != "" {
		add("Location", p.Location)
	}
	if bd.blocked {
		out = append(out, "Blocked: yes")
	}
	return out
}

func (s *session) onWhois(ev whoisAsk) {
	bd := s.buddyByNick(ev.nick)
	if bd == nil {
		if nickKey(ev.nick) == nickKey(s.b.cfg.ServiceNick) {
			ev.answer([]string{"msimircd's service: type help in a control channel"})
		} else {
			ev.answer(nil)
		}
		return
	}
	cl := bd.a.client
	if cl == nil {
		ev.answer(s.whoisInfo(bd, nil))
		return
	}
	var p msim.Profile
	s.async(func(ctx context.Context) (err error) { p, err = cl.Profile(ctx, bd.UID()); return err }, func(err error) {
		if err != nil {
			ev.answer(s.whoisInfo(bd, nil))
			return
		}
		ev.answer(s.whoisInfo(bd, &p))
	})
}
