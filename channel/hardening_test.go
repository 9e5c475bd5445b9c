package channel_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/internal/imtest"
	"github.com/msimircd/msimircd/internal/promtest"
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

// TestLargeOfflineBacklogIsNeverLost: a user with 1,000 offline IMs of
// 60 KB each connects several times, reading part of the backlog each time
// and quitting. The replay is paced by what the client drains, so no SendQ
// overflows, and what a connection did not receive is held for the next:
// every IM is shown exactly once, in order.
func TestLargeOfflineBacklogIsNeverLost(t *testing.T) {
	const n, size, perConn = 1000, 60_000, 150
	st := startStackWith(t, stackConfig{
		server: backlogServerConfig(n, size),
		ircd:   testIRCConfig(),
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
		got := imtest.ReadIMs(t, c.conn, c.r, "dave", perConn, size, imtest.CutIsError)
		c.send("QUIT")
		rest := imtest.ReadIMs(t, c.conn, c.r, "dave", n, size, imtest.CutIsError) // what was written before the ERROR
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

// dialSmallBuffer connects to addr with a small receive buffer, so that a
// client that does not read makes the server's writes wait soon.
func dialSmallBuffer(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: smallBuffers(syscall.SO_RCVBUF)}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestIMsNotWrittenAreHeld: when a client that stopped reading overflows
// its SendQ and is dropped, ircd reports the IMs it had queued and not
// written, and the bridge holds them with the rest: at the next connection
// every IM arrives, once, in order.
func TestIMsNotWrittenAreHeld(t *testing.T) {
	const n, size = 300, 20_000
	ic := testIRCConfig()
	ic.SendQ = 400
	ic.WriteTimeout = 5 * time.Minute // the SendQ, not a stuck write, must drop alice
	reg := prometheus.NewRegistry()
	ic.Metrics = reg
	st := startStackWith(t, stackConfig{server: server.Config{Demo: true}, ircd: ic})
	alice := register(t, dialSmallBuffer(t, st.ircAddr), "alice", "pw-alice", "server-time")
	alice.joinedControl("&alice")
	alice.expectFrom("PRIVMSG", "root", "Logged in to MSIM")
	alice.sync()

	dave := msimUser(t, st, "dave")
	uid := lookupUID(t, dave, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	text := func(i int) string { return fmt.Sprintf("im %04d ", i) + strings.Repeat("y", size-8) }
	for i := range n {
		if err := dave.SendIM(ctx, uid, text(i)); err != nil {
			t.Fatalf("IM %d: %v", i, err)
		}
	}
	tomBarrier(t, dave)
	// alice reads nothing and sends PINGs until their answers overflow her
	// SendQ. A fixed number is not enough: the socket may take many PONGs
	// before it fills. Reading before the drop would let the queue drain,
	// the PONGs and every IM with it.
	for i, deadline := 0, time.Now().Add(time.Minute); promtest.Value(t, reg, "msimircd_irc_sendq_disconnects_total") < 1; i++ {
		if time.Now().After(deadline) {
			t.Fatal("alice was not dropped for her SendQ")
		}
		if err := alice.w.Writef("PING flood%d", i); err != nil || i%100 == 99 {
			time.Sleep(10 * time.Millisecond) // dropped already, or let ircd catch up
		}
	}
	got := imtest.ReadIMs(t, alice.conn, alice.r, "dave", n, size, imtest.CutAllowed) // what was written before the drop
	alice.conn.Close()
	if len(got) == n {
		t.Fatalf("all %d IMs were written before the SendQ overflowed: the test needs a larger backlog", n)
	}
	alice = dial(t, st.ircAddr, "alice", "pw-alice", "server-time")
	rest := imtest.ReadIMs(t, alice.conn, alice.r, "dave", n-len(got), size, imtest.CutIsError)
	t.Logf("%d IMs before the drop, %d after", len(got), len(rest))
	all := append(got, rest...)
	if len(all) != n {
		t.Fatalf("got %d IMs over two connections, want %d", len(all), n)
	}
	for i, im := range all {
		if im != text(i) {
			t.Fatalf("IM %d: got %.8q, want %.8q (every IM once, in order)", i, im, text(i))
		}
	}
}

// TestIMsCutWithTheLinkAreQueuedOrNamed: IMs the user typed just before the
// MSIM link died are never lost silently. Those the MSIM client had not
// written are queued again and sent after the reconnect, with a notice
// naming each; those written in the last seconds, which MSIM cannot confirm,
// are named as "may not have arrived". Every IM reaches the buddy or is
// named, and none arrives twice.
func TestIMsCutWithTheLinkAreQueuedOrNamed(t *testing.T) {
	const n = 70
	st := startStackWith(t, stackConfig{server: server.Config{Demo: true}, ircd: testIRCConfig(), smallProxy: true},
		func(cfg *channel.Config, _ *server.Server) {
			cfg.QueueLimit = 2 * n
			d := net.Dialer{Control: smallBuffers(syscall.SO_SNDBUF)}
			cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
		})
	alice := login(t, st, "alice", allCaps...)
	bob := msimUser(t, st, "bob")
	alice.add("&alice", "bob")
	ims := make(chan string, 4*n)
	go func() {
		for ev := range bob.Events() {
			if im, ok := ev.(msim.IMEvent); ok {
				ims <- im.Text
			}
		}
	}()

	st.proxy.pause()
	text := func(i int) string { return fmt.Sprintf("m%02d %s", i, strings.Repeat("q", 200)) }
	for i := range n {
		alice.sendf("PRIVMSG bob :%s", text(i))
	}
	alice.command("&alice", "status", "is online") // the session has handed every IM to the MSIM client
	st.proxy.waitUnread(10 * time.Second)          // and its writer has written some of them
	st.proxy.cut()
	st.proxy.resume()

	queued, maybe := map[string]bool{}, map[string]bool{}
	for {
		m := alice.expect("", func(m *irc.Message) bool {
			return (m.Command == "NOTICE" && m.Name == "bob") || (m.Command == "PRIVMSG" && m.Name == "root" && strings.Contains(m.Trailing(), "link is back"))
		})
		if m.Command == "PRIVMSG" {
			break
		}
		switch tr := m.Trailing(); {
		case strings.Contains(tr, "it is queued"):
			queued[tr[strings.LastIndex(tr, ": ")+2:]] = true
		case strings.Contains(tr, "may not have arrived: "), strings.Contains(tr, "NOT sent"):
			maybe[tr[strings.LastIndex(tr, ": ")+2:]] = true
		default:
			t.Errorf("unexpected notice: %.80q", tr)
		}
	}
	if len(queued) == 0 || len(maybe) == 0 {
		t.Fatalf("%d IMs queued again and %d named as unconfirmed: the test means to cut the link with IMs in both states", len(queued), len(maybe))
	}
	seen := map[string]int{}
	deadline := time.After(10 * time.Second)
	for i := range n {
		want := text(i)
		for seen[want] == 0 && !maybe[want] {
			select {
			case got := <-ims:
				seen[got]++
			case <-deadline:
				t.Fatalf("IM %d neither reached bob nor was named to alice (queued again: %v)", i, queued[want])
			}
		}
	}
	for im, k := range seen {
		if k > 1 {
			t.Errorf("bob got %.3q %d times", im, k)
		}
	}
	for im := range queued {
		if seen[im] == 0 {
			t.Errorf("IM %.3q was queued again but never reached bob", im)
		}
	}
}
