package channel_test

import (
	"context"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/channel"
)

// TestAccountAddRefusesConfiguredAccount: a registered user cannot add an
// MSIM account that a user of the configuration lists, under any spelling
// of its e-mail: both would log it in, the second login logging out the
// first, and its IMs would go to whichever holds it.
func TestAccountAddRefusesConfiguredAccount(t *testing.T) {
	db := openStore(t)
	if err := createUser(db, "dave", "dave-pw"); err != nil {
		t.Fatal(err)
	}
	st := liveStack(t, []channel.StaticUser{user("carol", "conf-pw", acct("carol@example.com", "Carol1"))},
		map[string]string{"carol@example.com": "Carol1"}, db)
	c := loginAs(t, st, "carol", "conf-pw", "&carol")
	d := dial(t, st.ircAddr, "dave", "dave-pw")
	d.expectFrom("PRIVMSG", "root", "You have no MSIM accounts")
	r := d.private("account add msim Carol@Example.com Carol1", "")
	if !strings.Contains(r.Trailing(), "configuration") {
		t.Errorf("account add of a configured account: got %q, want a refusal that names the gateway's configuration", r.Trailing())
	}
	state, err := db.LoadUser(context.Background(), "dave")
	if err != nil {
		t.Fatal(err)
	}
	if len(state.Accounts) != 0 {
		t.Errorf("dave's stored accounts: got %d (%s), want none", len(state.Accounts), state.Accounts[0].Email)
	}
	for _, m := range c.sync() {
		if strings.Contains(m.Trailing(), "another place") {
			t.Errorf("carol: got %q, want her account left logged in", m.Trailing())
		}
	}
}
