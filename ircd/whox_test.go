package ircd

import (
	"net"
	"testing"

	"gopkg.in/irc.v4"
)

// TestWhox: WHO with "%fields[,token]" answers RPL_WHOSPCRPL (354) with
// the fields asked for in WHOX's order, for a channel's members and a
// mask alike; a plain WHO is unchanged.
func TestWhox(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, _, _ := register(t, addr, b, "me")
	c.send(t,
		"WHO &bitlbee %rofnlauhcsdit,42",
		"WHO ann %nat,toolong",
		"WHO t* %fn",
		"WHO me %nau",
		"WHO ann %",
		"WHO ann")
	checkMsgs(t, c.sync(t), []want{
		w("354", "me", "42", "&bitlbee", "u", "127.0.0.1", "127.0.0.1", testServer, "me", "H", "0", "?", "0", "n/a", "Real Name"),
		w("354", "me", "42", "&bitlbee", "ann", "255.255.255.255", "msim", testServer, "ann", "H", "0", "?", "0", "n/a", "Ann"),
		w("354", "me", "42", "&bitlbee", "tom", "255.255.255.255", "msim", testServer, "tom", "G+", "0", "?", "0", "n/a", "Tom"),
		w("315", "me", "&bitlbee", "End of /WHO list."),
		w("354", "me", "0", "ann", "0"),
		w("315", "me", "ann", "?"),
		w("354", "me", "tom", "G"),
		w("315", "me", "t*", "?"),
		w("354", "me", "u", "me", "0"),
		w("315", "me", "me", "?"),
		w("315", "me", "ann", "?"),
		w("352", "me", "*", "ann", "msim", testServer, "ann", "H", "0 Ann"),
		w("315", "me", "ann", "?"),
	})
}

// TestWhoxIPv6: the IP field of a client on IPv6 is a valid middle
// parameter ("0::1" for "::1", as its host is shown), not "*".
func TestWhoxIPv6(t *testing.T) {
	t.Parallel()
	c, done := fuzzClient(t)
	defer done()
	c.remote = &net.TCPAddr{IP: net.IPv6loopback, Port: 6667}
	c.handleLine([]byte("WHO me %in\r\n"))
	var got []string
	for _, s := range entryLines(c.take()) {
		m, err := irc.ParseMessage(s)
		if err != nil {
			t.Fatal(err)
		}
		if m.Command == rplWhoSpcRpl {
			got = m.Params
		}
	}
	if len(got) != 3 || got[1] != "0::1" || got[2] != "me" {
		t.Errorf("354: got %q, want [me 0::1 me]", got)
	}
}
