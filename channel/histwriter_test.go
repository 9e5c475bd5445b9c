package channel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/msimircd/msimircd/internal/promtest"
	"github.com/msimircd/msimircd/store"
)

// stalledStore is a store whose history appends wait until released.
type stalledStore struct {
	store.Store
	release  chan struct{}
	appended atomic.Int32
	waiting  atomic.Int32 // batches waiting for the release
}

func (s *stalledStore) AppendHistoryBatch(_ context.Context, batch []store.HistoryAppend, _ []store.HistoryResult) []store.HistoryResult {
	s.waiting.Add(1)
	<-s.release
	s.appended.Add(int32(len(batch)))
	res := make([]store.HistoryResult, len(batch))
	for i, a := range batch {
		res[i].Entry = a.Entry
	}
	return res
}

// TestHistoryWriterNeverWaits: a user's entries queue while the store is
// behind; once the queue is full an entry is refused at once with
// ErrHistoryFull (the session never waits); what was queued is appended,
// in full, when the store catches up.
func TestHistoryWriterNeverWaits(t *testing.T) {
	st := &stalledStore{release: make(chan struct{})}
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := newHistoryWriter(st, true, logrus.NewEntry(l), nil)
	var full atomic.Int32
	failed := func(err error) {
		if !errors.Is(err, ErrHistoryFull) {
			t.Errorf("append failed with %v, want ErrHistoryFull", err)
		}
		full.Add(1)
	}
	const extra = 5
	total := histQueue + histBatch + extra // at most a batch taken by the stalled writer, histQueue queued
	for range total {
		w.append("ann", store.HistoryEntry{}, failed)
	}
	if got := full.Load(); got < extra {
		t.Errorf("entries refused with the queue full: got %d, want at least %d", got, extra)
	}
	close(st.release)
	w.close()
	if got, want := int(st.appended.Load())+int(full.Load()), total; got != want {
		t.Errorf("appended %d + refused %d = %d, want every entry accounted for (%d)", st.appended.Load(), full.Load(), got, want)
	}
}

// slowStore is a stalledStore that can be hurried: its appends wait
// until HurryHistory is called, as a history process at idle priority on
// busy cores would.
type slowStore struct {
	stalledStore
	hurried atomic.Int32
	once    sync.Once
}

func (s *slowStore) HurryHistory() {
	s.hurried.Add(1)
	s.once.Do(func() { close(s.release) })
}

// TestHistorySyncHurries: a caller waiting for the history hurries a store
// that can be hurried, and its wait ends once the store catches up.
func TestHistorySyncHurries(t *testing.T) {
	st := &slowStore{stalledStore: stalledStore{release: make(chan struct{})}}
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := newHistoryWriter(st, false, logrus.NewEntry(l), nil)
	defer w.close()
	w.append("ann", store.HistoryEntry{Kind: store.KindIM, Text: "hi"}, func(err error) { t.Errorf("append: %v", err) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !w.sync(ctx, "ann") {
		t.Fatal("sync ended without the entry appended")
	}
	if st.hurried.Load() == 0 || st.appended.Load() != 1 {
		t.Errorf("hurried %d times, %d appended; want at least once, and the entry", st.hurried.Load(), st.appended.Load())
	}
}

// recordingStore keeps each history batch it is given; entries whose text
// is "bad" fail.
type recordingStore struct {
	store.Store
	mu      sync.Mutex
	batches [][]store.HistoryAppend
}

var errBadEntry = errors.New("bad entry")

func (s *recordingStore) AppendHistoryBatch(_ context.Context, batch []store.HistoryAppend, _ []store.HistoryResult) []store.HistoryResult {
	s.mu.Lock()
	s.batches = append(s.batches, slices.Clone(batch))
	s.mu.Unlock()
	res := make([]store.HistoryResult, len(batch))
	for i, a := range batch {
		res[i].Entry = a.Entry
		if a.Entry.Text == "bad" {
			res[i] = store.HistoryResult{Err: errBadEntry}
		}
	}
	return res
}

// texts returns the texts of every batch, and each batch's size.
func (s *recordingStore) texts() (texts []string, sizes []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		sizes = append(sizes, len(b))
		for _, a := range b {
			texts = append(texts, a.User+":"+a.Entry.Text)
		}
	}
	return texts, sizes
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// TestHistoryWriterBatches: entries queued together are appended in one
// batch, in the order queued; a reader's sync does not wait out the
// linger; an entry the store refuses has its own failed called with the
// store's error, and no other.
func TestHistoryWriterBatches(t *testing.T) {
	st := &recordingStore{}
	w := startHistoryWriter(st, true, quietLog(), nil, time.Hour)
	defer w.close()
	var failures []string
	var mu sync.Mutex
	var want []string
	for i := range 10 {
		user, text := []string{"ann", "bob"}[i%2], fmt.Sprint(i)
		if i == 3 {
			text = "bad"
		}
		want = append(want, user+":"+text)
		w.append(user, store.HistoryEntry{Text: text}, func(err error) {
			mu.Lock()
			defer mu.Unlock()
			failures = append(failures, fmt.Sprintf("%s %v", text, err))
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !w.sync(ctx, "ann") {
		t.Fatal("sync: got false, want the queued entries appended (the linger is an hour)")
	}
	texts, sizes := st.texts()
	if !slices.Equal(texts, want) || !slices.Equal(sizes, []int{10}) {
		t.Errorf("batches: got %q in batches of %v, want %q in one batch", texts, sizes, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if wantFailed := []string{"bad " + errBadEntry.Error()}; !slices.Equal(failures, wantFailed) {
		t.Errorf("failures: got %q, want %q", failures, wantFailed)
	}
}

// TestHistoryWriterLingerEnds: with no reader waiting, a batch is appended
// once the linger has passed.
func TestHistoryWriterLingerEnds(t *testing.T) {
	st := &recordingStore{}
	w := startHistoryWriter(st, true, quietLog(), nil, time.Millisecond)
	defer w.close()
	w.append("ann", store.HistoryEntry{Text: "hello"}, func(error) {})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if texts, _ := st.texts(); slices.Equal(texts, []string{"ann:hello"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry: not appended within 10 s of a 1 ms linger")
		}
	}
}

// TestHistoryWriterBatchHoldsALinger: what the IMs of a busy gateway
// (5,000 a second, each stored for both ends) bring in one linger is
// appended in one transaction, not cut into several: a transaction
// rewrites every page of the indexes its users' entries touch, so the
// store's cost per entry falls as a batch grows, to near its floor at a
// few thousand entries (store's BenchmarkAppendHistoryBatch).
func TestHistoryWriterBatchHoldsALinger(t *testing.T) {
	// floor: from about this size a larger batch costs the store little
	// less per entry (2,000 entries cost 40 % less each than 500).
	const perSecond, floor = 2 * 5000, 2000
	n := int(perSecond * histLinger.Seconds())
	if n < floor || n > histBatch {
		t.Fatalf("a linger at %d entries/s gathers %d entries: want at least %d, and at most a batch (%d)", perSecond, n, floor, histBatch)
	}
	st := &recordingStore{}
	w := startHistoryWriter(st, true, quietLog(), nil, time.Hour)
	for i := range n {
		w.append(fmt.Sprint("user", i%100), store.HistoryEntry{Text: fmt.Sprint(i)}, func(error) {})
	}
	w.close() // appends what is queued, as the linger's end would
	if _, sizes := st.texts(); !slices.Equal(sizes, []int{n}) {
		t.Errorf("batch sizes: got %v, want one batch of %d", sizes, n)
	}
}

// TestHistoryWriterFullBatch: a full batch is appended without waiting
// out the linger, and no batch is larger than histBatch.
func TestHistoryWriterFullBatch(t *testing.T) {
	st := &recordingStore{}
	w := startHistoryWriter(st, true, quietLog(), nil, time.Hour)
	defer w.close()
	var want []string
	for i := range histBatch + 5 {
		want = append(want, fmt.Sprint("ann:", i))
		w.append("ann", store.HistoryEntry{Text: fmt.Sprint(i)}, func(error) {})
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, sizes := st.texts(); len(sizes) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a full batch: not appended within 10 s (the linger is an hour)")
		}
	}
	w.close() // appends the rest
	texts, sizes := st.texts()
	if !slices.Equal(texts, want) {
		t.Errorf("entries: got %d, want all %d in order", len(texts), len(want))
	}
	if sizes[0] != histBatch || slices.Max(sizes) > histBatch {
		t.Errorf("batch sizes: got %v, want the first of %d and none larger", sizes, histBatch)
	}
	var got error
	w.append("ann", store.HistoryEntry{Text: "late"}, func(err error) { got = err })
	if !errors.Is(got, errHistoryStopped) {
		t.Errorf("an append after close: got %v, want errHistoryStopped", got)
	}
	if w.sync(context.Background(), "ann") {
		t.Error("sync after close: got true, want false")
	}
}

// TestHistoryQueuedGauge: msimircd_history_queued counts the entries
// waiting for the writer, and is back to 0 once they are written.
func TestHistoryQueuedGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := &stalledStore{release: make(chan struct{})}
	w := startHistoryWriter(st, true, quietLog(), newBridgeMetrics(reg), time.Hour)
	for range 3 {
		w.append("ann", store.HistoryEntry{}, func(error) {})
	}
	if got := promtest.Value(t, reg, "msimircd_history_queued"); got != 3 {
		t.Errorf("queued with the linger running: got %v, want 3", got)
	}
	close(st.release)
	w.close()
	if got := promtest.Value(t, reg, "msimircd_history_queued"); got != 0 {
		t.Errorf("queued once written: got %v, want 0", got)
	}
	if got := st.appended.Load(); got != 3 {
		t.Errorf("appended: got %d, want 3", got)
	}
}

// reusingStore appends nothing; it gives its results in the array it is
// handed, as the history writer process's client does, and notes each
// array of entries and of results it sees.
type reusingStore struct {
	store.Store
	batches   map[*store.HistoryAppend]bool
	resArrays map[*store.HistoryResult]bool
}

func (s *reusingStore) AppendHistoryBatch(_ context.Context, batch []store.HistoryAppend, res []store.HistoryResult) []store.HistoryResult {
	res = slices.Grow(res[:0], len(batch))[:len(batch)]
	s.batches[&batch[:1][0]] = true
	s.resArrays[&res[:1][0]] = true
	return res
}

// TestHistoryWriterReusesArrays: batch after batch, the writer keeps its
// queue's, its batch's and its results' arrays, so the history adds next
// to no garbage per IM (the collector's pauses are the IMs' latency).
func TestHistoryWriterReusesArrays(t *testing.T) {
	st := &reusingStore{batches: map[*store.HistoryAppend]bool{}, resArrays: map[*store.HistoryResult]bool{}}
	w := startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	defer w.close()
	const rounds, per = 30, 500
	failed := func(error) {}
	e := store.HistoryEntry{MsgID: "m", Account: "a@example.com", Kind: "im", Text: "hello"}
	var ms runtime.MemStats
	var before uint64
	for r := range rounds {
		if r == rounds/3 { // the arrays have grown by now
			runtime.ReadMemStats(&ms)
			before = ms.TotalAlloc
		}
		for range per {
			w.append("ann", e, failed)
		}
		if !w.sync(context.Background(), "ann") {
			t.Fatal("sync: got false")
		}
	}
	runtime.ReadMemStats(&ms)
	perEntry := float64(ms.TotalAlloc-before) / float64((rounds-rounds/3)*per)
	if len(st.batches) > 2 || len(st.resArrays) > 2 {
		t.Errorf("arrays over %d batches: %d of entries and %d of results, want at most 2 each", rounds, len(st.batches), len(st.resArrays))
	}
	if perEntry > 32 {
		t.Errorf("allocated %.0f bytes per entry once warm, want at most 32", perEntry)
	}
}

// TestRecordNoClosurePerEntry: a session hands the writer the same
// failure callback for every entry, not one made per IM.
func TestRecordNoClosurePerEntry(t *testing.T) {
	r := newRig(t, nil)
	st := &stalledStore{release: make(chan struct{})}
	r.s.b.hist = startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	defer func() {
		close(st.release)
		r.s.b.hist.close()
	}()
	e := store.HistoryEntry{MsgID: "m", Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: "hello"}
	r.s.record(e) // the callback is made here
	if allocs := testing.AllocsPerRun(200, func() { r.s.record(e) }); allocs > 0.5 {
		t.Errorf("allocations per entry recorded: got %.2f, want none but the queue's growth", allocs)
	}
}

// TestHistoryWriterBacklogGoes: once a backlog is written, nothing of it
// stays in memory (its entries' callbacks hold sessions), though the
// writer keeps arrays for the queue from batch to batch.
func TestHistoryWriterBacklogGoes(t *testing.T) {
	st := &stalledStore{release: make(chan struct{})}
	w := startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	defer w.close()
	const backlog = 10000
	var gone atomic.Int32
	for range backlog {
		owner := new([64]byte) // what a callback holds, as a session
		runtime.AddCleanup(owner, func(struct{}) { gone.Add(1) }, struct{}{})
		w.append("ann", store.HistoryEntry{Text: "x"}, func(error) { _ = owner[0] })
	}
	close(st.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 5 { // the queue in use again, in batches of its usual size
		for range 10 {
			w.append("ann", store.HistoryEntry{Text: "y"}, func(error) {})
		}
		if !w.sync(ctx, "ann") {
			t.Fatal("sync: got false")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); gone.Load() < backlog && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run on a goroutine of their own
	}
	if got := gone.Load(); got < backlog {
		t.Errorf("backlog entries still held once written: %d of %d", backlog-got, backlog)
	}
}

// TestHistoryWriterQueueNeverCopied: a backlog queues in chunks, each
// entry's room allocated once; a queue kept in one array was copied to a
// larger one as it grew, every session's append waiting behind the copy
// (the full-load mutex profile's largest wait), and its garbage was the
// size of the backlog again.
func TestHistoryWriterQueueNeverCopied(t *testing.T) {
	st := &stalledStore{release: make(chan struct{})}
	w := startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	defer func() {
		close(st.release)
		w.close()
	}()
	failed := func(error) {}
	e := store.HistoryEntry{MsgID: "m", Account: "a@example.com", Kind: "im", Text: "hello"}
	for range histBatch { // the first batch, which the stalled store holds
		w.append("ann", e, failed)
	}
	for deadline := time.Now().Add(10 * time.Second); st.waiting.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first batch never reached the store")
		}
	}
	const backlog = histQueue - histBatch
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	for range backlog {
		w.append("ann", e, failed)
	}
	runtime.ReadMemStats(&ms)
	perEntry := float64(ms.TotalAlloc-before) / backlog
	if room := float64(unsafe.Sizeof(histJob{})); perEntry > 1.25*room {
		t.Errorf("allocated %.0f bytes per entry of a backlog, want at most %.0f (its room, %.0f, once)", perEntry, 1.25*room, room)
	}
}

// TestHistoryWriterMarkReadsTheLastIDThen: a mark holds the user's last
// history ID as it was when the mark was queued: the entry queued before
// it, not the one queued after, though both are appended by the time it
// is read.
func TestHistoryWriterMarkReadsTheLastIDThen(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAccount(ctx, "alice", store.Account{Email: "alice@msim.test", Password: "pw", Channel: "&msim"}); err != nil {
		t.Fatal(err)
	}
	w := startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	defer w.close()
	failed := func(err error) { t.Errorf("append: %v", err) }
	entry := func(msgid string) store.HistoryEntry {
		return store.HistoryEntry{MsgID: msgid, Account: "alice@msim.test", Buddy: 7, Kind: kindIM, Text: msgid, Time: time.Now()}
	}
	w.append("alice", entry("m-before"), failed)
	m := w.mark("alice")
	w.append("alice", entry("m-after"), failed)
	if !w.sync(ctx, "alice") {
		t.Fatal("history not synced")
	}
	if !w.wait(ctx, m.done) {
		t.Fatal("the mark was not reached")
	}
	before, err := st.HistoryByMsgID(ctx, "alice", "m-before")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.HistoryByMsgID(ctx, "alice", "m-after"); err != nil {
		t.Fatal(err)
	}
	if m.err != nil || m.last != before.ID {
		t.Errorf("the mark's last ID: got %d, %v, want %d (the entry queued before it)", m.last, m.err, before.ID)
	}
}

// TestRecordBehindLeavesTheWriterAlone: while the writer's queue is full,
// a session leaves its entries out without taking the writer's lock, which
// every session's appends share: an IM sent is not held up behind the
// others' refused entries.
func TestRecordBehindLeavesTheWriterAlone(t *testing.T) {
	r := newRig(t, nil)
	st := &stalledStore{release: make(chan struct{})}
	w := startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	r.s.b.hist = w
	defer func() {
		close(st.release)
		w.close()
	}()
	for !w.behind() {
		w.append("bob", store.HistoryEntry{}, func(error) {})
	}
	e := store.HistoryEntry{MsgID: "m", Account: "alice@msim.test", Buddy: 7, Outgoing: true, Kind: kindIM, Text: "hello"}
	w.mu.Lock()
	done := make(chan struct{})
	go func() {
		r.s.record(e)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("record waited for the writer's lock with the queue full")
	}
	w.mu.Unlock()
	<-done
	if !r.s.historyFull {
		t.Error("the user was not told that the history leaves entries out")
	}
}

// TestHistoryWriterBehindClearsOnceTheQueueDrains: the full mark (behind)
// does not outlive a full queue: with barriers
// (mark, sync) queued between the appends, once the store catches up and
// everything is appended, and after close, behind is false.
func TestHistoryWriterBehindClearsOnceTheQueueDrains(t *testing.T) {
	st := &stalledStore{Store: lastIDOnly{}, release: make(chan struct{})}
	w := startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	for i := 0; !w.behind(); i++ {
		w.append("bob", store.HistoryEntry{}, func(error) {})
		if i%1000 == 0 {
			w.mark("bob") // barriers among the appends
		}
	}
	close(st.release)
	if !w.sync(context.Background(), "bob") {
		t.Fatal("not synced")
	}
	if w.behind() {
		t.Error("behind with the queue drained")
	}
	w.append("bob", store.HistoryEntry{}, func(err error) { t.Errorf("refused with room: %v", err) })
	w.close()
	if w.behind() {
		t.Error("behind after close")
	}
}

// lastIDOnly answers LastHistoryID (a mark's read) and nothing else.
type lastIDOnly struct{ store.Store }

func (lastIDOnly) LastHistoryID(context.Context, string) (int64, error) { return 0, nil }
