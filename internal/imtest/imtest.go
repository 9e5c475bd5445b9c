// Package imtest helps tests that send large IMs through the gateway and
// read them back on IRC, where one IM arrives as several PRIVMSG pieces.
package imtest

import (
	"net"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// Cut says whether an IM cut off by the end of the connection is an error.
type Cut bool

const (
	CutIsError Cut = false // everything written was whole
	CutAllowed Cut = true  // a dropped connection may end within an IM
)

// ReadIMs reads whole IMs of size bytes from nick on r (the pieces of one
// IM concatenate back to it; each IM starts with "im ") until want are
// complete, the connection ends or an ERROR comes, and returns the complete
// ones. An IM that starts before the previous one is whole is an error.
func ReadIMs(t testing.TB, nc net.Conn, r *irc.Reader, nick string, want, size int, cut Cut) []string {
	t.Helper()
	var ims []string
	var cur strings.Builder
	for len(ims) < want {
		_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		m, err := r.ReadMessage()
		if err != nil || m.Command == "ERROR" {
			break
		}
		if m.Command != "PRIVMSG" || m.Name != nick {
			continue
		}
		if strings.HasPrefix(m.Trailing(), "im ") && cur.Len() > 0 {
			t.Errorf("an IM came cut: %d of %d bytes (%.12q…)", cur.Len(), size, cur.String())
			cur.Reset()
		}
		cur.WriteString(m.Trailing())
		if cur.Len() >= size {
			ims = append(ims, cur.String())
			cur.Reset()
		}
	}
	if cur.Len() > 0 && cut == CutIsError {
		t.Errorf("the connection ended within an IM: %d of %d bytes (%.12q…)", cur.Len(), size, cur.String())
	}
	return ims
}
