package msim

// The client's contact table, kept compact: an idle session holds one entry
// per contact for as long as it lives, and a gateway holds many sessions.

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// contactEntry is a Contact as the table keeps it: the fields most entries
// leave empty (or share with every other entry, such as the group) sit
// behind one pointer to a shared contactMore.
type contactEntry struct {
	userName, displayName string
	statusText            string
	more                  *contactMore // never nil
	uid                   uint32       // a valid uid (validUID) fits
	status                int8         // a Status: the codes kept (see onBM) fit
	blocked               bool
}

// contactMore is the rest of a Contact: values many entries share are one
// allocation (see moreOf).
type contactMore struct {
	group, nickName, headline, imageURL string
}

// sharedMore holds one copy of the commonest contactMore values (a group
// with nothing else, say); bounded like intern.
var sharedMore struct {
	sync.Mutex
	m map[contactMore]*contactMore
}

// moreOf returns a contactMore equal to v, shared with other entries when
// it can be.
func moreOf(v contactMore) *contactMore {
	sharedMore.Lock()
	defer sharedMore.Unlock()
	if p, ok := sharedMore.m[v]; ok {
		return p
	}
	p := new(contactMore) // not &v, which would move v to the heap for every call
	*p = v
	// Only values without a contact's own alias or headline are worth
	// sharing; the others would fill the map with one-offs.
	if v.nickName == "" && v.headline == "" && len(sharedMore.m) < 1024 {
		if sharedMore.m == nil {
			sharedMore.m = make(map[contactMore]*contactMore)
		}
		sharedMore.m[v] = p
	}
	return p
}

// entryOf is ct as the table keeps it.
func entryOf(ct Contact) contactEntry {
	return contactEntry{
		uid: uint32(ct.UID), userName: ct.UserName, displayName: ct.DisplayName, statusText: ct.StatusText,
		more:   moreOf(contactMore{group: ct.Group, nickName: ct.NickName, headline: ct.Headline, imageURL: ct.ImageURL}),
		status: int8(ct.Status), blocked: ct.Blocked,
	}
}

// contact is the entry as a Contact.
func (e *contactEntry) contact() Contact {
	return Contact{
		UID: UID(e.uid), UserName: e.userName, DisplayName: e.displayName,
		Group: e.more.group, NickName: e.more.nickName, Headline: e.more.headline, ImageURL: e.more.imageURL,
		Blocked: e.blocked, Status: Status(e.status), StatusText: e.statusText,
	}
}

// setPresence keeps a presence in the entry; a text equal to the one kept
// keeps the old copy.
func (e *contactEntry) setPresence(st Status, text string) {
	e.status = int8(st)
	if text != e.statusText {
		e.statusText = text
	}
}

// Contact returns uid's entry of the contact list (see Contacts), without
// copying the rest of the list.
func (c *Client) Contact(uid UID) (Contact, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := c.contactIndex(uid); i >= 0 {
		return c.contacts[i].contact(), true
	}
	return Contact{}, false
}

// PresenceOf returns the latest presence received for uid, a contact or
// not, and false when none was received (the user is then offline as far
// as the session knows). Of users not in the contact list, the session
// keeps the presence of a few thousand at most (maxStrangers).
func (c *Client) PresenceOf(uid UID) (Status, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := c.contactIndex(uid); i >= 0 {
		e := &c.contacts[i]
		return Status(e.status), e.statusText, true
	}
	if pr, ok := c.presence[uid]; ok {
		return pr.Status, pr.Text, true
	}
	return StatusOffline, "", false
}

// maxStrangers bounds Client.presence, the presence of users not in the
// contact table: a server may tell the presence of anyone (spec §4.3), and
// one that told that of ever new users would otherwise grow it for as long
// as the session lives. Past it, the presence of another is kept in place
// of an arbitrary one's (see notePresence).
const maxStrangers = 4096

// notePresence keeps uid's presence in c.presence, in place of an
// arbitrary other's when maxStrangers are kept. c.mu is held.
func (c *Client) notePresence(uid UID, pr Presence) {
	if len(c.presence) >= maxStrangers {
		if _, ok := c.presence[uid]; !ok {
			for k := range c.presence {
				delete(c.presence, k)
				break
			}
		}
	}
	c.presence[uid] = pr
}

// earlyPresence is one presence received before the contact table was
// built (Client.early).
type earlyPresence struct {
	uid    UID
	status Status
	text   string
	taken  bool // by a contact's entry (takeEarly)
}

// earlyBufs lends the lists of presence received before the contact table:
// a login's garbage once the table is built, as long as its online list.
var earlyBufs = sync.Pool{New: func() any { return new([]earlyPresence) }}

// keptEarlyBuf is the largest list earlyBufs keeps.
const keptEarlyBuf = 4096

// earlyCompactMin is the length from which a full list of early presence
// is compacted (lastPerUID) before it grows: a contact whose presence
// keeps changing during the login, or a server repeating itself, costs no
// more than one entry per uid, and the list stays within twice the uids
// it holds.
const earlyCompactMin = 256

// noteEarly keeps a presence received before the contact table was built.
// c.mu is held.
func (c *Client) noteEarly(uid UID, st Status, text string) {
	if c.early == nil {
		c.early = earlyBufs.Get().(*[]earlyPresence)
	}
	early := *c.early
	if len(early) == cap(early) && len(early) >= earlyCompactMin {
		early = lastPerUID(early)
	}
	*c.early = append(early, earlyPresence{uid: uid, status: st, text: text})
}

// byUID orders early presence by uid.
func byUID(a, b earlyPresence) int { return cmp.Compare(a.uid, b.uid) }

// lastPerUID keeps, in place, only the last presence of each uid of early,
// in uid order, and returns them.
func lastPerUID(early []earlyPresence) []earlyPresence {
	// Stable: of a uid's presences, the last received stays the last.
	slices.SortStableFunc(early, byUID)
	n := 0
	for j, e := range early {
		if j+1 < len(early) && early[j+1].uid == e.uid {
			continue
		}
		early[n] = e
		n++
	}
	clear(early[n:])
	return early[:n]
}

// takeEarly gives each of contacts the last presence received for it
// before the table was built, keeps a stranger's in c.presence, and lets
// the list go: from now on presence goes to the table. c.mu is held.
func (c *Client) takeEarly(contacts []Contact) {
	c.listed = true
	p := c.early
	if p == nil {
		return
	}
	c.early = nil
	early := lastPerUID(*p)
	for i := range contacts {
		j, found := slices.BinarySearchFunc(early, contacts[i].UID, func(e earlyPresence, uid UID) int { return cmp.Compare(e.uid, uid) })
		if found {
			contacts[i].Status, contacts[i].StatusText = early[j].status, early[j].text
			early[j].taken = true
		}
	}
	for _, e := range early {
		if !e.taken {
			c.notePresence(e.uid, Presence{Status: e.status, Text: e.text})
		}
	}
	if cap(early) > keptEarlyBuf {
		return
	}
	clear(early)
	*p = early[:0]
	earlyBufs.Put(p)
}

// contactBufs holds the lists a login's contacts are gathered in before the
// table is built: garbage once it is, and as large as the list.
var contactBufs = sync.Pool{New: func() any { return new([]Contact) }}

// keptContactBuf is the largest list contactBufs keeps.
const keptContactBuf = 4096

// putContactBuf gives a list back to contactBufs, emptied (it holds no
// name then), unless it is too large to keep.
func putContactBuf(p *[]Contact) {
	if cap(*p) > keptContactBuf {
		return
	}
	clear((*p)[:cap(*p)])
	*p = (*p)[:0]
	contactBufs.Put(p)
}

// packNames puts the user and display names of a login's contact list in
// one allocation, which they share for the session: fewer, contiguous
// objects than a small string each among the login's garbage, and none of
// them pins a reply.
func packNames(cs []Contact) {
	n := 0
	for i := range cs {
		n += len(cs[i].UserName)
		if cs[i].DisplayName != cs[i].UserName {
			n += len(cs[i].DisplayName)
		}
	}
	if n == 0 {
		return
	}
	var b strings.Builder
	b.Grow(n)
	ends := make([][2]int, len(cs)) // where each user name and display name ends in b
	for i := range cs {
		b.WriteString(cs[i].UserName)
		ends[i][0] = b.Len()
		if cs[i].DisplayName != cs[i].UserName {
			b.WriteString(cs[i].DisplayName)
		}
		ends[i][1] = b.Len()
	}
	all, start := b.String(), 0
	for i := range cs {
		u, d := ends[i][0], ends[i][1]
		same := cs[i].DisplayName == cs[i].UserName
		cs[i].UserName = all[start:u]
		if same {
			cs[i].DisplayName = cs[i].UserName
		} else {
			cs[i].DisplayName = all[u:d]
		}
		start = d
	}
}

// maxContacts is the most entries the client takes from the contact list
// a login loads: well above what msimd lets an account keep, and far below
// what a reply within its budget could list, each an entry kept for the
// session and perhaps a lookup during the login.
const maxContacts = 4096

// listContacts appends to dst the contacts of a contact list reply's
// parts, in order: each valid uid once, as first listed (the table has
// one entry per uid, and presence updates the first), and maxContacts at
// most. It returns how many entries repeated a uid already taken and how
// many were left out past maxContacts.
func listContacts(dst []Contact, parts []string) (_ []Contact, repeated, past int) {
	first := len(dst)
	// seen, the uids kept, is made only once the list has maxContacts
	// entries and more come (a list that long, or one repeating uids to
	// fill it): up to then a list is kept as read, so it never holds more
	// than maxContacts entries.
	var seen map[UID]struct{}
	eachRecord(parts, "ContactID", func(rec Dict) {
		// The names are not copied here: packNames copies them all.
		ct := contactFrom(rec, true)
		if !validUID(ct.UID) {
			return
		}
		if seen == nil && len(dst)-first == maxContacts {
			var r int
			dst, seen, r = dedupeContacts(dst, first)
			repeated += r
		}
		if seen != nil {
			if _, dup := seen[ct.UID]; dup {
				repeated++
				return
			}
			if len(dst)-first == maxContacts {
				past++
				return
			}
			seen[ct.UID] = struct{}{}
		}
		dst = append(dst, ct)
	})
	if n := len(dst) - first; seen == nil && n > 1 {
		// Lists repeat no uid as a rule: a sorted copy of the uids shows
		// that without a map; only a list that does pays for one.
		uids := make([]UID, n)
		for i := range n {
			uids[i] = dst[first+i].UID
		}
		slices.Sort(uids)
		if len(slices.Compact(uids)) < n {
			var r int
			dst, _, r = dedupeContacts(dst, first)
			repeated += r
		}
	}
	return dst, repeated, past
}

// dedupeContacts keeps each uid of dst[first:] once, as first listed, and
// returns the list, the uids kept and how many entries went.
func dedupeContacts(dst []Contact, first int) ([]Contact, map[UID]struct{}, int) {
	list := dst[first:]
	seen := make(map[UID]struct{}, len(list))
	kept := list[:0]
	for _, ct := range list {
		if _, dup := seen[ct.UID]; !dup {
			seen[ct.UID] = struct{}{}
			kept = append(kept, ct)
		}
	}
	clear(list[len(kept):])
	return dst[:first+len(kept)], seen, len(list) - len(kept)
}

// maxGroups is the most groups the client keeps from the group list (the
// official client's users had a handful).
const maxGroups = 256

// listGroups reads a group list's records, at most maxGroups of them,
// with each name copied out of the reply, which is not kept for the
// session along with it.
func listGroups(recs []Dict, log *logrus.Entry) []Group {
	var gs []Group
	for _, rec := range recs {
		if len(gs) == maxGroups {
			log.WithFields(logrus.Fields{"groups": len(recs), "kept": maxGroups}).
				Warn("msim: the group list is longer than the client keeps; the groups past it left out")
			break
		}
		id, _ := rec.Int("GroupID")
		pos, _ := rec.Int("Position")
		gs = append(gs, Group{ID: id, Name: strings.Clone(rec.Str("GroupName")), Position: pos})
	}
	return gs
}
