package ircd

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestMonitor follows watched nicks as the backend adds, renames and
// removes virtual users, and checks each subcommand's replies.
func TestMonitor(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me")

	c.send(t, "MONITOR + tom,nobody,ME,1bad,TOM")
	checkMsgs(t, c.sync(t), []want{
		w("730", "me", "tom!tom@msim,me!u@127.0.0.1,tom!tom@msim"),
		w("731", "me", "nobody"),
	})

	if err := fc.c.AddUser(User{Nick: "Nobody", RealName: "N"}); err != nil {
		t.Fatal(err)
	}
	if err := fc.c.AddUser(User{Nick: "carol"}); err != nil { // not watched
		t.Fatal(err)
	}
	checkMsgs(t, c.sync(t), []want{w("730", "me", "Nobody!user@"+testServer)})

	if err := fc.c.RenameUser("Nobody", "somebody"); err != nil {
		t.Fatal(err)
	}
	if err := fc.c.RenameUser("carol", "nobody"); err != nil {
		t.Fatal(err)
	}
	checkMsgs(t, c.sync(t), []want{
		w("NICK", "somebody"), w("731", "me", "Nobody"),
		w("NICK", "nobody"), w("730", "me", "nobody!user@"+testServer),
	})

	fc.c.RemoveUser("tom", "gone")
	checkMsgs(t, c.sync(t), []want{w("QUIT", "gone"), w("731", "me", "tom")})

	c.send(t, "MONITOR L", "MONITOR - me,ann", "MONITOR s")
	checkMsgs(t, c.sync(t), []want{
		w("732", "me", "ME,nobody,tom"), w("733", "me", "End of MONITOR list"),
		w("730", "me", "nobody!user@"+testServer), w("731", "me", "tom"),
	})

	c.send(t, "MONITOR C", "MONITOR L", "MONITOR S")
	checkMsgs(t, c.sync(t), []want{w("733", "me", "End of MONITOR list")})

	c.send(t, "MONITOR", "MONITOR +", "MONITOR x")
	checkMsgs(t, c.sync(t), []want{
		w("461", "me", "MONITOR", "?"), w("461", "me", "MONITOR", "?"), w("400", "me", "MONITOR", "?"),
	})
}

// TestMonitorLimit fills the list to MONITOR= and checks that the rest is
// refused with 734 while what was taken is answered, every line within
// 512 bytes.
func TestMonitorLimit(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, _, _ := register(t, addr, b, "me")
	c.keep = true

	var nicks []string
	for i := range MonitorLimit + 3 {
		nicks = append(nicks, fmt.Sprintf("watched%04d", i))
	}
	// A client line holds about 40 of them; send the list in lines.
	for i := 0; i < len(nicks); i += 40 {
		c.send(t, "MONITOR + "+strings.Join(nicks[i:min(i+40, len(nicks))], ","))
	}
	got := c.sync(t)
	var off []string
	full := 0
	for _, m := range got {
		switch m.Command {
		case "731":
			off = append(off, strings.Split(m.Trailing(), ",")...)
		case "734":
			full++
			if m.Param(1) != strconv.Itoa(MonitorLimit) || !strings.HasPrefix(m.Param(2), nicks[MonitorLimit]) {
				t.Errorf("734 %q: want limit %d and the refused targets from %s", m, MonitorLimit, nicks[MonitorLimit])
			}
		default:
			t.Errorf("unexpected %q", m)
		}
	}
	if full != 1 || len(off) != MonitorLimit || off[0] != nicks[0] || off[len(off)-1] != nicks[MonitorLimit-1] {
		t.Errorf("got %d 734s and %d offline targets (%v…), want 1 and %d", full, len(off), off[:min(3, len(off))], MonitorLimit)
	}
	for _, l := range c.raw {
		if len(l) > 512 {
			t.Errorf("line of %d bytes: %.60q…", len(l), l)
		}
	}
	c.send(t, "MONITOR L")
	listed := 0
	for _, m := range c.readUntil(t, "733") {
		if m.Command == "732" {
			listed += len(strings.Split(m.Trailing(), ","))
		}
	}
	if listed != MonitorLimit {
		t.Errorf("MONITOR L listed %d, want %d", listed, MonitorLimit)
	}
}

// TestMonitorAdvertised checks the ISUPPORT token.
func TestMonitorAdvertised(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c := dial(t, addr)
	c.send(t, "NICK me", "USER u 0 * :R")
	found := false
	for _, m := range c.readUntil(t, "376", "422") {
		if m.Command == "005" && strings.Contains(strings.Join(m.Params, " "), " MONITOR="+strconv.Itoa(MonitorLimit)+" ") {
			found = true
		}
	}
	if !found {
		t.Error("no MONITOR token in ISUPPORT")
	}
}

// TestMonitorOnline follows a virtual user that is in the world but
// offline: ISON leaves it out, MONITOR calls it offline, and SetPresence
// tells a watching client of each change, once.
func TestMonitorOnline(t *testing.T) {
	t.Parallel()
	b := newBackend()
	addr, _ := startServer(t, testConfig(), b)
	c, fc, _ := register(t, addr, b, "me")
	if err := fc.c.AddUser(User{Nick: "dave", Offline: true}); err != nil {
		t.Fatal(err)
	}
	c.send(t, "MONITOR + dave", "ISON dave tom")
	checkMsgs(t, c.sync(t), []want{w("731", "me", "dave"), w("303", "me", "tom")})

	fc.c.SetPresence("dave", "", true)
	fc.c.SetPresence("dave", "", true)
	c.send(t, "ISON dave")
	checkMsgs(t, c.sync(t), []want{w("730", "me", "dave!user@"+testServer), w("303", "me", "dave")})

	fc.c.SetPresence("dave", "", false)
	fc.c.SetPresence("dave", "", false)
	fc.c.SetPresence("nobody", "", true)
	if err := fc.c.RenameUser("dave", "david"); err != nil { // offline: no MONITOR line
		t.Fatal(err)
	}
	fc.c.RemoveUser("david", "bye")
	checkMsgs(t, c.sync(t), []want{w("731", "me", "dave"), w("NICK", "david")})
}
