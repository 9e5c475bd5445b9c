package channel

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// failingWrites is a store whose writes of what is kept for the user's
// next connection (held IMs, queued IMs, notes) fail while fail is set.
type failingWrites struct {
	store.Store
	fail atomic.Bool
}

var errStoreDown = errors.New("store: the database does not answer")

func (f *failingWrites) HoldIM(ctx context.Context, user, email string, im store.HeldIM) (store.HeldIM, error) {
	if f.fail.Load() {
		return store.HeldIM{}, errStoreDown
	}
	return f.Store.HoldIM(ctx, user, email, im)
}

func (f *failingWrites) QueueIM(ctx context.Context, user, email string, im store.QueuedIM) (store.QueuedIM, error) {
	if f.fail.Load() {
		return store.QueuedIM{}, errStoreDown
	}
	return f.Store.QueueIM(ctx, user, email, im)
}

func (f *failingWrites) AddNote(ctx context.Context, user, text string) error {
	if f.fail.Load() {
		return errStoreDown
	}
	return f.Store.AddNote(ctx, user, text)
}

// leasedInstanceRig is a rig of the instance "a" among several on the
// store ss, holding the lease of the rig's user, whose bridge logs to
// hook, with mem the user's memory loaded from ss (every read goes to the
// store); the session does not use mem yet, nor does the bridge know of
// it.
func leasedInstanceRig(t *testing.T, ss store.Store) (r *rig, hook *logtest.Hook, mem *userMemory) {
	t.Helper()
	r = newRig(t, func(c *Config) {
		c.Store = ss
		c.Instance, c.LeaseTTL, c.HandOverWait = "a", time.Minute, time.Second
	})
	b := r.s.b
	l, hook := logtest.NewNullLogger()
	b.log = logrus.NewEntry(l)
	if err := b.lease.acquire(r.s.user, false, nil); err != nil {
		t.Fatal(err)
	}
	mem, err := loadUserMemory(ss, r.s.user, quietLog(), false)
	if err != nil {
		t.Fatal(err)
	}
	return r, hook, mem
}

// runsSession registers r's session, and its memory, with its bridge as
// Connect registers the session it runs.
func runsSession(r *rig) {
	b, u := r.s.b, r.s.user
	b.mu.Lock()
	b.memory[u.Name], b.sessions[u.Name] = r.s.mem, r.s
	b.mu.Unlock()
	b.wg.Add(1)
}

// textsRead is the texts (text) of items, read from the store with err,
// which is fatal.
func textsRead[T any](t *testing.T, items []T, err error, text func(T) string) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, text(it))
	}
	return out
}

// With several instances on the store, a session that ends forgets the
// user's state here (another instance may serve them next). What only
// memory kept, because the store failed as it was written (an IM the
// client had not shown, an IM typed while the link was down, a note), is
// written to the store once more before it is forgotten: the user's next
// connection, here or on another instance, finds it. What the store still
// refuses is logged lost, without the IMs' text.
func TestSessionEndWritesWhatOnlyMemoryKept(t *testing.T) {
	t.Run("the store answers again", func(t *testing.T) { sessionEndLeftovers(t, true) })
	t.Run("the store still fails", func(t *testing.T) { sessionEndLeftovers(t, false) })
}

// sessionEndLeftovers ends a session of an instance among several whose
// store failed to take an IM held, an IM queued and a note; recovers: the
// store answers again as the session's end forgets the user's state.
func sessionEndLeftovers(t *testing.T, recovers bool) {
	st := sqliteStore(t)
	fw := &failingWrites{Store: st}
	r, hook, mem := leasedInstanceRig(t, fw)
	b := r.s.b
	u, email := r.s.user, r.a.cfg.Email
	r.s.mem = mem
	runsSession(r)
	irc := &stalledIRC{fakeIRC: r.irc, full: true}
	r.s.irc = irc
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	cl.push(msim.IMEvent{From: 7, Text: "shown"}, msim.IMEvent{From: 7, Text: "unshown"})
	r.stepUntil("one IM waits", func() bool { return len(r.s.out.waiting()) == 1 })
	irc.report() // the first is shown; the second waits for room

	fw.fail.Store(true) // the store fails: the memory keeps what it is given
	mem.queue(email, queuedIM{uid: 7, nick: "bob", text: "typed while down", record: true, at: time.Now()})
	mem.note("a note for the next connection")
	r.s.shutdown() // holds the IM the client has not shown
	if held, notes := mem.leftovers(); held != 2 || notes == 0 {
		t.Fatalf("kept in memory only as the session ends: %d IMs, %d notes; want 2 IMs (held, queued) and notes", held, notes)
	}

	fw.fail.Store(!recovers)
	b.ended(r.s)

	var lost []string
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "they are lost") {
			lost = append(lost, e.Message)
		}
		if strings.Contains(e.Message, "unshown") || strings.Contains(e.Message, "typed while down") {
			t.Errorf("an IM's text logged: %q", e.Message)
		}
	}
	if !recovers {
		if len(lost) != 1 {
			t.Errorf("logged lost: %q; want one line", lost)
		}
		return
	}
	if len(lost) != 0 {
		t.Errorf("logged as lost though written: %q", lost)
	}
	ctx := context.Background()
	hs, err := st.HeldIMs(ctx, u.Name, email)
	held := textsRead(t, hs, err, func(h store.HeldIM) string { return h.Text })
	if !slices.Contains(held, "unshown") {
		t.Errorf("held in the store once the session ended: %q; want the IM the client did not show", held)
	}
	qs, err := st.QueuedIMs(ctx, u.Name, email)
	queued := textsRead(t, qs, err, func(q store.QueuedIM) string { return q.Text })
	if !slices.Equal(queued, []string{"typed while down"}) {
		t.Errorf("queued in the store once the session ended: %q; want the IM typed while the link was down", queued)
	}
	notes, err := st.TakeNotes(ctx, u.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(notes, "a note for the next connection") {
		t.Errorf("notes in the store once the session ended: %q; want the note", notes)
	}
}
