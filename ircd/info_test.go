package ircd

import "testing"

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mask, s string
		want    bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"", "", true},
		{"", "a", false},
		{"tom", "tom", true},
		{"tom", "tommy", false},
		{"TOM", "tom", true},
		{"t?m", "tim", true},
		{"t?m", "tm", false},
		{"t*", "tom", true},
		{"*m", "tom", true},
		{"*o*", "tom", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"*@msim", "tom!tom@msim", true},
		{"*!*@*", "tom!tom@msim", true},
		{"[x]*", "{X}yz", true}, // rfc1459: [ ] fold to { }
		{"**a", "ba", true},
		{"*a*", "bbb", false},
	}
	for _, tc := range tests {
		if got := match(tc.mask, tc.s); got != tc.want {
			t.Errorf("match(%q, %q): got %v, want %v", tc.mask, tc.s, got, tc.want)
		}
	}
}

// FuzzMatch: the glob matcher never panics and a mask always matches itself
// when it holds no wildcard.
func FuzzMatch(f *testing.F) {
	f.Add("t*m?", "tommy")
	f.Add("*@msim", "tom!tom@msim")
	f.Fuzz(func(t *testing.T, mask, s string) {
		_ = match(mask, s)
		if !match(s, s) && !containsWildcard(s) {
			t.Fatalf("%q does not match itself", s)
		}
	})
}

func containsWildcard(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' || s[i] == '?' {
			return true
		}
	}
	return false
}
