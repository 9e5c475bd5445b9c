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
	r := newRig(t, func(c *Config) {
		c.Store = fw
		c.Instance, c.LeaseTTL, c.HandOverWait = "a", time.Minute, time.Second
	})
	b := r.s.b
	l, hook := logtest.NewNullLogger()
	b.log = logrus.NewEntry(l)
	u, email := r.s.user, r.a.cfg.Email
	if err := b.lease.acquire(u, false, nil); err != nil {
		t.Fatal(err)
	}
	mem, err := loadUserMemory(fw, u, quietLog(), false)
	if err != nil {
		t.Fatal(err)
	}
	r.s.mem = mem
	b.mu.Lock() // as Connect registers the session it runs
	b.memory[u.Name], b.sessions[u.Name] = mem, r.s
	b.mu.Unlock()
	b.wg.Add(1)
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
	var held []string
	hs, err := st.HeldIMs(ctx, u.Name, email)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		held = append(held, h.Text)
	}
	if !slices.Contains(held, "unshown") {
		t.Errorf("held in the store once the session ended: %q; want the IM the client did not show", held)
	}
	var queued []string
	qs, err := st.QueuedIMs(ctx, u.Name, email)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		queued = append(queued, q.Text)
	}
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
