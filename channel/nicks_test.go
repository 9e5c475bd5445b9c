package channel

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

func TestBaseNick(t *testing.T) {
	for _, tc := range []struct {
		user, display string
		uid           int
		want          string
	}{
		{"tom", "Tom", 6221, "tom"},
		{"", "Tom Anderson", 6221, "Tom_Anderson"},
		{"3656574", "Jeff", 3656574, "Jeff"}, // an all-digit user name means "none set"
		{"", "", 42, "u42"},
		{"", "☃☃", 42, "u42"},
		{"Zoë", "", 1, "Zoe"},
		{"9lives", "", 1, "_9lives"},
		{"-dash", "", 1, "_-dash"},
		{"a.b@c", "", 1, "a_b_c"},
		{"under__score", "", 1, "under_score"},
		{strings.Repeat("x", 40), "", 1, strings.Repeat("x", NickLen)},
		{"[weird]{nick}|^`", "", 1, "[weird]{nick}|^`"},
	} {
		if got := baseNick(tc.user, tc.display, tc.uid); got != tc.want {
			t.Errorf("baseNick(%q, %q, %d): got %q, want %q", tc.user, tc.display, tc.uid, got, tc.want)
		}
	}
}

func TestUniqueNick(t *testing.T) {
	taken := map[string]bool{nickKey("tom"): true, nickKey("tom_2"): true, nickKey(strings.Repeat("a", NickLen)): true}
	isTaken := func(k string) bool { return taken[k] }
	if got := uniqueNick("Tom", isTaken); got != "Tom_3" {
		t.Errorf("got %q, want Tom_3", got)
	}
	if got := uniqueNick("bob", isTaken); got != "bob" {
		t.Errorf("got %q, want bob", got)
	}
	long := strings.Repeat("a", NickLen)
	if got := uniqueNick(long, isTaken); len(got) > NickLen || !strings.HasSuffix(got, "_2") {
		t.Errorf("got %q, want a %d-byte nick ending in _2", got, NickLen)
	}
	// rfc1459 casemapping: [ ] \ ~ fold to { } | ^.
	if nickKey("[A]\\~") != nickKey("{a}|^") {
		t.Error("nickKey does not fold rfc1459 specials")
	}
}

func TestAddressed(t *testing.T) {
	for _, tc := range []struct {
		in, nick, rest string
		ok             bool
	}{
		{"bob: hi there", "bob", "hi there", true},
		{"bob, hi", "bob", "hi", true},
		{"bob:hi", "bob", "hi", true},
		{"help add", "", "", false},
		{"bob:", "", "", false},
		{"see: this is not a nick: x", "see", "this is not a nick: x", true},
		{"two words: x", "", "", false},
		{": x", "", "", false},
	} {
		nick, rest, ok := addressed(tc.in)
		if nick != tc.nick || rest != tc.rest || ok != tc.ok {
			t.Errorf("addressed(%q): got %q %q %v, want %q %q %v", tc.in, nick, rest, ok, tc.nick, tc.rest, tc.ok)
		}
	}
}

func FuzzControlInput(f *testing.F) {
	for _, s := range []string{"bob: hi", "help add", "status away out to lunch", "\x01ACTION x\x01", "rename a b", "", " : ", "Zoë", "[]\\`_^{|}-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if nick, rest, ok := addressed(s); ok && (nick == "" || rest == "" || strings.ContainsAny(nick, " \t")) {
			t.Fatalf("addressed(%q) = %q, %q", s, nick, rest)
		}
		_, _ = ctcpAction(s)
		n := sanitizeNick(s)
		if n != "" && (!validNick(n) || sanitizeNick(n) != n || len(n) > NickLen || !utf8.ValidString(n)) {
			t.Fatalf("sanitizeNick(%q) = %q is not a stable valid nick", s, n)
		}
		if b := baseNick(s, s, 1); !validNick(b) {
			t.Fatalf("baseNick(%q) = %q is not valid", s, b)
		}
		if u := demoUserNameOf(s); len(u) > 25 {
			t.Fatalf("demo user name %q too long", u)
		}
	})
}

// demoUserNameOf exposes the demo directory's user-name rule to the fuzzer.
func demoUserNameOf(s string) string { return demoUserName(s) }

// TestSanitizeNickSharesAValidName: a name that is a valid nick already is
// returned as it is, sharing its bytes (a buddy's nick, ident and user name
// are then one string), and a name that needs changes gets a new one.
func TestSanitizeNickSharesAValidName(t *testing.T) {
	for _, tc := range []struct {
		in    string
		share bool
	}{
		{strings.Clone("bob_99"), true},
		{strings.Clone("Bob"), true},
		{strings.Clone("bob smith"), false},
		{strings.Clone("9lives"), false},
	} {
		got := sanitizeNick(tc.in)
		if shared := unsafe.StringData(got) == unsafe.StringData(tc.in); shared != tc.share {
			t.Errorf("sanitizeNick(%q) = %q: shares the input's bytes %v, want %v", tc.in, got, shared, tc.share)
		}
	}
}

// plainNick's shortcut gives what the full path gives, for every string
// it accepts, and accepts the common user names.
func TestPlainNickAgreesWithSanitize(t *testing.T) {
	t.Parallel()
	alphabet := []rune("abzAZ09_-[]\\`^{|}. @é~!\u0301")
	rng := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for range 200_000 {
		r := make([]rune, 1+rng.IntN(20))
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		s := string(r)
		if plainNick(s) {
			accepted++
			if got := sanitizeNickFull(s); got != s {
				t.Fatalf("plainNick(%q) is true, but the full path gives %q", s, got)
			}
		}
	}
	if accepted == 0 {
		t.Fatal("plainNick accepted none of the random strings")
	}
	for _, s := range []string{"tom", "Alice_B", "x-ray", "nick[away]", "bob123"} {
		if !plainNick(s) {
			t.Errorf("plainNick(%q): got false, want true", s)
		}
	}
	for _, s := range []string{"", "_a", "a_", "a__b", "1abc", "-a", "é", "a b", "a.b", "abcdefghijklmnopqrstuvwxyzabcdefghijk"} {
		if plainNick(s) {
			t.Errorf("plainNick(%q): got true, want false", s)
		}
	}
}
