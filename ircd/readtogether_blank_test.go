package ircd

import (
	"slices"
	"testing"
)

// TestReadTogetherBlankLineAhead: a plain message whose next buffered line
// is blank ("\r\n", which handleLine ignores) is handed over before the
// reader waits for more bytes, as it was when read alone; it must not be
// held until the client sends another line (or the reader rests).
func TestReadTogetherBlankLineAhead(t *testing.T) {
	for _, blank := range []string{"\r\n", "\n", "\r\r\n"} {
		events, seen := readScript(t, "PRIVMSG tom :1\r\n"+blank, "PRIVMSG tom :2\r\n")
		if len(seen) == 0 || !slices.Equal(seen[0], []string{"messages 1"}) {
			t.Errorf("blank %q: before the reader waited for more the handler had %q, want [\"messages 1\"] (all: %q)", blank, seen, events)
		}
	}
}
