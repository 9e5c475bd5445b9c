package server

import (
	"slices"
	"sync/atomic"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// listReads is a store that counts the reads of contact lists.
type listReads struct {
	Store
	n atomic.Int32
}

func (s *listReads) Contacts(owner msim.UID) ([]Contact, error) {
	s.n.Add(1)
	return s.Store.Contacts(owner)
}

// listedUIDs is the ContactIDs of c's contact list, as msimd sends it.
func listedUIDs(t *testing.T, c *client) []string {
	t.Helper()
	var uids []string
	for _, r := range c.persist(msim.CmdGet, msim.PersistContactList, nil).Body.Records("ContactID") {
		uids = append(uids, r.Str("ContactID"))
	}
	return uids
}

// TestLoginListReadOnce: the contact list a login reads is the one the
// client's first request of its list gets, on every engine: one read of
// the list per login, not two. A list the session changes before it asks
// (an added or a removed buddy) is read again, and later requests read it
// anew.
func TestLoginListReadOnce(t *testing.T) {
	for _, e := range storeEngines() {
		t.Run(e.name, func(t *testing.T) {
			base, _ := e.open(t)
			st := &listReads{Store: base}
			srv, addr := startServer(t, Config{}, st)
			alice := addAccount(t, srv, "alice@example.com", "Secret1", "alice")
			bob := addAccount(t, srv, "bob@example.com", "Secret1", "bob")
			carol := addAccount(t, srv, "carol@example.com", "Secret1", "carol")
			if err := srv.store.PutContact(alice, Contact{UID: bob, GroupName: "IM Friends", Position: 1, Visibility: 1}); err != nil {
				t.Fatal(err)
			}
			want := func(uids ...msim.UID) []string {
				var out []string
				for _, u := range uids {
					out = append(out, u.String())
				}
				return out
			}

			st.n.Store(0)
			c := login(t, addr, "alice@example.com", "Secret1")
			if got := listedUIDs(t, c); !slices.Equal(got, want(bob)) {
				t.Errorf("list after login: %v, want %v", got, want(bob))
			}
			if n := st.n.Load(); n != 1 {
				t.Errorf("a login and its list read the list %d times, want 1", n)
			}
			if got := listedUIDs(t, c); !slices.Equal(got, want(bob)) {
				t.Errorf("list asked again: %v, want %v", got, want(bob))
			}
			if n := st.n.Load(); n != 2 {
				t.Errorf("a second request read the list %d times in all, want 2", n)
			}
			c.nc.Close()

			// Changed before the client asks: the list as it is now.
			c = login(t, addr, "alice@example.com", "Secret1")
			c.addBuddy(carol)
			c.sync()
			if got := listedUIDs(t, c); !slices.Equal(got, want(bob, carol)) {
				t.Errorf("list after addbuddy: %v, want %v", got, want(bob, carol))
			}
			c.nc.Close()
			c = login(t, addr, "alice@example.com", "Secret1")
			c.send(msim.New("delbuddy", "").AddInt("sesskey", c.key).AddInt("delprofileid", int(bob)))
			c.sync()
			if got := listedUIDs(t, c); !slices.Equal(got, want(carol)) {
				t.Errorf("list after delbuddy: %v, want %v", got, want(carol))
			}
			c.nc.Close()
			c = login(t, addr, "alice@example.com", "Secret1")
			c.persist(msim.CmdDelete|msim.CmdAction, msim.PersistDeleteContact, msim.Dict{{Key: "ContactID", Value: carol.String()}})
			if got := listedUIDs(t, c); len(got) != 0 {
				t.Errorf("list after deleting carol's entry: %v, want none", got)
			}
			c.nc.Close()
			// An empty list is read once too.
			st.n.Store(0)
			c = login(t, addr, "alice@example.com", "Secret1")
			if got := listedUIDs(t, c); len(got) != 0 {
				t.Errorf("empty list: %v", got)
			}
			if n := st.n.Load(); n != 1 {
				t.Errorf("a login with an empty list and its list read the list %d times, want 1", n)
			}
			c.nc.Close()
			if err := srv.store.PutContact(alice, Contact{UID: bob, GroupName: "IM Friends", Position: 1, Visibility: 1}); err != nil {
				t.Fatal(err)
			}
			c = login(t, addr, "alice@example.com", "Secret1")
			c.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetContact, msim.Dict{{Key: "ContactID", Value: bob.String()}, {Key: "GroupName", Value: "Family"}, {Key: "Visibility", Value: "1"}})
			recs := c.persist(msim.CmdGet, msim.PersistContactList, nil).Body.Records("ContactID")
			if len(recs) != 1 || recs[0].Str("ContactID") != bob.String() || recs[0].Str("GroupName") != "Family" {
				t.Errorf("list after setting bob's entry: %v, want bob in Family", recs)
			}
		})
	}
}
