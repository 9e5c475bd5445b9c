package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/msimircd/msimircd/channel"
	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// TestFillHistory writes a small history into a state directory and reads
// it back as the gateway would: the users, their accounts and every IM of
// each conversation, one second apart, before now.
func TestFillHistory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	accts := pairAccounts("fh", 4)
	for i, a := range accts {
		a.uid = msim.UID(1000 + i)
	}
	const ims = 150
	ctx := context.Background()
	if err := fillHistory(ctx, dir, accts, ims); err != nil {
		t.Fatal(err)
	}
	key, err := store.LoadOrCreateKey(filepath.Join(dir, gatewayKeyName))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, "sqlite", filepath.Join(dir, gatewayDBName), key)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, a := range accts {
		user := channel.UserName(a.name)
		us, err := st.LoadUser(ctx, user)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		if len(us.Accounts) != 1 || us.Accounts[0].Email != a.email() || us.Accounts[0].Password != benchPassword || us.Accounts[0].Channel != a.channel() {
			t.Errorf("%s: got accounts %+v, want its bench account", user, us.Accounts)
		}
		es, err := st.History(ctx, user, store.HistoryQuery{Account: a.email(), Buddy: accts[i^1].uid, Limit: store.MaxHistoryLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != ims {
			t.Fatalf("%s: got %d entries, want %d", user, len(es), ims)
		}
		for j := 1; j < len(es); j++ {
			if d := es[j].Time.Sub(es[j-1].Time); d != historyStep {
				t.Fatalf("%s: entries %d and %d are %s apart, want %s", user, j-1, j, d, historyStep)
			}
		}
		if last := es[len(es)-1].Time; !last.Before(time.Now()) {
			t.Errorf("%s: the newest entry is at %s, want it in the past", user, last)
		}
	}
}

func TestExpectedPage(t *testing.T) {
	t.Parallel()
	tests := []struct{ n, k, want int }{
		{10000, 0, 100}, {10000, 99, 100}, {10000, 100, 0},
		{250, 0, 100}, {250, 2, 50}, {250, 3, 0}, {30, 0, 30}, {30, 1, 0},
	}
	for _, tc := range tests {
		if got := expectedPage(tc.n, tc.k); got != tc.want {
			t.Errorf("expectedPage(%d, %d): got %d, want %d", tc.n, tc.k, got, tc.want)
		}
	}
}

// TestCHClient follows a chathistory batch: its PRIVMSGs are counted, the
// oldest one's time is kept, and its end answers the request; a FAIL
// answers it with an error.
func TestCHClient(t *testing.T) {
	t.Parallel()
	h := newCHClient()
	now := time.Now()
	for _, l := range []string{
		":srv BATCH +ab chathistory bob",
		"@batch=ab;time=2026-01-02T03:04:05.000Z;msgid=x :bob!u@h PRIVMSG me :one",
		"@time=2026-01-02T03:04:06.000Z :bob!u@h PRIVMSG me :not in the batch",
		"@batch=ab;time=2026-01-02T03:04:07.000Z :me!u@h PRIVMSG bob :two",
		":srv BATCH -ab",
	} {
		h.line([]byte(l), now)
	}
	a := <-h.done
	if a.err != nil || a.n != 2 || a.old != "2026-01-02T03:04:05.000Z" || !a.at.Equal(now) {
		t.Errorf("got %+v, want 2 IMs, the oldest at 03:04:05", a)
	}
	h.line([]byte(":srv FAIL CHATHISTORY INVALID_TARGET LATEST nobody :Messages could not be retrieved"), now)
	if a := <-h.done; a.err == nil {
		t.Errorf("after FAIL: got %+v, want an error", a)
	}
	for _, tc := range []struct{ line, key, want string }{
		{"@a=1;batch=xy :s PRIVMSG", "batch", "xy"},
		{"@a=1;batch=xy :s PRIVMSG", "time", ""},
		{":s PRIVMSG me :batch=xy", "batch", ""},
		{"@flag;time=t :s X", "time", "t"},
	} {
		if got := tagValue([]byte(tc.line), tc.key); got != tc.want {
			t.Errorf("tagValue(%q, %s): got %q, want %q", tc.line, tc.key, got, tc.want)
		}
	}
}
