package ircd

import (
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/irc.v4"
)

// fakeHistory is a HistoryHandler's backend side for tests: it records what
// it is asked and answers with fixed data, or holds the answer.
type fakeHistory struct {
	mu      sync.Mutex
	msgs    []HistoryMessage
	targets []HistoryTarget
	err     error
	hold    bool                 // keep answers instead of giving them
	held    []func()             // answers kept by hold
	marks   map[string]time.Time // by target
	onMark  func(target string, t time.Time)

	queries chan HistoryQuery
	tqs     chan TargetsQuery
	asked   chan string // "markread <target> <time>" and "readmarker <target>"
}

func newFakeHistory() *fakeHistory {
	return &fakeHistory{
		marks:   make(map[string]time.Time),
		queries: make(chan HistoryQuery, 64),
		tqs:     make(chan TargetsQuery, 64),
		asked:   make(chan string, 64),
	}
}

// answer decides whether to hold the answer f, then tells the test of the
// query (asked), then answers unless holding: a test that changes hold
// once it has seen the query changes it for the next query only.
func (fh *fakeHistory) answer(asked, f func()) {
	fh.mu.Lock()
	hold := fh.hold
	if hold {
		fh.held = append(fh.held, f)
	}
	fh.mu.Unlock()
	asked()
	if !hold {
		f()
	}
}

// set runs f, which changes fh's fields, under fh's lock.
func (fh *fakeHistory) set(f func()) {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	f()
}

// release gives the answers held so far.
func (fh *fakeHistory) release() {
	fh.mu.Lock()
	held := fh.held
	fh.held, fh.hold = nil, false
	fh.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// historyConn is a handler that is also a HistoryHandler, and records each
// Input whole.
type historyConn struct {
	*fakeConn
	fh     *fakeHistory
	inputs chan Input
}

func (h *historyConn) Message(in Input) { h.inputs <- in }

func (h *historyConn) History(q HistoryQuery, answer func([]HistoryMessage, error)) {
	h.fh.mu.Lock()
	msgs, err := h.fh.msgs, h.fh.err
	h.fh.mu.Unlock()
	h.fh.answer(func() { h.fh.queries <- q }, func() { answer(msgs, err) })
}

func (h *historyConn) HistoryTargets(q TargetsQuery, answer func([]HistoryTarget, error)) {
	h.fh.mu.Lock()
	ts, err := h.fh.targets, h.fh.err
	h.fh.mu.Unlock()
	h.fh.answer(func() { h.fh.tqs <- q }, func() { answer(ts, err) })
}

func (h *historyConn) MarkRead(target string, t time.Time) {
	h.fh.asked <- "markread " + target + " " + formatTime(t)
	h.fh.mu.Lock()
	if t.After(h.fh.marks[target]) {
		h.fh.marks[target] = t
	}
	on := h.fh.onMark
	h.fh.mu.Unlock()
	if on != nil {
		on(target, t)
	}
}

func (h *historyConn) ReadMarker(target string, answer func(time.Time)) {
	h.fh.mu.Lock()
	t := h.fh.marks[target]
	h.fh.mu.Unlock()
	h.fh.answer(func() { h.fh.asked <- "readmarker " + target }, func() { answer(t) })
}

// histBackend is fakeBackend whose handlers are historyConns.
type histBackend struct {
	*fakeBackend
	fh    *fakeHistory
	mu    sync.Mutex
	conns map[string]*historyConn // by nick
}

func (b *histBackend) Connect(c *Client, reg Registration) (Handler, error) {
	h, err := b.fakeBackend.Connect(c, reg)
	if err != nil {
		return nil, err
	}
	hc := &historyConn{fakeConn: h.(*fakeConn), fh: b.fh, inputs: make(chan Input, 64)}
	b.mu.Lock()
	b.conns[reg.Nick] = hc
	b.mu.Unlock()
	return hc, nil
}

func (b *histBackend) hconn(nick string) *historyConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns[nick]
}

// histEnv is a server with chat history on fake timers.
type histEnv struct {
	addr string
	b    *histBackend
	fh   *fakeHistory
	ft   *fakeTimers
}

func historyConfig() Config {
	cfg := testConfig()
	cfg.History = true
	cfg.HistoryLimit = 50
	return cfg
}

// startHistory runs a server with cfg whose handlers are HistoryHandlers
// when withHandler is set, and plain handlers otherwise.
func startHistory(t *testing.T, cfg Config, withHandler bool) *histEnv {
	t.Helper()
	fh := newFakeHistory()
	hb := &histBackend{fakeBackend: newBackend(), fh: fh, conns: make(map[string]*historyConn)}
	var b Backend = hb
	if !withHandler {
		b = hb.fakeBackend
	}
	log, _ := testLog()
	srv := NewServer(cfg, b, log)
	ft := &fakeTimers{}
	srv.afterFunc = ft.afterFunc
	addr, _ := startWith(t, srv)
	return &histEnv{addr: addr, b: hb, fh: fh, ft: ft}
}

// client registers nick with caps.
func (e *histEnv) client(t *testing.T, nick string, caps ...string) (*tclient, *fakeConn) {
	t.Helper()
	c, fc, _ := register(t, e.addr, e.b.fakeBackend, nick, caps...)
	return c, fc
}

// query waits for the backend's next History query.
func (e *histEnv) query(t *testing.T) HistoryQuery {
	t.Helper()
	select {
	case q := <-e.fh.queries:
		return q
	case <-time.After(5 * time.Second):
		t.Fatal("History not called")
		return HistoryQuery{}
	}
}

// asked waits for the backend's next MarkRead or ReadMarker.
func (e *histEnv) asked(t *testing.T) string {
	t.Helper()
	select {
	case s := <-e.fh.asked:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("MarkRead or ReadMarker not called")
		return ""
	}
}

// ts parses a server-time timestamp for a test table.
func ts(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(timeFormat, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// lineOf renders m for a failure message and a comparison, tags left out.
func lineOf(m *irc.Message) string {
	c := m.Copy()
	c.Tags = nil
	return strings.TrimPrefix(c.String(), ":")
}

// readN reads n messages.
func (c *tclient) readN(t testing.TB, n int) []*irc.Message {
	t.Helper()
	out := make([]*irc.Message, n)
	for i := range out {
		out[i] = c.read(t)
	}
	return out
}

// joinHeld sends c's labeled JOIN of #other with the read marker's answer
// held (e.fh.hold; release it with e.fh.release), and waits until the
// backend was asked for the marker and told of the join.
func (e *histEnv) joinHeld(t *testing.T, c *tclient, fc *fakeConn) {
	t.Helper()
	e.fh.set(func() { e.fh.hold = true })
	c.send(t, "@label=j1 JOIN #other")
	if a := e.asked(t); a != "readmarker #other" {
		t.Fatalf("backend got %q, want readmarker #other", a)
	}
	if ev := <-fc.events; ev != "join #other" {
		t.Fatalf("backend got %q, want join #other", ev)
	}
}
