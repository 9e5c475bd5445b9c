package channel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// msimUser creates an account on the stack's MSIM server and logs it in
// with a plain MSIM client, as a buddy on another MSIM client would be.
func msimUser(t *testing.T, st *stack, name string) *msim.Client {
	t.Helper()
	if _, err := st.msrv.AddAccount(name+"@example.com", name+"pw", name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := msim.Dial(ctx, msim.ClientConfig{Addr: st.msimAddr, Email: name + "@example.com", Password: name + "pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestRawCTCPFromMSIMIsNeutralised: a buddy's text cannot carry CTCP (a DCC
// offer, VERSION), colour codes or other control characters to the IRC
// client, in an IM or a status text; the bridge's own ACTION for /me stays.
func TestRawCTCPFromMSIMIsNeutralised(t *testing.T) {
	st := startStack(t)
	alice := login(t, st, "alice", allCaps...)
	dave := msimUser(t, st, "dave")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := dave.LookupUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ send, want string }{
		{"\x01DCC SEND evil.exe 2130706433 26999 1000\x01", "␁DCC SEND evil.exe 2130706433 26999 1000␁"},
		{"\x01VERSION\x01", "␁VERSION␁"},
		{"\x0304red\x03 and \x02bold\x02\x07", "␃04red␃ and ␂bold␂␇"},
		{"/me waves", "\x01ACTION waves\x01"},
	} {
		if err := dave.SendIM(ctx, p.UID, tc.send); err != nil {
			t.Fatal(err)
		}
		m := alice.expect("PRIVMSG", func(m *irc.Message) bool { return m.Name == "dave" })
		if m.Trailing() != tc.want {
			t.Errorf("IM %q: got %q, want %q", tc.send, m.Trailing(), tc.want)
		}
	}
	alice.add("&alice", "dave")
	if err := dave.SetStatus(ctx, msim.StatusAway, "\x01VERSION\x01 back\x03 soon"); err != nil {
		t.Fatal(err)
	}
	m := alice.expect("AWAY", func(m *irc.Message) bool { return m.Name == "dave" && len(m.Params) > 0 })
	if got := m.Trailing(); got != "␁VERSION␁ back␃ soon" || strings.ContainsAny(got, "\x01\x03") {
		t.Errorf("status text: got %q", got)
	}
}

// lookupUID finds an MSIM user's uid as cl sees it.
func lookupUID(t *testing.T, cl *msim.Client, name string) msim.UID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := cl.LookupUser(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return p.UID
}

// tomBarrier waits until the MSIM server has handled every IM cl sent
// before: it messages Tom, who answers only after that.
func tomBarrier(t *testing.T, cl *msim.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.SendIM(ctx, 6221, "barrier"); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev, ok := <-cl.Events():
			if !ok {
				t.Fatal("the MSIM client ended before Tom answered")
			}
			if im, isIM := ev.(msim.IMEvent); isIM && im.From == 6221 {
				return
			}
		case <-ctx.Done():
			t.Fatal("Tom did not answer")
		}
	}
}

// readIMs reads whole IMs from nick (pieces of one IM concatenate back to
// it; each starts with "im NNNN ") until want are complete or the
// connection ends, and returns the complete ones.
func readIMs(t *testing.T, c *ircClient, nick string, want, size int) (ims []string, ended bool) {
	t.Helper()
	var cur strings.Builder
	for len(ims) < want {
		_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		m, err := c.r.ReadMessage()
		if err != nil {
			return ims, true
		}
		if m.Command == "ERROR" {
			return ims, true
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
	return ims, false
}

// TestLargeOfflineBacklogIsNeverLost: a user with 1,000 offline IMs of
// 60 KB each connects several times, reading part of the backlog each time
// and quitting. The replay is paced by what the client drains, so no SendQ
// overflows, and what a connection did not receive is held for the next:
// every IM is shown exactly once, in order.
func TestLargeOfflineBacklogIsNeverLost(t *testing.T) {
	const n, size, perConn = 1000, 60_000, 150
	st := startStackWith(t, stackConfig{
		server: backlogServerConfig(n, size),
		ircd:   ircd.Config{ServerName: "msimircd.test"},
	})
	alice := login(t, st, "alice", "server-time")
	alice.send("QUIT")
	alice.expect("ERROR", nil)

	dave := msimUser(t, st, "dave")
	uid := lookupUID(t, dave, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	text := func(i int) string { return fmt.Sprintf("im %04d ", i) + strings.Repeat("x", size-8) }
	for i := range n {
		if err := dave.SendIM(ctx, uid, text(i)); err != nil {
			t.Fatalf("IM %d: %v", i, err)
		}
	}
	tomBarrier(t, dave)

	next, conns := 0, 0
	for next < n {
		if conns++; conns > 12 {
			t.Fatalf("after %d connections only %d of %d IMs arrived", conns-1, next, n)
		}
		c := dial(t, st.ircAddr, "alice", "pw-alice", "server-time")
		got, _ := readIMs(t, c, "dave", perConn, size)
		c.send("QUIT")
		rest, _ := readIMs(t, c, "dave", n, size) // what was written before the ERROR
		c.conn.Close()
		for _, im := range append(got, rest...) {
			if im != text(next) {
				t.Fatalf("connection %d: got IM %.8q, want %.8q (every IM once, in order)", conns, im, text(next))
			}
			next++
		}
	}
	if conns < 3 {
		t.Errorf("the backlog arrived over %d connections; the test means to spread it over several", conns)
	}
}

// backlogServerConfig lets the MSIM server store n offline IMs of size
// bytes for one recipient from one sender.
func backlogServerConfig(n, size int) server.Config {
	return server.Config{Demo: true, OfflinePerRecipientBytes: int64(2 * n * size), OfflinePerSenderBytes: int64(2 * n * size)}
}
