package channel

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msimircd/msimircd/msim"
	"github.com/msimircd/msimircd/store"
)

// An IM the user typed that an account's MSIM client never sent, as the
// account closed, is told with why the link closed: the user did not
// disconnect when a drop, identify, register, account del or the
// gateway's configuration closed it, nor when the gateway shut down or
// another instance took the session over.
func TestUnsentNoteSaysWhyTheLinkClosed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(t *testing.T, r *rig)
		why   string
	}{
		{"the session ends", func(t *testing.T, r *rig) {
			r.s.cancel()
			r.s.shutdown()
		}, "as you disconnected"},
		{"the gateway shuts down", func(t *testing.T, r *rig) {
			r.s.b.cancel()
			r.s.shutdown()
		}, "as the gateway shut down"},
		{"a reload ends the session", func(t *testing.T, r *rig) {
			r.s.endWith(configChangedAs)
			r.s.shutdown()
		}, "as the gateway's configuration changed"},
		{"another instance takes the session", func(t *testing.T, r *rig) {
			r.s.endWith("as your session moved to another gateway instance")
			r.s.b.cancel() // the first reason given stands
			r.s.shutdown()
		}, "as your session moved to another gateway instance"},
		{"drop", func(t *testing.T, r *rig) {
			r.s.dropped(replyCtx{}, "alice", nil, nil)
		}, "as your registration was dropped"},
		{"identify or register", func(t *testing.T, r *rig) {
			r.s.becomeUser(replyCtx{}, User{Name: "carol", registered: true}, r.s.user)
		}, "as your accounts changed"},
		{"account del", func(t *testing.T, r *rig) {
			ctx := context.Background()
			st := sqliteStore(t)
			if _, err := st.CreateUser(ctx, "alice", store.UnusablePasswordHash()); err != nil {
				t.Fatal(err)
			}
			if err := st.AddAccount(ctx, "alice", store.Account{Email: r.a.cfg.Email, Password: "pw"}); err != nil {
				t.Fatal(err)
			}
			r.s.b.users = &storeDirectory{st: st}
			r.s.user.registered = true
			r.s.accountDel(replyCtx{}, r.a)
		}, "as the account was deleted"},
		{"the gateway's configuration", func(t *testing.T, r *rig) {
			r.s.applyAccounts(nil)
		}, "as the gateway's configuration changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			mem := r.s.mem
			logInWithUnsent(r)
			tc.close(t, r)
			told := r.irc.said("Not sent to bob")
			for _, n := range mem.takeNotes() { // kept for the next connection
				if strings.Contains(n, "Not sent to bob") {
					told = append(told, n)
				}
			}
			want := "Not sent to bob (the MSIM link closed " + tc.why + "): typed one"
			if len(told) != 1 || !strings.HasSuffix(told[0], want) {
				t.Errorf("told %q; want once %q", told, want)
			}
		})
	}
}

// unsentRig is a rig logged in with bob (uid 7) online, whose MSIM client
// has an IM the user typed that it never sent, told as the account closes.
func unsentRig(t *testing.T) *rig {
	t.Helper()
	return logInWithUnsent(newRig(t, nil))
}

// logInWithUnsent logs r's session in with bob (uid 7) online and gives its
// MSIM client an IM the user typed that it never sent, told as the account
// closes.
func logInWithUnsent(r *rig) *rig {
	r.t.Helper()
	cl := &fakeMSIM{buddies: []msim.Contact{{UID: 7, UserName: "bob", Status: msim.StatusOnline}}}
	r.okDial(cl)
	r.s.start()
	r.stepUntil("logged in", func() bool { return r.a.state == linkUp })
	r.settle()   // nothing left to take the event below before the account closes
	cl.mu.Lock() // taken as the account closes
	cl.events = append(cl.events, msim.DisconnectedEvent{Reason: msim.DisconnectClosed, Err: errors.New("closed"),
		Unsent: []msim.OutgoingIM{{To: 7, Text: "typed one"}}})
	cl.mu.Unlock()
	return r
}

// unsentTold is what r's session told, or kept to tell, of the IM never
// sent to bob.
func unsentTold(r *rig, mem *userMemory) []string {
	told := r.irc.said("Not sent to bob")
	for _, n := range mem.takeNotes() {
		if strings.Contains(n, "Not sent to bob") {
			told = append(told, n)
		}
	}
	return told
}

// A session that crashes (a panic its loop recovers from) did not end as
// its user disconnected: the IM its account never sent is not told so.
func TestUnsentNoteAfterASessionCrash(t *testing.T) {
	r := unsentRig(t)
	mem := r.s.mem
	r.s.afterEnd = func() {}
	r.s.post(call(func() { panic("a bug") }))
	r.s.loop() // the session's goroutine: it recovers and ends (shutdown)
	told := unsentTold(r, mem)
	if len(told) != 1 || !strings.HasSuffix(told[0], ": typed one") {
		t.Fatalf("told %q; want the unsent IM once", told)
	}
	if strings.Contains(told[0], "as you disconnected") {
		t.Errorf("told %q after the session crashed; the user did not disconnect", told[0])
	}
}

// The gateway's shutdown closes the IRC connections first (ircd's
// Shutdown, "Server shutting down", before the bridge's; see the gateway's
// shutdown in cmd/msimircd): a session that ends as its connection is
// closed so tells the IM never sent as closed by the shutdown, not as the
// user having disconnected.
func TestUnsentNoteWhenIRCShutsDownFirst(t *testing.T) {
	r := unsentRig(t)
	mem := r.s.mem
	at := newAttachment(r.irc, r.s, nil)
	r.s.cl.ats = []*attachment{at}
	at.Closed("Server shutting down") // what ircd's Shutdown tells each connection
	ended := false
	for !ended { // the close, after what a worker may have posted first
		select {
		case ev := <-r.s.events:
			ended = !r.s.handle(ev)
			continue
		default:
		}
		break
	}
	if !ended {
		t.Fatal("the session did not end as its only connection closed")
	}
	r.s.shutdown() // as the session's goroutine does next
	r.s.b.cancel() // the bridge's Shutdown, after ircd's
	told := unsentTold(r, mem)
	want := "Not sent to bob (the MSIM link closed as the gateway shut down): typed one"
	if len(told) != 1 || !strings.HasSuffix(told[0], want) {
		t.Errorf("told %q; want once %q", told, want)
	}
}
