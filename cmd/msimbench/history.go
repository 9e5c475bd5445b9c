package main

// The chathistory benchmark (issue 14): users in pairs, each with a
// conversation of many stored IMs with its partner, written through the
// gateway's store package straight into the SQLite database msimircd then
// opens; then every user's IRC client, with draft/chathistory, asks for
// CHATHISTORY LATEST <partner> * 100 and walks back with BEFORE pages, one
// request in flight per client, all clients at once (the worst case: every
// client catching up at once, after a restart say) unless -history-inflight
// bounds the requests in flight.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/store"
)

// The gateway's file names in its state directory (stateDBName and
// stateKeyName in cmd/msimircd/state.go). Were they to differ, the gateway
// would open an empty store and the scenario would fail its counts.
const (
	gatewayDBName  = "msimircd.db"
	gatewayKeyName = "store.key"
)

// historyPage is the limit of every CHATHISTORY request.
const historyPage = 100

// historyOptions size the chathistory benchmark.
type historyOptions struct {
	users  int // IRC users, in pairs
	ims    int // stored IMs per user (its conversation with its partner)
	rounds int // LATEST requests per client
	pages  int // BEFORE pages after each LATEST
	// inflight bounds the requests in flight across all clients; 0: one
	// per client, all at once.
	inflight int
}

// historyResult is what the chathistory benchmark measured.
type historyResult struct {
	Users         int     `json:"users"`
	StoredPerUser int     `json:"stored_per_user"`
	FillS         float64 `json:"fill_s"`
	FillPerSec    float64 `json:"fill_per_sec"`
	Latest        int     `json:"latest_requests"`
	LatestP50ms   float64 `json:"latest_p50_ms"`
	LatestP99ms   float64 `json:"latest_p99_ms"`
	LatestMaxms   float64 `json:"latest_max_ms"`
	Before        int     `json:"before_requests"`
	BeforeP50ms   float64 `json:"before_p50_ms"`
	BeforeP99ms   float64 `json:"before_p99_ms"`
	BeforeMaxms   float64 `json:"before_max_ms"`
	Messages      int64   `json:"messages_received"`
	Inflight      int     `json:"inflight"` // 0: every client at once
	PerSec        float64 `json:"requests_per_sec"`
}

// historyStep is the time between two stored IMs of a conversation: each
// has a time of its own, so BEFORE pages by timestamp skip none.
const historyStep = time.Second

// fillHistory writes ims history entries for every user of accts (pairs:
// accts[i]'s buddy is accts[i^1]) into the store in stateDir, with the
// users and accounts the gateway's config will name, before the gateway
// starts. The entries end a minute before now.
func fillHistory(ctx context.Context, stateDir string, accts []*acct, ims int) error {
	key, err := store.LoadOrCreateKey(filepath.Join(stateDir, gatewayKeyName))
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, "sqlite", filepath.Join(stateDir, gatewayDBName), key)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, a := range accts {
		user := channel.UserName(a.name)
		if _, err := st.CreateUser(ctx, user, store.UnusablePasswordHash()); err != nil {
			return fmt.Errorf("history: user %s: %w", user, err)
		}
		if err := st.AddAccount(ctx, user, store.Account{Email: a.email(), Password: benchPassword, Channel: a.channel(), Autoconnect: true}); err != nil {
			return fmt.Errorf("history: account of %s: %w", user, err)
		}
	}
	base := time.Now().Add(-time.Minute - time.Duration(ims)*historyStep)
	batch := make([]store.HistoryAppend, 0, fillBatch)
	flush := func() error {
		for i, r := range st.AppendHistoryBatch(ctx, batch, nil) {
			if r.Err != nil {
				return fmt.Errorf("history: append %s of %s: %w", batch[i].Entry.MsgID, batch[i].User, r.Err)
			}
		}
		batch = batch[:0]
		return ctx.Err()
	}
	for i := range ims {
		for u := range accts {
			a, b := accts[u], accts[u^1]
			batch = append(batch, store.HistoryAppend{User: channel.UserName(a.name), Entry: store.HistoryEntry{
				MsgID: fmt.Sprintf("bench%d", i), Time: base.Add(time.Duration(i) * historyStep),
				Account: a.email(), Buddy: b.uid, Outgoing: i%2 == 0, Kind: store.KindIM,
				Text: fmt.Sprintf("stored IM %d of %s and %s", i, a.name, b.name)}})
			if len(batch) == fillBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// fillBatch is how many entries fillHistory appends in one transaction:
// the size of the gateway's own history batches.
const fillBatch = 1024

// chClient is an IRC client that asks CHATHISTORY, one request at a time.
type chClient struct {
	c    *ircClient
	mu   sync.Mutex
	ref  string // the open chathistory batch
	n    int    // PRIVMSGs in it
	old  string // the time tag of its first (oldest)
	done chan chAnswer
}

// chAnswer is the end of one answer.
type chAnswer struct {
	n   int
	old string
	at  time.Time
	err error
}

func newCHClient() *chClient { return &chClient{done: make(chan chAnswer, 1)} }

func (h *chClient) handlers() *handlers { return &handlers{raw: h.line} }

// line follows the batches; it runs on the reader goroutine.
func (h *chClient) line(line []byte, at time.Time) {
	var p parsed
	if !parseInto(&p, line) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch string(p.cmd) {
	case "BATCH":
		ref := string(p.param(0))
		switch {
		case strings.HasPrefix(ref, "+") && string(p.param(1)) == "chathistory":
			h.ref, h.n, h.old = ref[1:], 0, ""
		case h.ref != "" && ref == "-"+h.ref:
			h.ref = ""
			h.answer(chAnswer{n: h.n, old: h.old, at: at})
		}
	case "PRIVMSG":
		if h.ref != "" && tagValue(line, "batch") == h.ref {
			if h.n == 0 {
				h.old = tagValue(line, "time")
			}
			h.n++
		}
	case "FAIL":
		if string(p.param(0)) == "CHATHISTORY" {
			h.answer(chAnswer{err: fmt.Errorf("server said: %s", line)})
		}
	}
}

func (h *chClient) answer(a chAnswer) {
	select {
	case h.done <- a:
	default: // an answer nobody asked for: the next request sees it as wrong
	}
}

// tagValue returns the value of an IRCv3 tag of line ("" if none).
func tagValue(line []byte, key string) string {
	if len(line) == 0 || line[0] != '@' {
		return ""
	}
	tags, _, _ := strings.Cut(string(line[1:]), " ")
	for t := range strings.SplitSeq(tags, ";") {
		if k, v, _ := strings.Cut(t, "="); k == key {
			return v
		}
	}
	return ""
}

// request sends one CHATHISTORY line and waits for its answer; with sem,
// it first waits for a slot there (not counted in the time).
func (h *chClient) request(ctx context.Context, sem chan struct{}, line string) (chAnswer, time.Duration, error) {
	if sem != nil {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-ctx.Done():
			return chAnswer{}, 0, ctx.Err()
		}
	}
	start := time.Now()
	if err := h.c.write(true, line+"\r\n"); err != nil {
		return chAnswer{}, 0, err
	}
	select {
	case a := <-h.done:
		if a.err != nil {
			return a, 0, a.err
		}
		return a, a.at.Sub(start), nil
	case <-h.c.closed:
		return chAnswer{}, 0, fmt.Errorf("%s: connection closed: %v", h.c.nick, h.c.readErr)
	case <-ctx.Done():
		return chAnswer{}, 0, fmt.Errorf("%s: waiting for %q: %w", h.c.nick, line, ctx.Err())
	}
}

// expectedPage is how many IMs page k (0 = LATEST, then BEFORE pages) of
// a conversation of n holds.
func expectedPage(n, k int) int {
	return max(0, min(historyPage, n-historyPage*k))
}

// walk is one client's requests: rounds × (LATEST, then up to pages
// BEFORE pages back from the oldest IM of the last answer).
func (h *chClient) walk(ctx context.Context, sem chan struct{}, buddy string, ho historyOptions, latest, before *[]int64, got *int64) error {
	for range ho.rounds {
		a, d, err := h.request(ctx, sem, fmt.Sprintf("CHATHISTORY LATEST %s * %d", buddy, historyPage))
		if err != nil {
			return err
		}
		if want := expectedPage(ho.ims, 0); a.n != want {
			return fmt.Errorf("%s: LATEST %s: got %d IMs, want %d", h.c.nick, buddy, a.n, want)
		}
		*latest = append(*latest, d.Nanoseconds())
		*got += int64(a.n)
		for k := 1; k <= ho.pages && expectedPage(ho.ims, k) > 0; k++ {
			if a.old == "" {
				return fmt.Errorf("%s: an answer without server-time", h.c.nick)
			}
			line := fmt.Sprintf("CHATHISTORY BEFORE %s timestamp=%s %d", buddy, a.old, historyPage)
			if a, d, err = h.request(ctx, sem, line); err != nil {
				return err
			}
			if want := expectedPage(ho.ims, k); a.n != want {
				return fmt.Errorf("%s: BEFORE page %d of %s: got %d IMs, want %d", h.c.nick, k, buddy, a.n, want)
			}
			*before = append(*before, d.Nanoseconds())
			*got += int64(a.n)
		}
	}
	return nil
}

// runHistory runs the chathistory benchmark on a fresh stack (history on
// whatever -history says: it is what is measured).
func runHistory(ctx context.Context, e *env, ho historyOptions) (historyResult, error) {
	res := historyResult{Users: ho.users, StoredPerUser: ho.ims, Inflight: ho.inflight}
	if e.external() {
		return res, errors.New("the chathistory benchmark fills the gateway's store before it starts (not in external mode)")
	}
	accts := pairAccounts("hist", ho.users)
	var fill time.Duration
	prepare := func(stateDir string) error {
		stop := e.prog.every(fmt.Sprintf("writing %d×%d IMs into the store", ho.users, ho.ims), func() string { return "" })
		defer stop()
		start := time.Now()
		err := fillHistory(ctx, stateDir, accts, ho.ims)
		fill = time.Since(start)
		return err
	}
	t, err := e.start("history", accts, gwOptions{prepare: prepare})
	if err != nil {
		return res, err
	}
	defer t.close()
	res.FillS = fill.Seconds()
	if fill > 0 {
		res.FillPerSec = float64(ho.users*ho.ims) / fill.Seconds()
	}
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	chs := map[string]*chClient{}
	for _, a := range accts {
		chs[a.name] = newCHClient()
	}
	clients, err := connectAllWith(cctx, t.ircAddr, accts, func(a *acct) []string { return a.buddies },
		func(a *acct) dialOpts { return dialOpts{caps: scriptCaps, h: chs[a.name].handlers()} })
	if err != nil {
		return res, fmt.Errorf("chathistory: %w", err)
	}
	defer closeAll(clients)
	latest := make([][]int64, len(accts))
	before := make([][]int64, len(accts))
	got := make([]int64, len(accts))
	errs := make([]error, len(accts))
	var sem chan struct{}
	if ho.inflight > 0 {
		sem = make(chan struct{}, ho.inflight)
	}
	var done atomic.Int64
	start := time.Now()
	stop := e.prog.every("chathistory", func() string { return fmt.Sprintf("%d of %d clients done", done.Load(), len(accts)) })
	var wg sync.WaitGroup
	for i, a := range accts {
		h := chs[a.name]
		h.c = clients[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer done.Add(1)
			errs[i] = h.walk(cctx, sem, a.buddies[0], ho, &latest[i], &before[i], &got[i])
		}()
	}
	wg.Wait()
	took := time.Since(start)
	stop()
	var all, allBefore []int64
	for i := range accts {
		all = append(all, latest[i]...)
		allBefore = append(allBefore, before[i]...)
		res.Messages += got[i]
	}
	res.Latest, res.Before = len(all), len(allBefore)
	res.PerSec = float64(res.Latest+res.Before) / took.Seconds()
	res.LatestP50ms, res.LatestP99ms, res.LatestMaxms = percentiles(all)
	res.BeforeP50ms, res.BeforeP99ms, res.BeforeMaxms = percentiles(allBefore)
	t.finishMetrics()
	if err := firstErrs(errs); err != nil {
		return res, err
	}
	return res, t.gw.alive()
}
