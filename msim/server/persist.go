package server

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/msim"
)

// noPic is the avatar URL meaning "no picture".
const noPic = "http://x.myspace.com/images/no_pic.gif"

// persistError is a failure reported to the client in an error persistr
// (cmd|1024, body ErrorMessage=…). The session goes on.
type persistError string

func (e persistError) Error() string { return string(e) }

// Bounds on what clients store. MaxContacts is also what the server info
// tells clients.
const (
	maxPersistFields = 64   // pairs in the body of one persist write
	maxFieldBytes    = 1024 // one stored value: a preference, a profile field, a group or nick name
	maxGroups        = 100  // groups per account
	maxContacts      = 1000 // contact list entries per account, and entries of each privacy list
)

var (
	errTooManyFields   = persistError(fmt.Sprintf("Too many fields in the request (limit %d)", maxPersistFields))
	errFieldTooLong    = persistError(fmt.Sprintf("A value in the request is too long (limit %d bytes)", maxFieldBytes))
	errTooManyGroups   = persistError(fmt.Sprintf("Too many groups (limit %d)", maxGroups))
	errTooManyContacts = persistError(fmt.Sprintf("The contact list is full (limit %d)", maxContacts))
	errSelf            = persistError("You cannot add yourself to your contact list")
)

// checkFields bounds a write's body: its number of pairs and the length of
// each value.
func checkFields(body msim.Dict) error {
	if len(body) > maxPersistFields {
		return errTooManyFields
	}
	for _, p := range body {
		if len(p.Value) > maxFieldBytes {
			return errFieldTooLong
		}
	}
	return nil
}

const (
	errUnknownRequest = persistError("Unknown request")
	errNoUser         = persistError("No such user")
	errBadRequest     = persistError("Malformed request")
	errInternal       = persistError("Request failed")
	errNameSet        = persistError("The user name is set already")
)

type persistKey struct {
	op  int // cmd & 0xFF
	dsn msim.DSNLID
}

// onPersist answers a persist request with persistr cmd|256 (or cmd|1024 and
// ErrorMessage), echoing dsn, lid and rid, and the session's uid.
func (s *session) onPersist(m *msim.Message) {
	p, err := msim.ParsePersist(m)
	if err != nil {
		s.srv.metrics.persistRequest(nil, err)
		s.errorf(msim.ErrCodeParse, textParse)
		return
	}
	body, err := s.persist(p)
	s.srv.metrics.persistRequest(p, err)
	r := &msim.Persist{Cmd: p.Cmd | msim.CmdReply, DSN: p.DSN, LID: p.LID, UID: s.uid, RID: p.RID, Body: body}
	if err != nil {
		var pe persistError
		if !errors.As(err, &pe) {
			s.logger().WithError(err).Error("persist request failed")
			pe = errInternal
		}
		r.Cmd = p.Cmd | msim.CmdError
		r.Body = nil
		if checkFields(p.Body) == nil { // an oversized body is not echoed
			r.Body = append(r.Body, p.Body...)
		}
		r.Body = append(r.Body, msim.Pair{Key: "ErrorMessage", Value: string(pe)})
	}
	s.sendPersist(r)
}

func (s *session) persist(p *msim.Persist) (msim.Dict, error) {
	if p.Op() != msim.CmdGet {
		if err := checkFields(p.Body); err != nil {
			s.logger().WithFields(logrus.Fields{"dsn": p.DSN, "lid": p.LID, "fields": len(p.Body)}).Info("persist write refused: " + string(err.(persistError)))
			return nil, err
		}
	}
	switch (persistKey{p.Op(), p.Kind()}) {
	case persistKey{msim.CmdGet, msim.PersistContactList}:
		return s.contactList()
	case persistKey{msim.CmdGet, msim.PersistContactInfo}:
		return s.contactInfo(p.Body)
	case persistKey{msim.CmdGet, msim.PersistOwnIMInfo}:
		return s.imInfo(s.uid, true)
	case persistKey{msim.CmdGet, msim.PersistIMInfo}, persistKey{msim.CmdGet, msim.PersistIMInfoAlt}:
		uid, err := bodyUID(p.Body, "UserID", "ContactID")
		if err != nil {
			return nil, err
		}
		return s.imInfo(uid, uid == s.uid)
	case persistKey{msim.CmdGet, msim.PersistGroupList}:
		return s.groupList()
	case persistKey{msim.CmdGet, msim.PersistProfile}:
		uid, err := bodyUID(p.Body, "UserID")
		if err != nil {
			return nil, err
		}
		return s.profile(uid)
	case persistKey{msim.CmdGet, msim.PersistOwnProfile}:
		return s.profile(s.uid)
	case persistKey{msim.CmdGet, msim.PersistLookup}:
		return s.lookup(p.Body)
	case persistKey{msim.CmdGet, msim.PersistAlerts}, persistKey{msim.CmdGet, msim.PersistAlertsAlt}:
		return s.srv.reg.takeAlerts(s.uid), nil
	case persistKey{msim.CmdPut, msim.PersistSetContact}:
		return s.setContact(p.Body)
	case persistKey{msim.CmdDelete, msim.PersistDeleteContact}:
		return s.deleteContact(p.Body)
	case persistKey{msim.CmdPut, msim.PersistSetPrefs}:
		return s.setPrefs(p.Body)
	case persistKey{msim.CmdPut, msim.PersistSetUserName}:
		return s.setUserName(p.Body)
	case persistKey{msim.CmdPut, msim.PersistSetGroup}:
		return s.setGroup(p.Body)
	case persistKey{msim.CmdDelete, msim.PersistSetGroup}:
		return s.deleteGroup(p.Body)
	case persistKey{msim.CmdPut, msim.DSNLID{DSN: 14, LID: 21}}, persistKey{msim.CmdPut, msim.DSNLID{DSN: 15, LID: 22}}:
		// Import MySpace friends: there are no MySpace friends to import.
		return msim.Dict{{Key: "Completed", Value: "True"}}, nil
	}
	return nil, errUnknownRequest
}

// bodyUID reads the first of keys present in body as a uid.
func bodyUID(body msim.Dict, keys ...string) (msim.UID, error) {
	for _, k := range keys {
		if v, ok := body.Get(k); ok {
			uid, err := msim.ParseUID(v)
			if err != nil {
				return 0, errBadRequest
			}
			return uid, nil
		}
	}
	return 0, errBadRequest
}

func imageURL(a *Account) string {
	if u := a.Profile.Str("ImageURL"); u != "" {
		return u
	}
	return noPic
}

// contactRecord is one record of the contact list (spec §6.1 plus the
// recommended UserName, DisplayName, ImageURL and Headline).
func contactRecord(d msim.Dict, c Contact, a *Account) msim.Dict {
	d = append(d,
		msim.Pair{Key: "ContactID", Value: c.UID.String()},
		msim.Pair{Key: "GroupName", Value: c.GroupName},
		msim.Pair{Key: "Position", Value: strconv.Itoa(c.Position)},
		msim.Pair{Key: "Visibility", Value: strconv.Itoa(c.Visibility)},
		msim.Pair{Key: "NickName", Value: c.NickName},
		msim.Pair{Key: "NameSelect", Value: strconv.Itoa(c.NameSelect)},
	)
	if a != nil {
		d = append(d,
			msim.Pair{Key: "UserName", Value: uniqueNick(a)},
			msim.Pair{Key: "DisplayName", Value: a.DisplayName},
			msim.Pair{Key: "ImageURL", Value: imageURL(a)},
			msim.Pair{Key: "Headline", Value: a.Profile.Str("Headline")},
		)
	}
	return d
}

// contactAccountViewer is a Store that can show the accounts of owner's
// contacts uids (as Contacts gave them) at once rather than one Account
// call each: fn gets each uid's account (nil when there is none) in uids'
// order, must neither keep nor modify it, and may read only what a
// contact list shows (contactRecord: UID, UserName, DisplayName,
// Profile). The memory store shows them under one lock without copying
// them; the SQL store reads them with one query.
type contactAccountViewer interface {
	viewContactAccounts(owner msim.UID, uids []msim.UID, fn func(i int, a *Account)) error
}

// contactCounter is a Store that counts a contact list without reading it.
type contactCounter interface {
	contactCount(owner msim.UID) (int, error)
}

// contactCount is how many entries owner's contact list has (a profile's
// TotalFriends).
func contactCount(st Store, owner msim.UID) (int, error) {
	if c, ok := st.(contactCounter); ok {
		return c.contactCount(owner)
	}
	cs, err := st.Contacts(owner)
	return len(cs), err
}

// recordFields is how many items contactRecord writes for a known account.
const recordFields = 10

func (s *session) contactList() (msim.Dict, error) {
	cs, have := s.listed, s.haveListed
	s.forgetListed()
	if !have {
		var err error
		if cs, err = s.srv.store.Contacts(s.uid); err != nil {
			return nil, err
		}
	}
	if v, ok := s.srv.store.(contactAccountViewer); ok {
		uids := make([]msim.UID, len(cs))
		for i, c := range cs {
			uids[i] = c.UID
		}
		d := make(msim.Dict, 0, recordFields*len(cs))
		if err := v.viewContactAccounts(s.uid, uids, func(i int, a *Account) { d = contactRecord(d, cs[i], a) }); err != nil {
			return nil, err
		}
		return d, nil
	}
	var d msim.Dict
	for _, c := range cs {
		a, err := s.srv.store.Account(c.UID)
		if err != nil && !errors.Is(err, ErrNoSuchAccount) {
			return nil, err
		}
		d = contactRecord(d, c, a)
	}
	return d, nil
}

// forgetListed forgets the list the login read: it has been used, or the
// session is changing the list.
func (s *session) forgetListed() { s.listed, s.haveListed = nil, false }

// contactInfo answers 0/2 for one ContactID: its record if listed, else the
// user's data with an empty group.
func (s *session) contactInfo(body msim.Dict) (msim.Dict, error) {
	uid, err := bodyUID(body, "ContactID")
	if err != nil {
		return nil, err
	}
	a, err := s.srv.account(uid)
	if errors.Is(err, errNoSuchUser) {
		return nil, errNoUser
	} else if err != nil {
		return nil, err
	}
	c, ok, err := s.srv.contact(s.uid, uid)
	if err != nil {
		return nil, err
	}
	if !ok {
		c = Contact{UID: uid, Visibility: 1}
	}
	d := contactRecord(nil, c, a)
	d = append(d,
		msim.Pair{Key: "AvatarUrl", Value: a.Prefs.Str("AvatarUrl")},
		msim.Pair{Key: "ShowAvatar", Value: boolText(a.Prefs.Bool("ShowAvatar", true))},
		msim.Pair{Key: "IMName", Value: a.Prefs.Str("IMName")},
	)
	if !a.LastLogin.IsZero() {
		d = append(d, msim.Pair{Key: "LastLogin", Value: strconv.FormatInt(msim.ToFileTime(a.LastLogin), 10)})
	}
	return d, nil
}

// imInfo is the IM information of 1/4 (own), 1/17 and 1/7 (anyone). About
// another user it is othersIMInfo: a user's IM settings are their own.
func (s *session) imInfo(uid msim.UID, own bool) (msim.Dict, error) {
	a, err := s.srv.account(uid)
	if errors.Is(err, errNoSuchUser) {
		return nil, errNoUser
	} else if err != nil {
		return nil, err
	}
	if !own {
		return othersIMInfo(), nil
	}
	pref := func(k, def string) string {
		if v, ok := a.Prefs.Get(k); ok {
			return v
		}
		return def
	}
	privacy := "0"
	if a.OnlyListMayIM {
		privacy = "1"
	}
	d := msim.Dict{
		{Key: "UserID", Value: uid.String()},
		{Key: "Sound", Value: pref("Sound", "True")},
		{Key: "PrivacyMode", Value: privacy},
		{Key: "ShowOnlyToList", Value: boolText(a.ShowOnlyToList)},
		{Key: "OfflineMessageMode", Value: pref("OfflineMessageMode", "1")},
		{Key: "Headline", Value: pref("Headline", a.Profile.Str("Headline"))},
		{Key: "AvatarUrl", Value: pref("AvatarUrl", "")},
		{Key: "Alert", Value: pref("Alert", "1")},
		{Key: "ShowAvatar", Value: pref("ShowAvatar", "True")},
		{Key: "IMName", Value: pref("IMName", "")},
	}
	if !a.LastLogin.IsZero() {
		d = append(d, msim.Pair{Key: "LastLogin", Value: strconv.FormatInt(msim.ToFileTime(a.LastLogin), 10)})
	}
	return append(d,
		msim.Pair{Key: "ClientVersion", Value: pref("ClientVersion", "0")},
		msim.Pair{Key: "AllowBrowse", Value: pref("AllowBrowse", "True")},
		msim.Pair{Key: "IMLang", Value: pref("IMLang", "ENGLISH")},
		msim.Pair{Key: "LangID", Value: pref("LangID", "1033")},
	), nil
}

// othersIMInfo answers 1/17 and 1/7 about another user as the 2007 server
// did (capture n 14 and n 48, for two different users): UserID 0 and
// default values, never that user's privacy settings, IM name or the like.
func othersIMInfo() msim.Dict {
	return msim.Dict{
		{Key: "UserID", Value: "0"},
		{Key: "Sound", Value: "True"},
		{Key: "PrivacyMode", Value: "0"},
		{Key: "ShowOnlyToList", Value: "False"},
		{Key: "OfflineMessageMode", Value: "0"},
		{Key: "Headline", Value: ""},
		{Key: "AvatarUrl", Value: ""},
		{Key: "Alert", Value: "0"},
		{Key: "ShowAvatar", Value: "True"},
		{Key: "IMName", Value: ""},
		{Key: "ClientVersion", Value: "0"},
		{Key: "AllowBrowse", Value: "True"},
		{Key: "IMLang", Value: "ENGLISH"},
		{Key: "LangID", Value: "1033"},
	}
}

func (s *session) groupList() (msim.Dict, error) {
	a, err := s.srv.store.Account(s.uid)
	if err != nil {
		return nil, err
	}
	var d msim.Dict
	for _, g := range a.Groups {
		d = append(d,
			msim.Pair{Key: "GroupID", Value: strconv.Itoa(g.ID)},
			msim.Pair{Key: "GroupName", Value: g.Name},
			msim.Pair{Key: "Position", Value: strconv.Itoa(g.Position)},
			msim.Pair{Key: "GroupFlag", Value: strconv.Itoa(g.Flag)},
		)
	}
	return d, nil
}

// profileDict is the MySpace profile of §6.2, in the 2007 server's order.
func profileDict(a *Account) msim.Dict {
	d := msim.Dict{
		{Key: "UserID", Value: a.UID.String()},
		{Key: "ImageURL", Value: imageURL(a)},
		{Key: "DisplayName", Value: a.DisplayName},
		{Key: "UserName", Value: uniqueNick(a)},
		{Key: "BandName", Value: a.Profile.Str("BandName")},
		{Key: "SongName", Value: a.Profile.Str("SongName")},
	}
	for _, k := range []string{"Headline", "Age", "Gender", "Location", "RealName"} {
		if v := a.Profile.Str(k); v != "" {
			d = append(d, msim.Pair{Key: k, Value: v})
		}
	}
	return d
}

// profile answers 4/3 and 4/5. An unknown uid gets an empty body, the
// "no such user" answer every client understands (spec §6.2).
func (s *session) profile(uid msim.UID) (msim.Dict, error) {
	a, err := s.srv.account(uid)
	if errors.Is(err, errNoSuchUser) {
		return msim.Dict{}, nil
	} else if err != nil {
		return nil, err
	}
	friends, err := contactCount(s.srv.store, uid)
	if err != nil {
		return nil, err
	}
	d := append(profileDict(a), msim.Pair{Key: "TotalFriends", Value: strconv.Itoa(friends)})
	if !a.LastLogin.IsZero() {
		// Not in the 2007 capture's profile replies; clients ignore unknown
		// keys, and msimircd shows it in WHOIS.
		d = append(d, msim.Pair{Key: "LastLogin", Value: strconv.FormatInt(msim.ToFileTime(a.LastLogin), 10)})
	}
	return d, nil
}

// lookup answers 5/7 by UserName or Email; a user that does not exist gets
// only the echoed query key.
func (s *session) lookup(body msim.Dict) (msim.Dict, error) {
	var (
		a   *Account
		err error
		q   msim.Pair
	)
	if v, ok := body.Get("UserName"); ok {
		q = msim.Pair{Key: "UserName", Value: v}
		a, err = s.srv.store.AccountByUserName(v)
	} else if v, ok := body.Get("Email"); ok {
		q = msim.Pair{Key: "Email", Value: v}
		a, err = s.srv.store.AccountByEmail(v)
	} else {
		return nil, errBadRequest
	}
	if errors.Is(err, ErrNoSuchAccount) {
		return msim.Dict{q}, nil
	} else if err != nil {
		return nil, err
	}
	d := profileDict(a)
	if q.Key == "Email" {
		d = append(d, q)
	}
	return d, nil
}

// setContact answers 514/0/9: add or update a record; Visibility=2 blocks.
func (s *session) setContact(body msim.Dict) (msim.Dict, error) {
	uid, err := bodyUID(body, "ContactID")
	if err != nil {
		return nil, err
	}
	if uid == s.uid {
		return nil, errSelf
	}
	if _, err := s.srv.account(uid); errors.Is(err, errNoSuchUser) {
		return nil, errNoUser
	} else if err != nil {
		return nil, err
	}
	c, ok, err := s.srv.contact(s.uid, uid)
	if err != nil {
		return nil, err
	}
	if !ok {
		if err := s.srv.roomForContact(s.uid); err != nil {
			return nil, err
		}
		c = Contact{UID: uid, GroupName: "IM Friends", Position: 1000, Visibility: 1}
	}
	for _, p := range body {
		n, nerr := strconv.Atoi(p.Value)
		switch p.Key {
		case "GroupName":
			c.GroupName = p.Value
		case "NickName":
			c.NickName = p.Value
		case "Position":
			if nerr == nil {
				c.Position = n
			}
		case "Visibility":
			if nerr == nil && (n == 1 || n == 2) {
				c.Visibility = n
			}
		case "NameSelect":
			if nerr == nil {
				c.NameSelect = n
			}
		}
	}
	s.forgetListed()
	if err := s.srv.store.PutContact(s.uid, c); err != nil {
		return nil, err
	}
	s.srv.reg.setContact(s, uid, !c.Blocked())
	s.setBlockRecord(uid, c.Blocked())
	return contactRecord(nil, c, nil), nil
}

// deleteContact answers 515/0/8 (remove a buddy or a blocked entry).
func (s *session) deleteContact(body msim.Dict) (msim.Dict, error) {
	uid, err := bodyUID(body, "ContactID")
	if err != nil {
		return nil, err
	}
	s.forgetListed()
	if err := s.srv.store.DeleteContact(s.uid, uid); err != nil {
		return nil, err
	}
	s.srv.reg.setContact(s, uid, false)
	s.setBlockRecord(uid, false)
	return msim.Dict{{Key: "ContactID", Value: uid.String()}}, nil
}

// prefKeys are the IM preferences 514/1/10 may set.
var prefKeys = []string{"Sound", "PrivacyMode", "ShowOnlyToList", "OfflineMessageMode", "Headline",
	"AvatarUrl", "Alert", "ShowAvatar", "IMName", "ClientVersion", "AllowBrowse", "IMLang", "LangID"}

func (s *session) setPrefs(body msim.Dict) (msim.Dict, error) {
	var acct Account
	err := s.srv.store.UpdateAccount(s.uid, func(a *Account) error {
		for _, p := range body {
			switch {
			case p.Key == "PrivacyMode":
				n, _ := strconv.Atoi(p.Value)
				a.OnlyListMayIM = n&1 != 0
			case p.Key == "ShowOnlyToList":
				a.ShowOnlyToList = body.Bool("ShowOnlyToList", a.ShowOnlyToList)
			}
			if slices.Contains(prefKeys, p.Key) {
				a.Prefs = a.Prefs.Set(p.Key, p.Value)
			}
		}
		acct = *a
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.srv.reg.update(s, false, func(rt *route) { rt.setPrivacy(&acct) })
	return body, nil
}

// Codes of the set-username reply (only 0 = success is known; the others are
// this server's).
const (
	codeNameOK      = 0
	codeNameTaken   = 1
	codeNameInvalid = 2
)

// setUserName answers 2/9/14.
func (s *session) setUserName(body msim.Dict) (msim.Dict, error) {
	name, ok := body.Get("UserName")
	if !ok {
		return nil, errBadRequest
	}
	code := codeNameOK
	if ValidUserName(name) != nil {
		code = codeNameInvalid
	} else {
		var nick string
		err := s.srv.store.UpdateAccount(s.uid, func(a *Account) error {
			if a.UserName != "" && !strings.EqualFold(a.UserName, name) {
				return errNameSet // a user name, once chosen, cannot change
			}
			a.UserName = name
			nick = uniqueNick(a)
			return nil
		})
		switch {
		case errors.Is(err, ErrUserNameTaken), errors.Is(err, errNameSet):
			code = codeNameTaken
		case err != nil:
			return nil, err
		default:
			s.nick = nick
		}
	}
	return msim.Dict{{Key: "UserName", Value: name}, {Key: "Code", Value: strconv.Itoa(code)}}, nil
}

// setGroup answers 2/2/16: update the group named by GroupID (or GroupName),
// or create it. The reply echoes the body and adds the GroupID.
func (s *session) setGroup(body msim.Dict) (msim.Dict, error) {
	name := body.Str("GroupName")
	id, idErr := body.Int("GroupID")
	var gid int
	err := s.srv.store.UpdateAccount(s.uid, func(a *Account) error {
		i := -1
		for j, g := range a.Groups {
			if (idErr == nil && g.ID == id) || (idErr != nil && name != "" && g.Name == name) {
				i = j
			}
		}
		if i < 0 {
			if name == "" {
				return errBadRequest
			}
			if len(a.Groups) >= maxGroups {
				return errTooManyGroups
			}
			next := 1
			for _, g := range a.Groups {
				next = max(next, g.ID+1)
			}
			a.Groups = append(a.Groups, Group{ID: next, Name: name, Position: len(a.Groups) + 1})
			i = len(a.Groups) - 1
		}
		g := &a.Groups[i]
		if name != "" {
			g.Name = name
		}
		if n, err := body.Int("Position"); err == nil {
			g.Position = n
		}
		if n, err := body.Int("GroupFlag"); err == nil {
			g.Flag = n
		}
		gid = g.ID
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := append(msim.Dict{}, body...)
	return out.SetInt("GroupID", gid), nil
}

// deleteGroup answers 3/2/16.
func (s *session) deleteGroup(body msim.Dict) (msim.Dict, error) {
	id, err := body.Int("GroupID")
	if err != nil {
		return nil, errBadRequest
	}
	err = s.srv.store.UpdateAccount(s.uid, func(a *Account) error {
		for i, g := range a.Groups {
			if g.ID == id {
				a.Groups = append(a.Groups[:i], a.Groups[i+1:]...)
				return nil
			}
		}
		return errBadRequest
	})
	return body, err
}
