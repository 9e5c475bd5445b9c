package server

import (
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// plainStore hides a store's contactAccountViewer: the contact list is built
// from one Account call per contact.
type plainStore struct{ Store }

// fillContactList makes the same accounts and list in srv's store: alice
// lists a user with a profile, one without a user name, and a uid with no
// account.
func fillContactList(t *testing.T, srv *Server) {
	t.Helper()
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	alice, _ := srv.store.AccountByEmail("alice@example.com")
	bob := addAccount(t, srv, "bob@example.com", "Secret1", "bob")
	anon := addAccount(t, srv, "anon@example.com", "Secret1", "")
	err := srv.store.UpdateAccount(bob, func(a *Account) error {
		a.DisplayName = "Bob / B\\ob"
		a.Profile = msim.Dict{{Key: "Headline", Value: "out=and\x1cabout"}, {Key: "ImageURL", Value: "http://img.example/b.png"}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []Contact{
		{UID: bob, GroupName: "IM Friends", Position: 1, Visibility: 1, NickName: "bobby"},
		{UID: anon, GroupName: "Other", Position: 2, Visibility: 2, NameSelect: 1},
		{UID: 9999999, GroupName: "IM Friends", Position: 3, Visibility: 1},
	} {
		if err := srv.store.PutContact(alice.UID, c); err != nil {
			t.Fatalf("contact %d: %v", i, err)
		}
	}
}

// withAndWithout runs f, for each engine, on a store of its own (i = 0)
// and on one that hides its optional methods (i = 1, plainStore), each
// served with fillContactList's accounts and alice logged in.
func withAndWithout(t *testing.T, f func(t *testing.T, i int, st Store, srv *Server, alice *client)) {
	for _, e := range storeEngines() {
		t.Run(e.name, func(t *testing.T) {
			for i, wrap := range []func(Store) Store{
				func(st Store) Store { return st },
				func(st Store) Store { return plainStore{st} },
			} {
				st, _ := e.open(t)
				st = wrap(st)
				srv, addr := startServer(t, Config{}, st)
				fillContactList(t, srv)
				f(t, i, st, srv, login(t, addr, "alice@example.com", "Secret1"))
			}
		})
	}
}

// TestContactListFromViewerSameBytes: the contact list each store shows at
// once (the memory store under one lock, the SQL stores with one query) is
// the reply the per-contact reads give.
func TestContactListFromViewerSameBytes(t *testing.T) {
	replies := map[string][]string{}
	withAndWithout(t, func(t *testing.T, i int, st Store, _ *Server, alice *client) {
		if _, ok := st.(contactAccountViewer); ok != (i == 0) {
			t.Fatalf("store %d: contactAccountViewer %v", i, ok)
		}
		replies[t.Name()] = append(replies[t.Name()], alice.persist(msim.CmdGet, msim.PersistContactList, nil).Body.Encode())
	})
	if len(replies) == 0 {
		t.Fatal("no store ran")
	}
	for name, r := range replies {
		if len(r) != 2 {
			continue // stopped early; the subtest says why
		}
		if r[0] != r[1] {
			t.Errorf("%s: contact list: got %q, want %q", name, r[0], r[1])
		}
		if !strings.Contains(r[0], "bobby") || !strings.Contains(r[0], "Bob") {
			t.Errorf("%s: contact list %q lacks bob's record", name, r[0])
		}
	}
}

// TestProfileCountsFriends: a profile's TotalFriends is the length of the
// user's contact list, counted by each store (or from the list itself).
func TestProfileCountsFriends(t *testing.T) {
	withAndWithout(t, func(t *testing.T, i int, st Store, srv *Server, alice *client) {
		if _, ok := st.(contactCounter); ok != (i == 0) {
			t.Fatalf("store %d: contactCounter %v", i, ok)
		}
		own := alice.persist(msim.CmdGet, msim.PersistOwnProfile, nil).Body
		bob, _ := srv.store.AccountByEmail("bob@example.com")
		other := alice.persist(msim.CmdGet, msim.PersistProfile, msim.Dict{}.SetInt("UserID", int(bob.UID))).Body
		for _, c := range []struct {
			name string
			d    msim.Dict
			want string
		}{{"alice", own, "3"}, {"bob", other, "0"}} {
			if got := c.d.Str("TotalFriends"); got != c.want {
				t.Errorf("store %d: %s's TotalFriends %q, want %s", i, c.name, got, c.want)
			}
		}
	})
}

// TestPresenceMessageFollowsChanges: a session's presence message is built
// once and shared, yet every status change reaches both the watchers online
// (fan-out) and those logging in later (login burst).
func TestPresenceMessageFollowsChanges(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	names := []string{"alice", "bob", "carol", "dave"}
	uids := map[string]msim.UID{}
	for _, n := range names {
		uids[n] = addAccount(t, srv, n+"@example.com", "Secret1", n)
	}
	for _, n := range names[1:] {
		if err := srv.store.PutContact(uids[n], Contact{UID: uids["alice"], GroupName: "IM Friends", Visibility: 1}); err != nil {
			t.Fatal(err)
		}
	}
	alice := login(t, addr, "alice@example.com", "Secret1")
	alice.status(msim.StatusOnline, "first")
	bob := login(t, addr, "bob@example.com", "Secret1")
	presenceText := func(c *client, s msim.Status) string {
		t.Helper()
		m := c.expect("alice's presence", isPresence(uids["alice"], s))
		l, _ := m.List("msg")
		p, _ := msim.ParsePresence(l)
		return p.Text
	}
	if got := presenceText(bob, msim.StatusOnline); got != "first" {
		t.Errorf("bob's login burst: got %q, want first", got)
	}
	carol := login(t, addr, "carol@example.com", "Secret1")
	if got := presenceText(carol, msim.StatusOnline); got != "first" {
		t.Errorf("carol's login burst: got %q, want first", got)
	}
	alice.status(msim.StatusAway, "second")
	for _, c := range []*client{bob, carol} {
		if got := presenceText(c, msim.StatusAway); got != "second" {
			t.Errorf("fan-out to %s: got %q, want second", c.nick, got)
		}
	}
	dave := login(t, addr, "dave@example.com", "Secret1")
	if got := presenceText(dave, msim.StatusAway); got != "second" {
		t.Errorf("dave's login burst after the change: got %q, want second", got)
	}
}

// TestMemStoreContactList: the memory store keeps each list ordered as it
// changes (puts in any order, replacements, deletions of any entry), and
// hands out copies.
func TestMemStoreContactList(t *testing.T) {
	s := NewMemStore()
	owner := &Account{Email: "o@example.com"}
	if err := s.CreateAccount(owner); err != nil {
		t.Fatal(err)
	}
	want := map[msim.UID]Contact{}
	for i, u := range []msim.UID{50, 10, 40, 20, 30, 10, 60, 5} {
		c := Contact{UID: u, Position: i}
		want[u] = c
		if err := s.PutContact(owner.UID, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []msim.UID{5, 30, 60, 99} {
		delete(want, u)
		if err := s.DeleteContact(owner.UID, u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Contacts(owner.UID)
	if err != nil {
		t.Fatal(err)
	}
	wantUIDs := []msim.UID{10, 20, 40, 50}
	if len(got) != len(wantUIDs) {
		t.Fatalf("got %+v, want uids %v", got, wantUIDs)
	}
	for i, c := range got {
		if c != want[wantUIDs[i]] {
			t.Errorf("entry %d: got %+v, want %+v", i, c, want[wantUIDs[i]])
		}
	}
	got[0].GroupName = "changed"
	if again, _ := s.Contacts(owner.UID); again[0].GroupName != "" {
		t.Errorf("the store's entry changed with the copy: got %q", again[0].GroupName)
	}
	if none, err := s.Contacts(12345); err != nil || none == nil || len(none) != 0 {
		t.Errorf("contacts of nobody: got %#v, %v; want an empty list", none, err)
	}
}
