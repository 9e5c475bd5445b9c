package channel_test

import (
	"context"
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
