package msim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/msimircd/msimircd/internal/allocs"
)

// TestAppendContacts: the contact list appended to an array keeps what
// the array held, is what Contacts returns, and reuses the array's room.
func TestAppendContacts(t *testing.T) {
	t.Parallel()
	c, _ := loggedIn(t, nil)
	want := c.Contacts()
	if len(want) == 0 {
		t.Fatal("no contacts")
	}
	head := Contact{UID: 1, UserName: "already there"}
	dst := make([]Contact, 1, 1+len(want))
	dst[0] = head
	got := c.AppendContacts(dst)
	if &got[0] != &dst[0] || got[0] != head || !slices.Equal(got[1:], want) {
		t.Fatalf("got %+v, want %+v then %+v in the same array", got, head, want)
	}
}

// TestClientContactAndPresenceOf: one entry of the table and anyone's
// latest presence are read without copying the list, and agree with
// Contacts.
func TestClientContactAndPresenceOf(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, nil)
	nextEvent(t, c)                                  // bob's presence from before the list
	fc.write(presenceMsg(4242, StatusIdle, "afk"))   // not a contact
	fc.write(presenceMsg(2002, StatusOnline, "hi!")) // a contact
	nextEvent(t, c)
	nextEvent(t, c)
	for _, ct := range c.Contacts() {
		got, ok := c.Contact(ct.UID)
		if !ok || got != ct {
			t.Errorf("Contact(%v) got %+v, %v, want %+v", ct.UID, got, ok, ct)
		}
	}
	if got, ok := c.Contact(4242); ok {
		t.Errorf("Contact(4242) got %+v, want none (not a contact)", got)
	}
	for _, tc := range []struct {
		uid    UID
		status Status
		text   string
		known  bool
	}{
		{2001, StatusAway, "lunch", true},
		{2002, StatusOnline, "hi!", true},
		{2003, StatusOffline, "", true},
		{4242, StatusIdle, "afk", true},
		{9999, StatusOffline, "", false},
	} {
		st, text, known := c.PresenceOf(tc.uid)
		if st != tc.status || text != tc.text || known != tc.known {
			t.Errorf("PresenceOf(%v) got %v %q %v, want %v %q %v", tc.uid, st, text, known, tc.status, tc.text, tc.known)
		}
	}
}

// TestContactEntryShares: entries round-trip every field of a Contact, and
// entries that differ only in their own fields share the rest.
func TestContactEntryShares(t *testing.T) {
	cases := []Contact{
		{UID: 1, UserName: "a", DisplayName: "A", Group: "IM Friends", Status: StatusOnline, StatusText: "x"},
		{UID: 2, UserName: "b", Group: "IM Friends", Blocked: true},
		{UID: 3, Group: "Work", NickName: "alias", Headline: "h", ImageURL: "http://i", Status: StatusAway},
	}
	for _, ct := range cases {
		e := entryOf(ct)
		if got := e.contact(); got != ct {
			t.Errorf("round trip got %+v, want %+v", got, ct)
		}
	}
	if a, b := entryOf(cases[0]), entryOf(cases[1]); a.more != b.more {
		t.Errorf("two entries of one group got separate rests %p and %p, want one shared", a.more, b.more)
	}
	if got, max := unsafe.Sizeof(contactEntry{}), unsafe.Sizeof(Contact{}); got >= max {
		t.Errorf("an entry takes %d bytes, want fewer than a Contact's %d", got, max)
	}
}

// TestTakeEventsLetsABurstGo: the event queue keeps its array for reuse
// after a few events (up to 16), and lets a burst's go (an idle session
// does not keep its login's).
func TestTakeEventsLetsABurstGo(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cfg := ClientConfig{Notify: func() {}}
	cfg.setDefaults()
	c := newClient(cfg, a)
	for _, tc := range []struct {
		events   int
		keepsArr bool
	}{{3, true}, {64, false}, {16, true}, {200, false}} {
		for i := range tc.events {
			c.emit(PresenceEvent{UID: UID(i + 1)})
		}
		if got := len(c.TakeEvents(nil)); got != tc.events {
			t.Fatalf("%d events: took %d", tc.events, got)
		}
		c.qmu.Lock()
		kept := cap(c.queue) > 0
		c.qmu.Unlock()
		if kept != tc.keepsArr {
			t.Errorf("after %d events: queue's array kept %v, want %v", tc.events, kept, tc.keepsArr)
		}
	}
}

// TestIdleClientKeepsNoBatchBuffer: once the writer has written what was
// queued and stopped, the client holds no batch buffer and no queue.
func TestIdleClientKeepsNoBatchBuffer(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, nil)
	if err := c.SetStatus(context.Background(), StatusAway, "out"); err != nil {
		t.Fatal(err)
	}
	fc.expect("status")
	deadline := time.Now().Add(waitLimit)
	for {
		c.wmu.Lock()
		if !c.writing { // the writer's state is not touched until the next one starts
			held, batch, ring := c.ws.held, c.ws.batch, c.out.ring
			c.wmu.Unlock()
			if held != nil || batch != nil {
				t.Errorf("idle writer: got a batch buffer (cap %d), want none", cap(batch))
			}
			if ring != nil {
				t.Errorf("idle writer: got a queue of %d items, want none", len(ring))
			}
			return
		}
		c.wmu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the writer did not stop")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestContactOfSharesEqualNames: a contact whose display name is its user
// name keeps one copy of it, and neither shares the reply's memory.
func TestContactOfSharesEqualNames(t *testing.T) {
	d := Dict{{"ContactID", "7"}, {"UserName", "bob"}, {"DisplayName", "bob"}}
	c := contactOf(d)
	if unsafe.StringData(c.UserName) != unsafe.StringData(c.DisplayName) {
		t.Errorf("user and display name %q: got two copies, want one", c.UserName)
	}
	if unsafe.StringData(c.UserName) == unsafe.StringData(d.Str("UserName")) {
		t.Error("the user name shares the reply's memory, want a copy")
	}
	c = contactOf(Dict{{"ContactID", "8"}, {"UserName", "bob"}, {"DisplayName", "Bob"}})
	if c.UserName != "bob" || c.DisplayName != "Bob" {
		t.Errorf("names got %q, %q; want bob, Bob", c.UserName, c.DisplayName)
	}
}

// TestPackNames: a login's contact names end up in one allocation, each
// name unchanged, a display name equal to the user name one copy of it.
func TestPackNames(t *testing.T) {
	cs := []Contact{
		{UID: 1, UserName: strings.Clone("bob"), DisplayName: strings.Clone("Bob B")},
		{UID: 2, UserName: strings.Clone("carol"), DisplayName: strings.Clone("carol")},
		{UID: 3},
		{UID: 4, DisplayName: strings.Clone("Dave")},
	}
	want := slices.Clone(cs)
	packNames(cs)
	lo, hi := uintptr(math.MaxUint64), uintptr(0)
	for i, c := range cs {
		if c.UserName != want[i].UserName || c.DisplayName != want[i].DisplayName {
			t.Errorf("contact %d: got %q, %q; want %q, %q", i, c.UserName, c.DisplayName, want[i].UserName, want[i].DisplayName)
		}
		for _, s := range []string{c.UserName, c.DisplayName} {
			if s != "" {
				p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
				lo, hi = min(lo, p), max(hi, p+uintptr(len(s)))
			}
		}
	}
	if got, want := hi-lo, uintptr(len("bobBob BcarolDave")); got != want {
		t.Errorf("the names span %d bytes, want %d (one allocation, carol once)", got, want)
	}
	if unsafe.StringData(cs[1].UserName) != unsafe.StringData(cs[1].DisplayName) {
		t.Error("carol's two equal names: got two copies, want one")
	}
}

// TestMoreOfShared: a contact whose rarely set fields are the common ones
// (a group and nothing else) costs no allocation for them.
func TestMoreOfShared(t *testing.T) {
	v := contactMore{group: "IM Friends"}
	first := moreOf(v)
	if n := testing.AllocsPerRun(100, func() {
		if moreOf(v) != first {
			t.Fatal("not shared")
		}
	}); n > 0 {
		t.Errorf("moreOf of a shared value: %.0f allocations, want none", n)
	}
}

// The contact list is read from its wire form record by record: a list in
// parts (mtf) is one list, a record may straddle two parts, and an error
// reply still fails the login with the server's message.
func TestContactListParts(t *testing.T) {
	t.Parallel()
	// dialWith logs alice in to a fake server that answers the contact
	// list request with list.
	dialWith := func(t *testing.T, list responder) (*Client, error) {
		f := newFake(t)
		ch := dialAsync(testConfig(t, f.addr()))
		fc := f.accept()
		fc.override(PersistContactList, list)
		fc.login("alice")
		return waitDial(t, ch)
	}
	// carolFirst writes a first part of the reply to p: carol's record,
	// cut after her user name.
	carolFirst := func(fc *fakeConn, p *Persist) {
		part := &Persist{Cmd: p.Cmd | CmdReply, DSN: p.DSN, LID: p.LID, UID: p.UID, RID: p.RID,
			Body: Dict{{"ContactID", "2002"}, {"UserName", "carol"}}}
		fc.write(part.Reply().AddInt("mtf", 1))
	}
	t.Run("in parts", func(t *testing.T) {
		t.Parallel()
		c, err := dialWith(t, func(fc *fakeConn, p *Persist) Dict {
			carolFirst(fc, p)
			return Dict{{"DisplayName", "Carol / C"}, {"GroupName", "Work"}, {"Visibility", "1"},
				{"ContactID", "2003"}, {"UserName", "dave"}, {"DisplayName", "dave"}, {"ImageURL", "http://x/d.png"}}
		})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		want := []Contact{
			{UID: 2002, UserName: "carol", DisplayName: "Carol / C", Group: "Work"},
			{UID: 2003, UserName: "dave", DisplayName: "dave", ImageURL: "http://x/d.png"},
		}
		if got := c.Contacts(); !reflect.DeepEqual(got, want) {
			t.Errorf("Contacts got %+v, want %+v", got, want)
		}
	})
	t.Run("uids out of range dropped", func(t *testing.T) {
		t.Parallel()
		c, err := dialWith(t, func(fc *fakeConn, p *Persist) Dict {
			return Dict{{"ContactID", "2147483648"}, {"UserName", "big"}, {"ContactID", "-5"}, {"UserName", "neg"},
				{"ContactID", "2147483647"}, {"UserName", "max"}}
		})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if got := c.Contacts(); len(got) != 1 || got[0].UID != 1<<31-1 || got[0].UserName != "max" {
			t.Errorf("Contacts got %+v, want max alone", got)
		}
		if _, ok := c.Contact(1 << 31); ok {
			t.Error("Contact(1<<31) found an entry")
		}
	})
	t.Run("uids out of range refused by the API", func(t *testing.T) {
		t.Parallel()
		c, err := dialWith(t, func(*fakeConn, *Persist) Dict { return Dict{} })
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		ctx := context.Background()
		for _, uid := range []UID{1 << 31, 0, -1} {
			if err := c.SendIM(ctx, uid, "x"); !errors.Is(err, ErrInvalidUID) {
				t.Errorf("SendIM(%d) got %v, want ErrInvalidUID", uid, err)
			}
			if err := c.AddBuddy(ctx, uid, ""); !errors.Is(err, ErrInvalidUID) {
				t.Errorf("AddBuddy(%d) got %v, want ErrInvalidUID", uid, err)
			}
		}
	})
	t.Run("no body", func(t *testing.T) {
		t.Parallel()
		c, err := dialWith(t, func(fc *fakeConn, p *Persist) Dict {
			fc.write(NewInt("persistr", 0).AddInt("cmd", p.Cmd|CmdReply).AddInt("dsn", p.DSN).
				AddInt("uid", int(p.UID)).AddInt("lid", p.LID).AddInt("rid", p.RID))
			return nil
		})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if got := c.Contacts(); len(got) != 0 {
			t.Errorf("Contacts got %+v, want none", got)
		}
	})
	t.Run("another kind under its rid", func(t *testing.T) {
		// Alerts that come with the list's rid are alerts all the same.
		t.Parallel()
		c, err := dialWith(t, func(fc *fakeConn, p *Persist) Dict {
			fc.write((&Persist{Cmd: 257, DSN: 7, LID: 18, UID: p.UID, RID: p.RID, Body: Dict{{"Mail", "On"}}}).Reply())
			return Dict{{"ContactID", "2002"}, {"UserName", "carol"}}
		})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if ev := nextEvent(t, c); !reflect.DeepEqual(ev, AlertEvent{Alerts: []string{"Mail"}}) {
			t.Errorf("event got %#v, want the alert", ev)
		}
		if got := c.Contacts(); len(got) != 1 || got[0].UserName != "carol" {
			t.Errorf("Contacts got %+v, want carol", got)
		}
	})
	t.Run("error reply after a part", func(t *testing.T) {
		t.Parallel()
		_, err := dialWith(t, func(fc *fakeConn, p *Persist) Dict {
			carolFirst(fc, p)
			fc.reply(p, p.Cmd|CmdReply|CmdError, Dict{{"ErrorMessage", "list cut short"}})
			return nil
		})
		var pe *PersistError
		if !errors.As(err, &pe) || pe.Message != "list cut short" {
			t.Errorf("Dial got %v, want a *PersistError with the server's message", err)
		}
	})
	t.Run("error part before the last", func(t *testing.T) {
		// A part with the error bit fails the reply, whatever the parts
		// after it say.
		t.Parallel()
		_, err := dialWith(t, func(fc *fakeConn, p *Persist) Dict {
			carolFirst(fc, p)
			part := &Persist{Cmd: p.Cmd | CmdReply | CmdError, DSN: p.DSN, LID: p.LID, UID: p.UID, RID: p.RID,
				Body: Dict{{"ErrorMessage", "list cut short"}}}
			fc.write(part.Reply().AddInt("mtf", 1))
			return Dict{{"ContactID", "2003"}, {"UserName", "dave"}}
		})
		var pe *PersistError
		if !errors.As(err, &pe) || pe.Message != "list cut short" {
			t.Errorf("Dial got %v, want a *PersistError with the server's message", err)
		}
	})
	t.Run("error reply", func(t *testing.T) {
		t.Parallel()
		_, err := dialWith(t, func(fc *fakeConn, p *Persist) Dict {
			fc.reply(p, p.Cmd|CmdReply|CmdError, Dict{{"ErrorMessage", "list unavailable"}})
			return nil
		})
		var pe *PersistError
		if !errors.As(err, &pe) || pe.Message != "list unavailable" {
			t.Errorf("Dial got %v, want a *PersistError with the server's message", err)
		}
	})
}

// TestContactEntrySize: an entry of the table is 64 bytes, so a list of 100
// takes 6,400 bytes, in the allocator's 6,784-byte class rather than the
// 8,192 of 72-byte entries.
func TestContactEntrySize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are a 64-bit platform's")
	}
	if got := unsafe.Sizeof(contactEntry{}); got != 64 {
		t.Errorf("contactEntry: got %d bytes, want 64", got)
	}
}

// TestWithProfileCopies: a contact keeps copies of the headline and
// picture a profile gave it, not shares of the profile's reply.
func TestWithProfileCopies(t *testing.T) {
	reply := "headline text" + strings.Repeat("x", 1000) + "http://x/pic.png"
	p := Profile{Headline: reply[:13], ImageURL: reply[len(reply)-16:]}
	var c Contact
	if !c.withProfile(p) || c.Headline != "headline text" || c.ImageURL != "http://x/pic.png" {
		t.Fatalf("withProfile got %+v", c)
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(reply)))
	for name, v := range map[string]string{"headline": c.Headline, "picture": c.ImageURL} {
		if at := uintptr(unsafe.Pointer(unsafe.StringData(v))); at >= start && at < start+uintptr(len(reply)) {
			t.Errorf("%s %q shares the reply's memory", name, v)
		}
	}
}

// TestContactFromWire: a contact-list record as eachRecord gives it (values
// still escaped) becomes the contact contactOf makes of the parsed record,
// and, once its group and image address are interned, without allocating:
// neither the interned values nor a name without escapes is unescaped into
// a copy, nor the uid formatted to compare with the user name.
func TestContactFromWire(t *testing.T) {
	wire := "ContactID=4242\x1cGroupName=IM Friends\x1cImageURL=http:/1/1img.test/1a/2b.png\x1cUserName=joe/1x\x1cDisplayName=Joe\x1cNickName=j/2\x1cHeadline=/1hi\x1cVisibility=2"
	var got Contact
	eachRecord([]string{wire}, "ContactID", func(rec Dict) { got = contactFrom(rec, true) })
	parsed, err := ParseDict(wire)
	if err != nil {
		t.Fatal(err)
	}
	want := contactOf(parsed)
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got.ImageURL != `http://img.test/a\b.png` || got.UserName != "joe/x" || got.NickName != `j\` || got.Headline != "/hi" || !got.Blocked {
		t.Fatalf("unescaped: got %+v", got)
	}
	plain := "ContactID=4243\x1cGroupName=IM Friends\x1cImageURL=http:/1/1img.test/1a/2b.png\x1cUserName=4243\x1cDisplayName=Ann\x1cVisibility=1"
	var rec Dict
	eachRecord([]string{plain}, "ContactID", func(r Dict) { rec = append(Dict(nil), r...) })
	contactFrom(rec, true) // interns the group and the address
	var c Contact
	if n := testing.AllocsPerRun(100, func() { c = contactFrom(rec, true) }); n != 0 {
		t.Errorf("contactFrom: got %.1f allocations, want none", n)
	}
	if c.UserName != "" || c.DisplayName != "Ann" || c.ImageURL != `http://img.test/a\b.png` || c.Group != "IM Friends" || c.Blocked {
		t.Errorf("got %+v", c)
	}
}

// TestEarlyPresenceIsKeptInOrder: the contact table takes each contact's
// last presence received before it was built; a stranger's last presence
// stays known.
func TestEarlyPresenceIsKeptInOrder(t *testing.T) {
	cfg := ClientConfig{Notify: func() {}}
	cfg.setDefaults()
	c := newClient(cfg, nil)
	for _, m := range []*Message{
		presenceMsg(7, StatusOnline, "first"),
		presenceMsg(4242, StatusIdle, "afk"), // not a contact
		presenceMsg(3, StatusOnline, ""),
		presenceMsg(7, StatusAway, "lunch"),
		presenceMsg(4242, StatusOnline, "back"),
		presenceMsg(3, StatusIdle, "zzz"),
	} {
		c.onBM(m)
	}
	c.TakeEvents(nil)
	contacts := []Contact{{UID: 9}, {UID: 7}, {UID: 3}}
	c.mu.Lock()
	c.takeEarly(contacts)
	c.mu.Unlock()
	for _, tc := range []struct {
		i      int
		status Status
		text   string
	}{{0, StatusOffline, ""}, {1, StatusAway, "lunch"}, {2, StatusIdle, "zzz"}} {
		if got := contacts[tc.i]; got.Status != tc.status || got.StatusText != tc.text {
			t.Errorf("contact %v got %v %q, want %v %q", got.UID, got.Status, got.StatusText, tc.status, tc.text)
		}
	}
	if st, text, ok := c.PresenceOf(4242); st != StatusOnline || text != "back" || !ok {
		t.Errorf("stranger after the list: PresenceOf(4242) got %v %q %v, want online \"back\" true", st, text, ok)
	}
	if len(c.presence) != 1 {
		t.Errorf("after the list: %d uids kept outside the table, want 1 (the stranger)", len(c.presence))
	}
}

// TestEarlyPresenceCostsNoMoreThanLate: a login's burst of presence, which
// comes before the contact table is built, costs no more memory than the
// same presence once the table is built (where each goes into its entry).
// Each presence is taken as an event at once, so the event queue keeps
// its array in both.
func TestEarlyPresenceCostsNoMoreThanLate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops some of what sync.Pool is given")
	}
	const n = 100
	cfg := ClientConfig{Notify: func() {}}
	cfg.setDefaults()
	msgs := make([]*Message, n)
	contacts := make([]Contact, n)
	for i := range n {
		msgs[i] = presenceMsg(UID(1000+i), StatusOnline, "")
		contacts[i] = Contact{UID: UID(1000 + i)}
	}
	list := slices.Clone(contacts)
	burst := func(c *Client, take bool) {
		var buf []Event
		for _, m := range msgs {
			c.onBM(m)
			c.flush() // as the reader does before it waits
			buf = c.TakeEvents(buf[:0])
		}
		if take {
			c.mu.Lock()
			c.takeEarly(list)
			c.mu.Unlock()
		}
	}
	bytesOf := func(listed bool) uint64 {
		return allocs.LeastBytes(5, func() func() {
			c := newClient(cfg, nil)
			burst(c, true) // warms the pools
			if listed {
				c.mu.Lock()
				c.contacts = make([]contactEntry, n)
				for i, ct := range contacts {
					c.contacts[i] = entryOf(ct)
				}
				c.mu.Unlock()
				burst(c, false) // warms the event queue
			} else {
				c = newClient(cfg, nil) // a fresh login
			}
			return func() { burst(c, !listed) }
		})
	}
	late, early := bytesOf(true), bytesOf(false)
	// Room for the table's lookups, not for a map or list per uid.
	if early > late+late/4 {
		t.Errorf("%d presences before the list cost %d bytes, after it %d: want at most 1.25×", n, early, late)
	}
}

// TestEarlyPresenceStaysSmall: presence that keeps coming before the
// contact table is built (a contact flapping during a slow login, a
// server repeating itself) costs about one entry per uid, not one per
// message, and the last of each still wins.
func TestEarlyPresenceStaysSmall(t *testing.T) {
	cfg := ClientConfig{Notify: func() {}}
	cfg.setDefaults()
	c := newClient(cfg, nil)
	const rounds = 5000
	uids := []UID{11, 22, 33, 4242}
	for i := range rounds {
		for _, uid := range uids {
			st := StatusOnline
			if i%2 == 1 {
				st = StatusAway
			}
			c.onBM(presenceMsg(uid, st, fmt.Sprintf("round %d", i)))
		}
		c.TakeEvents(nil)
	}
	c.mu.Lock()
	held := len(*c.early)
	c.mu.Unlock()
	if held > 2*earlyCompactMin {
		t.Errorf("%d presences of %d uids before the list: %d kept, want at most %d", rounds*len(uids), len(uids), held, 2*earlyCompactMin)
	}
	last := fmt.Sprintf("round %d", rounds-1)
	contacts := []Contact{{UID: 33}, {UID: 11}, {UID: 22}}
	c.mu.Lock()
	c.takeEarly(contacts)
	c.mu.Unlock()
	for _, ct := range contacts {
		if ct.Status != StatusAway || ct.StatusText != last {
			t.Errorf("contact %v got %v %q, want away %q", ct.UID, ct.Status, ct.StatusText, last)
		}
	}
	if st, text, ok := c.PresenceOf(4242); st != StatusAway || text != last || !ok {
		t.Errorf("stranger: PresenceOf(4242) got %v %q %v, want away %q true", st, text, ok, last)
	}
}

// TestContactAvatarUrl: a contact record without ImageURL gives its avatar
// in AvatarUrl, spelt so by the 2007 server's contact records (capture n
// 80 and n 81) and by msimd's; the spec's "AvatarURL" is read too.
func TestContactAvatarUrl(t *testing.T) {
	for _, key := range []string{"AvatarUrl", "AvatarURL"} {
		wire := "ContactID=6221\x1cContactID=6221\x1cHeadline=:-)\x1cPosition=1\x1cGroupName=IM Friends\x1cVisibility=1\x1c" +
			key + "=http:/1/1img.test/1tom.jpg\x1cShowAvatar=True\x1cIMName=\x1cNickName=\x1cNameSelect=0"
		d, err := ParseDict(wire)
		if err != nil {
			t.Fatal(err)
		}
		recs := d.Records("ContactID")
		if len(recs) != 1 {
			t.Fatalf("%s: %d records, want 1", key, len(recs))
		}
		if got := contactOf(recs[0]).ImageURL; got != "http://img.test/tom.jpg" {
			t.Errorf("%s: contactOf's ImageURL = %q, want the avatar's address", key, got)
		}
		eachRecord([]string{wire}, "ContactID", func(rec Dict) {
			if got := contactFrom(rec, true).ImageURL; got != "http://img.test/tom.jpg" {
				t.Errorf("%s: contactFrom's ImageURL = %q, want the avatar's address", key, got)
			}
		})
	}
}
