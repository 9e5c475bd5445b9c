package channel

import "testing"

// The IMs an MSIM client dropped are told with their senders, and without
// any when it could name none (IMs it could not read).
func TestDroppedTextNamesWhomItCan(t *testing.T) {
	for _, tc := range []struct {
		n    int
		from []string
		want string
	}{
		{2, []string{"bob", "carol"}, "IMs sent to you were lost: 2 from bob, carol came when the gateway had fallen behind the MSIM link, and others sent just before may be lost too."},
		{1, nil, "IMs sent to you were lost: 1 came when the gateway had fallen behind the MSIM link, and others sent just before may be lost too."},
	} {
		if got := droppedText(true, tc.n, tc.from); got != tc.want {
			t.Errorf("%d from %v: got %q, want %q", tc.n, tc.from, got, tc.want)
		}
	}
}
