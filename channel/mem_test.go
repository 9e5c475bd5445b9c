package channel_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"gopkg.in/irc.v4"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// ringUsers makes n IRC users plus extra MSIM-only accounts (offline) on a
// ring, each listing the buddies nearest accounts, as msimbench's memory
// scenario does; it returns the directory's users and, per user, how many
// of its buddies are online (IRC users).
func ringUsers(tb testing.TB, st server.Store, n, buddies int) ([]channel.StaticUser, []int) {
	tb.Helper()
	p := n + buddies
	uids := make([]msim.UID, p)
	hash := msim.HashPassword("pw")
	groups := []server.Group{{ID: 1, Name: "IM Friends", Position: 1, Flag: 131073}}
	for i := range p {
		name := fmt.Sprintf("r%05d", i)
		acc := &server.Account{Email: name + "@ring.test", UserName: name, DisplayName: name, Hash: hash, Groups: groups}
		if err := st.CreateAccount(acc); err != nil {
			tb.Fatal(err)
		}
		uids[i] = acc.UID
	}
	users := make([]channel.StaticUser, n)
	online := make([]int, n)
	for i := range p {
		var list []int
		for d := 1; len(list) < buddies; d++ {
			list = append(list, (i+d)%p)
			if len(list) < buddies {
				list = append(list, (i-d+p)%p)
			}
		}
		for pos, j := range list {
			if err := st.PutContact(uids[i], server.Contact{UID: uids[j], GroupName: "IM Friends", Position: pos + 1, Visibility: 1}); err != nil {
				tb.Fatal(err)
			}
			if i < n && j < n {
				online[i]++
			}
		}
		if i < n {
			name := fmt.Sprintf("r%05d", i)
			users[i] = channel.StaticUser{Name: name, Password: "irc",
				Accounts: []channel.Account{{Email: name + "@ring.test", Password: "pw", Channel: "&" + name, AutoConnect: true}}}
		}
	}
	return users, online
}

// heapNow is the live heap and the stacks in use after a full collection.
func heapNow() (heap, inuse, stack uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapInuse, ms.StackInuse
}

// BenchmarkIdleAccountMemory measures what an idle user with one account
// and 100 buddies (most of them online) costs the process: the live heap,
// heap in use and stacks per user after a GC, once every user's IRC client
// has seen every online buddy join. The MSIM server runs in the same
// process, so its sessions are counted too (they do not change with the
// bridge). With MEMPROF=file it writes a heap profile while the users are
// connected (use -memprofilerate=1 to see every allocation).
func BenchmarkIdleAccountMemory(b *testing.B) {
	const n, buddies = 200, 100
	var heap, inuse, stack float64
	for range b.N {
		b.StopTimer()
		dir := &channel.StaticDirectory{}
		st := startStackWith(b, stackConfig{server: server.Config{MaxConnectionsPerAddr: -1}, ircd: ringIRCConfig(), quiet: true},
			func(cfg *channel.Config, _ *server.Server) { cfg.Directory = dir })
		users, online := ringUsers(b, st.mstore, n, buddies)
		dir.Users = users
		b.StartTimer()
		h0, i0, s0 := heapNow()
		ncs := make([]net.Conn, 0, n)
		for _, u := range users {
			ncs = append(ncs, dialRing(b, st.ircAddr, u.Name))
		}
		for i, u := range users {
			waitRing(b, ncs[i], u.Name, online[i])
		}
		h1, i1, s1 := heapNow()
		if f := os.Getenv("MEMPROF"); f != "" {
			fh, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			_ = pprof.WriteHeapProfile(fh)
			fh.Close()
		}
		heap += (float64(h1) - float64(h0)) / n
		inuse += (float64(i1) - float64(i0)) / n
		stack += (float64(s1) - float64(s0)) / n
		for _, nc := range ncs {
			_ = nc.Close()
		}
	}
	b.ReportMetric(heap/float64(b.N), "heapB/user")
	b.ReportMetric(inuse/float64(b.N), "inuseB/user")
	b.ReportMetric(stack/float64(b.N), "stackB/user")
}

// dialRing connects and registers user name.
func dialRing(tb testing.TB, addr, name string) net.Conn {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	if _, err := fmt.Fprintf(nc, "PASS %s:irc\r\nNICK %s\r\nUSER u 0 * :Real Name\r\n", name, name); err != nil {
		tb.Fatal(err)
	}
	return nc
}

// waitRing reads nc until want buddies have joined user name's channel,
// with a reader it then drops: what remains on the test side is the socket.
func waitRing(tb testing.TB, nc net.Conn, name string, want int) {
	tb.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := irc.NewReader(nc)
	ch := "&" + name
	joined := 0
	for joined < want {
		m, err := r.ReadMessage()
		if err != nil {
			tb.Fatalf("%s: %d of %d buddies joined: %v", name, joined, want, err)
		}
		if m.Command == "JOIN" && strings.EqualFold(m.Param(0), ch) && m.Name != name {
			joined++
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
}

// ringIRCConfig is ircd's test configuration without the per-address
// connection cap (every ring user comes from loopback).
func ringIRCConfig() ircd.Config {
	c := testIRCConfig()
	c.MaxConnectionsPerAddr = -1
	c.PingInterval = time.Hour
	return c
}

// sessionLoops counts the goroutines running a session (its loop, or a
// bridge's run that would hold one for the session's life).
func sessionLoops() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			all := string(buf[:n])
			return strings.Count(all, "channel.(*session).loop(") + strings.Count(all, "channel.(*Bridge).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitNoSessionLoop waits until no session runs its goroutine.
func waitNoSessionLoop(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for sessionLoops() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %d session goroutines, want none while idle", when, sessionLoops())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIdleSessionHoldsNoGoroutine: once a logged-in user's session has
// nothing to do it holds no goroutine, and what comes next (a command, an
// IM) starts one again.
func TestIdleSessionHoldsNoGoroutine(t *testing.T) {
	st := startStack(t)
	c := login(t, st, "alice", allCaps...)
	waitNoSessionLoop(t, "after the login")
	c.command("&alice", "help", "Commands")
	waitNoSessionLoop(t, "after a command")
	c.send("PRIVMSG tom :hi") // Tom greets a first IM, then echoes
	c.expectFrom("PRIVMSG", "tom", "")
	waitNoSessionLoop(t, "after an IM and its answer")
	c.send("PRIVMSG tom :are you there")
	c.expectFrom("PRIVMSG", "tom", "are you there")
	waitNoSessionLoop(t, "after an echo")
}

// TestBusySessionKeepsItsGoroutine: a session whose events come closer
// together than it lingers keeps one goroutine for them, rather than
// ending it after each and starting (and growing the stack of) a new one;
// once idle it still holds none.
func TestBusySessionKeepsItsGoroutine(t *testing.T) {
	st := startStack(t)
	c := login(t, st, "alice", allCaps...)
	waitNoSessionLoop(t, "after the login")
	const user = "demo/alice@msimircd.local" // the demo directory's name for alice
	before := st.bridge.SessionLoops(user)
	if before < 1 {
		t.Fatalf("alice's session started %d goroutines, want some (no session?)", before)
	}
	const commands = 10
	for range commands {
		c.command("&alice", "help", "Commands")
		time.Sleep(10 * time.Millisecond)
	}
	// One for the commands; a second if one gap (a round trip and 10 ms)
	// took longer than the linger on a loaded machine.
	if n := st.bridge.SessionLoops(user) - before; n > 2 {
		t.Errorf("%d goroutines started for %d commands, want one", n, commands)
	}
	waitNoSessionLoop(t, "after the commands")
}
