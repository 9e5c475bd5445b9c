package store

import (
	"errors"
	"slices"
	"sync"
	"testing"
)

// TestTakeUnreadableNotesAndHeld: a take of the notes, or of the held
// IMs, returns those it can read and names the one it cannot, which it
// takes too: kept, it would fail every take of the notes (none would
// reach the user) and count against MaxNotes or MaxHeld for good, and
// its value is gone already. None is removed without being returned or
// named.
func TestTakeUnreadableNotesAndHeld(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			db := e.fresh(t)
			s := db.open(t, testKey(1))
			user, email := userWithAccount(t, s)
			texts := []string{"first", "damaged", "last"}
			for i, text := range texts {
				check(t, "AddNote", s.AddNote(ctx, user, text))
				_, err := s.HoldIM(ctx, user, email, HeldIM{Seq: int64(i + 1), From: 42, Text: text})
				check(t, "HoldIM", err)
			}
			raw, d := db.raw(t)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := raw.Exec(d.Rebind(q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			// Values the store cannot read back: NULL for a note's text
			// (SQLite cannot drop a NOT NULL, so its table is made again
			// without it), and for a held IM's time NULL on PostgreSQL
			// (its types are strict) and text on SQLite.
			if db.driver == "postgres" {
				exec(`ALTER TABLE notes ALTER COLUMN text DROP NOT NULL`)
				exec(`ALTER TABLE held_ims ALTER COLUMN sent DROP NOT NULL`)
				exec(`UPDATE held_ims SET sent = NULL WHERE text = ?`, "damaged")
			} else {
				exec(`ALTER TABLE notes RENAME TO notes_old`)
				exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE, text TEXT, created BIGINT NOT NULL)`)
				exec(`INSERT INTO notes SELECT * FROM notes_old`)
				exec(`DROP TABLE notes_old`)
				exec(`UPDATE held_ims SET sent = 'not a number' WHERE text = ?`, "damaged")
			}
			exec(`UPDATE notes SET text = NULL WHERE text = ?`, "damaged")

			// What it can read is returned, the one it cannot is named;
			// all are taken.
			notes, err := s.TakeNotes(ctx, user)
			var ur *UnreadableRows
			if !errors.As(err, &ur) || len(ur.Rows) != 1 || !ur.Removed || ur.Table != "notes" {
				t.Errorf("TakeNotes with a note it cannot read: got error %v, want an *UnreadableRows naming it, removed", err)
			}
			if want := []string{"first", "last"}; !slices.Equal(notes, want) {
				t.Errorf("TakeNotes with a note it cannot read: got %q, want %q", notes, want)
			}
			heldTexts := func(held []HeldIM) (out []string) {
				for _, im := range held {
					out = append(out, im.Text)
				}
				return out
			}
			held, err := s.TakeHeld(ctx, user, email)
			if !errors.As(err, &ur) || len(ur.Rows) != 1 || !ur.Removed {
				t.Errorf("TakeHeld with an IM it cannot read: got error %v, want an *UnreadableRows naming it, removed", err)
			}
			if want := []string{"first", "last"}; !slices.Equal(heldTexts(held), want) {
				t.Errorf("TakeHeld with an IM it cannot read: got %q, want %q", heldTexts(held), want)
			}

			notes, err = s.TakeNotes(ctx, user)
			if err != nil || len(notes) != 0 {
				t.Errorf("TakeNotes again: got %q, %v; want none", notes, err)
			}
			held, err = s.TakeHeld(ctx, user, email)
			if err != nil || len(held) != 0 {
				t.Errorf("TakeHeld again: got %q, %v; want none", heldTexts(held), err)
			}
		})
	}
}

// TestHoldIMBoundUnderConcurrency: with one place left under MaxHeld,
// IMs held for the account at the same moment take it one only; the
// others are refused with ErrFull and the account holds MaxHeld, never
// more. Several rounds, each a fresh race.
func TestHoldIMBoundUnderConcurrency(t *testing.T) {
	const (
		rounds  = 10
		holders = 50
	)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			db := e.fresh(t)
			s := db.open(t, testKey(1))
			user, email := userWithAccount(t, s)
			raw, d := db.raw(t)
			var acct int64
			if err := raw.QueryRow(d.Rebind(qAccountID), user, email).Scan(&acct); err != nil {
				t.Fatal(err)
			}
			for round := range rounds {
				// MaxHeld-1 IMs held, written under the store at once.
				if _, err := raw.Exec(d.Rebind(`DELETE FROM held_ims WHERE account_id = ?`), acct); err != nil {
					t.Fatal(err)
				}
				if _, err := raw.Exec(d.Rebind(`WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
					INSERT INTO held_ims (account_id, seq, sender, text, sent, offline) SELECT ?, i, 42, 'spam', 0, FALSE FROM n`), MaxHeld-1, acct); err != nil {
					t.Fatal(err)
				}
				kept := keptAtOnce(t, round, "HoldIM", holders, func(i int) error {
					_, err := s.HoldIM(ctx, user, email, HeldIM{Seq: int64(MaxHeld + i), From: 42, Text: "racing"})
					return err
				})
				held, err := s.HeldIMs(ctx, user, email)
				check(t, "HeldIMs", err)
				if kept != 1 || len(held) != MaxHeld {
					t.Fatalf("round %d: %d of %d IMs held at once were kept and the account holds %d; want 1 kept and %d held", round, kept, holders, len(held), MaxHeld)
				}
			}
		})
	}
}

// TestAddNoteBoundUnderConcurrency: with one place left under MaxNotes,
// notes added for the user at the same moment take it one only; the
// others are refused with ErrFull and the user has MaxNotes, never more.
// Several rounds, each a fresh race.
func TestAddNoteBoundUnderConcurrency(t *testing.T) {
	const (
		rounds = 10
		adders = 50
	)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			db := e.fresh(t)
			s := db.open(t, testKey(1))
			user, _ := userWithAccount(t, s)
			raw, d := db.raw(t)
			var id int64
			if err := raw.QueryRow(d.Rebind(qUserID), user).Scan(&id); err != nil {
				t.Fatal(err)
			}
			for round := range rounds {
				// MaxNotes-1 notes, written under the store at once.
				if _, err := raw.Exec(d.Rebind(`DELETE FROM notes WHERE user_id = ?`), id); err != nil {
					t.Fatal(err)
				}
				if _, err := raw.Exec(d.Rebind(`WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
					INSERT INTO notes (user_id, text, created) SELECT ?, 'note', 0 FROM n`), MaxNotes-1, id); err != nil {
					t.Fatal(err)
				}
				kept := keptAtOnce(t, round, "AddNote", adders, func(int) error { return s.AddNote(ctx, user, "racing") })
				notes, err := s.TakeNotes(ctx, user)
				check(t, "TakeNotes", err)
				if kept != 1 || len(notes) != MaxNotes {
					t.Fatalf("round %d: %d of %d notes added at once were kept and the user has %d; want 1 kept and %d", round, kept, adders, len(notes), MaxNotes)
				}
			}
		})
	}
}

// keptAtOnce runs add(0)…add(n-1) at the same moment and returns how many
// were kept (nil); any error but ErrFull is reported as op's.
func keptAtOnce(t *testing.T, round int, op string, n int, add func(i int) error) int {
	t.Helper()
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs <- add(i)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	kept := 0
	for err := range errs {
		switch {
		case err == nil:
			kept++
		case !errors.Is(err, ErrFull):
			t.Errorf("round %d: %s: got %v, want nil or ErrFull", round, op, err)
		}
	}
	return kept
}
