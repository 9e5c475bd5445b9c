package msim

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCloseCountsTheIMsItDiscards: with Events, a Close while nobody reads
// the channel discards what does not fit in it once its grace is over.
// Every IM received is then either an event or counted in the
// DisconnectedEvent's DroppedIMs (its sender named in DroppedFrom), and so
// is the client's report of an IM it could not read, as when the backlog
// overflows.
func TestCloseCountsTheIMsItDiscards(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, func(cfg *ClientConfig) {
		cfg.EventQueue = 2
		cfg.closeGrace = time.Millisecond
	})
	const sent = 12
	for i := range sent - 1 {
		fc.write(NewInt("bm", BMIM).AddInt("f", 2001+i%2).Add("msg", "unread"))
	}
	fc.write(NewInt("bm", BMIM).Add("f", "nobody").Add("msg", "unreadable"))
	if _, err := c.LookupUser(context.Background(), "bob"); err != nil { // barrier: the IMs were read
		t.Fatal(err)
	}
	c.Close()
	got, from := 0, map[UID]bool{}
	for {
		ev := nextEvent(t, c)
		if e, ok := ev.(ErrorEvent); ok && e.Unreadable {
			got++
		}
		if f := SenderOf(ev); f != 0 {
			got++
			from[f] = true
		}
		d, ok := ev.(DisconnectedEvent)
		if !ok {
			continue
		}
		if got+d.DroppedIMs != sent {
			t.Errorf("got %d IMs as events and %d counted dropped, want %d in all", got, d.DroppedIMs, sent)
		}
		if d.DroppedIMs > 1 && len(d.DroppedFrom) == 0 {
			t.Errorf("DroppedFrom empty with %d IMs dropped", d.DroppedIMs)
		}
		for _, u := range d.DroppedFrom {
			if u != 2001 && u != 2002 {
				t.Errorf("DroppedFrom names %v, which sent nothing", u)
			}
		}
		if len(slices.Compact(slices.Sorted(slices.Values(d.DroppedFrom)))) != len(d.DroppedFrom) {
			t.Errorf("DroppedFrom %v names a sender twice", d.DroppedFrom)
		}
		return
	}
}

// TestStrangersPresenceBounded: the presence of users not in the contact
// list, which a server may tell at any time, is kept for at most
// maxStrangers of them, however many the server names; the latest is
// kept.
func TestStrangersPresenceBounded(t *testing.T) {
	t.Parallel()
	c, fc := loggedIn(t, func(cfg *ClientConfig) { cfg.closeGrace = time.Millisecond })
	const n = maxStrangers + 100
	var b []byte
	for i := range n {
		b = append(b, Encode(presenceMsg(UID(100000+i), StatusOnline, "hi"))...)
	}
	fc.writeRaw(string(b))
	if _, err := c.LookupUser(context.Background(), "bob"); err != nil { // barrier: the presences were read
		t.Fatal(err)
	}
	c.mu.Lock()
	held := len(c.presence)
	c.mu.Unlock()
	if held > maxStrangers {
		t.Errorf("got the presence of %d strangers kept, want at most %d", held, maxStrangers)
	}
	if st, _, ok := c.PresenceOf(100000 + n - 1); !ok || st != StatusOnline {
		t.Errorf("the latest stranger's presence got %v, %v; want online", st, ok)
	}
	if st, _, ok := c.PresenceOf(2001); !ok || st != StatusAway {
		t.Errorf("a contact's presence got %v, %v; want away", st, ok)
	}
}

// TestRepliesInPartsBoundedTogether: the bound on persist replies in parts
// holds for all the requests under way together, not for each: a login
// looks up every contact its list names without a user name, so a server
// answering each lookup in parts just under the bound would otherwise make
// the client hold the bound once per contact. Past it, the lookups whose
// parts come fail (their contacts stay unnamed) and the login goes on.
func TestRepliesInPartsBoundedTogether(t *testing.T) {
	t.Parallel()
	const (
		limit    = 64 << 10
		contacts = 4
		parts    = 5
	)
	junk := strings.Repeat("x", limit/(parts+1)) // one request's parts stay under the bound
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.replyLimit = limit
	cfg.closeGrace = time.Millisecond
	ch := dialAsync(cfg)
	fc := f.accept()
	fc.override(PersistContactList, func(*fakeConn, *Persist) Dict {
		var d Dict
		for i := range contacts {
			d = append(d, Pair{"ContactID", strconv.Itoa(3001 + i)}, Pair{"Visibility", "1"})
		}
		return d
	})
	var asked []*Persist // serve's
	fc.override(PersistProfile, func(fc *fakeConn, p *Persist) Dict {
		if asked = append(asked, p); len(asked) < contacts {
			return nil
		}
		for range parts {
			for _, q := range asked {
				part := &Persist{Cmd: q.Cmd | CmdReply, DSN: q.DSN, LID: q.LID, UID: q.UID, RID: q.RID, Body: Dict{{"Junk", junk}}}
				fc.write(part.Reply().AddInt("mtf", 1))
			}
		}
		for _, q := range asked {
			uid := q.Body.Str("UserID")
			fc.reply(q, q.Cmd|CmdReply, Dict{{"UserID", uid}, {"UserName", "u" + uid}})
		}
		return nil
	})
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: got %v, want a session", err)
	}
	named := 0
	for i := range contacts {
		if ct, ok := c.Contact(UID(3001 + i)); ok && ct.UserName != "" {
			named++
		}
	}
	if named == contacts {
		t.Errorf("all %d lookups were answered, their parts (%d KiB) held at once; want those past the %d KiB bound failed",
			contacts, contacts*parts*len(junk)>>10, limit>>10)
	}
}

// TestRepliesWaitingBoundedTogether: a reply that has come and waits for
// its request to take it counts against the same bound as parts do. A
// login takes its replies in the order it asked, its own profile first;
// a server answering the others first, at length, cannot make the client
// hold more than the bound meanwhile: the reply past it fails its request
// (here the group list, which a login does without).
func TestRepliesWaitingBoundedTogether(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	junk := strings.Repeat("x", limit*2/5) // two replies fit in the bound, not three
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.replyLimit = limit
	cfg.closeGrace = time.Millisecond
	ch := dialAsync(cfg)
	fc := f.accept()
	defaults := defaultResponders()
	var own *Persist // serve's
	fc.override(PersistOwnProfile, func(_ *fakeConn, p *Persist) Dict {
		own = p // answered last
		return nil
	})
	fc.override(PersistOwnIMInfo, func(fc *fakeConn, p *Persist) Dict {
		return append(defaults[PersistOwnIMInfo](fc, p), Pair{"Junk", junk})
	})
	fc.override(PersistContactList, func(fc *fakeConn, p *Persist) Dict {
		return append(defaults[PersistContactList](fc, p), Pair{"Junk", junk})
	})
	fc.override(PersistGroupList, func(fc *fakeConn, p *Persist) Dict {
		fc.reply(p, p.Cmd|CmdReply, append(defaults[PersistGroupList](fc, p), Pair{"Junk", junk}))
		fc.reply(own, own.Cmd|CmdReply, defaults[PersistOwnProfile](fc, own))
		return nil
	})
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: got %v, want a session", err)
	}
	if _, ok := c.Contact(2002); !ok {
		t.Errorf("the contact list was not loaded")
	}
	if g := c.Groups(); len(g) != 0 {
		t.Errorf("got %d groups: three replies (%d KiB) waited at once; want the one past the %d KiB bound failed",
			len(g), 3*len(junk)>>10, limit>>10)
	}
}

// TestLookupPastTheReplyBoundIsNotNoSuchUser: a lookup whose reply would
// pass the replies' bound fails as such, not as a user who does not
// exist (which a caller choosing a free name would take for free).
func TestLookupPastTheReplyBoundIsNotNoSuchUser(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	f := newFake(t)
	cfg := testConfig(t, f.addr())
	cfg.replyLimit = limit
	ch := dialAsync(cfg)
	fc := f.accept()
	defaults := defaultResponders()
	fc.override(PersistLookup, func(fc *fakeConn, p *Persist) Dict {
		return append(defaults[PersistLookup](fc, p), Pair{"Junk", strings.Repeat("x", 2*limit)})
	})
	fc.login("alice")
	c, err := waitDial(t, ch)
	if err != nil {
		t.Fatalf("Dial: got %v, want a session", err)
	}
	_, err = c.LookupUser(context.Background(), "bob")
	if err == nil || errors.Is(err, ErrNoSuchUser) || !errors.Is(err, ErrRepliesTooLarge) {
		t.Errorf("LookupUser past the bound: got %v, want ErrRepliesTooLarge, not ErrNoSuchUser", err)
	}
	c.mu.Lock()
	held := c.replyBytes
	c.mu.Unlock()
	if held != 0 {
		t.Errorf("%d reply bytes still counted after the lookup ended, want 0", held)
	}
}
