package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// goid is the calling goroutine's number (from its stack trace).
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	if len(f) < 2 || f[0] != "goroutine" {
		panic("no goroutine number in " + string(buf))
	}
	return f[1]
}

// TestOpenRunsOnTheStoresGoroutines: Open's store runs its operations on
// goroutines of its own, as many as the database has connections.
func TestOpenRunsOnTheStoresGoroutines(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			s := e.fresh(t).open(t, testKey(1))
			o, ok := s.(*ownGoroutines)
			if !ok {
				t.Fatalf("%s store %T, want it on goroutines of its own", e.name, s)
			}
			want := map[string]int{"sqlite": 1, "postgres": postgresConns}[e.name]
			if o.n != want {
				t.Errorf("%s store on %d goroutines, want %d (its connections)", e.name, o.n, want)
			}
		})
	}
}

// TestOwnGoroutinesRunEveryCallerOnThem: the operations of many callers at
// once run on the store's goroutines, none on its caller's, never more at
// once than there are goroutines.
func TestOwnGoroutinesRunEveryCallerOnThem(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			h := newHeldStore()
			o := onOwnGoroutines(h, n, nil)
			const callers = 20
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					me := goid()
					for range 5 {
						res := o.AppendHistoryBatch(ctx, make([]HistoryAppend, 1), nil)
						if len(res) != 1 || res[0].Err != nil {
							t.Errorf("batch: got %v", res)
						}
						if h.lastGoid() == me {
							t.Errorf("a batch ran on its caller's goroutine %s", me)
						}
					}
				})
			}
			wg.Wait()
			if err := o.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, batches, _ := h.counts(); batches != callers*5 {
				t.Errorf("batches run: %d, want %d", batches, callers*5)
			}
			if ids := h.goids(); len(ids) > n {
				t.Errorf("batches ran on %d goroutines (%v), want at most %d", len(ids), ids, n)
			}
			if most := h.maxAtOnce(); most > n {
				t.Errorf("batches at once: up to %d, want at most %d", most, n)
			}
		})
	}
}

// waitingCallers waits until want goroutines wait in ownGoroutines.run for
// their turn.
func waitingCallers(t *testing.T, want int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, "(*ownGoroutines).run(") {
				n++
			}
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("callers waiting for their turn: %d, want %d", n, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOwnGoroutinesTakeCallersInOrder: n operations run at once; while
// every goroutine is busy callers wait, and they are served in the order
// they came (exactly so on one goroutine; on several, one that has taken
// its caller's operation may be overtaken before that operation starts).
func TestOwnGoroutinesTakeCallersInOrder(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			const waiting = 6
			h := newHeldStore()
			o := onOwnGoroutines(h, n, nil)
			var wg sync.WaitGroup
			load := func(name string) {
				wg.Go(func() {
					if u, err := o.LoadUser(ctx, name); err != nil || u.User.Name != name {
						t.Errorf("LoadUser(%s): got %q, %v", name, u.User.Name, err)
					}
				})
			}
			for i := range n {
				load(fmt.Sprint("busy", i))
				<-h.entered // all n goroutines hold one
			}
			want := make([]string, waiting)
			for i := range waiting {
				want[i] = fmt.Sprint("caller", i)
				load(want[i])
				waitingCallers(t, i+1) // in the queue before the next comes
			}
			select {
			case <-h.entered:
				t.Fatalf("an operation started while %d ran on %d goroutines", n, n)
			case <-time.After(20 * time.Millisecond):
			}
			close(h.release)
			wg.Wait()
			if err := o.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got := h.loadOrder()[n:]
			if n == 1 && !slices.Equal(got, want) {
				t.Errorf("started in the order %q; callers came in the order %q", got, want)
			}
			if slices.Sort(got); !slices.Equal(got, want) {
				t.Errorf("started %q, want every caller's once", got)
			}
		})
	}
}

// heldStore is a Store whose LoadUser waits until released, and which
// counts the LoadUser and AppendHistoryBatch calls that reached it. Its
// other operations are the nil Store's: calling one panics (which
// TestOwnGoroutinesRaisePanicsOnTheCaller wants).
type heldStore struct {
	Store
	entered chan struct{} // one receive per LoadUser that started
	release chan struct{}
	mu      sync.Mutex
	loads   int
	order   []string // the names LoadUser was called with, in order
	batches int
	closed  bool
	ran     map[string]bool // the goroutines batches ran on
	last    string          // the last batch's
	running int             // batches under way
	most    int             // the most under way at once
}

func newHeldStore() *heldStore {
	return &heldStore{entered: make(chan struct{}, 8), release: make(chan struct{})}
}

func (h *heldStore) LoadUser(ctx context.Context, name string) (UserState, error) {
	h.mu.Lock()
	h.loads++
	h.order = append(h.order, name)
	h.mu.Unlock()
	h.entered <- struct{}{}
	<-h.release
	return UserState{User: User{Name: name}}, nil
}

func (h *heldStore) AppendHistoryBatch(ctx context.Context, batch []HistoryAppend, res []HistoryResult) []HistoryResult {
	id := goid()
	h.mu.Lock()
	h.batches++
	h.running++
	h.most = max(h.most, h.running)
	if h.ran == nil {
		h.ran = map[string]bool{}
	}
	h.ran[id], h.last = true, id
	h.mu.Unlock()
	runtime.Gosched() // room for another to start, were they not one at a time
	h.mu.Lock()
	h.running--
	h.mu.Unlock()
	return results(res, len(batch))
}

func (h *heldStore) loadOrder() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.order)
}

func (h *heldStore) lastGoid() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

func (h *heldStore) goids() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.ran))
}

func (h *heldStore) maxAtOnce() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.most
}

func (h *heldStore) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	return nil
}

func (h *heldStore) counts() (loads, batches int, closed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.loads, h.batches, h.closed
}

// TestOwnGoroutinesWaitWithContext: an operation waits for the one under
// way; if its context ends first it fails with the context's error and
// never runs (a batch gives the error for every entry), and the one under
// way still returns its own result. Close ends the goroutine; operations
// after it fail.
func TestOwnGoroutinesWaitWithContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newHeldStore()
	o := onOwnGoroutines(h, 1, nil)

	first := make(chan error, 1)
	go func() {
		u, err := o.LoadUser(ctx, "alice")
		if err == nil && u.User.Name != "alice" {
			err = errors.New("LoadUser gave " + u.User.Name)
		}
		first <- err
	}()
	<-h.entered // alice's LoadUser is under way and holds the goroutine

	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := o.LoadUser(wctx, "bob"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LoadUser while another runs, its context ending: got %v, want the deadline", err)
	}
	res := o.AppendHistoryBatch(wctx, make([]HistoryAppend, 3), nil)
	if len(res) != 3 {
		t.Fatalf("batch of 3 abandoned: got %d results", len(res))
	}
	for i, r := range res {
		if !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Errorf("abandoned batch, entry %d: got %v, want the deadline", i, r.Err)
		}
	}

	close(h.release)
	if err := <-first; err != nil {
		t.Errorf("the LoadUser under way: %v", err)
	}
	if loads, batches, _ := h.counts(); loads != 1 || batches != 0 {
		t.Errorf("operations that reached the store: %d LoadUser, %d batches; want 1 and 0", loads, batches)
	}
	if res := o.AppendHistoryBatch(ctx, make([]HistoryAppend, 2), nil); len(res) != 2 || res[0].Err != nil {
		t.Errorf("batch once the goroutine is free: got %v", res)
	}

	if err := o.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, _, closed := h.counts(); !closed {
		t.Error("Close did not close the store underneath")
	}
	if _, err := o.LoadUser(ctx, "carol"); !errors.Is(err, errClosed) {
		t.Errorf("LoadUser after Close: got %v, want errClosed", err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestPruneGivesOthersTurns: PruneHistory takes a turn for each chunk, so
// an operation that comes while one chunk is deleted runs before the next,
// not after the whole prune.
func TestPruneGivesOthersTurns(t *testing.T) {
	old := pruneChunk
	pruneChunk = 2
	t.Cleanup(func() { pruneChunk = old })
	s := newSQLiteDB(t).open(t, testKey(1))
	user, email := userWithAccount(t, s)
	for i := range 6 {
		appendAt(t, s, user, email, 7, fmt.Sprint("a", i), ms(i))
	}
	chunks := 0
	loaded := make(chan struct{})
	testHookPruneChunk = func() {
		chunks++
		switch chunks {
		case 1: // another operation comes while the first chunk is deleted
			go func() {
				defer close(loaded)
				if _, err := s.User(ctx, user); err != nil {
					t.Errorf("User during the prune: %v", err)
				}
			}()
			waitingCallers(t, 1)
		case 2:
			select {
			case <-loaded:
			case <-time.After(5 * time.Second):
				t.Error("User waited for the whole prune; want it between two chunks")
			}
		}
	}
	t.Cleanup(func() { testHookPruneChunk = nil })
	n, err := s.PruneHistory(ctx, ms(6), false)
	if err != nil || n != 6 {
		t.Errorf("PruneHistory: %d deleted, %v; want 6", n, err)
	}
	if chunks < 3 {
		t.Errorf("PruneHistory in %d chunks, want 3 or more", chunks)
	}
	<-loaded
}

// TestOwnGoroutinesRaisePanicsOnTheCaller: an operation that panics
// panics on its caller's goroutine (which may recover, as a session
// does), naming the operation and the panic, and the store's goroutine
// serves the next operation.
func TestOwnGoroutinesRaisePanicsOnTheCaller(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newHeldStore() // its User is the nil Store's: a panic
	o := onOwnGoroutines(h, 1, nil)
	got := func() (p any) {
		defer func() { p = recover() }()
		o.User(ctx, "alice")
		return nil
	}()
	if msg, _ := got.(string); !strings.Contains(msg, "store: user:") || !strings.Contains(msg, "nil pointer") {
		t.Errorf("the caller's panic: %v; want it to name the operation and the panic", got)
	}
	if res := o.AppendHistoryBatch(ctx, make([]HistoryAppend, 1), nil); len(res) != 1 || res[0].Err != nil {
		t.Errorf("batch after the panic: got %v", res)
	}
	if err := o.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
