package channel

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// A conversation with someone the session does not know (written to
// before a restart) whose first history row cannot be read is found by
// their nick all the same: CHATHISTORY gives the entries that read, and
// the user is told once that some could not be read.
func TestUnreadableHistoryOfAStrangerFound(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "msimircd.db")
	st, err := store.Open(ctx, "sqlite", path, make([]byte, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAccount(ctx, "alice", store.Account{Email: "alice@msim.test", Password: "pw", Channel: "&msim"}); err != nil {
		t.Fatal(err)
	}
	wrote := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, text := range []string{"damaged", "hello"} {
		for _, res := range st.AppendHistoryBatch(ctx, []store.HistoryAppend{{User: "alice", Entry: store.HistoryEntry{
			MsgID: text, Time: wrote.Add(time.Duration(i) * time.Minute), Account: "alice@msim.test", Buddy: 9, Kind: kindIM, Text: text}}}, nil) {
			if res.Err != nil {
				t.Fatal(res.Err)
			}
		}
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE history SET outgoing = 'maybe' WHERE text = 'damaged'`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	r := newRig(t, func(c *Config) { c.Store = st })
	r.s.b.hist = startHistoryWriter(st, false, quietLog(), nil, time.Hour)
	t.Cleanup(r.s.b.hist.close)
	r.a.client = &lookupMSIM{fakeMSIM: &fakeMSIM{}, users: map[string]msim.UID{"stranger": 9}}

	type result struct {
		texts []string
		err   error
	}
	for range 2 {
		got := make(chan result, 1)
		r.s.cl.ats[0].History(ircd.HistoryQuery{Subcommand: "LATEST", Target: "stranger", Limit: 10}, func(ms []ircd.HistoryMessage, err error) {
			var texts []string
			for _, m := range ms {
				texts = append(texts, m.Text)
			}
			got <- result{texts, err}
		})
		if res := await(r, got); res.err != nil || len(res.texts) != 1 || res.texts[0] != "hello" {
			t.Errorf("CHATHISTORY LATEST stranger: %q, error %v; want hello", res.texts, res.err)
		}
		r.s.workers.Wait()
		r.settle()
	}
	if got := r.irc.said("of your history could not be read"); len(got) != 1 {
		t.Errorf("told %d times of the unreadable history: %q; want once", len(got), got)
	}
}
