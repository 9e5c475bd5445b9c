package channel

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/msimircd/msimircd/store"
)

// unreadNotesStore is a store whose TakeNotes takes, with the user's
// notes, one it cannot read, as the store reports it: the others, and an
// *UnreadableRows (Removed) whose error quotes the value that did not
// convert.
type unreadNotesStore struct {
	store.Store
	takes int
}

const unreadNoteValue = "the text of a private message"

func (u *unreadNotesStore) TakeNotes(ctx context.Context, user string) ([]string, error) {
	u.takes++
	notes, err := u.Store.TakeNotes(ctx, user)
	if err != nil || u.takes > 1 {
		return notes, err
	}
	bad := &store.UnreadableRows{Table: "notes", User: user, Removed: true,
		Rows: []store.UnreadableRow{{ID: 41, Err: fmt.Errorf("converting %q to string is unsupported", unreadNoteValue)}}}
	return notes, fmt.Errorf("store: take notes: %w", bad)
}

// TestUnreadableNotesTakenAndTold: a take of the notes that names one it
// could not read (and took: store.TakeNotes) gives the others, tells the
// user once how many could not be read and were removed, logs the row by
// id only, and does not take the notes as still in the store: the next
// login reads none.
func TestUnreadableNotesTakenAndTold(t *testing.T) {
	st := &unreadNotesStore{Store: sqliteStore(t)}
	u := User{Name: "ann", Accounts: []Account{{Email: "ann@example.com", Password: "pw"}}}
	m, err := loadUserMemory(st, u, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	l, hook := logtest.NewNullLogger()
	m.log = l.WithField("test", true)
	m.note("first")
	m.note("last")
	notes := m.takeNotes()
	if len(notes) != 3 || !slices.Equal(notes[:2], []string{"first", "last"}) ||
		!strings.Contains(notes[2], "1 note for you could not be read") || !strings.Contains(notes[2], "removed") {
		t.Errorf("notes: %q; want first, last, and that 1 note could not be read and was removed", notes)
	}
	if m.mayNotes {
		t.Error("after the take, the memory takes the notes as still in the store")
	}
	if again := m.takeNotes(); len(again) != 0 {
		t.Errorf("the next take: %q, want none (told once)", again)
	}
	if st.takes != 1 {
		t.Errorf("the store's notes were taken %d times, want once: none was left there", st.takes)
	}
	var byID int
	for _, e := range hook.AllEntries() {
		line, err := e.String()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, "private message") {
			t.Errorf("logged the value that did not convert: %s", line)
		}
		if strings.Contains(line, "kept for the next connection") {
			t.Errorf("logged the notes as kept, but they were taken: %s", line)
		}
		if ids, ok := e.Data["rows"].([]int64); ok && slices.Equal(ids, []int64{41}) {
			byID++
		}
	}
	if byID != 1 {
		t.Errorf("logged the unreadable note by id %d times, want once", byID)
	}
}
