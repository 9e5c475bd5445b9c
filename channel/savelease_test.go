package channel_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// TestSaveUsersKeepsAUserAnotherInstanceServes: instances of a cluster
// share the store, and their config files change one after the other. An
// instance that starts with a file not naming dave (not yet updated, or
// updated first to remove him) while another instance serves dave, its
// lease on him live and an IM held for him, must not delete his entry
// under that instance: his held IM, MSIM account and password go with it
// while his session runs elsewhere.
func TestSaveUsersKeepsAUserAnotherInstanceServes(t *testing.T) {
	for engine, open := range saveEngines(t) {
		t.Run(engine, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			dave := channel.User{Name: "dave", Accounts: []channel.Account{{Email: "dave@example.com", Password: "Secret-dave", AutoConnect: true}}}
			// Instance gw-1, whose file names dave, saved him and serves him.
			if err := channel.SaveUsers(ctx, st, []channel.User{dave}, channel.SaveOptions{Instance: "gw-1", LeaseTTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.AcquireLease(ctx, "dave", "gw-1", time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := st.HoldIM(ctx, "dave", "dave@example.com", store.HeldIM{From: 7, Text: "held for dave", Seq: 1, Time: time.Now(), Offline: true}); err != nil {
				t.Fatal(err)
			}
			// Instance gw-2 starts with a file that does not name dave.
			if err := channel.SaveUsers(ctx, st, nil, channel.SaveOptions{Instance: "gw-2", LeaseTTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
			state, err := st.LoadUser(ctx, "dave")
			if err != nil {
				t.Fatalf("dave, served by gw-1 under a live lease: LoadUser got %v, want his entry kept", err)
			}
			if len(state.Accounts) != 1 || state.Accounts[0].Held != 1 {
				t.Errorf("dave's accounts: got %+v, want dave@example.com with its held IM", state.Accounts)
			}
		})
	}
}

// TestSaveUsersKeepsAccountsAnotherInstanceServes: as a user another
// instance serves is kept, so are the accounts of a user the starting
// instance's file names but no longer lists, while another instance,
// whose file still lists them, serves that user; once it lets the user
// go, the next start deletes them.
func TestSaveUsersKeepsAccountsAnotherInstanceServes(t *testing.T) {
	for engine, open := range saveEngines(t) {
		t.Run(engine, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			work := channel.Account{Email: "dave-work@example.com", Password: "Secret-work"}
			home := channel.Account{Email: "dave@example.com", Password: "Secret-dave"}
			o1 := channel.SaveOptions{Instance: "gw-1", LeaseTTL: time.Hour}
			o2 := channel.SaveOptions{Instance: "gw-2", LeaseTTL: time.Hour}
			if err := channel.SaveUsers(ctx, st, []channel.User{{Name: "dave", Accounts: []channel.Account{home, work}}}, o1); err != nil {
				t.Fatal(err)
			}
			le, err := st.AcquireLease(ctx, "dave", "gw-1", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			// gw-2 starts with a file that lists dave's home account only.
			next := []channel.User{{Name: "dave", Accounts: []channel.Account{home}}}
			if err := channel.SaveUsers(ctx, st, next, o2); err != nil {
				t.Fatal(err)
			}
			accounts := func() []string { return storedEmails(t, st, "dave") }
			if got := accounts(); !slices.Equal(got, []string{"dave-work@example.com", "dave@example.com"}) {
				t.Errorf("dave served by gw-1: accounts %v, want dave-work@example.com kept", got)
			}
			if _, err := st.ReleaseLease(ctx, le); err != nil {
				t.Fatal(err)
			}
			if err := channel.SaveUsers(ctx, st, next, o2); err != nil {
				t.Fatal(err)
			}
			if got := accounts(); !slices.Equal(got, []string{"dave@example.com"}) {
				t.Errorf("dave let go: accounts %v, want dave-work@example.com deleted", got)
			}
		})
	}
}
