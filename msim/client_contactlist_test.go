package msim

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// loginWithList logs in to a fake that answers the contact list with
// list; cfg, if not nil, adjusts the client's config.
func loginWithList(t *testing.T, list Dict, cfg func(*ClientConfig)) (*Client, *fakeConn) {
	t.Helper()
	f := newFake(t)
	c2 := testConfig(t, f.addr())
	if cfg != nil {
		cfg(&c2)
	}
	ch := dialAsync(c2)
	fc := f.accept()
	fc.override(PersistContactList, func(*fakeConn, *Persist) Dict { return list })
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c, fc
}

// TestContactListDuplicates: a contact the server lists more than once is
// one entry of the table, the first listed, and its user name is looked
// up once. (Each copy was an entry of its own, and a lookup of its own: a
// server repeating one contact could make a login send as many lookups as
// its reply had room for.)
func TestContactListDuplicates(t *testing.T) {
	t.Parallel()
	list := Dict{
		{"ContactID", "2001"}, {"GroupName", "Friends"}, {"UserName", "bob"},
		{"ContactID", "2004"}, {"GroupName", "Work"}, // no user name: looked up
		{"ContactID", "2002"}, {"UserName", "carol"},
		{"ContactID", "2001"}, {"GroupName", "Other"}, {"UserName", "bobby"},
		{"ContactID", "2004"}, {"GroupName", "Home"},
		{"ContactID", "2001"}, {"Visibility", "2"},
	}
	var lookups atomic.Int32
	f := newFake(t)
	ch := dialAsync(testConfig(t, f.addr()))
	fc := f.accept()
	fc.override(PersistContactList, func(*fakeConn, *Persist) Dict { return list })
	profile := defaultResponders()[PersistProfile]
	fc.override(PersistProfile, func(fc *fakeConn, p *Persist) Dict {
		lookups.Add(1)
		return profile(fc, p)
	})
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	got := c.Contacts()
	want := []Contact{
		{UID: 2001, UserName: "bob", Group: "Friends"},
		{UID: 2004, UserName: "dave", Group: "Work"},
		{UID: 2002, UserName: "carol"},
	}
	if len(got) != len(want) {
		t.Fatalf("contacts: got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].UID != want[i].UID || got[i].UserName != want[i].UserName || got[i].Group != want[i].Group || got[i].Blocked {
			t.Errorf("contact %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := lookups.Load(); n != 1 {
		t.Errorf("profile lookups: got %d, want 1 (2004's, once)", n)
	}
}

// TestContactListCapped: a contact list longer than the client keeps
// (maxContacts) is cut to its first maxContacts entries, in order, and the
// log says so. (The table took whatever the reply held: as many entries,
// and as many lookups, as the reply budget had room for.)
func TestContactListCapped(t *testing.T) {
	t.Parallel()
	const extra = 3
	var list Dict
	for i := range maxContacts + extra {
		uid := strconv.Itoa(10000 + i)
		list = append(list, Pair{"ContactID", uid}, Pair{"UserName", "u" + uid})
	}
	l, hook := logtest.NewNullLogger()
	c, _ := loginWithList(t, list, func(cfg *ClientConfig) { cfg.Log = logrus.NewEntry(l) })
	got := c.Contacts()
	if len(got) != maxContacts {
		t.Fatalf("contacts: got %d, want the first %d", len(got), maxContacts)
	}
	for i, ct := range got {
		if ct.UID != UID(10000+i) {
			t.Fatalf("contact %d: got uid %d, want %d, in the list's order", i, ct.UID, 10000+i)
		}
	}
	warned := slices.ContainsFunc(hook.AllEntries(), func(e *logrus.Entry) bool {
		return e.Level == logrus.WarnLevel && e.Data["contacts"] == maxContacts+extra && e.Data["kept"] == maxContacts
	})
	if !warned {
		t.Errorf("no warning with contacts=%d and kept=%d among %d log entries", maxContacts+extra, maxContacts, len(hook.AllEntries()))
	}
}

// TestGroupListCapped: the client keeps maxGroups groups of a longer
// group list, the first listed, and says so.
func TestGroupListCapped(t *testing.T) {
	t.Parallel()
	var list Dict
	for i := range maxGroups + 3 {
		list = append(list, Pair{"GroupID", strconv.Itoa(i + 1)}, Pair{"GroupName", "g" + strconv.Itoa(i+1)}, Pair{"Position", strconv.Itoa(i + 1)})
	}
	l, hook := logtest.NewNullLogger()
	f := newFake(t)
	c2 := testConfig(t, f.addr())
	c2.Log = logrus.NewEntry(l)
	ch := dialAsync(c2)
	fc := f.accept()
	fc.override(PersistGroupList, func(*fakeConn, *Persist) Dict { return list })
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	gs := c.Groups()
	if len(gs) != maxGroups || gs[0].Name != "g1" || gs[maxGroups-1].ID != maxGroups {
		t.Fatalf("groups: got %d (first %+v), want the first %d", len(gs), gs[0], maxGroups)
	}
	warned := false
	for _, e := range hook.AllEntries() {
		warned = warned || strings.Contains(e.Message, "group list is longer")
	}
	if !warned {
		t.Error("no warning that groups were left out")
	}
}

// TestListContactsBounded: a contact list that repeats a few uids to fill
// its reply never holds more than maxContacts entries while it is read
// (each would be a Contact of its own until the end), and keeps each uid
// once.
func TestListContactsBounded(t *testing.T) {
	const records = 50_000
	parts := make([]string, 0, records)
	for i := range records {
		parts = append(parts, "ContactID="+strconv.Itoa(2001+i%2))
	}
	got, repeated, past := listContacts(nil, parts)
	if len(got) != 2 || got[0].UID != 2001 || got[1].UID != 2002 || repeated != records-2 || past != 0 {
		t.Fatalf("got %d contacts, %d repeated, %d past; want 2001 and 2002, %d repeated, 0 past", len(got), repeated, past, records-2)
	}
	if cap(got) > 2*maxContacts {
		t.Errorf("the list grew to room for %d contacts while read, want at most %d", cap(got), 2*maxContacts)
	}
	// A list of distinct uids past the cap, listed twice over, keeps the
	// first maxContacts. (A record repeating its ContactID at once is one
	// record, as the official server sends some: the repeats come later.)
	parts = parts[:0]
	for range 2 {
		for i := range maxContacts + 10 {
			parts = append(parts, "ContactID="+strconv.Itoa(5000+i))
		}
	}
	got, repeated, past = listContacts(nil, parts)
	if len(got) != maxContacts || got[maxContacts-1].UID != UID(5000+maxContacts-1) || repeated != maxContacts || past != 20 {
		t.Errorf("got %d contacts (last %d), %d repeated, %d past; want %d (last %d), %d repeated (the kept listed again), 20 past (those past the cap, each time)",
			len(got), got[len(got)-1].UID, repeated, past, maxContacts, 5000+maxContacts-1, maxContacts)
	}
}
