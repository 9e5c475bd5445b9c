package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// errNoSuchUser reports a bm, addbuddy or persist about a uid that has no
// account.
var errNoSuchUser = errors.New("msim/server: no such user")

// errListFull refuses a blocklist that would make a privacy list longer
// than maxContacts.
var errListFull = persistError(fmt.Sprintf("A block or allow list may hold at most %d users", maxContacts))

// onBM routes a buddy message. The server sets f from the session and
// relays only cv, msg, gid, aid and fg, with their values as sent
// (relayBM).
func (s *session) onBM(m *msim.Message) {
	typ, err := m.TypeInt()
	to, err2 := m.Int("t")
	if err != nil || err2 != nil || to <= 0 {
		s.errorf(msim.ErrCodeParse, textParse)
		return
	}
	if typ == msim.BMStatus || typ == msim.BMAddNotify {
		return // server-only types: a client may not forge them
	}
	err = s.srv.route(s.uid, msim.UID(to), typ, relayBM(typ, s.fromField(), m), m)
	switch {
	case err == nil:
		return
	case errors.Is(err, errNoSuchUser):
		s.errorf(msim.ErrCodeBadUID, "%s%d", textNoSuchUser, to)
		return
	case errors.Is(err, errOfflineFull):
		s.logger().WithField("to", to).Info("offline IM refused: the recipient's offline mailbox is full")
	case errors.Is(err, errOfflineSenderFull):
		s.logger().WithField("to", to).Info("offline IM refused: the sender has too much waiting for the recipient")
	default:
		s.logger().WithError(err).Warn("bm not delivered")
	}
	if !s.send(notStored(msim.UID(to), err)) && typ == msim.BMIM {
		// The sender's session is closing: nobody is told.
		s.srv.metrics.lostIM(lostUntold)
		s.logger().WithField("to", to).Error("an IM is lost: it could not be stored, and its sender's session is closing")
	}
}

// notStored is the error the sender of an IM to `to` gets when the IM was
// neither delivered nor stored; err (from AddOffline) says why.
func notStored(to msim.UID, err error) *msim.Message {
	var text string
	switch {
	case errors.Is(err, errOfflineFull):
		text = fmt.Sprintf("%s%d.", textOfflineFull, to)
	case errors.Is(err, errOfflineSenderFull):
		text = fmt.Sprintf("%s%d; wait until they log in.", textSenderFull, to)
	default:
		text = fmt.Sprintf("%s%d", textNotStored, to)
	}
	return msim.ErrorMessage(ErrCodeNotStored, false, text)
}

// fromField is the f field of the buddy messages the session sends, as
// relayBM writes it: made once for the session's uid rather than for
// every message.
func (s *session) fromField() string {
	if s.from.uid != s.uid || s.from.field == "" {
		s.from.uid, s.from.field = s.uid, `\f\`+strconv.FormatInt(int64(s.uid), 10)
	}
	return s.from.field
}

// relayBM is the wire form of the buddy message m from the sender whose
// f field is from (fromField), as its recipient gets it: bm and f, then
// only the keys a buddy message carries (cv, msg, gid, aid, fg), since
// others (lc, userid, sesskey…) could make the recipient's client act on
// a forged message. Their values go as they came, still escaped: the
// decoder split them at the backslashes, so none holds one, and the
// recipient unescapes them as it would have the sender's. The server makes one buffer, the one its
// writer keeps, instead of decoding the text and encoding it again.
func relayBM(typ int, from string, m *msim.Message) []byte {
	fields := m.Fields()[1:]
	n := len(`\bm\\final\`) + 20 + len(from)
	for _, f := range fields {
		if relayedBMKey(f.Key) {
			n += 2 + len(f.Key) + len(f.Value)
		}
	}
	b := append(make([]byte, 0, n), `\bm\`...)
	b = strconv.AppendInt(b, int64(typ), 10)
	b = append(b, from...)
	for _, f := range fields {
		if relayedBMKey(f.Key) {
			b = f.AppendTo(b)
		}
	}
	return msim.AppendFinal(b)
}

// deliverLive queues wire for to's session if to is online on this node.
// A session closed at once has its writer store the IMs it did not write:
// then it waits for that before it reports to offline, so that the
// caller's store of wire comes after those. holding: the caller holds
// offlineMu, which it lets go while it waits (the writer stores under it).
func (srv *Server) deliverLive(to, from msim.UID, wire []byte, holding bool) bool {
	ok, _ := srv.deliverLiveBy(to, from, wire, holding, time.Time{})
	return ok
}

// deliverLiveBy is deliverLive that queues wire only before until (by this
// node's clock; zero: any time), and reports late if it did not queue it
// because until had passed.
func (srv *Server) deliverLiveBy(to, from msim.UID, wire []byte, holding bool, until time.Time) (ok, late bool) {
	for {
		if !until.IsZero() && !time.Now().Before(until) {
			return false, true
		}
		ok, wait := srv.reg.deliver(to, from, wire)
		if ok || wait == nil {
			return ok, false
		}
		srv.awaitRescue(wait, holding)
	}
}

// awaitRescue waits for a closing session's writer to store the IMs it
// did not write (wait, from rescueWait). holding: the caller holds
// offlineMu, which it lets go meanwhile (the writer stores under it).
func (srv *Server) awaitRescue(wait <-chan struct{}, holding bool) {
	if holding {
		srv.offlineMu.Unlock()
		defer srv.offlineMu.Lock()
	}
	<-wait
}

// relayedBMKey says whether a buddy message's key is relayed (relayBM).
func relayedBMKey(k string) bool {
	switch k {
	case "cv", "msg", "gid", "aid", "fg":
		return true
	}
	return false
}

// route delivers a buddy message from one uid to another: live if the
// recipient is online, stored (bm 1 only) if not, to Tom in the demo.
// It fails with errNoSuchUser when the recipient has no account.
// wire is the message as the recipient gets it. bm is the message as
// its sender wrote it, read (for its text and cv) only by Tom and an
// offline recipient's store: a live delivery needs neither.
func (srv *Server) route(from, to msim.UID, typ int, wire []byte, bm *msim.Message) error {
	if srv.tom != nil && to == TomUID {
		msg, _ := bm.Raw("msg")
		srv.tom.receive(from, typ, msim.Unescape(msg))
		srv.metrics.routedIM(typ)
		return nil
	}
	if srv.deliverLive(to, from, wire, false) {
		srv.metrics.routedIM(typ)
		return nil
	}
	if srv.bus != nil {
		taken, err := srv.bus.Deliver(to, from, wire)
		if err != nil {
			// Not known to be delivered: an IM is stored rather than lost.
			srv.log.WithError(err).WithField("to", to).Warn("cluster delivery failed")
		}
		if taken {
			srv.metrics.routedIM(typ)
			return nil
		}
	}
	acct, err := srv.store.Account(to)
	if err != nil {
		if errors.Is(err, ErrNoSuchAccount) {
			return errNoSuchUser
		}
		return err
	}
	if typ != msim.BMIM {
		return nil // only IMs wait for an offline recipient
	}
	if slices.Contains(acct.Block, from) {
		return nil
	}
	contacts, err := srv.store.Contacts(to)
	if err != nil {
		return err
	}
	listed := slices.Contains(acct.Allow, from)
	for _, c := range contacts {
		if c.UID == from {
			if c.Blocked() {
				return nil
			}
			listed = true
		}
	}
	if acct.OnlyListMayIM && !listed {
		return nil
	}
	cv, _ := bm.Int("cv")
	msg, _ := bm.Raw("msg")
	srv.offlineMu.Lock()
	if srv.deliverLive(to, from, wire, true) { // logged in meanwhile
		srv.offlineMu.Unlock()
		srv.metrics.routedIM(typ)
		return nil
	}
	err = srv.addOffline(to, OfflineMessage{From: from, Time: time.Now().UTC(), CV: cv, Body: msim.Unescape(msg)}, srv.offlineLimits)
	srv.offlineMu.Unlock()
	if err != nil {
		return err
	}
	srv.metrics.storedIMs(1)
	if srv.bus != nil {
		srv.bus.Stored(to) // the recipient may have logged in on another node meanwhile
	}
	return nil
}

// onStatus sets and publishes the session's presence.
func (s *session) onStatus(m *msim.Message) {
	code, err := m.TypeInt()
	if err != nil || code < 0 {
		s.errorf(msim.ErrCodeParse, textParse)
		return
	}
	p := msim.Presence{
		Status:   msim.Status(code),
		Text:     m.StrOr("statstring", ""),
		Location: m.StrOr("locstring", ""),
	}
	s.srv.reg.update(s, true, func(rt *route) {
		rt.setPresence(p, true)
	})
}

// account returns uid's account, errNoSuchUser if there is none.
func (srv *Server) account(uid msim.UID) (*Account, error) {
	a, err := srv.store.Account(uid)
	if errors.Is(err, ErrNoSuchAccount) {
		return nil, errNoSuchUser
	}
	if t, ok := srv.lastLogin.of(uid); ok && err == nil && t.After(a.LastLogin) {
		a.LastLogin = t // recorded, not yet written
	}
	return a, err
}

// contact returns owner's record for uid, if any.
func (srv *Server) contact(owner, uid msim.UID) (Contact, bool, error) {
	cs, err := srv.store.Contacts(owner)
	if err != nil {
		return Contact{}, false, err
	}
	for _, c := range cs {
		if c.UID == uid {
			return c, true, nil
		}
	}
	return Contact{}, false, nil
}

// onAddBuddy subscribes to a buddy's presence: the buddy goes on the list
// (if not there yet), the client gets bm 4 and the buddy's presence at once,
// and the buddy gets a FriendRequest alert.
func (s *session) onAddBuddy(m *msim.Message) {
	n, err := m.Int("newprofileid")
	if err != nil || n <= 0 {
		s.errorf(msim.ErrCodeParse, textParse)
		return
	}
	uid := msim.UID(n)
	if uid == s.uid {
		s.errorf(msim.ErrCodeBadUID, "%s.", errSelf)
		return
	}
	if _, err := s.srv.account(uid); err != nil {
		s.persistFailure("addbuddy", err)
		return
	}
	c, ok, err := s.srv.contact(s.uid, uid)
	if err != nil {
		s.persistFailure("addbuddy", err)
		return
	}
	wasBlocked := ok && c.Blocked()
	if !ok || wasBlocked {
		if !ok {
			if err := s.srv.roomForContact(s.uid); errors.Is(err, errTooManyContacts) {
				s.errorf(msim.ErrCodeBadUID, "%s.", err)
				return
			} else if err != nil {
				// A store failure: logged, and not shown to the client.
				s.persistFailure("addbuddy", err)
				return
			}
			c = Contact{UID: uid, GroupName: "IM Friends", Position: 1000}
		}
		c.Visibility = 1
		s.forgetListed()
		if err := s.srv.store.PutContact(s.uid, c); err != nil {
			s.persistFailure("addbuddy", err)
			return
		}
	}
	if wasBlocked {
		s.setBlockRecord(uid, false)
	}
	s.srv.reg.setContact(s, uid, true)
	s.srv.reg.addAlert(uid, "FriendRequest")
	s.send(msim.NewInt("bm", msim.BMAddNotify).AddInt("f", int(uid)).Add("msg", ""))
	s.enqueue(presenceMsg(uid, s.srv.reg.presenceFor(uid, s.uid)))
}

// roomForContact fails with errTooManyContacts when owner's list is full.
func (srv *Server) roomForContact(owner msim.UID) error {
	cs, err := srv.store.Contacts(owner)
	if err != nil {
		return err
	}
	if len(cs) >= maxContacts {
		return errTooManyContacts
	}
	return nil
}

// onDelBuddy ends the presence subscription and removes the list entry
// (a blocked entry stays: it is removed with persist 515/0/8).
func (s *session) onDelBuddy(m *msim.Message) {
	n, err := m.Int("delprofileid")
	if err != nil || n <= 0 {
		s.errorf(msim.ErrCodeParse, textParse)
		return
	}
	uid := msim.UID(n)
	c, ok, err := s.srv.contact(s.uid, uid)
	if err == nil && ok && !c.Blocked() {
		s.forgetListed()
		err = s.srv.store.DeleteContact(s.uid, uid)
	}
	if err != nil {
		s.persistFailure("delbuddy", err)
		return
	}
	s.srv.reg.setContact(s, uid, false)
}

// setBlockRecord marks or clears a Visibility=2 record in the routing state.
func (s *session) setBlockRecord(uid msim.UID, blocked bool) {
	s.srv.reg.update(s, false, func(rt *route) {
		if blocked {
			add(&rt.blockRecs, uid)
		} else {
			delete(rt.blockRecs, uid)
		}
	})
}

// persistFailure reports a failed request without a persist reply.
func (s *session) persistFailure(what string, err error) {
	if errors.Is(err, errNoSuchUser) {
		s.errorf(msim.ErrCodeBadUID, "%s", "No such user.")
		return
	}
	s.logger().WithError(err).Error(what)
	s.errorf(msim.ErrCodeParse, "The server could not process the request.")
}

// onBlockList applies an idlist: w0/w1, c0/c1, then a+ a- b+ b- operators
// followed by uids or "*" (all: clears the list with a-/b-; ignored with
// a+/b+).
func (s *session) onBlockList(m *msim.Message) {
	l, err := m.List("idlist")
	if err != nil {
		s.errorf(msim.ErrCodeParse, textParse)
		return
	}
	var (
		w, c     = -1, -1
		op       string
		blk, alw = map[msim.UID]bool{}, map[msim.UID]bool{} // uid → add (true) / remove
		clrB     bool
		clrA     bool
	)
	for _, tok := range l {
		switch tok {
		case "":
		case "w0", "w1":
			w = int(tok[1] - '0')
		case "c0", "c1":
			c = int(tok[1] - '0')
		case "a+", "a-", "b+", "b-":
			op = tok
		case "*":
			switch op {
			case "a-":
				clrA, alw = true, map[msim.UID]bool{}
			case "b-":
				clrB, blk = true, map[msim.UID]bool{}
			}
		default:
			uid, err := msim.ParseUID(tok)
			if err != nil || op == "" {
				continue
			}
			if op[0] == 'a' {
				alw[uid] = op[1] == '+'
			} else {
				blk[uid] = op[1] == '+'
			}
		}
	}
	apply := func(list []msim.UID, clr bool, ch map[msim.UID]bool) []msim.UID {
		if clr {
			list = nil
		}
		for u, on := range ch {
			i := slices.Index(list, u)
			switch {
			case on && i < 0:
				list = append(list, u)
			case !on && i >= 0:
				list = slices.Delete(list, i, i+1)
			}
		}
		return list
	}
	var acct Account
	err = s.srv.store.UpdateAccount(s.uid, func(a *Account) error {
		a.Block = apply(a.Block, clrB, blk)
		a.Allow = apply(a.Allow, clrA, alw)
		if len(a.Block) > maxContacts || len(a.Allow) > maxContacts {
			return errListFull
		}
		if w >= 0 {
			a.ShowOnlyToList = w == 1
			a.Prefs = a.Prefs.Set("ShowOnlyToList", boolText(w == 1))
		}
		if c >= 0 {
			a.OnlyListMayIM = c == 1
		}
		acct = *a
		return nil
	})
	if errors.Is(err, errListFull) {
		s.logger().Info("blocklist refused: " + errListFull.Error())
		s.errorf(msim.ErrCodeParse, "%s; nothing was changed.", errListFull)
		return
	}
	if err != nil {
		s.persistFailure("blocklist", err)
		return
	}
	s.srv.reg.update(s, false, func(rt *route) { rt.setPrivacy(&acct) })
}

// setPrivacy copies an account's privacy settings into the routing state.
func (rt *route) setPrivacy(a *Account) {
	rt.blockList, rt.allow = setOf(a.Block), setOf(a.Allow)
	rt.showOnlyToList, rt.onlyListMayIM = a.ShowOnlyToList, a.OnlyListMayIM
}

func boolText(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// profileKeys are the profile fields setinfo may change.
var profileKeys = []string{"Headline", "ImageURL", "BandName", "SongName", "Age", "Gender", "Location", "RealName"}

// onSetInfo stores the profile fields it carries. UserName is taken only
// while the account has none and the name is free (the set-username flow,
// spec §3.7, whose 2/9/14 request reports a failure).
func (s *session) onSetInfo(m *msim.Message) {
	info, err := m.Dict("info")
	if err != nil {
		s.errorf(msim.ErrCodeParse, textParse)
		return
	}
	if err := checkFields(info); err != nil {
		s.logger().Info("setinfo refused: " + err.Error())
		s.errorf(msim.ErrCodeParse, "%s; nothing was changed.", err)
		return
	}
	err = s.srv.store.UpdateAccount(s.uid, func(a *Account) error {
		for _, p := range info {
			switch {
			case p.Key == "DisplayName":
				a.DisplayName = p.Value
			case slices.Contains(profileKeys, p.Key):
				a.Profile = a.Profile.Set(p.Key, p.Value)
			}
		}
		return nil
	})
	if name, ok := info.Get("UserName"); ok && err == nil && ValidUserName(name) == nil {
		err = s.srv.store.UpdateAccount(s.uid, func(a *Account) error {
			if a.UserName == "" {
				a.UserName = name
				s.nick = name
			}
			return nil
		})
		if errors.Is(err, ErrUserNameTaken) {
			s.nick, err = s.uid.String(), nil
		}
	}
	if err != nil {
		s.persistFailure("setinfo", err)
	}
}

// onWebChallenge answers webchlg with a web challenge (persistr 257/17/26).
// Nothing on this network uses web tickets, so it is random.
func (s *session) onWebChallenge() {
	var b [36]byte
	_, _ = rand.Read(b[:])
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	p := &msim.Persist{
		Cmd: msim.CmdGet | msim.CmdReply, DSN: msim.PersistWebChallenge.DSN, LID: msim.PersistWebChallenge.LID,
		UID: s.uid, RID: s.srv.nextRID(),
		Body: msim.Dict{
			{Key: "Challenge", Value: strconv.FormatUint(uint64(n), 10)},
			{Key: "ChallengeData", Value: base64.StdEncoding.EncodeToString(b[4:])},
		},
	}
	s.send(p.Reply())
}

// ValidUserName applies the user-name rules: 1–25 characters, letters,
// digits, '_', '.' and '-', not all digits (so it cannot be read as a uid).
func ValidUserName(n string) error {
	if n == "" || len(n) > 25 {
		return errors.New("user name must have 1 to 25 characters")
	}
	digits := true
	for _, r := range n {
		switch {
		case r >= '0' && r <= '9':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r == '.', r == '-':
			digits = false
		default:
			return errors.New("user name may hold only letters, digits, '_', '.' and '-'")
		}
	}
	if digits {
		return errors.New("user name must not be all digits")
	}
	return nil
}

func validEmail(e string) bool {
	at := strings.IndexByte(e, '@')
	return at > 0 && at < len(e)-1 && !strings.ContainsAny(e, " \\\x00\x1c")
}

// defaultGroups are the groups every new account starts with, as the 2007
// server had them.
func defaultGroups() []Group {
	return []Group{
		{ID: 1, Name: "IM Friends", Position: 1, Flag: 131073},
		{ID: 2, Name: "MySpaceIM Rooms", Position: 2, Flag: 196612},
		{ID: 3, Name: "Recent Contacts", Position: 3, Flag: 196610},
	}
}
