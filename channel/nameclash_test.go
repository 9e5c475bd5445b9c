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
			if err := channel.SaveUsers(ctx, st, []channel.User{{Name: "bob"}}); err != nil {
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
