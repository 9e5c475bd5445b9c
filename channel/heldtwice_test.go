package channel

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// stalledIRC is a client whose socket takes nothing for now: the IMs it
// is handed are reported (Sent) only when the test says.
type stalledIRC struct {
	*fakeIRC
	mu      sync.Mutex
	reports []func(bool)
	full    bool // its SendQ has no room: one IM at a time is handed over
}

func (f *stalledIRC) Room() int {
	if f.full {
		return 0
	}
	return f.fakeIRC.Room()
}

func (f *stalledIRC) Deliver(d ircd.Delivery) bool {
	sent := d.Sent
	d.Sent = nil
	f.fakeIRC.Deliver(d)
	if sent != nil {
		f.mu.Lock()
		f.reports = append(f.reports, sent)
		f.mu.Unlock()
	}
	return true
}

// report reports every IM handed over so far as written.
func (f *stalledIRC) report() {
	f.mu.Lock()
	rs := f.reports
	f.reports = nil
	f.mu.Unlock()
	for _, r := range rs {
		r(true)
	}
}

// An IM held for the user is given to the client at the account's login;
// if the link is lost and back before it was shown (the client's socket
// has not taken it, it waits in the outbox for room, or its sender, a
// stranger, is being looked up), the next login does not give it again.
func TestHeldIMOnItsWayIsNotGivenAgainAtTheNextLogin(t *testing.T) {
	for _, tc := range []struct {
		name string
		from msim.UID
		full bool
	}{
		{"handed to ircd", 7, false},
		{"waiting in the outbox", 7, true},
		{"waiting for a stranger's profile", 9, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			irc := &stalledIRC{fakeIRC: r.irc, full: tc.full}
			r.s.irc = irc
			for _, text := range []string{"held one", "held two"} {
				r.s.mem.hold(r.a.cfg.Email, msim.IMEvent{From: tc.from, Text: text, Time: time.Now()})
			}
			bob := []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}
			release := make(chan struct{})
			login := func() *fakeMSIM {
				cl := &fakeMSIM{buddies: bob}
				r.dialAs(cl, &slowProfile{cl, release})
				return cl
			}
			first := login()
			r.s.start()
			r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
			first.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
			r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
			login()
			r.clock.Advance(r.clock.Pending()[0])
			r.stepUntil("logged in again", func() bool { return r.a.state == linkUp })
			close(release)
			r.stepUntil("the stranger known", func() bool { return len(r.a.pending) == 0 })
			irc.full = false
			for irc.report(); len(irc.said("held two")) == 0 && r.s.out.drained.Swap(false); irc.report() {
				r.s.pumpOut() // what waited for room
			}
			r.s.mem.settle()
			for _, text := range []string{"held one", "held two"} {
				if got := irc.said(text); len(got) != 1 {
					t.Errorf("%q was given %d times: %q; want once", text, len(got), got)
				}
			}
			if held := r.s.mem.heldFor(r.a.cfg.Email); len(held) != 0 {
				t.Errorf("still held once shown: %v", held)
			}
		})
	}
}

// heldReadHook runs hook, once, as the user's held IMs are read.
type heldReadHook struct {
	store.Store
	mu   sync.Mutex
	hook func()
}

func (h *heldReadHook) HeldIMs(ctx context.Context, user, email string) ([]store.HeldIM, error) {
	h.mu.Lock()
	f := h.hook
	h.hook = nil
	h.mu.Unlock()
	if f != nil {
		f()
	}
	return h.Store.HeldIMs(ctx, user, email)
}

// A held IM reported shown while the next login reads the held IMs is
// not given again by that login.
func TestHeldIMReportedDuringTheLoginsReadIsNotGivenAgain(t *testing.T) {
	const email = "alice@msim.test"
	r, st := historyRig(t)
	if _, err := st.HoldIM(context.Background(), "alice", email, store.HeldIM{From: 7, Text: "held one", Seq: 1, Time: time.Now(), Offline: true}); err != nil {
		t.Fatal(err)
	}
	h := &heldReadHook{Store: st}
	mem, err := loadUserMemory(h, r.s.user, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	r.s.mem = mem
	irc := &stalledIRC{fakeIRC: r.irc}
	r.s.irc = irc
	bob := []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}
	login := func() *fakeMSIM {
		cl := &fakeMSIM{buddies: bob}
		r.okDial(cl)
		return cl
	}
	first := login()
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if got := irc.said("held one"); len(got) != 1 {
		t.Fatalf("the first login gave the held IM %d times", len(got))
	}
	first.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	h.mu.Lock()
	h.hook = irc.report // ircd reports it shown as the login reads
	h.mu.Unlock()
	login()
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp })
	irc.report()
	r.s.mem.settle()
	if got := irc.said("held one"); len(got) != 1 {
		t.Errorf("the held IM was given %d times: %q; want once", len(got), got)
	}
}

// A client that attaches to a session running with none (always on) is
// not given again the IMs held for it that are still on their way from
// an earlier client's time: here one from a stranger, given at the
// login, that waits for the stranger's profile as the client leaves and
// another attaches.
func TestHeldIMOnItsWayIsNotGivenAgainAtAttach(t *testing.T) {
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	email := r.a.cfg.Email
	r.s.mem.hold(email, msim.IMEvent{From: 9, Text: "held one", Time: time.Now()})
	release := make(chan struct{})
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.dialAs(cl, &slowProfile{cl, release})
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if len(r.a.pending[9]) != 1 {
		t.Fatalf("waiting for the stranger's profile: %d IMs, want the held one", len(r.a.pending[9]))
	}
	if !r.s.closed(r.s.cl.ats[0]) {
		t.Fatal("the session ended with its client")
	}
	phone := newFakeIRC()
	if err := r.s.attach(newAttachment(phone, r.s, nil), nil); err != nil {
		t.Fatal(err)
	}
	close(release)
	r.stepUntil("the stranger known", func() bool { return len(r.a.pending) == 0 })
	r.s.mem.settle()
	if got := phone.said("held one"); len(got) != 1 {
		t.Errorf("the held IM was given %d times: %q; want once", len(got), got)
	}
	if held := heldTexts(r.s.mem, email); len(held) != 0 {
		t.Errorf("still held once shown: %q", held)
	}
}

// TestHeldIMLeftOutAtAttachIsGivenWhenReportedNotShown: a held IM handed
// to a client that leaves before ircd reports it (the report comes after
// attach's bounded wait, sentWait) is left out of what build gives the next
// client, as on its way. When the late report says it was not shown, it is
// given to the client attached now, once, rather than wait, untold, for the
// account's next login or the user's next attach.
func TestHeldIMLeftOutAtAttachIsGivenWhenReportedNotShown(t *testing.T) {
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	email := r.a.cfg.Email
	stalled := &stalledIRC{fakeIRC: r.irc}
	r.s.cl.ats[0].c = stalled
	r.s.mem.hold(email, msim.IMEvent{From: 7, Text: "held one", Time: time.Now()})
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if got := stalled.said("held one"); len(got) != 1 {
		t.Fatalf("handed to the first client: %q, want the held IM once", got)
	}
	if !r.s.closed(r.s.cl.ats[0]) {
		t.Fatal("the session ended with its client")
	}
	phone := newFakeIRC()
	start := time.Now()
	if err := r.s.attach(newAttachment(phone, r.s, nil), nil); err != nil { // waits sentWait for the report
		t.Fatal(err)
	}
	t.Logf("attach waited %v", time.Since(start).Round(time.Millisecond))
	stalled.reportAll(false) // the first client never showed it
	r.s.mem.settle()
	for drained := false; !drained; { // whatever the report posted
		select {
		case ev := <-r.s.events:
			r.s.handle(ev)
		default:
			if r.s.msimWaiting.Swap(false) {
				r.s.takeMSIM()
				continue
			}
			if r.s.out.drained.Swap(false) {
				r.s.afterReports()
				continue
			}
			drained = true
		}
	}
	r.s.mem.settle()
	if got := phone.said("held one"); len(got) != 1 {
		t.Errorf("given to the client attached now: %q (still held: %q); want it once", got, heldTexts(r.s.mem, email))
	}
}

// TestHeldAgainReportDoesNotBlock: Delivery.Sent must not block (it runs
// on an ircd goroutine, the connection's writer): the report that a held
// IM a login or attach left out as on its way was not shown does not wait
// for room in the session's queue (full while a client types fast).
func TestHeldAgainReportDoesNotBlock(t *testing.T) {
	r := newRig(t, nil)
	email := r.a.cfg.Email
	irc := &stalledIRC{fakeIRC: r.irc}
	r.s.irc = irc
	r.s.mem.hold(email, msim.IMEvent{From: 7, Text: "held one", Time: time.Now()})
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if got := irc.said("held one"); len(got) != 1 {
		t.Fatalf("handed to the client at login: %q, want once", got)
	}
	r.s.heldOnItsWay(r.a) // as the account's next login, or an attach, reads it
	for len(r.s.events) < cap(r.s.events) {
		r.s.events <- call(func() {})
	}
	done := make(chan struct{})
	go func() {
		irc.reportAll(false) // on the "writer" goroutine
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Errorf("Sent(false) still blocked after 2s on the session's full queue (inflight %d)", r.s.out.inflight.Load())
		for len(r.s.events) > 0 { // let it go
			<-r.s.events
		}
		<-done
	}
}
