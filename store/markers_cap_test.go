package store

import (
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// TestReadMarkersBound: an account keeps MaxReadMarkers read markers.
// Marking one more conversation forgets the marker of the one read
// longest ago other than its own, also when new conversations are marked
// at the same moment; moving an existing marker forgets nothing.
func TestReadMarkersBound(t *testing.T) {
	const (
		rounds  = 5
		setters = 16
		// MaxReadMarkers markers cost the race detector's run half a
		// minute: the bound under test is lowered (maxReadMarkers).
		MaxReadMarkers = 256
	)
	defer func(n int) { maxReadMarkers = n }(maxReadMarkers)
	maxReadMarkers = MaxReadMarkers
	base := time.Date(2007, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			db := e.fresh(t)
			s := db.open(t, testKey(1))
			user, email := userWithAccount(t, s)
			// The first MaxReadMarkers-1 by hand (one statement), the
			// last through the store: buddy b read at base+b seconds.
			r, d := db.raw(t)
			var acct int64
			if err := r.QueryRow(d.Rebind(`SELECT id FROM accounts WHERE email = ?`), email).Scan(&acct); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Exec(d.Rebind(`WITH RECURSIVE g(b) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT b + 1 FROM g WHERE b < ?)
				INSERT INTO read_markers (account_id, buddy, marked) SELECT ?, b, CAST(? AS BIGINT) + b * 1000000 FROM g`), MaxReadMarkers-1, acct, micros(base)); err != nil {
				t.Fatal(err)
			}
			mark := func(buddy int, at time.Time) {
				t.Helper()
				if _, err := s.SetReadMarker(ctx, user, email, msim.UID(buddy), at); err != nil {
					t.Fatalf("SetReadMarker(%d): %v", buddy, err)
				}
			}
			mark(MaxReadMarkers, base.Add(MaxReadMarkers*time.Second))
			if got := rowCounts(t, db)["read_markers"]; got != MaxReadMarkers {
				t.Fatalf("%d markers set: the account keeps %d", MaxReadMarkers, got)
			}
			// Moving a marker forgets nothing, even the oldest's.
			mark(1, base.Add(2*MaxReadMarkers*time.Second))
			if got := rowCounts(t, db)["read_markers"]; got != MaxReadMarkers {
				t.Fatalf("a marker moved: the account keeps %d, want %d", got, MaxReadMarkers)
			}
			// One more conversation: buddy 2's, now read longest ago, goes.
			mark(MaxReadMarkers+1, base)
			if got := rowCounts(t, db)["read_markers"]; got != MaxReadMarkers {
				t.Fatalf("one more marker: the account keeps %d, want %d", got, MaxReadMarkers)
			}
			if got, err := s.ReadMarker(ctx, user, email, 2); err != nil || !got.IsZero() {
				t.Errorf("the marker read longest ago: got %v, %v; want it forgotten", got, err)
			}
			if got, err := s.ReadMarker(ctx, user, email, MaxReadMarkers+1); err != nil || !got.Equal(base) {
				t.Errorf("the marker just set (the account's earliest): got %v, %v; want %v", got, err, base)
			}
			for round := range rounds {
				// Read now, after every marker kept: none of them may go.
				buddy := func(i int) msim.UID { return msim.UID(10_000 + round*setters + i) }
				at := func(i int) time.Time { return base.Add(time.Duration(3*MaxReadMarkers+round*setters+i) * time.Second) }
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range setters {
					wg.Go(func() {
						<-start
						if _, err := s.SetReadMarker(ctx, user, email, buddy(i), at(i)); err != nil {
							t.Errorf("round %d: SetReadMarker(%d): %v", round, buddy(i), err)
						}
					})
				}
				close(start)
				wg.Wait()
				if got := rowCounts(t, db)["read_markers"]; got != MaxReadMarkers {
					t.Fatalf("round %d: %d new markers set at once and the account keeps %d; want %d", round, setters, got, MaxReadMarkers)
				}
				for i := range setters {
					if got, err := s.ReadMarker(ctx, user, email, buddy(i)); err != nil || !got.Equal(at(i)) {
						t.Errorf("round %d: ReadMarker(%d): got %v, %v; want %v (the latest markers are kept)", round, buddy(i), got, err, at(i))
					}
				}
			}
			if _, err := s.SetReadMarker(ctx, user, "nobody@example.com", 5, base); err == nil {
				t.Error("a marker of an account the user does not have: no error")
			}
		})
	}
}
