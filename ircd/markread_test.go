package ircd

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// MARKREAD sets a marker through the backend and replies with the one it
// keeps (the later one); a query gives the marker or "*".
func TestMarkread(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", "draft/read-marker")
	tests := []struct {
		line  string
		asked []string
		want  want
	}{
		{"MARKREAD ann", []string{"readmarker ann"}, w("MARKREAD", "ann", "*")},
		{"MARKREAD TOM timestamp=2024-05-06T07:08:09.010Z",
			[]string{"markread tom 2024-05-06T07:08:09.010Z", "readmarker tom"},
			w("MARKREAD", "tom", "timestamp=2024-05-06T07:08:09.010Z")},
		{"MARKREAD tom timestamp=2024-05-06T07:00:00.000Z", // older: the kept one comes back
			[]string{"markread tom 2024-05-06T07:00:00.000Z", "readmarker tom"},
			w("MARKREAD", "tom", "timestamp=2024-05-06T07:08:09.010Z")},
		{"MARKREAD tom", []string{"readmarker tom"}, w("MARKREAD", "tom", "timestamp=2024-05-06T07:08:09.010Z")},
		{"MARKREAD &Bitlbee timestamp=2024-05-06T07:08:09Z",
			[]string{"markread &bitlbee 2024-05-06T07:08:09.000Z", "readmarker &bitlbee"},
			w("MARKREAD", "&bitlbee", "timestamp=2024-05-06T07:08:09.000Z")},
	}
	for _, tc := range tests {
		c.send(t, tc.line)
		checkMsgs(t, c.sync(t), []want{tc.want})
		for _, a := range tc.asked {
			if got := e.asked(t); got != a {
				t.Fatalf("%s: backend got %q, want %q", tc.line, got, a)
			}
		}
	}
	// A marker in the future is taken as now.
	c.send(t, "MARKREAD ann timestamp=2999-01-01T00:00:00.000Z")
	got := c.sync(t)
	e.asked(t)
	e.asked(t)
	if len(got) != 1 || got[0].Command != "MARKREAD" {
		t.Fatalf("got %v, want MARKREAD", msgStrings(got))
	}
	if at, ok := parseTimestamp(got[0].Param(1)); !ok || at.After(time.Now()) {
		t.Fatalf("got %q, want a marker no later than now", got[0])
	}
}

// The backend syncs the user's other clients with SendReadMarker; only
// those with draft/read-marker see it.
func TestSendReadMarker(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	a, _ := e.client(t, "me", "draft/read-marker")
	b, bfc := e.client(t, "me", "draft/read-marker")
	plain, pfc := e.client(t, "me")
	e.fh.set(func() {
		e.fh.onMark = func(target string, at time.Time) {
			bfc.c.SendReadMarker(target, at)
			pfc.c.SendReadMarker(target, at)
		}
	})
	a.send(t, "MARKREAD tom timestamp=2024-05-06T07:08:09.010Z")
	checkMsgs(t, a.sync(t), []want{w("MARKREAD", "tom", "timestamp=2024-05-06T07:08:09.010Z")})
	checkMsgs(t, b.sync(t), []want{w("MARKREAD", "tom", "timestamp=2024-05-06T07:08:09.010Z")})
	checkMsgs(t, plain.sync(t), nil)
	bfc.c.SendReadMarker("ANN", time.Time{})
	bfc.c.SendReadMarker("bad nick", time.Now())
	checkMsgs(t, b.sync(t), []want{w("MARKREAD", "ann", "*")})
}

// Bad MARKREAD commands get the spec's FAIL codes; no answer in time is
// INTERNAL_ERROR.
func TestMarkreadFails(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, _ := e.client(t, "me", "draft/read-marker")
	fail := func(params ...string) want { return w("FAIL", append([]string{"MARKREAD"}, params...)...) }
	tests := []struct {
		line string
		want want
	}{
		{"MARKREAD", fail("NEED_MORE_PARAMS", "Missing parameters")},
		{"MARKREAD :", fail("NEED_MORE_PARAMS", "Missing parameters")},
		{"MARKREAD tom yesterday", fail("INVALID_PARAMS", "yesterday", "Invalid parameters")},
		{"MARKREAD tom *", fail("INVALID_PARAMS", "*", "Invalid parameters")},
		{"MARKREAD tom timestamp=2024-13-01T00:00:00.000Z", fail("INVALID_PARAMS", "timestamp=2024-13-01T00:00:00.000Z", "Invalid parameters")},
		{"MARKREAD tom timestamp=2024-05-06T07:08:09.010Z extra", fail("INVALID_PARAMS", "extra", "Invalid parameters")},
		{"MARKREAD #nowhere", fail("INVALID_PARAMS", "#nowhere", "Invalid parameters")},
		{"MARKREAD 9lives timestamp=2024-05-06T07:08:09.010Z", fail("INVALID_PARAMS", "9lives", "Invalid parameters")},
	}
	for _, tc := range tests {
		c.send(t, tc.line)
		checkMsgs(t, c.sync(t), []want{tc.want})
	}
	select {
	case a := <-e.fh.asked:
		t.Fatalf("backend got %q, want nothing", a)
	default:
	}
	e.fh.set(func() { e.fh.hold = true })
	c.send(t, "MARKREAD tom timestamp=2024-05-06T07:08:09.010Z", "MARKREAD ann")
	for range 3 {
		e.asked(t)
	}
	checkMsgs(t, c.sync(t), nil)
	if n := e.ft.fire(); n != 2 {
		t.Fatalf("got %d timers, want 2", n)
	}
	checkMsgs(t, c.sync(t), []want{
		fail("INTERNAL_ERROR", "tom", "The read timestamp could not be set"),
		fail("INTERNAL_ERROR", "ann", "The read timestamp could not be retrieved"),
	})
	e.fh.release()
	checkMsgs(t, c.sync(t), nil)
}

// A JOIN from a client with draft/read-marker sends the channel's marker
// before RPL_ENDOFNAMES; "*" when the backend does not answer in time.
func TestJoinReadMarker(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	e.fh.set(func() { e.fh.marks["#other"] = ts(t, "2024-05-06T07:08:09.010Z") })
	join := func(marker ...string) []want {
		out := []want{w("JOIN", "#other"), w(irc.RPL_NAMREPLY, "me", "=", "#other", "me")}
		if len(marker) > 0 {
			out = append(out, w("MARKREAD", "#other", marker[0]))
		}
		return append(out, w(irc.RPL_ENDOFNAMES, "me", "#other", "End of /NAMES list."))
	}
	c, _ := e.client(t, "me", "draft/read-marker")
	c.send(t, "JOIN #other")
	checkMsgs(t, c.sync(t), join("timestamp=2024-05-06T07:08:09.010Z"))
	if a := e.asked(t); a != "readmarker #other" {
		t.Fatalf("backend got %q, want readmarker #other", a)
	}

	plain, _ := e.client(t, "me")
	plain.send(t, "JOIN #other")
	checkMsgs(t, plain.sync(t), join())

	slow, _ := e.client(t, "me", "draft/read-marker")
	e.fh.set(func() { e.fh.hold = true })
	slow.send(t, "JOIN #other")
	checkMsgs(t, slow.sync(t), join()[:2]) // the end waits for the marker
	e.asked(t)
	e.ft.fire()
	checkMsgs(t, slow.sync(t), join("*")[2:])
	e.fh.release()
	checkMsgs(t, slow.sync(t), nil)
}

// A JOIN the backend makes (JoinClient) carries the marker it gives, as a
// client's own JOIN does: also the one made while the client registers,
// whose lines wait for the welcome.
func TestJoinClientReadMarker(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, fc, reg := register(t, e.addr, e.b.fakeBackend, "me", "draft/read-marker")
	var cmds []string
	for _, m := range reg {
		if m.Param(1) == "&bitlbee" || m.Param(0) == "&bitlbee" || m.Param(2) == "&bitlbee" {
			cmds = append(cmds, m.Command)
		}
	}
	if got, want := strings.Join(cmds, " "), "JOIN 332 333 353 MARKREAD 366"; got != want {
		t.Errorf("registration's join: got %s, want %s (%q)", got, want, msgStrings(reg))
	}
	fc.c.JoinClient("#other", ts(t, "2024-05-06T07:08:09.010Z"))
	checkMsgs(t, c.sync(t), []want{
		w("JOIN", "#other"),
		w(irc.RPL_NAMREPLY, "me", "=", "#other", "me"),
		w("MARKREAD", "#other", "timestamp=2024-05-06T07:08:09.010Z"),
		w(irc.RPL_ENDOFNAMES, "me", "#other", "End of /NAMES list."),
	})

	plain, pfc, _ := register(t, e.addr, e.b.fakeBackend, "me")
	pfc.c.JoinClient("#other", ts(t, "2024-05-06T07:08:09.010Z"))
	checkMsgs(t, plain.sync(t), []want{
		w("JOIN", "#other"),
		w(irc.RPL_NAMREPLY, "me", "=", "#other", "me"),
		w(irc.RPL_ENDOFNAMES, "me", "#other", "End of /NAMES list."),
	})
}

// A labeled JOIN's reply waits for the channel's read marker; what the
// backend sends meanwhile (a message to the channel, a member's part, a
// private message) waits behind it, so that the client sees the channel's
// JOIN before anything in it. Once the reply is out, lines go at once again.
func TestLabeledJoinHoldsWorld(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	for _, answer := range []string{"release", "timeout"} {
		t.Run(answer, func(t *testing.T) {
			c, fc := e.client(t, "me", "draft/read-marker", "labeled-response", "batch")
			fc.c.JoinUser("#other", "ghost", false)
			e.joinHeld(t, c, fc) // JOIN #other, labeled, its read marker held
			sent := make(chan bool, 1)
			if !fc.c.Deliver(Delivery{From: "ghost", Target: "#other", Text: "early", Sent: func(ok bool) { sent <- ok }}) {
				t.Fatal("Deliver: got false, want true (held)")
			}
			fc.c.PartUser("#other", "ghost", "bye")
			fc.c.Deliver(Delivery{From: "tom", Text: "private"})
			checkMsgs(t, c.sync(t), nil) // all behind the JOIN's reply
			if answer == "release" {
				e.fh.release()
			} else {
				e.ft.fire()
			}
			got := c.readUntil(t, "PART")
			got = append(got, c.sync(t)...)
			checkMsgs(t, got, []want{
				w("BATCH", "?", "labeled-response"),
				w("JOIN", "#other"),
				w(irc.RPL_NAMREPLY, "me", "=", "#other", "me ghost"),
				w("MARKREAD", "#other", "*"),
				w(irc.RPL_ENDOFNAMES, "me", "#other", "End of /NAMES list."),
				w("BATCH", "?"),
				w("PRIVMSG", "#other", "early"),
				w("PART", "#other", "bye"),
				w("PRIVMSG", "me", "private"),
			})
			if got[0].Tags["label"] != "j1" {
				t.Errorf("got %q, want the batch labeled j1", got[0])
			}
			if !<-sent {
				t.Error("Sent: got false, want true")
			}
			e.fh.release()
			fc.c.Deliver(Delivery{From: "tom", Text: "later"})
			checkMsgs(t, c.sync(t), []want{w("PRIVMSG", "me", "later")})
		})
	}
}

// TestLabeledJoinHoldsMonitor: while a labeled JOIN's reply holds the
// world, MONITOR's numerics that the driving API causes (RemoveUser,
// RenameUser, SetPresence, AddUser) wait with the lines held before them:
// a client is not told that tom went off before it sees tom's last message
// and QUIT.
func TestLabeledJoinHoldsMonitor(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, fc := e.client(t, "me", "draft/read-marker", "labeled-response", "batch")
	c.send(t, "MONITOR + tom")
	checkMsgs(t, c.sync(t), []want{w(irc.RPL_MONONLINE, "me", "tom!tom@msim")})
	e.joinHeld(t, c, fc) // JOIN #other, labeled, its read marker held
	fc.c.Deliver(Delivery{From: "tom", Text: "last words"})
	fc.c.RemoveUser("tom", "gone")
	if got := c.sync(t); len(got) != 0 {
		t.Errorf("while the JOIN waits: got %q, want nothing (all held behind the JOIN)", msgStrings(got))
	}
	e.fh.release()
	got := c.readUntil(t, "QUIT")
	got = append(got, c.sync(t)...)
	var order []string
	for _, m := range got {
		switch m.Command {
		case "PRIVMSG", "QUIT", irc.RPL_MONOFFLINE:
			order = append(order, m.Command)
		}
	}
	if len(order) != 3 || order[0] != "PRIVMSG" || order[1] != "QUIT" || order[2] != irc.RPL_MONOFFLINE {
		t.Errorf("after the JOIN: got %v, want [PRIVMSG QUIT 731]", order)
	}
}

// TestCloseWritesTheHeldLines: Close queues ERROR after everything already
// queued: a message Deliver accepted (true) while a labeled JOIN held the
// world is one of those, written and reported sent.
func TestCloseWritesTheHeldLines(t *testing.T) {
	t.Parallel()
	e := startHistory(t, historyConfig(), true)
	c, fc := e.client(t, "me", "draft/read-marker", "labeled-response", "batch")
	e.joinHeld(t, c, fc) // JOIN #other, labeled, its read marker held
	sent := make(chan bool, 1)
	if !fc.c.Deliver(Delivery{From: "tom", Text: "before close", Sent: func(ok bool) { sent <- ok }}) {
		t.Fatal("Deliver: got false, want true")
	}
	fc.c.Close("bye")
	got := c.readUntil(t, "ERROR")
	var saw bool
	for _, m := range got {
		if m.Command == "PRIVMSG" && m.Trailing() == "before close" {
			saw = true
		}
	}
	if !saw {
		t.Errorf("got %q, want the PRIVMSG Deliver accepted before ERROR", msgStrings(got))
	}
	if ok := <-sent; !ok {
		t.Error("Sent: got false, want true")
	}
	e.fh.release()
}
