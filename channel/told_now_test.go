package channel

import (
	"context"
	"testing"

	"github.com/msimircd/msimircd/ircd"
	"github.com/msimircd/msimircd/store"
)

// unsentNowRig is a registered user's always-on session, logged in with
// bob (uid 7) online, whose MSIM client has an IM the user typed that it
// never sent, told as the account closes. With stored, the user's memory
// keeps its notes in the store, as a registered user's does.
func unsentNowRig(t *testing.T, stored bool) *rig {
	t.Helper()
	ctx := context.Background()
	st := sqliteStore(t)
	if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAccount(ctx, "alice", store.Account{Email: "alice@msim.test", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(c *Config) { c.AlwaysOn = true })
	r.s.b.users = &storeDirectory{st: st}
	r.s.user.registered = true
	if stored {
		mem, err := loadUserMemory(st, r.s.user, quietLog(), true)
		if err != nil {
			t.Fatal(err)
		}
		r.s.mem = mem
	}
	return logInWithUnsent(r)
}

// onUnsentNowRigs runs f on an unsentNowRig in a subtest for each place
// the user's memory keeps its notes: in memory only, and in the store.
func onUnsentNowRigs(t *testing.T, f func(t *testing.T, r *rig)) {
	for _, tc := range []struct {
		name   string
		stored bool
	}{{"memory", false}, {"store", true}} {
		t.Run(tc.name, func(t *testing.T) { f(t, unsentNowRig(t, tc.stored)) })
	}
}

// accountZeroDel has the user of an unsentNowRig type "account 0 del",
// and checks that it is answered as deleted.
func accountZeroDel(t *testing.T, r *rig) {
	t.Helper()
	r.s.handle(newIRCInput(r.s.cl.ats[0], ircd.Input{Command: "PRIVMSG", Target: r.a.channel, Text: "account 0 del"}))
	if got := r.irc.said("Account alice@msim.test deleted"); len(got) != 1 {
		t.Fatalf("account del answered %q", r.irc.lines)
	}
}

// toldOnceNotAgain checks that the IM never sent to bob was told once on
// the connection attached (irc), as the account closed, and neither again
// to a connection that attaches next nor kept for the user's next session.
func toldOnceNotAgain(t *testing.T, r *rig, why string) {
	t.Helper()
	want := "NOTICE root : Not sent to bob (the MSIM link closed " + why + "): typed one"
	if got := r.irc.said("Not sent to bob"); len(got) != 1 || got[0] != want {
		t.Errorf("told on the connection attached: %q; want once %q", got, want)
	}
	// The user re-attaches: the first connection leaves, another comes.
	if !r.s.closed(r.s.cl.ats[0]) {
		t.Fatal("the session ended with its connection")
	}
	phone := newFakeIRC()
	if err := r.s.attach(newAttachment(phone, r.s, nil), nil); err != nil {
		t.Fatal(err)
	}
	if got := phone.said("Not sent to bob"); len(got) != 0 {
		t.Errorf("told again at the re-attach: %q", got)
	}
	for _, n := range r.s.mem.takeNotes() { // what the next session's start tells
		t.Errorf("still kept for the next connection: %q", n)
	}
}

// TestAccountDelTellsUnsentNow: what closing an account deleted by
// account del leaves to tell (an IM its MSIM client took and never sent)
// is told at once on the connection that typed it, not kept for the next
// connection, and so not told again then; whether the user's memory
// keeps notes in the store or in memory only.
func TestAccountDelTellsUnsentNow(t *testing.T) {
	onUnsentNowRigs(t, func(t *testing.T, r *rig) {
		accountZeroDel(t, r)
		toldOnceNotAgain(t, r, "as the account was deleted")
	})
}

// TestConfigChangeTellsUnsentNow: so too for an account the gateway's
// configuration removes or changes (it logs in again).
func TestConfigChangeTellsUnsentNow(t *testing.T) {
	for _, tc := range []struct {
		name string
		next func(r *rig) []Account
	}{
		{"removed", func(*rig) []Account { return nil }},
		{"changed", func(r *rig) []Account {
			r.failDial() // its new login
			return []Account{{Email: "alice@msim.test", Password: "new", AutoConnect: true}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := unsentNowRig(t, true)
			r.s.applyAccounts(tc.next(r))
			toldOnceNotAgain(t, r, configChangedAs)
		})
	}
}

// TestHandOverBatchAfterEndRefuses: the events of its own connections a
// session handing a connection over handles after the move (handOver)
// are handled as its loop would: once the session has ended, the inputs
// of a batch (lines read together) are refused, each with a notice that
// it was not sent, and none reaches MSIM.
func TestHandOverBatchAfterEndRefuses(t *testing.T) {
	h := newHandOverEndRig(t)
	// The phone's two lines, read together, wait in the queue of the
	// session, which another goroutine ends meanwhile.
	h.pat.Messages([]ircd.Input{
		{Command: "PRIVMSG", Target: "bob", Text: "first"},
		{Command: "PRIVMSG", Target: "bob", Text: "second"},
	})
	h.endAndHandOver()
	if got := h.phone.said("Message NOT sent: bob was not handled: your session ended first"); len(got) != 2 {
		t.Errorf("told the phone %q; want two refusals", h.phone.lines)
	}
	if sent := h.sentToMSIM(); len(sent) != 0 {
		t.Errorf("handled after the session ended: sent to MSIM %q", sent)
	}
}
