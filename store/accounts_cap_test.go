package store

import (
	"errors"
	"fmt"
	"testing"
)

// capAccount is the i-th account of a test of the cap.
func capAccount(prefix string, i int) Account {
	return Account{Email: fmt.Sprintf("%s%d@example.com", prefix, i), Password: "msim-pass", Channel: fmt.Sprintf("&%s%d", prefix, i)}
}

// TestAddAccountCap: a user may add MaxAccounts accounts of their own;
// the next is refused with ErrFull and nothing of it is stored. Adding
// again an account they have is ErrExists, at the cap too (account add
// seals anew a kept one whose password did not read). The configuration's
// accounts, added with AddAccount, are the operator's and not bounded.
func TestAddAccountCap(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			s := e.fresh(t).open(t, testKey(1))
			mustCreate(t, s, "alice")
			for i := range MaxAccounts {
				check(t, fmt.Sprintf("AddAccountBounded %d", i), s.AddAccountBounded(ctx, "alice", capAccount("a", i)))
			}
			over := capAccount("a", MaxAccounts)
			over.Settings = map[string]string{"status": "away"}
			if err := s.AddAccountBounded(ctx, "alice", over); !errors.Is(err, ErrFull) {
				t.Errorf("account %d: got %v, want ErrFull", MaxAccounts+1, err)
			}
			if err := s.AddAccountBounded(ctx, "alice", capAccount("a", 0)); !errors.Is(err, ErrExists) {
				t.Errorf("an account alice has, at the cap: got %v, want ErrExists", err)
			}
			if n := len(mustLoad(t, s, "alice").Accounts); n != MaxAccounts {
				t.Errorf("alice has %d accounts, want %d", n, MaxAccounts)
			}
			if err := s.AddAccountBounded(ctx, "nobody", capAccount("n", 0)); !errors.Is(err, ErrNotFound) {
				t.Errorf("an account of no user: got %v, want ErrNotFound", err)
			}

			// A place freed is a place to add.
			check(t, "DeleteAccount", s.DeleteAccount(ctx, "alice", capAccount("a", 0).Email))
			check(t, "AddAccountBounded after a delete", s.AddAccountBounded(ctx, "alice", over))
			st := mustLoad(t, s, "alice")
			if len(st.Accounts) != MaxAccounts {
				t.Errorf("alice has %d accounts, want %d", len(st.Accounts), MaxAccounts)
			}
			for _, a := range st.Accounts {
				if a.Email == over.Email && a.Settings["status"] != "away" {
					t.Errorf("the account added after a delete has settings %v, want status away", a.Settings)
				}
			}

			mustCreate(t, s, "conf")
			for i := range MaxAccounts + 1 {
				mustAdd(t, s, "conf", capAccount("c", i))
			}
			if n := len(mustLoad(t, s, "conf").Accounts); n != MaxAccounts+1 {
				t.Errorf("the configuration's user has %d accounts, want %d", n, MaxAccounts+1)
			}
		})
	}
}

// TestAddAccountCapUnderConcurrency: with one place left under
// MaxAccounts, accounts added for the user at the same moment take it one
// only; the others are refused with ErrFull and the user has MaxAccounts,
// never more. Several rounds, each a fresh race.
func TestAddAccountCapUnderConcurrency(t *testing.T) {
	const (
		rounds = 10
		adders = 8
	)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.name)
			s := e.fresh(t).open(t, testKey(1))
			mustCreate(t, s, "alice")
			for i := range MaxAccounts - 1 {
				mustAdd(t, s, "alice", capAccount("a", i))
			}
			for round := range rounds {
				prefix := fmt.Sprintf("r%d-", round)
				kept := keptAtOnce(t, round, "AddAccountBounded", adders, func(i int) error {
					return s.AddAccountBounded(ctx, "alice", capAccount(prefix, i))
				})
				st := mustLoad(t, s, "alice")
				if kept != 1 || len(st.Accounts) != MaxAccounts {
					t.Fatalf("round %d: %d of %d accounts added at once were kept and the user has %d; want 1 kept and %d", round, kept, adders, len(st.Accounts), MaxAccounts)
				}
				for i := range adders {
					if err := s.DeleteAccount(ctx, "alice", capAccount(prefix, i).Email); err == nil {
						break
					}
				}
			}
		})
	}
}
