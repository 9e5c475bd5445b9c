package channel

import (
	"fmt"
	"testing"
)

// TestStaticCopyFinds: a directory staticCopy makes finds its users
// through its index as a scan would: whatever the case, the first of two
// with the same name, one only Unicode folding makes equal, and no one
// for an unknown name.
func TestStaticCopyFinds(t *testing.T) {
	users := []StaticUser{{Name: "alice"}, {Name: "Bob", Password: "first"}, {Name: "bob", Password: "second"}, {Name: "Kate"}}
	d := staticCopy(users, "")
	scan := &StaticDirectory{Users: users}
	for _, name := range []string{"alice", "ALICE", "bob", "BOB", "\u212aate", "kate", "carol", ""} {
		got, want := d.Find(name), scan.Find(name)
		if (got == nil) != (want == nil) || (got != nil && (got.Name != want.Name || got.Password != want.Password)) {
			t.Errorf("Find(%q): got %+v, want %+v", name, got, want)
		}
	}
	if u := d.Find("\u212aate"); u == nil || u.Name != "Kate" {
		t.Errorf("Find with a Kelvin sign: got %+v, want Kate", u)
	}
}

// BenchmarkStaticFind: finding a user among many, as each login does.
func BenchmarkStaticFind(b *testing.B) {
	users := make([]StaticUser, 10000)
	for i := range users {
		users[i].Name = fmt.Sprintf("user%05d", i)
	}
	d := staticCopy(users, "")
	i := 0
	for b.Loop() {
		if d.Find(users[i%len(users)].Name) == nil {
			b.Fatal("not found")
		}
		i++
	}
}

// TestStaticFindFoldsAsNicks: a configured user is found under every
// spelling that is the same nick to the server (CASEMAPPING=rfc1459, where
// []\~ are the capitals of {}|^), with an index or without, as a
// registered nick is: "Ali[" and "ali{" are one user, never two.
func TestStaticFindFoldsAsNicks(t *testing.T) {
	users := []StaticUser{{Name: "Ali["}, {Name: "B\\ob~"}}
	for name, d := range map[string]*StaticDirectory{"index": staticCopy(users, ""), "scan": {Users: users}} {
		for _, tc := range []struct{ name, want string }{
			{"ali{", "Ali["}, {"ALI[", "Ali["}, {"b|ob^", "B\\ob~"}, {"B|OB~", "B\\ob~"}, {"ali", ""},
		} {
			got := ""
			if u := d.Find(tc.name); u != nil {
				got = u.Name
			}
			if got != tc.want {
				t.Errorf("%s: find(%q): got %q, want %q", name, tc.name, got, tc.want)
			}
		}
	}
}
