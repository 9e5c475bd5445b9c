package server

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
)

// hostName matches anything shaped like a dotted host name.
var hostName = regexp.MustCompile(`[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+`)

// TestDemoDataNamesNoHost: nothing in the demo data (Tom's account, what he
// says) names an external host or URL, also when an older data file gave
// Tom a picture URL; clients see "no picture" for him.
func TestDemoDataNamesNoHost(t *testing.T) {
	cases := []struct {
		name  string
		store func(t *testing.T) Store
	}{
		{"new", func(*testing.T) Store { return NewMemStore() }},
		{"data file with an old Tom", func(t *testing.T) Store {
			s, err := OpenFileStore(filepath.Join(t.TempDir(), "msim.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			old := &Account{UID: TomUID, Email: "tom@msimircd.invalid", UserName: "tom",
				Profile: msim.Dict{{Key: "ImageURL", Value: "http://myspace-502.vo.llnwd.net/100000/120/152/12502_m.jpg"}}}
			if err := s.CreateAccount(old); err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := startServer(t, Config{Demo: true}, tc.store(t))
			tom, err := srv.store.Account(TomUID)
			if err != nil {
				t.Fatal(err)
			}
			values := []string{tom.Email, tom.UserName, tom.DisplayName, tomGreeting, tomPresence.Text}
			for _, d := range []msim.Dict{tom.Profile, tom.Prefs} {
				for _, p := range d {
					values = append(values, p.Value)
				}
			}
			for _, v := range values {
				if strings.Contains(strings.ToLower(v), "http") {
					t.Errorf("demo value %q holds a URL", v)
				}
				for _, h := range hostName.FindAllString(v, -1) {
					if !strings.HasSuffix(h, ".invalid") { // RFC 2606: never resolves
						t.Errorf("demo value %q names the host %q", v, h)
					}
				}
			}
			addAccount(t, srv, "alice@example.com", "Secret1", "alice")
			alice := login(t, addr, "alice@example.com", "Secret1")
			p := alice.persist(msim.CmdGet, msim.PersistProfile, msim.Dict{{Key: "UserID", Value: TomUID.String()}})
			if u := p.Body.Str("ImageURL"); u != noPic && u != "" {
				t.Errorf("Tom's ImageURL: got %q, want the protocol's no-picture value or none", u)
			}
		})
	}
}

// TestServerInfoOncePerConnection: the server info goes out once, right
// after the challenge, and not again at login.
func TestServerInfoOncePerConnection(t *testing.T) {
	srv, addr := startServer(t, Config{}, NewMemStore())
	addAccount(t, srv, "alice@example.com", "Secret1", "alice")
	c := dial(t, addr) // reads the challenge and the one server info
	if m := c.tryLogin("alice@example.com", "Secret1"); !m.Is("lc") {
		t.Fatalf("login: got %v", m)
	}
	c.sync()
	none(t, c.takeSeen(), "a second server info", isPersistr(msim.PersistServerInfo, -1))
}

// TestPersistWritesBounded: writes of too many fields, too long values,
// too many groups, contacts or privacy entries get a clear error (no echo
// of an oversized body) and change nothing.
func TestPersistWritesBounded(t *testing.T) {
	srv, addr, alice, bob := pair(t, Config{})
	many := make(msim.Dict, 5000)
	for i := range many {
		many[i] = msim.Pair{Key: fmt.Sprintf("k%d", i), Value: "v"}
	}
	long := strings.Repeat("x", maxFieldBytes+1)
	persistCases := []struct {
		name    string
		cmd     int
		kind    msim.DSNLID
		body    msim.Dict
		wantErr string
	}{
		{"thousands of keys", msim.CmdPut, msim.PersistSetPrefs, many, "Too many fields"},
		{"a long preference", msim.CmdPut, msim.PersistSetPrefs, msim.Dict{{Key: "Headline", Value: long}}, "too long"},
		{"a long nick name", msim.CmdPut | msim.CmdAction, msim.PersistSetContact,
			msim.Dict{{Key: "ContactID", Value: bob.uid.String()}, {Key: "NickName", Value: long}}, "too long"},
		{"a long group name", msim.CmdPut | msim.CmdAction, msim.PersistSetGroup, msim.Dict{{Key: "GroupName", Value: long}}, "too long"},
	}
	for _, tc := range persistCases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := srv.store.Account(alice.uid)
			r := alice.persist(tc.cmd, tc.kind, tc.body)
			if !r.IsError() || !strings.Contains(r.ErrorMessage(), tc.wantErr) {
				t.Errorf("got %v, want an error saying %q", r.Body, tc.wantErr)
			}
			if len(r.Body) > maxPersistFields+1 {
				t.Errorf("the error echoes %d fields", len(r.Body))
			}
			after, _ := srv.store.Account(alice.uid)
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Errorf("the account changed:\n%v\n%v", before, after)
			}
		})
	}
	if c, _, _ := srv.contact(alice.uid, bob.uid); c.NickName != "" {
		t.Errorf("bob's nick name: got %d bytes, want none", len(c.NickName))
	}

	t.Run("too many groups", func(t *testing.T) {
		a, _ := srv.store.Account(alice.uid)
		for i := len(a.Groups); i < maxGroups; i++ {
			if r := alice.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetGroup, msim.Dict{{Key: "GroupName", Value: fmt.Sprint("g", i)}}); r.IsError() {
				t.Fatalf("group %d: %v", i, r.Body)
			}
		}
		r := alice.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetGroup, msim.Dict{{Key: "GroupName", Value: "one too many"}})
		if !r.IsError() || !strings.Contains(r.ErrorMessage(), "Too many groups") {
			t.Errorf("group %d: got %v, want an error", maxGroups+1, r.Body)
		}
		if a, _ := srv.store.Account(alice.uid); len(a.Groups) != maxGroups {
			t.Errorf("groups: got %d, want %d", len(a.Groups), maxGroups)
		}
	})

	t.Run("a long profile field", func(t *testing.T) {
		bob.send(msim.New("setinfo", "").AddInt("sesskey", bob.key).AddDict("info", msim.Dict{{Key: "Headline", Value: long}}))
		m := bob.expect("error", isError(msim.ErrCodeParse))
		if text, _ := m.Str("errmsg"); m.Has("fatal") || !strings.Contains(text, "too long") {
			t.Errorf("got %v, want a non-fatal error saying the value is too long", m)
		}
		if b, _ := srv.store.Account(bob.uid); b.Profile.Str("Headline") != "" {
			t.Error("the long headline was stored")
		}
	})

	t.Run("a full contact list", func(t *testing.T) {
		carol := addAccount(t, srv, "carol@example.com", "pw", "carol")
		for i := range maxContacts {
			if err := srv.store.PutContact(carol, Contact{UID: msim.UID(5000000 + i), Visibility: 1}); err != nil {
				t.Fatal(err)
			}
		}
		c := login(t, addr, "carol@example.com", "pw")
		c.addBuddy(bob.uid)
		m := c.expect("error", isError(msim.ErrCodeBadUID))
		if text, _ := m.Str("errmsg"); !strings.Contains(text, "contact list is full") {
			t.Errorf("addbuddy: got %v, want an error saying the list is full", m)
		}
		r := c.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetContact, msim.Dict{{Key: "ContactID", Value: bob.uid.String()}})
		if !r.IsError() || !strings.Contains(r.ErrorMessage(), "contact list is full") {
			t.Errorf("set contact: got %v, want an error", r.Body)
		}
		if _, ok, _ := srv.contact(carol, bob.uid); ok {
			t.Error("bob was listed on a full list")
		}
	})

	t.Run("a long block list", func(t *testing.T) {
		ids := []string{"b+"}
		for i := range maxContacts + 1 {
			ids = append(ids, fmt.Sprint(7000000+i))
		}
		alice.blocklist(strings.Join(ids, "|"))
		m := alice.expect("error", isError(msim.ErrCodeParse))
		if text, _ := m.Str("errmsg"); m.Has("fatal") || !strings.Contains(text, "at most") {
			t.Errorf("got %v, want a non-fatal error naming the limit", m)
		}
		if a, _ := srv.store.Account(alice.uid); len(a.Block) != 0 {
			t.Errorf("block list: got %d entries, want none", len(a.Block))
		}
	})
}

// TestCannotAddSelf: addbuddy and persist 514/0/9 of one's own uid are
// refused, and the list stays as it was.
func TestCannotAddSelf(t *testing.T) {
	srv, _, alice, _ := pair(t, Config{})
	alice.addBuddy(alice.uid)
	m := alice.expect("error", isError(msim.ErrCodeBadUID))
	if text, _ := m.Str("errmsg"); m.Has("fatal") || !strings.Contains(text, "yourself") {
		t.Errorf("addbuddy of oneself: got %v, want a non-fatal error", m)
	}
	r := alice.persist(msim.CmdPut|msim.CmdAction, msim.PersistSetContact, msim.Dict{
		{Key: "ContactID", Value: alice.uid.String()}, {Key: "GroupName", Value: "IM Friends"}, {Key: "Visibility", Value: "1"},
	})
	if !r.IsError() || !strings.Contains(r.ErrorMessage(), "yourself") {
		t.Errorf("persist 514/0/9 of oneself: got %v, want an error", r.Body)
	}
	if _, ok, _ := srv.contact(alice.uid, alice.uid); ok {
		t.Error("alice is on her own list")
	}
	alice.sync()
	none(t, alice.takeSeen(), "bm 4 for oneself", isBM(msim.BMAddNotify, alice.uid))
}
