package channel

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/msimircd/msimircd/internal/allocs"
	"github.com/msimircd/msimircd/msim"
)

// TestContactListAllocations: adding a login's contact list makes no
// allocation per contact in the session (the buddies share the room
// reserveBuddies made, their masks (ident@host) share a few buffers, the
// maps are sized once), and every contact is a buddy with its virtual
// user's ident and host.
func TestContactListAllocations(t *testing.T) {
	const n = 100
	r := newRig(t, nil)
	cl := &fakeMSIM{}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	contacts := make([]msim.Contact, n)
	for i := range contacts {
		name := fmt.Sprintf("friend%03d", i)
		if i%3 == 0 {
			name = fmt.Sprintf("averylongname%03d", i) // too long for an ident: "u" and the uid
		}
		contacts[i] = msim.Contact{UID: msim.UID(1000 + i), UserName: name}
	}
	r.irc.users = make(map[string]bool, 2*n) // the fake's own map is not the session's
	allocs := allocs.Of(func() {
		r.s.reserveBuddies(r.a, contacts)
		for _, c := range contacts {
			r.s.upsertContact(r.a, c)
		}
	})
	if allocs > n/5 { // about ten; before reserveBuddies, more than one per contact
		t.Errorf("%d allocations for %d contacts, want a few for all of them", allocs, n)
	}
	for i, c := range contacts {
		bd := r.a.buddy(c.UID)
		if bd == nil || r.s.buddyByNick(bd.nick) != bd {
			t.Fatalf("contact %d (%s) is not a buddy", i, c.UserName)
		}
		mask := r.a.maskOf(bd.userName, bd.UID())
		want := c.UserName + fmt.Sprintf("@msim.%d", c.UID)
		if i%3 == 0 {
			want = fmt.Sprintf("u%d@msim.%d", c.UID, c.UID)
		}
		if mask != want {
			t.Errorf("contact %d: mask %q, want %q", i, mask, want)
		}
	}
}

// TestStrPack: masks from a pack keep their bytes when the pack moves to
// a new buffer, and each takes what maskSize says.
func TestStrPack(t *testing.T) {
	a := &account{}
	var got []string
	for i := range 200 { // several buffers
		name := fmt.Sprintf("name%d", i)
		if i%2 == 0 {
			name = "_not an ident"
		}
		before := a.strs.b.Len()
		got = append(got, a.maskOf(name, msim.UID(i*7919)))
		if n := a.strs.b.Len(); n > before && n-before != maskSize(name, msim.UID(i*7919)) {
			t.Errorf("mask %d took %d bytes, maskSize says %d", i, n-before, maskSize(name, msim.UID(i*7919)))
		}
	}
	for i, s := range got {
		want := fmt.Sprintf("name%d@msim.%d", i, i*7919)
		if i%2 == 0 {
			want = fmt.Sprintf("u%d@msim.%d", i*7919, i*7919)
		}
		if s != want {
			t.Fatalf("mask %d is %q, want %q", i, s, want)
		}
	}
}

// TestFreshMemoryForgets: a user's memory whose maps were never made
// forgets IMs by id without failing (its maps are made on first use).
func TestFreshMemoryForgets(t *testing.T) {
	m := newUserMemory()
	m.dropHeld("alice@msim.test", -1, -2)
	m.unqueue("alice@msim.test", -3)
	if len(m.held) != 0 || len(m.queued) != 0 {
		t.Fatalf("held %v, queued %v: want none", m.held, m.queued)
	}
}

// TestBuddySize: a buddy is 64 bytes, so a list of 100 takes 6,400 bytes,
// in the allocator's 6,784-byte class rather than the 8,192 of 72-byte
// buddies.
func TestBuddySize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are a 64-bit platform's")
	}
	if got := unsafe.Sizeof(buddy{}); got != 64 {
		t.Errorf("buddy: got %d bytes, want 64", got)
	}
}
