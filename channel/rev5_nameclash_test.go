package channel_test

import (
	"context"
	"slices"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// TestNameClashesOfAnEarlierBuildsSaveAfterAnAccountLeftTheFile: an
// earlier build saved the [[user]] old with the accounts the file then
// listed (a and b), under a password that looks usable. SaveUsers never
// removes an account the file drops, so once b left old's [[user]] the
// entry still holds it. That entry is still the configuration's own: an
// upgrade must start, not be told old is a registered user to delete.
func TestNameClashesOfAnEarlierBuildsSaveAfterAnAccountLeftTheFile(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	both := []channel.Account{{Email: "a@example.com", Password: "pa"}, {Email: "b@example.com", Password: "pb"}}
	if err := channel.SaveUsers(ctx, st, []channel.User{{Name: "old", Accounts: both}}); err != nil {
		t.Fatal(err)
	}
	// An earlier build's password for a configuration's user: a hash like
	// any other (a random key).
	h, err := store.HashPassword("nobody-knows-this")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetPassword(ctx, "old", h); err != nil {
		t.Fatal(err)
	}
	// The file then dropped b (a start of this build saves old with a only;
	// b stays).
	now := []channel.Account{{Email: "a@example.com", Password: "pa"}}
	got, err := channel.NameClashes(ctx, st, []channel.StaticUser{{Name: "old", Accounts: now}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("got clashes %q, want none: old's entry is the configuration's own save, holding an account its [[user]] listed before", got)
	}
	state, err := st.LoadUser(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, a := range state.Accounts {
		emails = append(emails, a.Email)
	}
	slices.Sort(emails)
	t.Logf("old's stored accounts: %q (SaveUsers never removes one)", emails)
}
