package ircd

import (
	"strings"
	"testing"
	"time"
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

// realNameConn is a backend connection that records the real names the
// client sets with SETNAME (RealNameHandler).
type realNameConn struct {
	*fakeConn
	names chan string
}

func (r *realNameConn) RealName(name string) { r.names <- name }

// TestSetnameShared: SETNAME tells a backend that implements
// RealNameHandler, so that it can give the name to the user's other
// clients with SetOwnRealName; that client's WHO shows it, and one with
// setname sees a SETNAME line from itself (none when the name is the
// same; an empty one is ignored).
func TestSetnameShared(t *testing.T) {
	t.Parallel()
	b := newBackend()
	b.realNames = make(chan string, 4)
	addr, _ := startServer(t, testConfig(), b)
	a, _, _ := register(t, addr, b, "me", "setname")
	o, ofc, _ := register(t, addr, b, "me", "setname")
	a.send(t, "SETNAME :Shared Name")
	checkMsgs(t, a.sync(t), []want{w("SETNAME", "Shared Name")})
	select {
	case got := <-b.realNames:
		if got != "Shared Name" {
			t.Fatalf("backend got real name %q, want Shared Name", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend got no real name, want Shared Name")
	}

	ofc.c.SetOwnRealName("Shared Name")
	ofc.c.SetOwnRealName("Shared Name") // the same: no line
	ofc.c.SetOwnRealName("")            // empty: ignored
	o.send(t, "WHO me")
	checkMsgs(t, o.sync(t), []want{
		w("SETNAME", "Shared Name"),
		w("352", "me", "*", "u", "127.0.0.1", testServer, "me", "H", "0 Shared Name"), w("315", nil...),
	})
	if m := o.sync(t); len(m) != 0 {
		t.Errorf("got %v, want nothing more", msgStrings(m))
	}
}
