package channel

import (
	"context"
	"testing"

	"github.com/msimircd/msimircd/store"
)

// accountLockProbe is lockProbe for the store's writes of an account.
type accountLockProbe struct {
	lockProbe
	updateLocked bool
}

func (p *accountLockProbe) UpdateAccount(ctx context.Context, user string, a store.Account) error {
	_, err := probed(&p.lockProbe, &p.updateLocked, func() (struct{}, error) { return struct{}{}, p.Store.UpdateAccount(ctx, user, a) })
	return err
}

// TestSetChannelWritesWithoutTheMemoryLock: the control channel an
// account's login names is written to the store without the memory's
// mutex, which ircd's reports and the memory's writer take, so that a
// database busy with another writer stalls neither; the store has the
// channel once setChannel returns, and the memory has it too.
func TestSetChannelWritesWithoutTheMemoryLock(t *testing.T) {
	p := &accountLockProbe{lockProbe: lockProbe{Store: sqliteStore(t)}}
	const email = "ann@example.com"
	a := Account{Email: email, Password: "pw", AutoConnect: true}
	m, err := loadUserMemory(p, User{Name: "ann", Accounts: []Account{a}}, quietLog(), true)
	if err != nil {
		t.Fatal(err)
	}
	p.m = m
	var during string
	p.meanwhile = func() { during, _ = m.channel(email) }

	m.setChannel(a, "&ann")
	if p.updateLocked {
		t.Error("the memory's mutex was held while the store wrote the account's channel")
	}
	if during != "&ann" {
		t.Errorf("the memory's channel while the store wrote it: %q, want &ann", during)
	}
	if ch, _ := m.channel(email); ch != "&ann" {
		t.Errorf("the memory's channel: %q, want &ann", ch)
	}
	st, err := p.Store.LoadUser(context.Background(), "ann")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Accounts) != 1 || st.Accounts[0].Channel != "&ann" {
		t.Errorf("stored accounts: %+v, want %s in &ann", st.Accounts, email)
	}
	if n := m.takeNotes(); len(n) != 0 {
		t.Errorf("notes: %q, want none", n)
	}
}
