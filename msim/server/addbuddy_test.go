package server

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// contactsFailingStore is a Store whose Contacts fails once armed: left
// is how many more calls succeed first.
type contactsFailingStore struct {
	Store
	armed atomic.Bool
	left  atomic.Int32
}

func (s *contactsFailingStore) Contacts(owner msim.UID) ([]Contact, error) {
	if s.armed.Load() && s.left.Add(-1) < 0 {
		return nil, errStoreDown
	}
	return s.Store.Contacts(owner)
}

// TestAddBuddyStoreErrorWhileCountingList: a store failure as addbuddy
// counts the list (roomForContact) is a server error, as every other
// failure of addbuddy is: not a "no such user" error carrying the
// store's own error text.
func TestAddBuddyStoreErrorWhileCountingList(t *testing.T) {
	st := &contactsFailingStore{Store: NewMemStore()}
	srv, addr := startServer(t, Config{}, st)
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	bUID := addAccount(t, srv, "bob@example.com", "hunter2", "bob")
	alice := login(t, addr, "alice@example.com", "Secret1")
	st.left.Store(1) // contact() reads the list; roomForContact's read fails
	st.armed.Store(true)
	alice.addBuddy(bUID)
	e := alice.expect("addbuddy error", func(m *msim.Message) bool { return m.Is("error") })
	code, _ := e.Int("err")
	text, _ := e.Str("errmsg")
	if code != msim.ErrCodeParse || strings.Contains(text, errStoreDown.Error()) {
		t.Fatalf("got err %d %q, want err %d without the store's error text", code, text, msim.ErrCodeParse)
	}
}
