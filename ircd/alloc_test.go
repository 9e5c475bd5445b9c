package ircd

import (
	"slices"
	"testing"

	"gopkg.in/irc.v4"
)

func TestMsgParams(t *testing.T) {
	p := &irc.Prefix{Name: "srv"}
	tests := []struct {
		name   string
		params []string
	}{
		{"none", nil},
		{"one", []string{"a"}},
		{"two", []string{"a", "b c"}},
		{"three", []string{"a", "b", "c"}},
		{"four", []string{"a", "b", "c", "d e"}},
		{"five", []string{"a", "b", "c", "d", "e f"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.params)
			m := msg(p, "CMD", in...)
			if m.Prefix != p || m.Command != "CMD" || !slices.Equal(m.Params, tc.params) {
				t.Fatalf("got %q, want :srv CMD %q", m, tc.params)
			}
			if tc.params == nil && m.Params != nil {
				t.Errorf("Params: got %#v, want nil", m.Params)
			}
			if len(in) > 0 {
				in[0] = "changed" // the caller's slice is not the message's
				if m.Params[0] != tc.params[0] {
					t.Errorf("Params[0] after the caller's change: got %q, want %q", m.Params[0], tc.params[0])
				}
				grown := append(m.Params, "x")
				grown[0] = "grown"
				if m.Params[0] != tc.params[0] {
					t.Errorf("Params[0] after an append: got %q, want %q", m.Params[0], tc.params[0])
				}
			}
		})
	}
}

// TestVoicedJoinAllocs: a buddy coming online (JoinUser voiced: JOIN and
// MODE +v queued) costs few allocations, the server's prefix shared.
func TestVoicedJoinAllocs(t *testing.T) {
	c, done := fuzzClient(t)
	defer done()
	if err := c.AddUser(User{Nick: "bud", User: "bud", Host: "msim.1"}); err != nil {
		t.Fatal(err)
	}
	c.giveBack(c.take())
	allocs := testing.AllocsPerRun(200, func() {
		c.JoinUser("&bitlbee", "bud", true)
		c.PartUser("&bitlbee", "bud", "")
		c.giveBack(c.take())
	})
	// JOIN: its prefix and the message; MODE: the message; PART: its
	// prefix and the message.
	if allocs > 5 {
		t.Errorf("JoinUser and PartUser: got %.1f allocations, want at most 5", allocs)
	}
	c.JoinUser("&bitlbee", "bud", true)
	got := c.take()
	if len(got) != 2 || got[1].m.Prefix != c.srv.prefix || got[1].m.String() != ":"+testServer+" MODE &bitlbee +v bud" {
		t.Errorf("lines: got %q, want JOIN and a MODE +v with the server's prefix", msgStrings(entries(got)))
	}
}

func entries(es []entry) []*irc.Message {
	out := make([]*irc.Message, len(es))
	for i, e := range es {
		out[i] = e.m
	}
	return out
}
