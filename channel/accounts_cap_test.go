package channel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/msimircd/msimircd/store"
)

// dials is how many connections the bridge has made to the MSIM server
// through the proxy (cut ones included).
func (p *proxy) dials() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// TestAccountAddCap: a registered user adds accounts up to
// store.MaxAccounts; account add past it is refused with a reply that
// says at most how many, and nothing comes of it: no stored account, no
// control channel, no MSIM login.
func TestAccountAddCap(t *testing.T) {
	db := openStore(t)
	if err := createUser(db, "dave", "dave-pw"); err != nil {
		t.Fatal(err)
	}
	for i := range store.MaxAccounts - 1 {
		a := store.Account{Email: fmt.Sprintf("d%d@example.com", i), Password: "Dave1", Channel: fmt.Sprintf("&d%d", i)}
		if err := db.AddAccount(context.Background(), "dave", a); err != nil {
			t.Fatal(err)
		}
	}
	last := fmt.Sprintf("d%d@example.com", store.MaxAccounts-1)
	st := liveStack(t, nil, map[string]string{last: "Last1", "over@example.com": "Over1"}, db)
	c := dial(t, st.ircAddr, "dave", "dave-pw")
	c.joinedControl(fmt.Sprintf("&d%d", store.MaxAccounts-2))
	c.sync()

	c.private("account add msim "+last+" Last1", fmt.Sprintf("Account %d added", store.MaxAccounts-1))
	c.expectFrom("PRIVMSG", "root", "Logged in to MSIM as")
	c.sync()
	dials := st.proxy.dials()

	r := c.private("account add msim over@example.com Over1", "")
	if want := fmt.Sprintf("at most %d", store.MaxAccounts); !strings.Contains(r.Trailing(), want) {
		t.Errorf("account add number %d: got %q, want a refusal that says %s", store.MaxAccounts+1, r.Trailing(), want)
	}
	time.Sleep(300 * time.Millisecond) // a dial, had there been one, would have begun
	for _, m := range c.sync() {
		if m.Command == "JOIN" || strings.Contains(m.Trailing(), "Logged in") || strings.Contains(m.Trailing(), "added") {
			t.Errorf("after the refused account add: got %q, want nothing of the account", m)
		}
	}
	if got := st.proxy.dials(); got != dials {
		t.Errorf("MSIM connections after the refused account add: got %d, want %d (none more)", got, dials)
	}
	state, err := db.LoadUser(context.Background(), "dave")
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Accounts) != store.MaxAccounts {
		t.Errorf("dave's stored accounts: got %d, want %d", len(state.Accounts), store.MaxAccounts)
	}
	for _, a := range state.Accounts {
		if a.Email == "over@example.com" {
			t.Errorf("the refused account over@example.com is stored")
		}
	}
	c.private("account list", fmt.Sprintf("%d (msim): %s", store.MaxAccounts-1, last))
}
