package ircd

import (
	"strings"
	"testing"
)

// TestExtendedJoinAndSetname: with extended-join a JOIN names the account
// ("*" for none) and the real name, the client's own JOIN included; with
// setname a virtual user's new real name comes as SETNAME, and the client
// may change its own. Without the capabilities the lines stay as before.
func TestExtendedJoinAndSetname(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	for _, caps := range [][]string{{"extended-join", "setname"}, nil} {
		with := caps != nil
		c, fc, _ := register(t, addr, b, "me", caps...)
		fc.c.JoinUser("&bitlbee", "ghost", false)
		fc.c.SetRealName("ann", "Ann Smith")
		fc.c.SetRealName("ann", "Ann Smith") // unchanged: nothing
		fc.c.SetRealName("ghost", "Ghost\r\nline")
		c.send(t, "JOIN #other", "SETNAME :New Name", "WHO me")
		got := c.sync(t)
		if with {
			checkMsgs(t, got, []want{
				w("JOIN", "&bitlbee", "*", "Ghost"),
				w("SETNAME", "Ann Smith"),
				w("SETNAME", "Ghost  line"),
				w("JOIN", "#other", "*", "Real Name"), w("353", nil...), w("366", nil...),
				w("SETNAME", "New Name"),
				w("352", "me", "*", "u", "127.0.0.1", testServer, "me", "H", "0 New Name"), w("315", nil...),
			})
		} else {
			checkMsgs(t, got, []want{
				w("JOIN", "&bitlbee"),
				w("JOIN", "#other"), w("353", nil...), w("366", nil...),
				w("352", "me", "*", "u", "127.0.0.1", testServer, "me", "H", "0 New Name"), w("315", nil...),
			})
		}
		c.send(t, "SETNAME :", "SETNAME :"+strings.Repeat("n", RealNameLen+1), "SETNAME")
		checkMsgs(t, c.sync(t), []want{
			w("FAIL", "SETNAME", "INVALID_REALNAME", "?"),
			w("FAIL", "SETNAME", "INVALID_REALNAME", "?"),
			w("461", "me", "SETNAME", "?"),
		})
	}
}
