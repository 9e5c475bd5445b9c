package channel

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// unreadableRig is a rig whose user, alice, is kept in a SQLite store
// with three IMs held and three queued, the second of each corrupted
// behind the store's back (text in an integer column, as SQLite keeps
// what another tool wrote), and the memory loaded from it.
func unreadableRig(t *testing.T) (*rig, store.Store) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "msimircd.db")
	st, err := store.Open(ctx, "sqlite", path, make([]byte, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const email = "alice@msim.test"
	if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAccount(ctx, "alice", store.Account{Email: email, Password: "pw", Channel: "&msim"}); err != nil {
		t.Fatal(err)
	}
	for i, text := range []string{"held one", "held two", "held three"} {
		if _, err := st.HoldIM(ctx, "alice", email, store.HeldIM{From: 7, Text: text, Seq: int64(i + 1), Time: time.Now(), Offline: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, text := range []string{"typed one", "typed two", "typed three"} {
		if _, err := st.QueueIM(ctx, "alice", email, store.QueuedIM{To: 7, Nick: "bob", Text: text, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{
		`UPDATE held_ims SET sender = 'bob' WHERE text = 'held two'`,
		`UPDATE queued_ims SET recipient = 'bob' WHERE text = 'typed two'`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	r := newRig(t, func(c *Config) { c.Store = st })
	mem, err := loadUserMemory(st, r.s.user, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	r.s.mem = mem
	r.a.queue = mem.queuedFor(email) // as the session's newAccount does
	return r, st
}

// A user one of whose held IMs and one of whose queued IMs cannot be read
// (a corrupt row) gets the others, the queued ones sent, and is told
// once, naming the account, how many could not be read: the held one is
// removed (it could never be shown), the queued one stays in the store.
func TestUnreadableHeldAndQueuedIMsLeaveTheOthers(t *testing.T) {
	r, st := unreadableRig(t)
	const email = "alice@msim.test"
	bob := []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}
	cl := &fakeMSIM{buddies: bob}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	for _, text := range []string{"held one", "held three"} {
		if got := r.irc.said(text); len(got) != 1 {
			t.Errorf("%q: given %d times, want once", text, len(got))
		}
	}
	if got := r.irc.said("held two"); len(got) != 0 {
		t.Errorf("the unreadable held IM was given: %q", got)
	}
	for n, fate := range map[string]string{"1 IM held for you on your MSIM account " + email + " could not be read": "removed",
		"1 IM you typed while the link was down on your MSIM account " + email + " could not be read": "stay"} {
		if got := r.irc.said(n); len(got) != 1 || !strings.Contains(got[0], fate) {
			t.Errorf("told %q: %q; want once, saying %q", n, got, fate)
		}
	}
	r.stepUntil("the queued IMs sent", func() bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return len(cl.sent) >= 2
	})
	cl.mu.Lock()
	sent := append([]string(nil), cl.sent...)
	cl.mu.Unlock()
	if len(sent) != 2 || sent[0] != "typed one" || sent[1] != "typed three" {
		t.Errorf("sent %q; want typed one and typed three", sent)
	}

	// The next login gives nothing again and tells nothing again.
	cl.push(msim.DisconnectedEvent{Reason: msim.DisconnectNetwork, Err: errors.New("eof")})
	r.stepUntil("the link lost", func() bool { return r.a.state == linkWaiting })
	r.okDial(&fakeMSIM{buddies: bob})
	r.clock.Advance(r.clock.Pending()[0])
	r.stepUntil("logged in again", func() bool { return r.a.state == linkUp })
	if got := r.irc.said("could not be read"); len(got) != 2 {
		t.Errorf("told %d times of unreadable rows after the second login: %q; want the first login's 2", len(got), got)
	}
	r.s.mem.settle()
	if held, err := st.HeldIMs(context.Background(), "alice", email); err != nil || len(held) != 0 {
		t.Errorf("HeldIMs after the logins: got %d, %v; want none, the unreadable row removed", len(held), err)
	}
	var ur *store.UnreadableRows
	if _, err := st.QueuedIMs(context.Background(), "alice", email); !errors.As(err, &ur) || len(ur.Rows) != 1 {
		t.Errorf("QueuedIMs after the logins: got %v, want the unreadable row kept", err)
	}
}
