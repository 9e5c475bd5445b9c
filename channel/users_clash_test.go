package channel_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// registeredWithTwoAccounts registers alice in st as register does (a
// password of her own, alice-pw) with the MSIM accounts a@x.example and
// b@x.example, and an IM held for her on b; it returns her password hash.
func registeredWithTwoAccounts(t *testing.T, st store.Store) string {
	t.Helper()
	ctx := context.Background()
	if err := createUser(st, "alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"a@x.example", "b@x.example"} {
		if err := st.AddAccount(ctx, "alice", store.Account{Email: e, Password: "msim-" + e, Channel: "&msim"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.HoldIM(ctx, "alice", "b@x.example", store.HeldIM{From: 7, Text: "held for b", Seq: 1, Time: time.Now(), Offline: true}); err != nil {
		t.Fatal(err)
	}
	su, err := st.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	return su.PasswordHash
}

// keepsAlice checks that alice's registration is as she made it: her
// password hash unchanged (alice-pw opens it), b@x.example still hers,
// with its held IM.
func keepsAlice(t *testing.T, st store.Store, hash string) {
	t.Helper()
	ctx := context.Background()
	su, err := st.User(ctx, "alice")
	if err != nil {
		t.Fatalf("alice's entry: %v", err)
	}
	if su.PasswordHash != hash {
		t.Errorf("alice's password hash was replaced (unusable now: %v)", store.UnusablePassword(su.PasswordHash))
	}
	if err := store.CheckPassword(su.PasswordHash, "alice-pw"); err != nil {
		t.Errorf("alice's own password no longer opens her entry: %v", err)
	}
	if emails, want := storedEmails(t, st, "alice"), []string{"a@x.example", "b@x.example"}; !slices.Equal(emails, want) {
		t.Errorf("alice's stored accounts: %q, want %q", emails, want)
	}
	held, err := st.HeldIMs(ctx, "alice", "b@x.example")
	if err != nil {
		t.Errorf("the IMs held on b@x.example: %v", err)
	} else if len(held) != 1 || held[0].Text != "held for b" {
		t.Errorf("the IMs held on b@x.example: %v, want the one held", held)
	}
}

// TestSaveUsersKeepsARegisteredUsersOtherAccount: a registered user
// (register: a password of her own) holding a@x and b@x is not made the
// configuration's by a [[user]] of her name listing only a@x. A start's
// SaveUsers (twice: the next start too) refuses her name or keeps her
// entry as it is: her password, b@x and the IM held on it stay. The
// start's check (NameClashes) agrees with the save: it names her iff the
// save refuses.
func TestSaveUsersKeepsARegisteredUsersOtherAccount(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	hash := registeredWithTwoAccounts(t, st)
	listed := []channel.Account{{Email: "a@x.example", Password: "msim-a@x.example"}}
	clashes, err := channel.NameClashes(ctx, st, []channel.StaticUser{{Name: "alice", Accounts: listed}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err := channel.SaveUsers(ctx, st, []channel.User{{Name: "alice", Accounts: listed}}, channel.SaveOptions{})
		if err != nil && !errors.Is(err, channel.ErrRegistered) {
			t.Fatalf("save %d: %v", i+1, err)
		}
		if refused := err != nil; refused != slices.Contains(clashes, "alice") {
			t.Errorf("save %d: refused %v (%v), but NameClashes named %q: the check and the save disagree", i+1, refused, err, clashes)
		}
		keepsAlice(t, st, hash)
	}
}

// TestReloadKeepsARegisteredUsersOtherAccount: a reload adding a
// [[user]] alice listing a@x, alice being a registered user holding a@x
// and b@x, is refused or keeps her entry: her password, b@x and the IM
// held on it.
func TestReloadKeepsARegisteredUsersOtherAccount(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	hash := registeredWithTwoAccounts(t, st)
	bob := channel.StaticUser{Name: "bob", Password: "bob-irc", Accounts: []channel.Account{{Email: "bob@x.example", Password: "pb"}}}
	if err := channel.SaveUsers(ctx, st, []channel.User{{Name: bob.Name, Accounts: bob.Accounts}}, channel.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	b, err := channel.New(channel.Config{Directory: channel.NewLiveDirectory([]channel.StaticUser{bob}, ""), Store: st, MSIMAddr: "127.0.0.1:1", Log: logrus.NewEntry(l)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Shutdown(ctx) }()
	alice := channel.StaticUser{Name: "alice", Password: "alice-irc", Accounts: []channel.Account{{Email: "a@x.example", Password: "msim-a@x.example"}}}
	if _, err := b.ReloadUsers([]channel.StaticUser{bob, alice}, ""); err != nil && !errors.Is(err, channel.ErrRegistered) {
		t.Fatalf("reload: %v", err)
	}
	keepsAlice(t, st, hash)
}
