package store

import (
	"fmt"
	"sync"
	"testing"
)

// TestClientPositionsBoundUnderConcurrency: with MaxClientPositions
// clients kept, new clients set for the user at the same moment are all
// kept, each forgetting one set longest ago, and the user keeps
// MaxClientPositions, never more. Several rounds, each a fresh race.
func TestClientPositionsBoundUnderConcurrency(t *testing.T) {
	const (
		rounds  = 10
		setters = 16
	)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			db := e.fresh(t)
			s := db.open(t, testKey(1))
			user, _ := userWithAccount(t, s)
			for i := range MaxClientPositions {
				check(t, "SetClientPosition", s.SetClientPosition(ctx, user, fmt.Sprintf("c%03d", i), int64(i)))
			}
			for round := range rounds {
				client := func(i int) string { return fmt.Sprintf("r%d-%02d", round, i) }
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range setters {
					wg.Go(func() {
						<-start
						if err := s.SetClientPosition(ctx, user, client(i), int64(i)); err != nil {
							t.Errorf("round %d: SetClientPosition(%s): %v", round, client(i), err)
						}
					})
				}
				close(start)
				wg.Wait()
				if got := rowCounts(t, db)["client_positions"]; got != MaxClientPositions {
					t.Fatalf("round %d: %d new clients set at once and the user keeps %d positions; want %d", round, setters, got, MaxClientPositions)
				}
				for i := range setters {
					if got, found, err := s.ClientPosition(ctx, user, client(i)); err != nil || !found || got != int64(i) {
						t.Errorf("round %d: ClientPosition(%s): got %d, %v, %v; want %d, true (a client just set is never the one set longest ago)", round, client(i), got, found, err, i)
					}
				}
			}
		})
	}
}
