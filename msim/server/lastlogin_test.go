package server

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
)

// heldWrites is a store whose writes of login times wait while it is shut,
// and which counts them.
type heldWrites struct {
	Store
	mu     sync.Mutex
	shut   chan struct{} // nil: open
	writes int           // calls that wrote login times
}

func (h *heldWrites) gate() {
	h.mu.Lock()
	shut := h.shut
	h.writes++
	h.mu.Unlock()
	if shut != nil {
		<-shut
	}
}

func (h *heldWrites) UpdateAccount(uid msim.UID, fn func(*Account) error) error {
	h.gate()
	return h.Store.UpdateAccount(uid, fn)
}

func (h *heldWrites) recordLogins(times map[msim.UID]time.Time) error {
	h.gate()
	if r, ok := h.Store.(loginRecorder); ok {
		return r.recordLogins(times)
	}
	for uid, t := range times {
		if err := h.Store.UpdateAccount(uid, laterLogin(t)); err != nil {
			return err
		}
	}
	return nil
}

// lastLoginOf reads uid's LastLogin as stored.
func lastLoginOf(t *testing.T, st Store, uid msim.UID) time.Time {
	t.Helper()
	a, err := st.Account(uid)
	if err != nil {
		t.Fatal(err)
	}
	return a.LastLogin
}

// TestLastLoginOffTheLoginPath: on every engine, a login does not wait for
// its time to be written (with the write held up, the client's requests are
// answered), its own IM info shows the new time at once, the times of many
// logins are written together (the SQL stores: one transaction).
func TestLastLoginOffTheLoginPath(t *testing.T) {
	for _, e := range storeEngines() {
		t.Run(e.name, func(t *testing.T) {
			base, _ := e.open(t)
			h := &heldWrites{Store: base}
			srv, err := New(Config{MaxConnectionsPerAddr: -1}, h, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			const n = 20
			uids := make([]msim.UID, n)
			for i := range uids {
				uids[i] = addAccount(t, srv, "user"+strconv.Itoa(i)+"@example.com", "Secret1", "user"+strconv.Itoa(i))
			}
			addr := serve(t, srv)

			h.mu.Lock()
			h.shut = make(chan struct{})
			h.mu.Unlock()
			before := time.Now().Add(-time.Second)
			c := login(t, addr, "user0@example.com", "Secret1")
			info := c.persist(msim.CmdGet, msim.PersistOwnIMInfo, nil).Body
			ft, err := strconv.ParseInt(info.Str("LastLogin"), 10, 64)
			if err != nil || ft < msim.ToFileTime(before) {
				t.Errorf("own IM info right after the login: LastLogin %q, want this login's time", info.Str("LastLogin"))
			}
			if got := lastLoginOf(t, base, uids[0]); !got.IsZero() {
				t.Errorf("stored while the write is held: %v", got)
			}
			// More logins while the first write is held: written together.
			var cs []*client
			for i := 1; i < n; i++ {
				cs = append(cs, login(t, addr, "user"+strconv.Itoa(i)+"@example.com", "Secret1"))
			}
			for _, c := range cs {
				c.sync()
			}
			h.mu.Lock()
			close(h.shut)
			h.shut = nil
			h.mu.Unlock()
			deadline := time.Now().Add(testWait)
			for _, uid := range uids {
				for lastLoginOf(t, base, uid).IsZero() {
					if time.Now().After(deadline) {
						t.Fatalf("uid %v: last login not written", uid)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			h.mu.Lock()
			writes := h.writes
			h.mu.Unlock()
			if _, batched := base.(loginRecorder); batched && writes > 3 {
				t.Errorf("%d logins written in %d writes, want at most 3", n, writes)
			}
		})
	}
}

// heldLastLogins is a memory store with n accounts and a lastLogins
// writing to it through a heldWrites that is shut.
func heldLastLogins(t *testing.T, n int) (Store, []msim.UID, *heldWrites, *lastLogins) {
	t.Helper()
	st := NewMemStore()
	srv, err := New(Config{}, st, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	uids := make([]msim.UID, n)
	for i := range uids {
		uids[i] = addAccount(t, srv, "u"+strconv.Itoa(i)+"@example.com", "Secret1", "u"+strconv.Itoa(i))
	}
	h := &heldWrites{Store: st, shut: make(chan struct{})}
	return st, uids, h, newLastLogins(h, testLog(t))
}

// TestLastLoginsCloseWritesWhatIsLeft: close (from Shutdown) returns once
// every time recorded before it is written, one recorded while a write was
// under way included.
func TestLastLoginsCloseWritesWhatIsLeft(t *testing.T) {
	st, uids, h, l := heldLastLogins(t, 2)
	a, b := uids[0], uids[1]
	ta, tb := time.Now().UTC(), time.Now().UTC().Add(time.Second)
	l.record(a, ta) // its write waits at the gate
	for {
		h.mu.Lock()
		w := h.writes
		h.mu.Unlock()
		if w > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	l.record(b, tb)
	closed := make(chan struct{})
	go func() { l.close(context.Background()); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned before the write under way ended")
	case <-time.After(50 * time.Millisecond):
	}
	h.mu.Lock()
	close(h.shut)
	h.shut = nil
	h.mu.Unlock()
	<-closed
	if got := lastLoginOf(t, st, a); !got.Equal(ta) {
		t.Errorf("a: %v, want %v", got, ta)
	}
	if got := lastLoginOf(t, st, b); !got.Equal(tb) {
		t.Errorf("b: %v, want %v", got, tb)
	}
	// After close, a login's time is written at once.
	tc := tb.Add(time.Second)
	l.record(a, tc)
	if got := lastLoginOf(t, st, a); !got.Equal(tc) {
		t.Errorf("a after close: %v, want %v", got, tc)
	}
}

// TestLastLoginsCloseBoundedByItsContext: Shutdown's deadline bounds the
// wait for a write the database holds up.
func TestLastLoginsCloseBoundedByItsContext(t *testing.T) {
	_, uids, h, l := heldLastLogins(t, 1)
	a := uids[0]
	defer func() {
		h.mu.Lock()
		close(h.shut)
		h.mu.Unlock()
	}()
	l.record(a, time.Now().UTC())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	l.close(ctx)
	if d := time.Since(start); d > testWait {
		t.Errorf("close waited %v for a held write", d)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("close returned before its deadline with the write held")
	}
}

// TestRecordLoginsInChunks: the SQL stores write a large batch of login
// times, every one of them, in transactions of loginChunk accounts: on
// PostgreSQL the rows' versions (xmin) name one transaction per chunk.
func TestRecordLoginsInChunks(t *testing.T) {
	for _, e := range sqlEngines {
		t.Run(e.name, func(t *testing.T) {
			db := e.fresh(t)
			st := db.open(t)
			srv, err := New(Config{}, st, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			when := time.Now().UTC().Truncate(time.Microsecond)
			times := map[msim.UID]time.Time{}
			for i := range 2*loginChunk + 1 {
				times[addAccount(t, srv, "u"+strconv.Itoa(i)+"@example.com", "Secret1", "")] = when
			}
			times[FirstUID+100000] = when // no such account: left out
			if err := st.(loginRecorder).recordLogins(times); err != nil {
				t.Fatal(err)
			}
			delete(times, FirstUID+100000)
			for uid := range times {
				if got := lastLoginOf(t, st, uid); !got.Equal(when) {
					t.Fatalf("uid %v: last login %v, want %v", uid, got, when)
				}
			}
			if e.name != "postgres" {
				return
			}
			raw, _ := db.raw(t)
			var txs int
			if err := raw.QueryRow(`SELECT count(DISTINCT xmin::text) FROM msim_accounts`).Scan(&txs); err != nil {
				t.Fatal(err)
			}
			if want := 3; txs != want {
				t.Errorf("%d accounts' login times written in %d transactions, want %d", len(times), txs, want)
			}
		})
	}
}
