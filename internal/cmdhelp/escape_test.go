package cmdhelp

import "testing"

// TestManText: text lines are escaped so that nothing in them becomes a
// request or an escape, and a flag's hyphen is a minus sign.
func TestManText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`a\b`, `a\eb`},
		{"-config FILE", `\-config FILE`},
		{"an e-mail (-x) or [-y]", `an e-mail (\-x) or [\-y]`},
		{".starts", `\&.starts`},
		{"'quote", `\&'quote`},
		{"plain", "plain"},
		{"postgres://…; a—b é", `postgres://\[u2026]; a\[u2014]b \[u00E9]`},
	} {
		if got := manText(tc.in); got != tc.want {
			t.Errorf("manText(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
	if got, want := manArg(`say "hi" now`), `"say \(dqhi\(dq now"`; got != want {
		t.Errorf("manArg: got %q, want %q", got, want)
	}
}
