package channel

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// queueFaults is a store whose reads of queued IMs fail readFails times,
// and whose deletes of them fail while deleteFails is set.
type queueFaults struct {
	store.Store
	mu          sync.Mutex
	readFails   int
	deleteFails bool
}

var errQueueBlip = errors.New("database is locked")

func (f *queueFaults) QueuedIMs(ctx context.Context, user, email string) ([]store.QueuedIM, error) {
	f.mu.Lock()
	fail := f.readFails > 0
	if fail {
		f.readFails--
	}
	f.mu.Unlock()
	if fail {
		return nil, errQueueBlip
	}
	return f.Store.QueuedIMs(ctx, user, email)
}

func (f *queueFaults) DeleteQueued(ctx context.Context, user, email string, ids ...int64) error {
	f.mu.Lock()
	fail := f.deleteFails
	f.mu.Unlock()
	if fail {
		return errQueueBlip
	}
	return f.Store.DeleteQueued(ctx, user, email, ids...)
}

// storedMemory is the memory of r's user on st, loaded as at a start
// (one instance: it is the sole writer).
func storedMemory(t *testing.T, r *rig, st store.Store) *userMemory {
	t.Helper()
	mem, err := loadUserMemory(st, r.s.user, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

// sessionOn replaces r's session, which has not started, by one of the
// same user on mem, with c attached (nil: none), as a start makes it.
func sessionOn(r *rig, c ircConn, mem *userMemory) {
	if r.s.ctx.Err() == nil {
		r.s.cancel()
		r.s.workers.Wait()
	}
	r.s = newSession(r.s.b, c, r.s.user, mem)
	r.a = r.s.accounts[0]
}

// bobContact is a buddy list with bob (uid 7) online.
func bobContact() []msim.Contact {
	return []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}
}

// sentCount counts the IMs of the clients whose text is text.
func sentCount(text string, cls ...*fakeMSIM) int {
	n := 0
	for _, cl := range cls {
		cl.mu.Lock()
		for _, s := range cl.sent {
			if s == text {
				n++
			}
		}
		cl.mu.Unlock()
	}
	return n
}

// queuedThenRestart is an always-on rig whose user has queued text to bob
// (uid 7) for alice@msim.test in the store st, as the link was down; then
// the gateway restarts: the rig's session, not started, is one on the
// user's memory loaded again, from st through queueFaults whose first
// readFails reads of the queue fail.
func queuedThenRestart(t *testing.T, text string, readFails int) (*rig, store.Store) {
	t.Helper()
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	st := sqliteStore(t)
	storedMemory(t, r, st).queue("alice@msim.test", queuedIM{uid: 7, nick: "bob", text: text, record: true})

	faults := &queueFaults{Store: st, readFails: readFails}
	sessionOn(r, r.irc, storedMemory(t, r, faults)) // a restart
	return r, st
}

// TestQueuedReadFailureRetriedAtLogin: an IM queued while the link was
// down, in the store, whose read fails as the session starts (a database
// blip at a restart) is not left there for the session: the user is
// told it could not be read yet, and the account's login reads it again
// and sends it.
func TestQueuedReadFailureRetriedAtLogin(t *testing.T) {
	const email = "alice@msim.test"
	r, st := queuedThenRestart(t, "typed while away", 1)
	cl := &fakeMSIM{buddies: bobContact()}
	r.okDial(cl)
	r.s.start()
	if got := r.irc.said("could not be read"); len(got) != 1 {
		t.Errorf("told of the queued IMs not read: %q; want once", got)
	}
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if n := sentCount("typed while away", cl); n != 1 {
		cl.mu.Lock()
		t.Errorf("sent to MSIM: %q; want the queued IM once", cl.sent)
		cl.mu.Unlock()
	}
	r.s.mem.settle() // its delete
	if qs, err := st.QueuedIMs(context.Background(), "alice", email); err != nil || len(qs) != 0 {
		t.Errorf("still queued in the store: %+v, %v", qs, err)
	}
}

// TestQueuedReadFailureKeepsWhatIsTypedMeanwhile: a queue whose read
// fails at the start and again at the first two logins is read at the
// next one; what the user typed meanwhile, before the second login or
// while its link was up, waits behind it (sent first, it would come
// before the older IMs), and is sent after it, each IM once, in the
// order typed.
func TestQueuedReadFailureKeepsWhatIsTypedMeanwhile(t *testing.T) {
	const email = "alice@msim.test"
	r, st := queuedThenRestart(t, "first", 3)
	first := &fakeMSIM{buddies: bobContact()}
	loginThenLose(r, first)
	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "second"}) // queued
	second := &fakeMSIM{buddies: bobContact()}
	r.okDial(second)
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp }) // its read fails
	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "third"})    // while the link is up
	if n := sentCount("first", first, second) + sentCount("second", first, second) + sentCount("third", first, second); n != 0 {
		t.Errorf("sent %d IMs while the queue was unread; want none before first", n)
	}
	if got := r.irc.said("could not be read"); len(got) != 3 {
		t.Errorf("told of the queued IMs not read: %q; want at the start and at both logins", got)
	}
	if got := r.irc.said("wait behind"); len(got) != 2 {
		t.Errorf("told that what is typed waits behind them: %q; want at the second login and for third", got)
	}
	second.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	third := &fakeMSIM{buddies: bobContact()}
	r.okDial(third)
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in a third time", func() bool { return r.a.state == linkUp })
	third.mu.Lock()
	got := strings.Join(third.sent, ",")
	third.mu.Unlock()
	if got != "first,second,third" {
		t.Errorf("sent to MSIM: %q; want first,second,third", got)
	}
	r.s.mem.settle()
	if qs, err := st.QueuedIMs(context.Background(), "alice", email); err != nil || len(qs) != 0 {
		t.Errorf("still queued in the store: %+v, %v", qs, err)
	}
}

// loginThenLose logs r's account in with cl and has its link lost; the
// next login waits for okDial and the clock.
func loginThenLose(r *rig, cl *fakeMSIM) {
	r.t.Helper()
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
}

// TestQueuedSentOnceWhenTheirDeleteFails: an IM queued while the link was
// down and sent at the login, whose delete from the store fails, is not
// sent again by the user's next session on the same memory; the delete
// is tried again there, and once it goes through the IM is gone.
func TestQueuedSentOnceWhenTheirDeleteFails(t *testing.T) {
	const email = "alice@msim.test"
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	st := sqliteStore(t)
	faults := &queueFaults{Store: st, deleteFails: true}
	mem := storedMemory(t, r, faults)
	sessionOn(r, r.irc, mem)
	first := &fakeMSIM{buddies: bobContact()}
	loginThenLose(r, first)
	r.s.onIRC(ircd.Input{Command: "PRIVMSG", Target: "bob", Text: "typed"})
	second := &fakeMSIM{buddies: bobContact()}
	r.okDial(second)
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp }) // flushed
	if n := sentCount("typed", second); n != 1 {
		t.Fatalf("sent at the login: %d; want once", n)
	}

	// The user's next session, on the same memory (always on, the
	// bridge keeps it), logs in.
	irc := newFakeIRC()
	sessionOn(r, irc, mem)
	r.irc = irc
	third := &fakeMSIM{buddies: bobContact()}
	r.okDial(third)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	if n := sentCount("typed", second, third); n != 1 {
		t.Errorf("the buddy got the queued IM %d times; want once", n)
	}

	// The database is back: the delete goes through at the next read.
	faults.mu.Lock()
	faults.deleteFails = false
	faults.mu.Unlock()
	if qs := mem.queuedFor(email); len(qs) != 0 {
		t.Errorf("queued: %+v; want none", qs)
	}
	if qs, err := st.QueuedIMs(context.Background(), "alice", email); err != nil || len(qs) != 0 {
		t.Errorf("still in the store: %+v, %v; want none", qs, err)
	}
}
