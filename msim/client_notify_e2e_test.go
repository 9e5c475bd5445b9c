package msim_test

// End-to-end tests of the Notify/TakeEvents hand-off against msim/server,
// and of what an idle client costs in goroutines.

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/server"
)

// waker is an owner's coalescing wake-up for Notify.
type waker chan struct{}

func newWaker() waker { return make(waker, 1) }

func (w waker) notify() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// dialNotify logs a in with Notify set to w.
func dialNotify(tb testing.TB, addr string, a account, w waker) *msim.Client {
	tb.Helper()
	c, err := dialAs(tb, addr, a, func(cfg *msim.ClientConfig) { cfg.Notify = w.notify })
	if err != nil {
		tb.Fatalf("Dial %s: %v", a.email, err)
	}
	return c
}

// takeWhile takes events as w announces them until done(all) holds.
func takeWhile(tb testing.TB, c *msim.Client, w waker, done func([]msim.Event) bool) []msim.Event {
	tb.Helper()
	timeout := time.After(e2eWait)
	var all []msim.Event
	for {
		if all = c.TakeEvents(all); done(all) {
			return all
		}
		select {
		case <-w:
		case <-timeout:
			tb.Fatalf("took %d events, then none for %v", len(all), e2eWait)
		}
	}
}

func imsFrom(evs []msim.Event, from msim.UID) []string {
	var out []string
	for _, ev := range evs {
		if im, ok := ev.(msim.IMEvent); ok && im.From == from {
			out = append(out, im.Text)
		}
	}
	return out
}

// lastIsFinal checks that evs ends with its only DisconnectedEvent and that
// nothing follows; it returns that event.
func lastIsFinal(tb testing.TB, c *msim.Client, evs []msim.Event) msim.DisconnectedEvent {
	tb.Helper()
	if len(evs) == 0 {
		tb.Fatal("no events, want a DisconnectedEvent last")
	}
	for i, ev := range evs[:len(evs)-1] {
		if _, ok := ev.(msim.DisconnectedEvent); ok {
			tb.Fatalf("DisconnectedEvent at %d of %d, want it last", i, len(evs))
		}
	}
	d, ok := evs[len(evs)-1].(msim.DisconnectedEvent)
	if !ok {
		tb.Fatalf("last event got %T, want DisconnectedEvent", evs[len(evs)-1])
	}
	if more := c.TakeEvents(nil); len(more) != 0 {
		tb.Fatalf("TakeEvents after the DisconnectedEvent got %d events", len(more))
	}
	return d
}

// TestE2ENotifyConversation: IMs reach a Notify client in order; while it
// takes none, its requests still get their replies; Close ends its events.
func TestE2ENotifyConversation(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, false)
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	wb := newWaker()
	ca, cb := mustDial(t, addr, alice), dialNotify(t, addr, bob, wb)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()

	const n = 500
	want := make([]string, n)
	for i := range want {
		want[i] = "message " + strconv.Itoa(i)
		if err := ca.SendIM(ctx, bob.uid, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ca.LookupUser(ctx, "bob"); err != nil { // the server has routed alice's IMs
		t.Fatal(err)
	}
	// Bob has taken nothing; his reader still reads, so his request is
	// answered, and the reply comes after the IMs.
	if _, err := cb.LookupUser(ctx, "alice"); err != nil {
		t.Fatalf("bob's LookupUser with %d events untaken: %v", n, err)
	}
	if got := imsFrom(cb.TakeEvents(nil), alice.uid); !reflect.DeepEqual(got, want) {
		t.Fatalf("bob got %d IMs, want %d in the order sent", len(got), n)
	}

	if err := cb.SendIM(ctx, alice.uid, "reply"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ca, func(e msim.IMEvent) bool { return e.From == bob.uid && e.Text == "reply" })
	if err := ca.SendIM(ctx, bob.uid, "bye"); err != nil {
		t.Fatal(err)
	}
	takeWhile(t, cb, wb, func(evs []msim.Event) bool { return len(imsFrom(evs, alice.uid)) == 1 })
	cb.Close()
	if d := lastIsFinal(t, cb, cb.TakeEvents(nil)); d.Reason != msim.DisconnectClosed {
		t.Errorf("got %v (%v), want closed", d.Reason, d.Err)
	}
}

// TestE2ENotifyCloseKeepsIMsInFlight: IMs the server wrote before it read
// the logout, and which the owner never took, come out of TakeEvents once
// Close returns, followed by the DisconnectedEvent.
func TestE2ENotifyCloseKeepsIMsInFlight(t *testing.T) {
	t.Parallel()
	srv, addr := startServer(t, false)
	alice, bob := addAccount(t, srv, "alice"), addAccount(t, srv, "bob")
	ca, cb := dialNotify(t, addr, alice, newWaker()), mustDial(t, addr, bob)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	const n = 300
	body := strings.Repeat("w", 20_000)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("%03d %s", i, body)
		if err := cb.SendIM(ctx, alice.uid, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cb.LookupUser(ctx, "alice"); err != nil { // the server has routed every IM
		t.Fatal(err)
	}
	ca.Close()
	evs := ca.TakeEvents(nil)
	d := lastIsFinal(t, ca, evs)
	if d.Reason != msim.DisconnectClosed {
		t.Errorf("got %v (%v), want closed", d.Reason, d.Err)
	}
	if got := imsFrom(evs, bob.uid); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d IMs after Close, want %d in order", len(got), n)
	}
}

// goroutines counts the live goroutines in one snapshot: all, those started
// by msim (the client) and those started by msim/server.
func goroutines() (all, client, srv int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		all++
		switch {
		case strings.Contains(g, "\ncreated by github.com/msimircd/msimircd/msim/server."):
			srv++
		case strings.Contains(g, "\ncreated by github.com/msimircd/msimircd/msim."):
			client++
		}
	}
	return all, client, srv
}

// TestE2EGoroutinesPerIdleClient is not parallel: it counts goroutines. A
// logged-in idle client runs a reader, plus the pump without Notify: its
// writer ends once the login's messages are out. Nothing is left after
// Close.
func TestE2EGoroutinesPerIdleClient(t *testing.T) {
	const clients = 50
	for _, tc := range []struct {
		name   string
		notify bool
		want   int
	}{
		{"events", false, 2},
		{"notify", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			srv, err := server.New(server.Config{}, server.NewMemStore(), e2eLog(t))
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ctx, ln) }()
			accts := make([]account, clients)
			for i := range accts {
				accts[i] = addAccount(t, srv, "user"+strconv.Itoa(i))
			}

			num0 := runtime.NumGoroutine()
			_, client0, srv0 := goroutines()
			cs := make([]*msim.Client, 0, clients)
			for _, a := range accts {
				cfg := msim.ClientConfig{Addr: ln.Addr().String(), Email: a.email, Password: a.password, DialTimeout: e2eWait}
				if tc.notify {
					cfg.Notify = newWaker().notify
				}
				c, err := msim.Dial(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			// The last writer may still be ending: wait for the count to
			// come down to the idle one, or the deadline.
			var num1, client1, srv1 int
			for deadline := time.Now().Add(e2eWait); ; time.Sleep(5 * time.Millisecond) {
				num1 = runtime.NumGoroutine()
				_, client1, srv1 = goroutines()
				if client1-client0 <= tc.want*clients || time.Now().After(deadline) {
					break
				}
			}
			perClient := float64(num1-num0-(srv1-srv0)) / clients
			t.Logf("%d idle clients: NumGoroutine +%d, of which msim/server +%d: %.2f per client; started by the client: %d",
				clients, num1-num0, srv1-srv0, perClient, client1-client0)
			if got, want := client1-client0, tc.want*clients; got != want {
				t.Errorf("goroutines started by %d clients got %d, want %d", clients, got, want)
			}
			if limit := float64(tc.want) + 0.1; perClient > limit {
				t.Errorf("NumGoroutine growth per client, the server's aside, got %.2f, want at most %.1f", perClient, limit)
			}

			for _, c := range cs {
				c.Close()
			}
			sctx, scancel := context.WithTimeout(context.Background(), e2eWait)
			defer scancel()
			_ = srv.Shutdown(sctx)
			cancel()
			<-served
		})
	}
}
