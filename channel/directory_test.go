package channel_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
)

// fakeNetwork is the account API of an MSIM server: like the embedded one,
// it keeps only msim.HashPassword of a password (its first 10 characters,
// case-insensitively).
type fakeNetwork struct {
	mu      sync.Mutex
	hash    map[string]msim.PasswordHash // e-mail → hash
	names   map[string]string            // user name → e-mail
	retired []string
	uid     msim.UID
}

var (
	errExists    = errors.New("fake: e-mail taken")
	errNameTaken = errors.New("fake: user name taken")
	errNoAccount = errors.New("fake: no such account")
)

func newFakeNetwork() *fakeNetwork {
	n := &fakeNetwork{hash: map[string]msim.PasswordHash{}, names: map[string]string{}, uid: 1000}
	n.hash["tom@msimircd.invalid"] = msim.HashPassword("unknowable")
	n.names["tom"] = "tom@msimircd.invalid"
	return n
}

func (n *fakeNetwork) CreateAccount(email, password, name string) (msim.UID, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	email = strings.ToLower(email)
	if _, ok := n.hash[email]; ok {
		return 0, errExists
	}
	if _, ok := n.names[strings.ToLower(name)]; ok {
		return 0, errNameTaken
	}
	n.hash[email] = msim.HashPassword(password)
	n.names[strings.ToLower(name)] = email
	n.uid++
	return n.uid, nil
}

func (n *fakeNetwork) CheckPassword(email, password string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hash[strings.ToLower(email)]
	if !ok {
		return errNoAccount
	}
	if h != msim.HashPassword(password) {
		return errors.New("fake: wrong password")
	}
	return nil
}

func (n *fakeNetwork) UserNameOwner(name string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.names[strings.ToLower(name)], nil
}

func (n *fakeNetwork) Retire(email string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, e := range n.names {
		if e == strings.ToLower(email) {
			delete(n.names, name)
		}
	}
	n.hash[strings.ToLower(email)] = msim.PasswordHash{}
	n.retired = append(n.retired, email)
	return nil
}

func (n *fakeNetwork) directory() *channel.DemoDirectory {
	return &channel.DemoDirectory{
		CreateAccount: n.CreateAccount,
		Exists:        func(err error) bool { return errors.Is(err, errExists) },
		CheckPassword: n.CheckPassword,
		UserNameOwner: n.UserNameOwner,
		Retire:        n.Retire,
		Key:           []byte("0123456789abcdef0123456789abcdef"),
	}
}

func lookup(d *channel.DemoDirectory, nick, pass string) (channel.User, error) {
	return d.Lookup(ircd.Registration{Nick: nick, User: "u", Pass: pass, Remote: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}})
}

func TestDemoUserName(t *testing.T) {
	for _, tc := range []struct{ nick, want string }{
		{"alice", "alice"},
		{"ALICE", "alice"},
		{"Alice_", "alice_"},
		{"alice2", "alice2"},
		{"_alice", "_alice"},
		{"a-b", "a-b"},
		{"[x]", ".ax.b"},
		{"{X}", ".ax.b"}, // rfc1459: [] and {} are one nick
		{"a|b^c`", "a.cb.dc.e"},
		{"abcdefghijklmnopqrstuvwxy", "abcdefghijklmnopqrstuvwxy"},
	} {
		got, err := channel.DemoUserName(tc.nick)
		if err != nil || got != tc.want {
			t.Errorf("DemoUserName(%q): got %q, %v; want %q", tc.nick, got, err, tc.want)
		}
	}
	for _, nick := range []string{"abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwx|", "", "1abc", "a b", "a.b"} {
		if got, err := channel.DemoUserName(nick); err == nil {
			t.Errorf("DemoUserName(%q): got %q, want an error", nick, got)
		}
	}
	// Nicks that are not one nick to IRC never share a user name.
	seen := map[string]string{}
	chars := "aA_-[]{}|\\^`~1"
	for _, a := range chars {
		for _, b := range chars {
			nick := "x" + string(a) + string(b)
			name, err := channel.DemoUserName(nick)
			if err != nil {
				continue
			}
			key := ircd.Nick(nick).Key()
			if other, ok := seen[name]; ok && other != key {
				t.Errorf("nicks %q and %q share the user name %q", other, key, name)
			}
			seen[name] = key
		}
	}
}

// TestDemoNicksAreDistinctAccounts: alice, Alice_ and alice2 are three
// accounts; ALICE is alice's, and only with alice's password.
func TestDemoNicksAreDistinctAccounts(t *testing.T) {
	d := newFakeNetwork().directory()
	emails := map[string]string{}
	for _, nick := range []string{"alice", "Alice_", "alice2"} {
		u, err := lookup(d, nick, "pw-"+nick)
		if err != nil {
			t.Fatalf("%s: %v", nick, err)
		}
		if other, ok := emails[u.Accounts[0].Email]; ok {
			t.Errorf("%s got the account of %s: %s", nick, other, u.Accounts[0].Email)
		}
		emails[u.Accounts[0].Email] = nick
	}
	u, err := lookup(d, "ALICE", "pw-alice")
	if err != nil || emails[u.Accounts[0].Email] != "alice" {
		t.Errorf("ALICE with alice's password: got %+v, %v; want alice's account", u, err)
	}
	if _, err := lookup(d, "ALICE", "pw-ALICE"); !errors.Is(err, channel.ErrAuth) {
		t.Errorf("ALICE with another password: got %v, want ErrAuth", err)
	}
}

// TestDemoPasswordCountsInFull: MSIM counts 10 characters of a password,
// case-insensitively; the gateway counts all of the IRC password, and the
// MSIM password is not the IRC password.
func TestDemoPasswordCountsInFull(t *testing.T) {
	n := newFakeNetwork()
	d := n.directory()
	const pw = "Correct-Horse-Battery"
	u, err := lookup(d, "bob", pw)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Accounts[0].Password; got == pw || len(got) != 10 {
		t.Errorf("MSIM password %q: want 10 characters, not the IRC password", got)
	}
	for _, tc := range []struct {
		pass string
		ok   bool
	}{
		{pw, true},
		{"Correct-Horse-Staple", false}, // same first 10 characters
		{strings.ToLower(pw), false},
		{pw + "!", false},
		{"", false},
	} {
		u2, err := lookup(d, "bob", tc.pass)
		if got := err == nil; got != tc.ok {
			t.Errorf("password %q: got err %v, want success %v", tc.pass, err, tc.ok)
		}
		if err == nil && u2.Accounts[0] != u.Accounts[0] {
			t.Errorf("password %q: got account %+v, want %+v", tc.pass, u2.Accounts[0], u.Accounts[0])
		}
	}
	// The same key (as kept in the key file) derives the same password
	// after a restart; another key does not.
	d2 := n.directory()
	if u2, err := lookup(d2, "bob", pw); err != nil || u2.Accounts[0].Password != u.Accounts[0].Password {
		t.Errorf("same key: got %+v, %v", u2, err)
	}
	d3 := n.directory()
	d3.Key = []byte("another key, another password!!!")
	if _, err := lookup(d3, "bob", pw); !errors.Is(err, channel.ErrAuth) {
		t.Errorf("another key: got %v, want ErrAuth", err)
	}
}

// TestDemoEphemeralAccounts: a nick without a password gets an account
// nobody else reaches while it is in use, and that is retired when the
// bridge forgets the user: the next client with the nick starts afresh.
func TestDemoEphemeralAccounts(t *testing.T) {
	n := newFakeNetwork()
	d := n.directory()
	u, err := lookup(d, "carol", "")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Ephemeral || u.Accounts[0].Channel != "&carol" {
		t.Errorf("got %+v, want an ephemeral user with &carol", u)
	}
	for _, pass := range []string{"", "guess"} {
		if _, err := lookup(d, "Carol", pass); !errors.Is(err, channel.ErrAuth) {
			t.Errorf("while in use, password %q: got %v, want ErrAuth", pass, err)
		}
	}
	d.Forget(u)
	if len(n.retired) != 1 || n.retired[0] != u.Accounts[0].Email {
		t.Errorf("retired %v, want %s", n.retired, u.Accounts[0].Email)
	}
	if err := n.CheckPassword(u.Accounts[0].Email, u.Accounts[0].Password); err == nil {
		t.Error("the retired account still takes its password")
	}
	next, err := lookup(d, "carol", "")
	if err != nil {
		t.Fatal(err)
	}
	if next.Name == u.Name || next.Accounts[0].Email == u.Accounts[0].Email || next.Accounts[0].Password == u.Accounts[0].Password {
		t.Errorf("next client: got %+v, want a fresh account (not %+v)", next, u)
	}
	// Once forgotten, a client with a password may claim the nick.
	d.Forget(next)
	if u, err := lookup(d, "carol", "pw"); err != nil || u.Ephemeral {
		t.Errorf("with a password after it was forgotten: got %+v, %v", u, err)
	}
	// Forgetting a user with a password changes nothing.
	u, _ = lookup(d, "carol", "pw")
	d.Forget(u)
	if _, err := lookup(d, "carol", "pw"); err != nil {
		t.Errorf("after Forget of a user with a password: %v", err)
	}
}

// TestDemoStaleEphemeralAccount: an ephemeral account left over by an
// earlier process (it ended before its user left) is retired, not reused.
func TestDemoStaleEphemeralAccount(t *testing.T) {
	n := newFakeNetwork()
	if _, err := n.CreateAccount("dan+old@msimircd.local", "whatever", "dan"); err != nil {
		t.Fatal(err)
	}
	u, err := lookup(n.directory(), "dan", "")
	if err != nil {
		t.Fatal(err)
	}
	if u.Accounts[0].Email == "dan+old@msimircd.local" || len(n.retired) != 1 {
		t.Errorf("got %+v, retired %v; want a fresh account and the old one retired", u, n.retired)
	}
}

// TestDemoSeededAccount: the operator's account is reached by the nick of
// its user name, with its whole password; that is its MSIM password too.
func TestDemoSeededAccount(t *testing.T) {
	n := newFakeNetwork()
	if _, err := n.CreateAccount("carol@example.com", "Carol1-and-more", "carol"); err != nil {
		t.Fatal(err)
	}
	d := n.directory()
	d.Seeded = []channel.Account{{Email: "carol@example.com", Password: "Carol1-and-more"}}
	u, err := lookup(d, "Carol", "Carol1-and-more")
	if err != nil || u.Accounts[0].Email != "carol@example.com" || u.Accounts[0].Password != "Carol1-and-more" || u.Ephemeral {
		t.Errorf("got %+v, %v; want carol@example.com with its password", u, err)
	}
	for _, pass := range []string{"", "carol1-and-more", "Carol1-and-less"} {
		if _, err := lookup(d, "carol", pass); !errors.Is(err, channel.ErrAuth) {
			t.Errorf("password %q: got %v, want ErrAuth", pass, err)
		}
	}
	if err := d.Authenticate("carol", "Carol1-and-more"); err != nil {
		t.Errorf("SASL with the password: %v", err)
	}
}

// TestDemoRefusalsReadTheSame: whether the account exists, is in use or is
// someone else's, the refusal is ErrAuth and nothing more.
func TestDemoRefusalsReadTheSame(t *testing.T) {
	d := newFakeNetwork().directory()
	if _, err := lookup(d, "erin", "right"); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup(d, "frank", ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, nick, pass string }{
		{"wrong password", "erin", "wrong"},
		{"no password", "erin", ""},
		{"in use", "frank", ""},
		{"in use, with a password", "frank", "x"},
		{"Tom's", "tom", "x"},
	} {
		_, err := lookup(d, tc.nick, tc.pass)
		if err != channel.ErrAuth {
			t.Errorf("%s: got %v, want exactly ErrAuth", tc.name, err)
		}
	}
	// SASL: checked when the client authenticates.
	for _, tc := range []struct {
		account, pass string
		want          error
	}{
		{"erin", "right", nil},
		{"erin", "wrong", channel.ErrAuth},
		{"frank", "x", channel.ErrAuth},
		{"newbie", "x", nil}, // made at registration
	} {
		if err := d.Authenticate(tc.account, tc.pass); err != tc.want {
			t.Errorf("Authenticate(%s, %s): got %v, want %v", tc.account, tc.pass, err, tc.want)
		}
	}
	u, err := d.Lookup(ircd.Registration{Nick: "x", Account: "erin", SASLPassword: "right"})
	if err != nil || u.Accounts[0].Email != "erin@msimircd.local" {
		t.Errorf("Lookup after SASL: got %+v, %v", u, err)
	}
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// TestDemoCreationQuota: an address makes at most n accounts per window;
// logging in to an existing account does not count.
func TestDemoCreationQuota(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	log, hook := logtest.NewNullLogger()
	d := newFakeNetwork().directory()
	d.Creations = guard.NewQuota(2, time.Hour, clock)
	d.Log = logrus.NewEntry(log)
	from := func(ip string, nick, pass string) error {
		_, err := d.Lookup(ircd.Registration{Nick: nick, Pass: pass, Remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 1}})
		return err
	}
	steps := []struct {
		ip, nick, pass string
		want           error
	}{
		{"192.0.2.1", "a1", "pw", nil},
		{"192.0.2.1", "a2", "", nil},
		{"192.0.2.1", "a1", "pw", nil}, // an existing account
		{"192.0.2.1", "a3", "pw", channel.ErrCreationQuota},
		{"192.0.2.2", "a3", "pw", nil},
	}
	for i, s := range steps {
		if err := from(s.ip, s.nick, s.pass); err != s.want {
			t.Errorf("step %d (%s from %s): got %v, want %v", i, s.nick, s.ip, err, s.want)
		}
	}
	if n := len(hook.AllEntries()); n != 1 || !strings.Contains(hook.LastEntry().Message, "quota") || hook.LastEntry().Data["key"] != "addr:192.0.2.1" {
		t.Errorf("got %d log lines (last %+v), want one about the quota of addr:192.0.2.1", n, hook.LastEntry())
	}
	clock.now = clock.now.Add(time.Hour)
	if err := from("192.0.2.1", "a4", "pw"); err != nil {
		t.Errorf("an hour later: %v", err)
	}
}
