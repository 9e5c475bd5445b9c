package channel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/internal/fakeclock"
	"github.com/msimircd/msimircd/internal/guard"
	"github.com/msimircd/msimircd/internal/testlog"
	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
)

// fakeIRC records what the session shows the IRC client.
type fakeIRC struct {
	mu    sync.Mutex
	lines []string // "COMMAND from target: text"
	users map[string]bool
}

func newFakeIRC() *fakeIRC { return &fakeIRC{users: map[string]bool{}} }

func (f *fakeIRC) Deliver(d ircd.Delivery) bool {
	f.mu.Lock()
	f.lines = append(f.lines, fmt.Sprintf("%s %s %s: %s", nameOr(d.Command, "PRIVMSG"), d.From, d.Target, d.Text))
	f.mu.Unlock()
	if d.Sent != nil {
		d.Sent(true)
	}
	return true
}
func (f *fakeIRC) Room() int          { return 1 << 20 }
func (f *fakeIRC) HasCap(string) bool { return true }
func (f *fakeIRC) Nick() string       { return "alice" }
func (f *fakeIRC) Close(string)       {}
func (f *fakeIRC) AddUser(u ircd.User) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[u.Nick] = true
	return nil
}
func (f *fakeIRC) Reserve(string, int) {}
func (f *fakeIRC) RenameUser(old, nick string) error {
	f.mu.Lock()
	f.lines = append(f.lines, "NICK "+old+": "+nick)
	f.mu.Unlock()
	return nil
}
func (f *fakeIRC) SetPresence(string, string, bool)   {}
func (f *fakeIRC) SetRealName(string, string)         {}
func (f *fakeIRC) SetOwnRealName(string)              {}
func (f *fakeIRC) CreateChannel(string, string) error { return nil }
func (f *fakeIRC) JoinUser(string, string, bool)      {}
func (f *fakeIRC) PartUser(string, string, string)    {}
func (f *fakeIRC) SetVoice(string, string, bool)      {}
func (f *fakeIRC) SetOp(string, string, bool)         {}
func (f *fakeIRC) JoinClient(string, time.Time)       {}
func (f *fakeIRC) RemoveUser(string, string)          {}
func (f *fakeIRC) RemoveChannel(string)               {}
func (f *fakeIRC) DeliverHistory(_ string, ds []ircd.Delivery) bool {
	for _, d := range ds {
		f.Deliver(d)
	}
	return true
}
func (f *fakeIRC) SendReadMarker(string, time.Time) {}

// said returns the lines containing text.
func (f *fakeIRC) said(text string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.lines {
		if strings.Contains(l, text) {
			out = append(out, l)
		}
	}
	return out
}

// fakeMSIM is an MSIM client whose answers the test sets.
type fakeMSIM struct {
	mu       sync.Mutex
	events   []msim.Event
	notify   func()
	sent     []string
	failIM   int      // SendIM number (1-based) that fails; 0: none
	badUID   msim.UID // SendIM to it fails with msim.ErrInvalidUID
	alerts   []string
	polls    int
	closed   bool
	buddies  []msim.Contact
	presence map[msim.UID]msim.PresenceEvent // the latest pushed
	taken    func(n int)                     // when set, told how many events TakeEvents hands over
}

func (f *fakeMSIM) PresenceOf(uid msim.UID) (msim.Status, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.presence[uid]; ok {
		return p.Status, p.Text, true
	}
	for _, c := range f.buddies {
		if c.UID == uid {
			return c.Status, c.StatusText, true
		}
	}
	return msim.StatusOffline, "", false
}

func (f *fakeMSIM) Self() msim.Profile { return msim.Profile{UID: 1, UserName: "alice"} }
func (f *fakeMSIM) AppendContacts(dst []msim.Contact) []msim.Contact {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(dst, f.buddies...)
}
func (f *fakeMSIM) push(evs ...msim.Event) {
	f.mu.Lock()
	f.events = append(f.events, evs...)
	for _, ev := range evs { // as the client's table does
		if p, ok := ev.(msim.PresenceEvent); ok {
			if f.presence == nil {
				f.presence = map[msim.UID]msim.PresenceEvent{}
			}
			f.presence[p.UID] = p
		}
	}
	n := f.notify
	f.mu.Unlock()
	n()
}
func (f *fakeMSIM) TakeEvents(dst []msim.Event) []msim.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	dst = append(dst, f.events...)
	if f.taken != nil && len(f.events) > 0 {
		f.taken(len(f.events))
	}
	f.events = nil
	return dst
}
func (f *fakeMSIM) SendIM(_ context.Context, uid msim.UID, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.badUID != 0 && uid == f.badUID {
		return fmt.Errorf("msim: send: %w", msim.ErrInvalidUID)
	}
	if f.failIM == len(f.sent)+1 {
		f.failIM = 0
		return errors.New("msim: send: the link is slow")
	}
	f.sent = append(f.sent, text)
	return nil
}

// SendStyledIM records the markup the IM would have.
func (f *fakeMSIM) SendStyledIM(ctx context.Context, uid msim.UID, _ string, spans []markup.Span) error {
	return f.SendIM(ctx, uid, markup.FromSpans(spans))
}
func (f *fakeMSIM) SendTyping(context.Context, msim.UID, bool) error     { return nil }
func (f *fakeMSIM) SendZap(context.Context, msim.UID, markup.Zap) error  { return nil }
func (f *fakeMSIM) SetStatus(context.Context, msim.Status, string) error { return nil }
func (f *fakeMSIM) Profile(context.Context, msim.UID) (msim.Profile, error) {
	return msim.Profile{}, nil
}
func (f *fakeMSIM) LookupUser(context.Context, string) (msim.Profile, error) {
	return msim.Profile{}, msim.ErrNoSuchUser
}
func (f *fakeMSIM) AddBuddy(context.Context, msim.UID, string) error { return nil }
func (f *fakeMSIM) RemoveBuddy(context.Context, msim.UID) error      { return nil }
func (f *fakeMSIM) Block(context.Context, msim.UID) error            { return nil }
func (f *fakeMSIM) Allow(context.Context, msim.UID) error            { return nil }
func (f *fakeMSIM) CheckAlerts(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	return f.alerts, nil
}
func (f *fakeMSIM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// rig is a session driven by hand: the test takes each posted event and
// handles it on its own goroutine, so no real time passes.
type rig struct {
	t     testing.TB
	s     *session
	a     *account
	irc   *fakeIRC
	clock *fakeclock.Clock
	dials chan func(cfg msim.ClientConfig) (MSIMClient, error)
}

func newRig(t testing.TB, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{t: t, irc: newFakeIRC(), clock: fakeclock.New(),
		dials: make(chan func(msim.ClientConfig) (MSIMClient, error), 16)}
	cfg := Config{
		MSIMAddr: "msim.test:1863", Directory: &StaticDirectory{}, Clock: r.clock,
		ReconnectMin: time.Second, ReconnectMax: 8 * time.Second, QueueLimit: 3, AlertPoll: time.Minute,
		Log: testlog.New(t, logrus.InfoLevel),
		DialMSIM: func(ctx context.Context, cfg msim.ClientConfig) (MSIMClient, error) {
			select {
			case d := <-r.dials:
				return d(cfg)
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := User{Name: "alice", Accounts: []Account{{Email: "alice@msim.test", Password: "pw", AutoConnect: true}}}
	r.s = newSession(b, r.irc, u, newUserMemory())
	r.a = r.s.accounts[0]
	t.Cleanup(func() {
		r.s.cancel()
		r.s.workers.Wait()
		_ = b.Shutdown(context.Background())
	})
	return r
}

// failDial makes the next dial fail with a network error.
func (r *rig) failDial() {
	r.dials <- func(msim.ClientConfig) (MSIMClient, error) { return nil, errors.New("dial tcp: connection refused") }
}

// okDial makes the next dial log in with cl.
func (r *rig) okDial(cl *fakeMSIM) { r.dialAs(cl, cl) }

// dialAs makes the next dial log in with c, a client built on cl (a
// wrapper that changes some of its calls), whose events cl hands over.
func (r *rig) dialAs(cl *fakeMSIM, c MSIMClient) {
	r.dials <- func(cfg msim.ClientConfig) (MSIMClient, error) {
		cl.mu.Lock()
		cl.notify = cfg.Notify
		cl.mu.Unlock()
		return c, nil
	}
}

// step handles the next posted event (or MSIM wake-up).
func (r *rig) step() {
	r.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-r.s.events:
			r.s.handle(ev)
			return
		default:
		}
		if r.s.msimWaiting.Swap(false) {
			r.s.takeMSIM()
			return
		}
		// As the loop waits (nothingWaiting): a wake-up comes for MSIM
		// events left after this look.
		r.s.rmu.Lock()
		r.s.waiting = !r.s.msimWaiting.Load()
		waits := r.s.waiting
		r.s.rmu.Unlock()
		if !waits {
			continue
		}
		select {
		case ev := <-r.s.events:
			r.s.handle(ev)
			return
		case <-r.s.wake: // look again
		case <-timeout:
			r.t.Fatal("no event was posted")
		}
	}
}

// settle handles what is posted or waiting to be taken from MSIM now,
// until nothing is, without waiting for more.
func (r *rig) settle() {
	r.t.Helper()
	for range 100 {
		select {
		case ev := <-r.s.events:
			r.s.handle(ev)
			continue
		default:
		}
		if !r.s.msimWaiting.Swap(false) {
			return
		}
		r.s.takeMSIM()
	}
	r.t.Fatal("settle: still events after 100")
}

// stepUntil handles events until ok holds.
func (r *rig) stepUntil(what string, ok func() bool) {
	r.t.Helper()
	for i := 0; !ok(); i++ {
		if i == 100 {
			r.t.Fatalf("%s: not after 100 events", what)
		}
		r.step()
	}
}

func TestBackoffBoundsAndJitter(t *testing.T) {
	r := newRig(t, nil)
	r.failDial()
	r.s.start()
	var delays []time.Duration
	for i := range 8 {
		r.step() // the failed dial's result
		p := r.clock.Pending()
		if len(p) != 1 {
			t.Fatalf("retry %d: got timers %v, want one", i, p)
		}
		base := min(time.Second<<i, 8*time.Second)
		if d := p[0]; d < base/2 || d >= base+base/2 {
			t.Errorf("retry %d: delay %v, want within [%v, %v)", i, d, base/2, base+base/2)
		}
		delays = append(delays, p[0])
		if r.a.state != linkWaiting {
			t.Fatalf("retry %d: state %v, want waiting", i, r.a.state)
		}
		r.failDial()
		r.clock.Advance(p[0])
		r.step() // retryDue: dials again
	}
	same := true
	for _, d := range delays[3:] {
		same = same && d == delays[3]
	}
	if same {
		t.Errorf("the delays at the cap are all %v: no jitter", delays[3])
	}
}

func TestStaleGenerationEvents(t *testing.T) {
	r := newRig(t, nil)
	old := &fakeMSIM{}
	r.okDial(old)
	r.s.start()
	staleGen := r.a.gen
	// The user disconnects while the login is under way: its result is stale.
	r.s.disconnect(r.a, "Disconnected.")
	old.events = []msim.Event{msim.IMEvent{From: 42, Text: "sent while you were leaving"}}
	r.step() // linkResult of the stale generation
	if !old.closed {
		t.Error("the stale link's client was not closed")
	}
	if r.a.client != nil || r.a.state != linkDown {
		t.Errorf("after a stale result: client %v, state %v; want none, disconnected", r.a.client, r.a.state)
	}
	if got := r.irc.said("sent while you were leaving"); len(got) != 1 {
		t.Errorf("the stale link's IM: got %q, want it shown once", got)
	}
	// A retry timer of an old generation does nothing.
	r.s.handle(retryDue{a: r.a, gen: staleGen})
	if r.a.state != linkDown {
		t.Errorf("a stale retry changed the state to %v", r.a.state)
	}
}

func TestQueueLimits(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("read: connection reset")})
	r.stepUntil("the link lost", func() bool { return r.a.state != linkUp })
	if r.a.state != linkWaiting {
		t.Fatalf("state %v, want waiting", r.a.state)
	}
	for i := range 5 {
		r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: fmt.Sprintf("m%d", i)})
	}
	if len(r.a.queue) != 3 {
		t.Errorf("queued %d, want the limit, 3", len(r.a.queue))
	}
	if got := r.irc.said("NOT sent"); len(got) != 2 {
		t.Errorf("refusals: got %q, want 2", got)
	}
	// Disconnecting on purpose refuses what comes next, without queueing.
	r.s.disconnect(r.a, "Disconnected.")
	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "late"})
	if got := r.irc.said("account alice@msim.test is disconnected"); len(got) != 1 {
		t.Errorf("while disconnected: got %q", got)
	}
}

// loggedInThenLost is a rig whose account logged in with buddy bob (uid 7)
// and lost its link; the next dial waits for okDial.
func loggedInThenLost(t *testing.T) (*rig, *fakeMSIM) {
	r := newRig(t, nil)
	first := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(first)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	first.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	return r, first
}

func TestFlushStopsAtAFailure(t *testing.T) {
	r, first := loggedInThenLost(t)
	for _, text := range []string{"one", "two", "three"} {
		r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: text})
	}
	second := &fakeMSIM{buddies: first.buddies, failIM: 2}
	r.okDial(second)
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp }) // the queue is flushed
	if strings.Join(second.sent, ",") != "one" {
		t.Errorf("sent %q, want only the first before the failure", second.sent)
	}
	if len(r.a.queue) != 2 || r.a.queue[0].text != "two" {
		t.Errorf("still queued: %+v, want two and three", r.a.queue)
	}
	if got := r.irc.said("Sent 1 queued messages; 2 still waiting"); len(got) != 1 {
		t.Errorf("the user is told: got %q", got)
	}
}

// TestFlushDropsUnsendable: a queued IM that can never be sent (to an
// invalid uid) is refused with a notice and holds up none after it.
func TestFlushDropsUnsendable(t *testing.T) {
	r, first := loggedInThenLost(t)
	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "one"})
	r.s.queueIM(r.a, queuedIM{uid: 1 << 31, nick: "ghost", text: "never"})
	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "two"})
	second := &fakeMSIM{buddies: first.buddies, badUID: 1 << 31}
	r.okDial(second)
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp }) // the queue is flushed
	if strings.Join(second.sent, ",") != "one,two" {
		t.Errorf("sent %q, want one and two", second.sent)
	}
	if len(r.a.queue) != 0 {
		t.Errorf("still queued: %+v, want none", r.a.queue)
	}
	if got := r.irc.said("Message NOT sent (msim: send: msim: invalid uid): never"); len(got) != 1 {
		t.Errorf("the refusal: got %q, want it once", got)
	}
}

func TestAlertPolling(t *testing.T) {
	r := newRig(t, nil)
	cl := &fakeMSIM{alerts: []string{"Mail", "FriendRequest"}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("the first poll", func() bool { return len(r.irc.said("You have new mail")) > 0 })
	if got := r.irc.said("You have new mail"); len(got) != 1 {
		t.Fatalf("alerts: got %q", got)
	}
	if p := r.clock.Pending(); len(p) != 1 || p[0] != time.Minute {
		t.Fatalf("next poll: timers %v, want one of 1m", p)
	}
	cl.mu.Lock()
	cl.alerts = nil
	cl.mu.Unlock()
	r.clock.Advance(time.Minute)
	r.stepUntil("the second poll", func() bool { return len(r.clock.Pending()) == 1 })
	if cl.polls != 2 {
		t.Errorf("polls: got %d, want 2", cl.polls)
	}
	// A lost link stops the polls.
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	for _, d := range r.clock.Pending() {
		if d == time.Minute {
			t.Errorf("an alert poll is still scheduled after the link was lost")
		}
	}
}

// quietIRC is a fakeIRC whose Deliver records nothing: it reports each
// delivery shown, at once.
type quietIRC struct {
	*fakeIRC
	delivered int
}

func (q *quietIRC) Deliver(d ircd.Delivery) bool {
	q.delivered++
	if d.Sent != nil {
		d.Sent(true)
	}
	return true
}

// TestDeliverToOneClientAllocs: with one client attached, a delivery and
// its Sent report go to it as they are; merging the reports of several
// clients costs nothing there.
func TestDeliverToOneClientAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a race-free build")
	}
	q := &quietIRC{fakeIRC: newFakeIRC()}
	cl := &clients{}
	cl.add(newAttachment(q, nil, nil))
	sent := 0
	d := ircd.Delivery{Command: "PRIVMSG", From: "bob", Text: "hi", MsgID: "m1", Sent: func(ok bool) {
		if ok {
			sent++
		}
	}}
	if n := testing.AllocsPerRun(200, func() { cl.Deliver(d) }); n > 0 {
		t.Errorf("Deliver to one client: %.1f allocations, want none", n)
	}
	if sent != q.delivered || sent == 0 {
		t.Errorf("Sent(true) reported %d times for %d deliveries", sent, q.delivered)
	}
}

// TestLinkLogs: the gateway's log says when an account logs in to MSIM,
// when a login fails or the link is lost (with when it retries), and when
// it stops (a wrong password, a login from another place), so an operator
// sees why an always-on account (no IRC client attached to read its
// control channel) is offline. No line holds the account's password.
func TestLinkLogs(t *testing.T) {
	l, hook := logtest.NewNullLogger()
	r := newRig(t, func(c *Config) { c.Log = logrus.NewEntry(l) })
	const password = "Distinct-Secret-9"
	r.a.cfg.Password = password
	online := func() *fakeMSIM {
		return &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	}
	retry := func(cl *fakeMSIM) {
		r.okDial(cl)
		r.clock.Advance(r.clock.Pending()[0])
		r.stepUntil("the login", func() bool { return r.a.state == linkUp })
	}
	r.failDial()
	r.s.start()
	r.step() // the failed dial's result
	cl := online()
	retry(cl)
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("read: connection reset")})
	r.stepUntil("the loss", func() bool { return r.a.state == linkWaiting })
	cl = online()
	retry(cl)
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectKicked, Err: errors.New("logged in elsewhere")})
	r.stepUntil("the kick", func() bool { return r.a.state == linkStopped })
	r.dials <- func(cfg msim.ClientConfig) (MSIMClient, error) {
		if cfg.Password != password {
			t.Errorf("dialled with password %q", cfg.Password)
		}
		return nil, &msim.LoginError{Message: "The password provided is incorrect.", Err: msim.ErrBadPassword}
	}
	r.s.connect(r.a) // connecting now
	r.stepUntil("the refused login", func() bool { return r.a.state == linkStopped })
	var got []string
	for _, e := range hook.AllEntries() {
		line, err := e.String()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, password) {
			t.Errorf("a log line holds the password: %s", line)
		}
		if e.Data["account"] != "alice@msim.test" {
			continue
		}
		msg := fmt.Sprintf("%s %s", e.Level, e.Message)
		if _, ok := e.Data["retry_in"]; ok {
			msg += " (retry_in)"
		}
		got = append(got, msg)
	}
	want := []string{
		"warning MSIM login failed; retrying (retry_in)",
		"info logged in to MSIM",
		"warning MSIM link lost; reconnecting (retry_in)",
		"info logged in to MSIM",
		"warning MSIM account logged in from another place; not reconnecting until the user types connect",
		"warning MSIM login failed; not retrying until the account's settings change or the user types connect",
	}
	if !slices.Equal(got, want) {
		t.Errorf("log lines naming the account:\n got %q\nwant %q", got, want)
	}
}

// TestBackoffAcrossShortLinks: a link the server drops soon after each
// login is retried ever more slowly, as failed logins are; once a link has
// held for linkStable, losing it retries after the shortest delay again.
func TestBackoffAcrossShortLinks(t *testing.T) {
	r := newRig(t, nil)
	within := func(what string, base time.Duration) {
		t.Helper()
		p := r.clock.Pending()
		var d time.Duration
		for _, pd := range p {
			if pd < time.Minute { // the alert poll's is a minute away
				d = pd
			}
		}
		if d < base/2 || d >= base+base/2 {
			t.Errorf("%s: retry in %v (pending %v), want within [%v, %v)", what, d, p, base/2, base+base/2)
		}
	}
	up := func() *fakeMSIM {
		cl := &fakeMSIM{}
		r.okDial(cl)
		return cl
	}
	lose := func(cl *fakeMSIM) {
		cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("read: connection reset")})
		r.stepUntil("the loss", func() bool { return r.a.state == linkWaiting })
	}
	retry := func() {
		p := r.clock.Pending()
		r.clock.Advance(slices.Min(p))
		r.stepUntil("the login", func() bool { return r.a.state == linkUp })
	}
	cl := up()
	r.s.start()
	r.stepUntil("the first login", func() bool { return r.a.state == linkUp })
	lose(cl)
	within("the first loss", time.Second)
	for i, base := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		cl = up()
		retry()
		lose(cl) // at once
		within(fmt.Sprintf("loss %d soon after its login", i+2), base)
	}
	cl = up()
	retry()
	r.clock.Advance(linkStable) // the alert poll comes and goes
	for len(r.s.events) > 0 || r.s.msimWaiting.Load() {
		r.step()
	}
	lose(cl)
	within("a loss after the link held", time.Second)
}

// deadAfter is a fakeMSIM whose link has died once dead is set: its sends
// fail with ErrDisconnected, as a client's do before its DisconnectedEvent
// is seen.
type deadAfter struct {
	*fakeMSIM
	dead bool
}

func (d *deadAfter) SendIM(ctx context.Context, uid msim.UID, text string) error {
	if d.dead {
		return msim.ErrDisconnected
	}
	return d.fakeMSIM.SendIM(ctx, uid, text)
}

// TestUnsentAheadOfWhatIsTypedNext: an IM the MSIM client took but never
// wrote goes back in the queue ahead of one typed after it that the
// session queued before it saw the link's loss, in the user's memory too;
// the reconnect sends them in the order typed.
func TestUnsentAheadOfWhatIsTypedNext(t *testing.T) {
	r := newRig(t, nil)
	cl := &deadAfter{fakeMSIM: &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}}
	r.dialAs(cl.fakeMSIM, cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })

	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "first"}) // taken, never written
	cl.dead = true
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof"),
		Unsent: []msim.OutgoingIM{{To: 7, Text: "first"}}})
	// Typed before the session took the event (IRC input goes first).
	r.s.handle(newIRCInput(r.s.cl.ats[0], ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "second"}))
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	var kept []string
	for _, q := range r.s.mem.queuedFor(r.a.cfg.Email) {
		kept = append(kept, q.text)
	}
	if got := strings.Join(kept, ","); got != "first,second" {
		t.Errorf("queued in the user's memory: %q, want first,second", got)
	}

	second := &fakeMSIM{buddies: cl.buddies}
	r.okDial(second)
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp })
	if got := strings.Join(second.sent, ","); got != "first,second" {
		t.Errorf("bob got %q after the reconnect, want first,second", got)
	}
}

// TestRetryWhileMSIMGuessesRefusedRetriesLater: a registered user's
// account whose link dropped waits to reconnect; its retry comes while
// the user's MSIM logins are refused for wrong passwords tried on another
// of their accounts. It is not left waiting with no retry to come: it
// logs in once the refusal is over.
func TestRetryWhileMSIMGuessesRefusedRetriesLater(t *testing.T) {
	r := refusedWhileWaiting(t, time.Minute)
	r.clock.Advance(r.clock.Pending()[0])
	r.step() // retryDue: refused
	if r.a.state == linkConnecting {
		t.Fatal("the retry logged in while the user's MSIM logins are refused")
	}
	r.okDial(&fakeMSIM{})
	r.clock.Advance(2 * time.Minute) // the refusal is over
	for i := 0; r.a.state != linkUp; i++ {
		if i == 20 {
			t.Fatalf("not logged in again after the refusal: state %v, timers %v", r.a.state, r.clock.Pending())
		}
		if p := r.clock.Pending(); len(p) > 0 {
			r.clock.Advance(slices.Min(p))
		}
		select {
		case ev := <-r.s.events:
			r.s.handle(ev)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestMSIMGuessRefusalSaidOnce: while the user's MSIM logins are refused
// for wrong passwords, the retries refused one after another tell the
// user once, not at every retry.
func TestMSIMGuessRefusalSaidOnce(t *testing.T) {
	r := refusedWhileWaiting(t, time.Hour)
	for range 5 { // five retries, each refused
		p := r.clock.Pending()
		if len(p) != 1 {
			t.Fatalf("timers %v, want the next retry", p)
		}
		r.clock.Advance(p[0])
		r.step()
	}
	if got := r.irc.said("too many wrong MSIM passwords"); len(got) != 1 {
		t.Errorf("the user was told %d times, want once: %q", len(got), got)
	}
}

// refusedWhileWaiting is a registered user's session whose account waits
// to retry after a failed dial, when a wrong MSIM password tried on
// another of their accounts refuses their MSIM logins for refuseFor.
func refusedWhileWaiting(t *testing.T, refuseFor time.Duration) *rig {
	t.Helper()
	r := newRig(t, func(c *Config) {
		c.IdentifyFailures = guard.FailureConfig{Free: 1, RefuseAfter: 1, RefuseFor: refuseFor, Clock: c.Clock}
	})
	r.s.user.registered = true
	r.failDial()
	r.s.start()
	r.step() // the failed dial's result: a retry is scheduled
	if r.a.state != linkWaiting {
		t.Fatalf("after a failed dial: state %v, want waiting", r.a.state)
	}
	r.s.b.failAddr.Fail(r.s.msimGuessKey())
	return r
}

// TestBusyInputPastTheBoundRefused: what the client types while the
// session is busy past maxDeferred lines is refused with a notice, not
// handled at once; what was kept is handled once the session is free.
func TestBusyInputPastTheBoundRefused(t *testing.T) {
	r := newRig(t, nil)
	r.s.busy = true
	at := r.s.cl.ats[0]
	for i := range maxDeferred + 1 {
		r.s.handle(newIRCInput(at, ircd.Input{Command: "PRIVMSG", Target: r.s.b.cfg.ServiceNick, Text: fmt.Sprintf("set typing %v", i%2 == 1)}))
	}
	if got := r.irc.said("typing ="); len(got) != 0 {
		t.Errorf("handled while busy: %q", got)
	}
	if got := r.irc.said("Not handled"); len(got) != 1 || !strings.Contains(got[0], "set typing false") {
		t.Errorf("refusals: got %q, want one for the line past the bound", got)
	}
	r.s.busy = false
	r.s.handleQueued(call(func() {}))
	if got := r.irc.said("typing ="); len(got) != maxDeferred {
		t.Errorf("handled once free: %d lines, want %d", len(got), maxDeferred)
	}
}
