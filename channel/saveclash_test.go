package channel

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/msimircd/msimircd/store"
)

// registeringStore registers the nick name (a password of its own) just
// after its first LoadUser of it found nothing: a register between the
// lookup and the save's CreateUser.
type registeringStore struct {
	store.Store
	name string
	once sync.Once
}

func (s *registeringStore) LoadUser(ctx context.Context, name string) (store.UserState, error) {
	state, err := s.Store.LoadUser(ctx, name)
	if name == s.name && errors.Is(err, store.ErrNotFound) {
		s.once.Do(func() { registerNick(ctx, s.Store, name) })
	}
	return state, err
}

func registerNick(ctx context.Context, st store.Store, name string) {
	hash, err := store.HashPassword("carols-own")
	if err == nil {
		_, err = st.CreateUser(ctx, name, hash)
	}
	if err != nil {
		panic(err)
	}
}

// A save of the configuration's users never takes over a registration of
// the name (register, msimircd user add), even one made after the
// caller's clash check (NameClashes) ran: the reload checks, a register
// of a nick it adds comes, then the save. The registration keeps its
// password, and gets none of the configuration's MSIM accounts.
func TestSaveNeverTakesOverARegistration(t *testing.T) {
	ctx := context.Background()
	carol := User{Name: "carol", Accounts: []Account{{Email: "carol@example.com", Password: "msim-pw"}}}
	for _, tc := range []struct {
		name  string
		store func(st store.Store) store.Store
	}{
		{"registered before the save", func(st store.Store) store.Store {
			registerNick(ctx, st, "carol")
			return st
		}},
		{"registered as the save looked", func(st store.Store) store.Store {
			return &registeringStore{Store: st, name: "carol"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := sqliteStore(t)
			st := tc.store(inner)
			for _, save := range []func() error{
				func() error { return saveUsers(ctx, st, []User{carol}) },
				func() error { return SaveUsers(ctx, st, []User{carol}, SaveOptions{}) },
			} {
				if err := save(); err == nil {
					t.Error("the save took the registered nick carol: want an error")
				}
			}
			su, err := inner.User(ctx, "carol")
			if err != nil {
				t.Fatal(err)
			}
			if err := store.CheckPassword(su.PasswordHash, "carols-own"); err != nil {
				t.Errorf("carol's own password no longer opens her entry: %v", err)
			}
			state, err := inner.LoadUser(ctx, "carol")
			if err != nil {
				t.Fatal(err)
			}
			if len(state.Accounts) != 0 {
				t.Errorf("carol's entry got the configuration's accounts %v", state.Accounts)
			}
		})
	}
}
