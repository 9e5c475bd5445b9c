package channel_test

import (
	"context"
	"slices"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// TestNameClashes: of a configuration's users, NameClashes names those
// spelled exactly as a stored user with a password of their own (ann,
// registered); not one that SaveUsers saved before (bob), nor another
// spelling of a registered nick (Cy, cy registered), nor a name the store
// lacks (dee). On every engine.
func TestNameClashes(t *testing.T) {
	engines := map[string]func(*testing.T) store.Store{
		"sqlite":   func(t *testing.T) store.Store { return openStore(t) },
		"postgres": func(t *testing.T) store.Store { return openShared(t, sharedPostgres(t)) },
	}
	for name, open := range engines {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			for _, n := range []string{"ann", "cy"} {
				if err := createUser(st, n, n+"-pw"); err != nil {
					t.Fatal(err)
				}
			}
			if err := channel.SaveUsers(ctx, st, []channel.User{{Name: "bob"}}, channel.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			var users []channel.StaticUser
			for _, n := range []string{"dee", "Cy", "bob", "ann"} {
				users = append(users, channel.StaticUser{Name: n})
			}
			got, err := channel.NameClashes(ctx, st, users)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"ann"}; !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// TestNameClashesOfAnEarlierBuildsSave: builds before the recognisable
// unusable password saved a configuration's user with a password hash
// like any other. Such an entry, whose MSIM accounts are all the
// configuration user's, is that user's own: no clash, so an upgrade starts.
// A registered user of the name with an account of their own, or with
// none, still clashes.
func TestNameClashesOfAnEarlierBuildsSave(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	for _, u := range []struct{ name, email string }{{"old", "Old@Example.com"}, {"ann", "ann@mine.example"}, {"cy", ""}} {
		if err := createUser(st, u.name, "looks-usable"); err != nil {
			t.Fatal(err)
		}
		if u.email != "" {
			if err := st.AddAccount(ctx, u.name, store.Account{Email: u.email, Password: "pw", Channel: "&msim"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	users := []channel.StaticUser{
		{Name: "old", Accounts: []channel.Account{{Email: "old@example.com"}, {Email: "old2@example.com"}}},
		{Name: "ann", Accounts: []channel.Account{{Email: "ann@example.com"}}},
		{Name: "cy", Accounts: []channel.Account{{Email: "cy@example.com"}}},
	}
	got, err := channel.NameClashes(ctx, st, users)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ann", "cy"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q (old's entry, holding only its own account, is the configuration's)", got, want)
	}
}

// TestNameClashesOfAnEarlierBuildsSaveAfterAnAccountLeftTheFile: an
// earlier build saved the [[user]] old with the accounts the file then
// listed (a and b), under a password that looks usable. Its SaveUsers
// never removed an account the file dropped, so once b left old's [[user]]
// the entry still holds it. That entry is still the configuration's own: an
// upgrade must start, not be told old is a registered user to delete.
func TestNameClashesOfAnEarlierBuildsSaveAfterAnAccountLeftTheFile(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	both := []channel.Account{{Email: "a@example.com", Password: "pa"}, {Email: "b@example.com", Password: "pb"}}
	if err := channel.SaveUsers(ctx, st, []channel.User{{Name: "old", Accounts: both}}, channel.SaveOptions{}); err != nil {
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
	if emails, want := storedEmails(t, st, "old"), []string{"a@example.com", "b@example.com"}; !slices.Equal(emails, want) {
		t.Errorf("old's stored accounts: %q, want %q (an earlier build never removed one: the case this test is about)", emails, want)
	}
}

// storedEmails is the e-mails of the MSIM accounts st holds for the user
// name, sorted.
func storedEmails(t *testing.T, st store.Store, name string) []string {
	t.Helper()
	state, err := st.LoadUser(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, a := range state.Accounts {
		emails = append(emails, a.Email)
	}
	slices.Sort(emails)
	return emails
}
