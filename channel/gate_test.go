package channel_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
)

// recordingDirectory accepts everyone and records the passwords it is given.
type recordingDirectory struct {
	authenticated []string // "account:password" per Authenticate
	looked        []ircd.Registration
}

func (d *recordingDirectory) Authenticate(account, password string) error {
	d.authenticated = append(d.authenticated, account+":"+password)
	return nil
}

func (d *recordingDirectory) Lookup(reg ircd.Registration) (channel.User, error) {
	d.looked = append(d.looked, reg)
	return channel.User{Name: reg.Nick}, nil
}

// forgettingDirectory is a recordingDirectory that is also a Forgetter.
type forgettingDirectory struct {
	recordingDirectory
	forgot []string
}

func (d *forgettingDirectory) Forget(u channel.User) { d.forgot = append(d.forgot, u.Name) }

// TestGatePass: PASS must hold the server password, alone or followed by
// ":OWN"; the wrapped directory sees only OWN, and never a refused client.
func TestGatePass(t *testing.T) {
	for _, tc := range []struct {
		name, server, pass string
		ok                 bool
		own                string // the PASS the wrapped directory sees
	}{
		{"server password alone", "secret", "secret", true, ""},
		{"with own password", "secret", "secret:mine", true, "mine"},
		{"own password with ':'", "secret", "secret:a:b", true, "a:b"},
		{"empty own password", "secret", "secret:", true, ""},
		{"wrong server password", "secret", "wrong", false, ""},
		{"wrong server password with own", "secret", "wrong:mine", false, ""},
		{"server password as a prefix", "secret", "secretmine", false, ""},
		{"server password cut short", "secret", "secre", false, ""},
		{"server password in the wrong case", "secret", "SECRET", false, ""},
		{"no PASS", "secret", "", false, ""},
		{"':' in the server password", "se:cret", "se:cret", true, ""},
		{"':' in the server password, with own", "se:cret", "se:cret:mine", true, "mine"},
		{"':' in the server password, only its first part", "se:cret", "se", false, ""},
		{"':' in the server password, first part and own", "se:cret", "se:mine", false, ""},
		{"no server password: PASS passes through", "", "secret:mine", true, "secret:mine"},
		{"no server password, no PASS", "", "", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			next := &recordingDirectory{}
			d := channel.WithServerPassword(tc.server, next)
			u, err := d.Lookup(ircd.Registration{Nick: "dave", Pass: tc.pass})
			if !tc.ok {
				if !errors.Is(err, channel.ErrAuth) {
					t.Errorf("got %v, want ErrAuth", err)
				}
				if len(next.looked) != 0 {
					t.Errorf("the directory saw a refused client: %+v", next.looked)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if u.Name != "dave" {
				t.Errorf("user: got %q, want dave", u.Name)
			}
			if len(next.looked) != 1 || next.looked[0].Pass != tc.own || next.looked[0].Nick != "dave" {
				t.Errorf("the directory saw %+v, want one lookup of dave with PASS %q", next.looked, tc.own)
			}
		})
	}
}

// TestGateSASL: SASL PLAIN's password holds the server password (and OWN);
// the lookup after a SASL login gets the connection's OWN.
func TestGateSASL(t *testing.T) {
	for _, tc := range []struct {
		name, server, password string
		ok                     bool
		own                    string
	}{
		{"server password alone", "secret", "secret", true, ""},
		{"with own password", "secret", "secret:mine", true, "mine"},
		{"':' in the server password, with own", "a:b", "a:b:mine", true, "mine"},
		{"wrong server password", "secret", "secrex:mine", false, ""},
		{"empty password", "secret", "", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			next := &recordingDirectory{}
			d := channel.WithServerPassword(tc.server, next)
			err := d.Authenticate("dave", tc.password)
			if !tc.ok {
				if !errors.Is(err, channel.ErrAuth) {
					t.Errorf("got %v, want ErrAuth", err)
				}
				if len(next.authenticated) != 0 {
					t.Errorf("the directory saw a refused client: %q", next.authenticated)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if want := []string{"dave:" + tc.own}; !slices.Equal(next.authenticated, want) {
				t.Errorf("the directory authenticated %q, want %q", next.authenticated, want)
			}
			// ircd then registers the SASL account without PASS.
			if _, err := d.Lookup(ircd.Registration{Nick: "dave", Account: "dave", SASLPassword: tc.password}); err != nil {
				t.Fatalf("lookup after SASL: got %v, want no error", err)
			}
			if len(next.looked) != 1 || next.looked[0].Account != "dave" || next.looked[0].SASLPassword != tc.own {
				t.Errorf("the directory saw %+v, want one lookup of the SASL account dave with %q", next.looked, tc.own)
			}
		})
	}
}

// TestGateKeepsForgetter: the gate is a Forgetter exactly when the wrapped
// directory is one, and passes Forget on, so ephemeral accounts behind it
// are still retired.
func TestGateKeepsForgetter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server string
		next   channel.Directory
		want   bool
	}{
		{"forgetter behind a password", "secret", &forgettingDirectory{}, true},
		{"forgetter without a password", "", &forgettingDirectory{}, true},
		{"demo directory behind a password", "secret", &channel.DemoDirectory{}, true},
		{"plain directory behind a password", "secret", &recordingDirectory{}, false},
		{"static directory behind a password", "secret", &channel.StaticDirectory{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, ok := channel.WithServerPassword(tc.server, tc.next).(channel.Forgetter)
			if ok != tc.want {
				t.Fatalf("is a Forgetter: got %v, want %v", ok, tc.want)
			}
			fd, isFake := tc.next.(*forgettingDirectory)
			if !ok || !isFake {
				return
			}
			f.Forget(channel.User{Name: "dave", Ephemeral: true})
			if want := []string{"dave"}; !slices.Equal(fd.forgot, want) {
				t.Errorf("forgotten: got %q, want %q", fd.forgot, want)
			}
		})
	}
}

// TestGateWithoutPasswordIsTheDirectory: no server password, no wrapper.
func TestGateWithoutPasswordIsTheDirectory(t *testing.T) {
	next := &recordingDirectory{}
	if got := channel.WithServerPassword("", next); got != channel.Directory(next) {
		t.Errorf("got %T, want the directory itself", got)
	}
}

// TestPassAccount: the account a PASS is counted against for guessing is
// the configured user it names, else the nick: never what comes before a
// ':' otherwise, which may be the server password or part of a password.
func TestPassAccount(t *testing.T) {
	static := channel.NewLiveDirectory([]channel.StaticUser{{Name: "alice", Password: "pw"}}, "")
	for _, tc := range []struct {
		name string
		dir  channel.Directory
		pass string
		want string
	}{
		{"configured user", static, "alice:guess", "alice"},
		{"configured user and client", static, "Alice/phone:guess", "Alice"},
		{"password with ':'", static, "pa:ss", "bob"},
		{"no ':'", static, "guess", "bob"},
		{"server password and own", channel.WithServerPassword("Sesame", &recordingDirectory{}), "Sesame:mine", "bob"},
		{"gate over configured users", channel.WithServerPassword("Sesame", static), "alice:guess", "alice"},
	} {
		b, err := channel.New(channel.Config{MSIMAddr: "127.0.0.1:1", Directory: tc.dir})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.PassAccount(ircd.Registration{Nick: "bob", Pass: tc.pass}); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
