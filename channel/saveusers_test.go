package channel_test

import (
	"context"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// TestConfiguredUserTakesStoredNameForGood: a user of the configuration
// saved under the name of a registered user makes the registration's
// password unusable, so that the registrant cannot identify, once the
// configuration drops the user, to the accounts it saved there.
func TestConfiguredUserTakesStoredNameForGood(t *testing.T) {
	st := openStore(t)
	if err := createUser(st, "alice", "reg-pw"); err != nil {
		t.Fatal(err)
	}
	users := []channel.User{{Name: "alice", Accounts: []channel.Account{{Email: "alice@example.com", Password: "Secret1", AutoConnect: true}}}}
	if err := channel.SaveUsers(context.Background(), st, users); err != nil {
		t.Fatal(err)
	}
	u, err := st.User(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if store.CheckPassword(u.PasswordHash, "reg-pw") == nil {
		t.Error("the registration's password after the configuration saved its user there: got it accepted, want it refused")
	}
}
