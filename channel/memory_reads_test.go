package channel

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/msim/markup"
	"github.com/msimircd/msimircd/store"
)

// readCounter is a store that counts the reads of held and queued IMs and
// of notes.
type readCounter struct {
	store.Store
	mu                  sync.Mutex
	held, queued, notes int
}

func (r *readCounter) HeldIMs(ctx context.Context, user, email string) ([]store.HeldIM, error) {
	r.mu.Lock()
	r.held++
	r.mu.Unlock()
	return r.Store.HeldIMs(ctx, user, email)
}

func (r *readCounter) QueuedIMs(ctx context.Context, user, email string) ([]store.QueuedIM, error) {
	r.mu.Lock()
	r.queued++
	r.mu.Unlock()
	return r.Store.QueuedIMs(ctx, user, email)
}

func (r *readCounter) TakeNotes(ctx context.Context, user string) ([]string, error) {
	r.mu.Lock()
	r.notes++
	r.mu.Unlock()
	return r.Store.TakeNotes(ctx, user)
}

func (r *readCounter) counts() (held, queued, notes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	held, queued, notes = r.held, r.queued, r.notes
	r.held, r.queued, r.notes = 0, 0, 0
	return held, queued, notes
}

// TestLoginReadsOnlyWhatMayBeStored: a login reads the held and queued IMs
// of an account, and the user's notes, only when the store may have some:
// as loaded with the user, or written since. What is there is still read,
// after a restart too, and a read that finds none stops the next ones.
func TestLoginReadsOnlyWhatMayBeStored(t *testing.T) {
	rc := &readCounter{Store: sqliteStore(t)}
	const email = "ann@example.com"
	u := User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}, {Email: "other@example.com", Password: "pw"}}}
	load := func() *userMemory {
		t.Helper()
		m, err := loadUserMemory(rc, u, quietLog(), true)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	expect := func(when string, held, queued, notes int) {
		t.Helper()
		if h, q, n := rc.counts(); h != held || q != queued || n != notes {
			t.Errorf("%s: store read held %d, queued %d, notes %d times; want %d, %d, %d", when, h, q, n, held, queued, notes)
		}
	}
	login := func(m *userMemory) (held []seqEvent, queued []queuedIM, notes []string) {
		return m.heldFor(email), m.queuedFor(email), m.takeNotes()
	}

	m := load()
	if h, q, n := login(m); len(h)+len(q)+len(n) != 0 {
		t.Fatalf("a new user has %d held, %d queued, %d notes", len(h), len(q), len(n))
	}
	expect("a login with nothing stored", 0, 0, 0)

	m.hold(email, msim.IMEvent{From: 7, Text: "while away"})
	m.queue(email, queuedIM{uid: 7, nick: "tom", text: "typed offline"})
	m.note("a note")
	h, q, n := login(m)
	if len(h) != 1 || len(q) != 1 || len(n) != 1 {
		t.Fatalf("after writing one of each: %d held, %d queued, %d notes", len(h), len(q), len(n))
	}
	expect("a login after writing one of each", 1, 1, 1)
	if h := m.heldFor("other@example.com"); len(h) != 0 {
		t.Errorf("the other account has %d held", len(h))
	}
	expect("the other account's login", 0, 0, 0)

	// A restart: the held and queued IMs are still stored (not yet
	// delivered), the note was taken.
	m = load()
	h, q, n = login(m)
	if len(h) != 1 || len(q) != 1 || len(n) != 0 {
		t.Fatalf("after a restart: %d held, %d queued, %d notes", len(h), len(q), len(n))
	}
	expect("a login after a restart", 1, 1, 0)

	m.dropHeld(email, h[0].held)
	m.unqueue(email, q[0].id)
	login(m)
	expect("the first login after delivering them", 1, 1, 0)
	login(m)
	expect("the next login", 0, 0, 0)

	// A note kept over a restart is read at the next login (a restart
	// waits for the memory's writes: settle).
	m.note("kept")
	m.settle()
	m = load()
	if n := m.takeNotes(); len(n) != 1 || n[0] != "kept" {
		t.Errorf("notes after a restart: %q, want [kept]", n)
	}
	expect("the notes after a restart", 0, 0, 1)
}

// TestLoginReadsAllWithSeveralInstances: with several instances another
// memory of the user (another instance's, or this one's from before the
// lease went and came back) may hold an IM or keep a note after this
// memory was loaded, so every login reads them.
func TestLoginReadsAllWithSeveralInstances(t *testing.T) {
	st := sqliteStore(t)
	const email = "ann@example.com"
	u := User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}}}
	mine, err := loadUserMemory(st, u, quietLog(), false)
	if err != nil {
		t.Fatal(err)
	}
	old, err := loadUserMemory(st, u, quietLog(), false)
	if err != nil {
		t.Fatal(err)
	}
	old.hold(email, msim.IMEvent{From: 7, Text: "late"})
	old.note("late note")
	old.settle() // written by old's writer, as the other instance's would be
	if h := mine.heldFor(email); len(h) != 1 {
		t.Errorf("held IMs another memory kept: %d, want 1", len(h))
	}
	if n := mine.takeNotes(); len(n) != 1 {
		t.Errorf("notes another memory kept: %q, want one", n)
	}
}

// annInTheStore is user ann, with account ann@example.com, and her memory
// on a SQLite store.
func annInTheStore(t *testing.T) (store.Store, *userMemory, string) {
	st := sqliteStore(t)
	const email = "ann@example.com"
	u := User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}}}
	m, err := loadUserMemory(st, u, quietLog(), false)
	if err != nil {
		t.Fatal(err)
	}
	return st, m, email
}

// TestHeldTextStorable: an IM whose text the store cannot keep as it is (a
// NUL, invalid UTF-8: PostgreSQL refuses both, so the store does on every
// engine) is held in the store with that text made storable, not kept in
// memory only, where a restart would lose it.
func TestHeldTextStorable(t *testing.T) {
	st, m, email := annInTheStore(t)
	m.hold(email, msim.IMEvent{From: 7, Text: "nul\x00 caf\xe9"})
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "typed\x00"})
	held, err := st.HeldIMs(context.Background(), "ann", email)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Text != "nul caf\uFFFD" {
		t.Errorf("held in the store: %+v, want one with text %q", held, "nul caf\uFFFD")
	}
	queued, err := st.QueuedIMs(context.Background(), "ann", email)
	if err != nil {
		t.Fatal(err)
	}
	if len(queued) != 1 || queued[0].Text != "typed" {
		t.Errorf("queued in the store: %+v, want one with text %q", queued, "typed")
	}
}

// TestHeldBoundedWithStore: with a store, the IMs held for an account stop
// at maxHeld as they do in memory (the store enforces it), and the user is
// told once that IMs were lost, until held ones are delivered.
func TestHeldBoundedWithStore(t *testing.T) {
	st, m, email := annInTheStore(t)
	for i := range maxHeld + 20 {
		if ok := m.hold(email, msim.IMEvent{From: 7, Text: "spam"}); ok != (i < maxHeld) {
			t.Fatalf("hold %d: %v", i, ok)
		}
	}
	held, err := st.HeldIMs(context.Background(), "ann", email)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != maxHeld {
		t.Errorf("the store holds %d IMs, want %d", len(held), maxHeld)
	}
	if h, n := m.leftovers(); h != 0 || n != 0 {
		t.Errorf("kept in memory: %d IMs, %d notes; want none", h, n)
	}
	notes := m.takeNotes()
	if len(notes) != 1 || !strings.Contains(notes[0], "were lost") {
		t.Errorf("notes: %q, want one saying IMs were lost", notes)
	}
	m.dropHeld(email, held[0].ID)
	m.hold(email, msim.IMEvent{From: 7, Text: "fits"})
	m.hold(email, msim.IMEvent{From: 7, Text: "lost again"})
	if notes := m.takeNotes(); len(notes) != 1 {
		t.Errorf("notes after a delivery and a new loss: %q, want one", notes)
	}
}

// TestQueuedKeepsWhetherRecorded: whether a queued IM is in the history
// already (one the MSIM client took and never wrote), when it was typed and
// its msgid survive a restart, so that sending it records it once, at that
// time, under the msgid the user's other clients were shown.
func TestQueuedKeepsWhetherRecorded(t *testing.T) {
	st, m, email := annInTheStore(t)
	typed := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "unsent", at: typed})
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "/me waves", record: true, msgid: "m-waves", at: typed})
	again, err := loadUserMemory(st, User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}}}, quietLog(), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range again.queuedFor(email) {
		got = append(got, fmt.Sprintf("%s record=%v %v msgid=%q", q.text, q.record, q.at.Equal(typed), q.msgid))
	}
	want := []string{`unsent record=false true msgid=""`, `/me waves record=true true msgid="m-waves"`}
	if !slices.Equal(got, want) {
		t.Errorf("queued after a restart: %q, want %q", got, want)
	}
}

// TestHeldKeepsStyles: an IM held for the user keeps its bold, italic and
// underline in the store, so that it shows them when it is read back (at
// the next connection, after a restart too) as it would have live; an IM
// typed on IRC with styles and queued for the link keeps its codes, so
// that it reaches MSIM styled after a restart.
func TestHeldKeepsStyles(t *testing.T) {
	st, m, email := annInTheStore(t)
	// As the official client sends it, names in upper case as some do.
	ev := msim.IMEvent{From: 7, Text: "bold and plain",
		Markup: "<P><F F='Arial' H='13' S='1'>bold</F> and plain</P>"}
	live, _ := imText(ev)
	if want := "\x02bold\x02 and plain"; live != want {
		t.Fatalf("shown live: %q, want %q", live, want)
	}
	m.hold(email, ev)
	m.hold(email, msim.IMEvent{From: 7, Text: "/me waves", Markup: "<p><f s='2'>/me waves</f></p>"})
	m.queue(email, queuedIM{uid: 7, nick: "bob", text: "\x02typed\x02 \x1fbold\x0f", record: true})

	again, err := loadUserMemory(st, User{Name: "ann", Accounts: []Account{{Email: email, Password: "pw"}}}, quietLog(), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, se := range again.heldFor(email) {
		text, act := imText(se.ev.(msim.IMEvent))
		got = append(got, fmt.Sprintf("%q act=%v", text, act))
	}
	want := []string{fmt.Sprintf("%q act=false", live), `"\x1dwaves\x1d" act=true`}
	if !slices.Equal(got, want) {
		t.Errorf("held IMs read back from the store: %s, want %s", got, want)
	}
	qs := again.queuedFor(email)
	if len(qs) != 1 {
		t.Fatalf("queued after a restart: %d IMs, want 1", len(qs))
	}
	spans, ok := msimSpans(qs[0].text)
	wantSpans := []markup.Span{{Text: "typed", Style: markup.Bold}, {Text: " "}, {Text: "bold", Style: markup.Underline}}
	if !ok || !slices.Equal(spans, wantSpans) {
		t.Errorf("queued IM after a restart goes as %q (%v), want %q", spans, ok, wantSpans)
	}
}

// heldNotes is a store that keeps notes in order, its first AddNote
// waiting until released.
type heldNotes struct {
	store.Store
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	notes   []string
}

func (h *heldNotes) AddNote(_ context.Context, _ string, text string) error {
	h.once.Do(func() { <-h.release })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, text)
	return nil
}

// TestMemoryWritesBounded: the writes waiting for the memory's writer are
// bounded. With memWrites queued (the first held by the store), the next
// note waits for room, and is written after the others, in order.
func TestMemoryWritesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &heldNotes{release: make(chan struct{})}
		m := newUserMemory()
		m.st, m.user, m.log = st, "ann", quietLog()
		var want []string
		for i := range memWrites {
			want = append(want, fmt.Sprint(i))
			m.note(want[i])
		}
		want = append(want, "past the bound")
		returned := make(chan struct{})
		go func() {
			m.note("past the bound")
			close(returned)
		}()
		synctest.Wait()
		select {
		case <-returned:
			t.Errorf("a note was queued with %d waiting for the writer", memWrites)
		default:
		}
		close(st.release)
		<-returned
		m.settle()
		st.mu.Lock()
		defer st.mu.Unlock()
		if !slices.Equal(st.notes, want) {
			t.Errorf("notes written: %d, want %d in order", len(st.notes), len(want))
		}
	})
}
